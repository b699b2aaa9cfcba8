/* kf_steer.h - the shim's side of the relay: decide, connect, preamble.
 *
 * libc only, no allocation, no locks: meant for the shim's connect() hook,
 * which passes its real_* functions so nothing re-enters the hooks.
 *
 *   kf_steer_wanted()  should this connection go through the relay?
 *   kf_relay_lookup()  the running relay of this user (state file, run lock
 *                      held, its port's listener ours)
 *   kf_steer_connect() connect fd to the relay instead of dst and write the
 *                      PROXY v2 preamble (dst, authority, token)
 */
#ifndef KF_STEER_H
#define KF_STEER_H

#include <sys/socket.h>
#include <sys/types.h>

#include "kf_paths.h"
#include "kf_rules.h"

#include "kf_mode.h"

/* 1 when a TCP connection to host:port should be steered to the relay:
 *  - never for a host no enabled rule names explicitly (the relay would
 *    refuse to impersonate it: kf_rules_host_listed);
 *  - KF_MODE_RELAY: always (for listed hosts);
 *  - KF_MODE_AUTO: when the process's TLS is not interposable
 *    (tls_interposable == 0) or a rule for the host needs `upstream`;
 *  - KF_MODE_INPROCESS, KF_MODE_OFF: never (KF_MODE_PROXY: as auto). */
int kf_steer_wanted(const kf_ruleset *rs, const char *host, unsigned port, int mode,
                    int tls_interposable);

/* Read this user's relay state and check that the relay is alive
 * (kf_relay_live). 0, or -1 (no relay; why says why). No waiting. */
int kf_relay_lookup(kf_relay_state *st, char *why, size_t wn);

typedef struct kf_steer_io {
    int (*connect)(int fd, const struct sockaddr *sa, socklen_t len); /* real connect */
    ssize_t (*write)(int fd, const void *buf, size_t n);              /* real write */
} kf_steer_io;

/* Connect the TCP socket fd to the relay (127.0.0.1:port for AF_INET;
 * [::1] or ::ffff:127.0.0.1 for AF_INET6) and write the preamble naming
 * dst and authority (may be NULL). The socket is blocking meanwhile (a
 * loopback connect and a < 300 byte write complete at once); its file
 * status flags are restored before returning. Returns 0 when done: the
 * caller's connect() then returns 0, also for a non-blocking socket.
 * Returns -1 with errno when the relay could not be reached; on Linux the
 * caller may then connect() the same socket directly (a TCP socket whose
 * connect failed can connect again). */
int kf_steer_connect(int fd, const struct sockaddr *dst, socklen_t dstlen, const char *authority,
                     const kf_relay_state *st, const kf_steer_io *io);
/* The same, the preamble carrying the client's context id (PROXY v2 TLV
 * 0xE1, contract A; ctx: KF_PROXY_CTX_LEN bytes, or NULL = none). */
int kf_steer_connect_ctx(int fd, const struct sockaddr *dst, socklen_t dstlen,
                         const char *authority, const kf_relay_state *st, const kf_steer_io *io,
                         const unsigned char *ctx);

#endif
