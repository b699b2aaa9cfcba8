/* steer_ctx.h - the shim's side of client contexts and of trust both ways
 * (src/hooks/steer_ctx.c; docs/relay.md "Client contexts", "Trust").
 *
 * Called from steer.c (each call site marked "trust-ctx"):
 *   kf_steer_setup(), after the trust variables:   kf_steer_ctx_java(kf_relay_start)
 *   kf_steer_try(), before steering:               if (kf_steer_ctx_distrusted()) go direct
 *   kf_steer_try(), with the relay state in hand:  kf_steer_ctx_id(&st, id) -> TLV 0xE1
 *   kf_steer_child():                              kf_steer_ctx_child()
 */
#ifndef KF_STEER_CTX_H
#define KF_STEER_CTX_H

#include <stddef.h>

#include "kf_paths.h"

/* steer.c's kf_relay_start(): 0 when a relay runs (st filled). */
typedef int (*kf_relay_ensure_fn)(kf_relay_state *st, char *why, size_t wn);

/* Constructor, after the trust variables: when this process is a JVM
 * (libjli.so loaded), point it at a PKCS12 trust store holding its own
 * store's entries plus the kimifix CA (an existing one by name, else built
 * by the relay on request, one deadline <= 1 s) through the -D options of
 * the variable that wins (kf_trustjava.h), the user's options kept and
 * saved in KIMIFIX_ORIG_<VAR>. Returns 0 not a JVM, 1 a JVM that now
 * trusts the relay, -1 a JVM that will not (then steer no TLS of it). */
int kf_steer_ctx_java(kf_relay_ensure_fn ensure);

/* connect(): this process's context id with the relay `st` (registered on
 * first use; again when the relay restarted or the id was unused for 5
 * minutes, well inside the relay's 10-minute expiry). 1 with id, 0 none
 * (the relay's defaults; one warning says why, a debug line when the relay
 * serves no contexts at all). Serialized; at most one registration attempt
 * per 10 s after a failure. */
int kf_steer_ctx_id(const kf_relay_state *st, unsigned char id[16]);

/* 1 when the relay learned that this program refuses the kimifix CA
 * (kf_distrust.h): its connections must go direct. One stat (and a small
 * read when the record exists) per second at most; logged once. */
int kf_steer_ctx_distrusted(void);

/* fork(): the child is the same program with the same context. */
void kf_steer_ctx_child(void);

#endif
