/* kf_lease.h - a proxy-carrier client's lease with the relay
 * (docs/relay.md, "Proxy carrier": "Relay lifetime").
 *
 * A client that uses the relay as its HTTP proxy keeps the proxy URL (port
 * and token) in its environment for its whole life, and a static program
 * has no shim that could re-point it. So whoever makes the relay a
 * client's proxy (`kimifix CMD` before exec, or the shim's constructor)
 * writes a lease: RUNDIR/clients/ID (0600 in a 0700 directory), and the
 * proxy URL carries ID as its user name (`kimifix-ID`). The relay does not
 * exit idle while a lease's process is alive (pid and its start time, so a
 * reused pid does not count), and drops the file once the process is gone
 * and the id went unused for KF_LEASE_KEEP_S.
 *
 * The file is text in the form of a client-context registration (contract
 * A: `key value` lines, an empty line at the end):
 *
 *     kfctx 1
 *     lease PID START        the process and its start time (/proc/PID/stat)
 *     proxy URL              the user's own proxy (credentials included)
 *     noproxy LIST           the user's NO_PROXY
 *     trust PATH             repeatable: the client's original trust sources
 *                            (kf_trust_sources: its saved KIMIFIX_ORIG_* CA files)
 *
 * The relay registers the file's text as the client's context (contract A)
 * on first use of its id: one id in the proxy URL finds the client's proxy
 * (where to chain) and its trust (how to verify CONNECT-terminated
 * upstreams). Only the user can read the file, as with relay.state's token.
 *
 * libc only, no allocation: the shim's constructor writes leases too.
 */
#ifndef KF_LEASE_H
#define KF_LEASE_H

#include <stddef.h>
#include <sys/types.h>

#include "kf_req.h"

#define KF_LEASE_DIR "clients"
#define KF_LEASE_MAX 8192      /* bytes in a lease file */
#define KF_LEASE_ID_HEX 32     /* lower-case hex chars of an id (16 bytes) */
#define KF_LEASE_KEEP_S 600    /* a dead client's id stays usable this long after its last use */

typedef struct kf_lease {
    pid_t pid;
    unsigned long long start;  /* clock ticks after boot */
    kf_str proxy, noproxy;     /* views into the text; p == NULL when absent */
} kf_lease;

/* The start time of pid (field 22 of /proc/PID/stat). 0, or -1. */
int kf_proc_start(pid_t pid, unsigned long long *start);

/* 1 when pid is running and started at `start`. */
int kf_lease_alive(pid_t pid, unsigned long long start);

/* 1 when s is KF_LEASE_ID_HEX lower-case hex chars and nothing else. */
int kf_lease_id_ok(const char *s);

/* Write a lease for pid (its start time read now) with the user's proxy
 * and NO_PROXY (either may be NULL or ""): RUNDIR/clients/ID, made
 * atomically. idhex gets the new id (KF_LEASE_ID_HEX + 1 bytes). A value
 * with a control byte is left out. 0, or -1 with errno. */
int kf_lease_write(const char *rundir, pid_t pid, const char *proxy, const char *noproxy,
                   char *idhex);

/* Read RUNDIR/clients/ID (a regular file of ours, no group/other bits, at
 * most cap - 1 bytes) into buf, NUL-terminated. Its length, or -1. */
ssize_t kf_lease_read(const char *rundir, const char *idhex, char *buf, size_t cap);

/* Parse a lease file's text in one pass. 0, or -1 (not `kfctx 1` first,
 * no valid `lease` line, a line without a value). */
int kf_lease_parse(const char *text, size_t n, kf_lease *out);

/* RUNDIR/clients into buf. buf, or NULL when it does not fit. */
char *kf_lease_dir(char *buf, size_t n, const char *rundir);

#endif
