/* steer_int.h - private between steer.c (steering) and relay_start.c
 * (starting the relay from inside a client). */
#ifndef KF_STEER_INT_H
#define KF_STEER_INT_H

#include <stddef.h>

#include "kf_paths.h"

/* The longest a client's constructor or connect() waits on the way to the
 * relay (a `relay start` holding the start lock, the state file to
 * appear); past it the connection goes direct. */
#define KF_RELAY_WAIT_MS 1000

/* `kimifix relay start` exits with this when another start held the lock
 * past its --wait-ms (src/cli/relay_cmd.c). */
#define KF_START_LOCK_BUSY 75

/* Start the user's relay with `kimifix relay start` and wait for it, at
 * most KF_RELAY_WAIT_MS; at most one attempt per 10 s per process. 0 when a
 * relay now runs (st filled), else -1 with the reason appended to why
 * (which holds kf_relay_lookup's). */
int kf_relay_start(kf_relay_state *st, char *why, size_t wn);

/* fork(): the child starts with the start lock free. */
void kf_relay_start_child(void);

#endif
