/* kf_sockdiag.h - who owns the TCP listener on a loopback port.
 *
 * The relay's state file names a port; before a client sends its request
 * (key and token) there, it checks that whatever listens on that port now
 * belongs to its own user (a relay that died may have left the port to
 * anybody). The kernel tells: NETLINK_SOCK_DIAG (inet_diag, listening
 * sockets only, a few hundred bytes), else /proc/net/tcp and tcp6.
 *
 * libc only, no allocation, raw system calls for the socket I/O (this runs
 * inside the shim's connect() hook and must not re-enter the hooks).
 */
#ifndef KF_SOCKDIAG_H
#define KF_SOCKDIAG_H

#include <sys/types.h>

enum kf_listen_owner {
    KF_LISTEN_OURS = 1,     /* every listener a loopback connect could reach is uid's */
    KF_LISTEN_NONE = 0,     /* nothing listens there (for IPv4) */
    KF_LISTEN_FOREIGN = -1, /* a listener of another user */
    KF_LISTEN_UNKNOWN = -2, /* the kernel would not say (no netlink, no /proc/net) */
};

/* TCP listeners on `port` that a connect to 127.0.0.1 (and, with v6, to
 * [::1]) could reach: 127.0.0.1, 0.0.0.0, ::1, ::, ::ffff:127.0.0.1.
 * KF_LISTEN_OURS when there is at least one IPv4 listener and all of them
 * belong to `uid`; with v6 also at least one IPv6 listener. */
int kf_tcp_listener_owner(unsigned port, int v6, uid_t uid);

#endif
