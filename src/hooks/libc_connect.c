/* libc_connect.c - connect(): apply `connect-to`, track TCP client sockets.
 *
 * Tracking costs nothing per write until bytes flow; a tracked stream that
 * turns out not to be HTTP/1 (TLS records, HTTP/2) goes passthrough at
 * once and is forgotten (fdtab.c). So we track every TCP connection to a
 * rule-relevant name, and to raw addresses (whose Host header decides).
 * Connections whose plaintext no hook can see (or that need `upstream`)
 * are steered to the relay instead (steer.c, docs/relay.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "dnsfd.h"
#include "fdtab.h"
#include "libc_dns.h"
#include "kf_shim.h"

/* Build the connect-to destination in the socket's family. 0 on failure. */
static socklen_t kf_ct_addr(struct sockaddr_storage *out, int family, const char *addr,
                            unsigned port)
{
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        if (inet_pton(AF_INET, addr, &in->sin_addr) != 1)
            return 0;
        in->sin_family = AF_INET;
        in->sin_port = htons((unsigned short)port);
        return sizeof *in;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) != 1) {
        /* An IPv4 target on an IPv6 socket: v4-mapped. */
        if (inet_pton(AF_INET, addr, &in6->sin6_addr.s6_addr[12]) != 1)
            return 0;
        in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
    }
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((unsigned short)port);
    return sizeof *in6;
}

static int kf_is_tcp(int fd)
{
    int type = 0;
    socklen_t tl = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
}

static int kf_connect(int fd, const struct sockaddr *sa, socklen_t len,
                      __typeof__(&connect) real)
{
    const kf_ruleset *rs = kf_shim_rules();
    int saved = errno;
    if (!rs || !kf_is_tcp(fd)) {
        errno = saved;
        return real(fd, sa, len);
    }
    /* proxy-carrier: the relay's own proxy port is the relay's to rewrite:
     * never tracked for in-process rewriting, never steered (carrier.c). */
    if (kf_carrier_relay_dst(sa)) {
        kf_fd_forget(fd);
        errno = saved;
        return real(fd, sa, len);
    }
    unsigned port = ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                                   : ((const struct sockaddr_in6 *)sa)->sin6_port);
    char host[KF_HOSTMAX];
    int named = kf_dns_name_of(sa, host, sizeof host);

    struct sockaddr_storage alt;
    const struct sockaddr *dst = sa;
    socklen_t dlen = len;
    const char *addr;
    unsigned aport;
    if (named && kf_rules_connect_to(rs, host, port, &addr, &aport)) {
        socklen_t l = kf_ct_addr(&alt, sa->sa_family, addr, aport ? aport : port);
        if (l) {
            dst = (const struct sockaddr *)&alt;
            dlen = l;
            kf_log(KF_LOG_DEBUG, "[libc] connect-to: %s:%u -> %s:%u", host, port, addr,
                   aport ? aport : port);
        } else {
            kf_shim_warn_once(addr, "[libc] connect-to %s: address %s does not fit this "
                                    "socket (needs a numeric address of its family); "
                                    "connecting as asked", host, addr);
        }
    }
    int relevant = !named || kf_rules_host_relevant(rs, host, port);

    /* Relay steering (steer.c): the relay rewrites this connection; the
     * fd table marks it steered, so no in-process carrier rewrites it too.
     * dst is the address after connect-to: the relay connects there (or
     * where `upstream` says). */
    errno = saved;
    if (named && kf_steer_try(fd, dst, dlen, host, port)) {
        errno = saved;
        return 0;
    }
    errno = saved;
    int rc = real(fd, dst, dlen);
    int e = errno;
    /* Non-blocking (EINPROGRESS) and interrupted (EINTR: the kernel carries
     * on) connects complete later on this very socket: track them too. */
    if (rc == 0 || e == EINPROGRESS || e == EINTR) {
        if (relevant)
            kf_fd_track(fd, named ? host : NULL, port);
        else
            kf_fd_forget(fd);
    }
    errno = e;
    return rc;
}

KF_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG arg, socklen_t len)
{
    const struct sockaddr *sa = KF_SA(arg);
    __typeof__(&connect) real = KF_REAL(connect);
    if (sa)
        kf_dnsfd_connect(fd, sa, len); /* port 53: its answers name addresses (libc_recv.c) */
    if (!sa || len < sizeof(struct sockaddr_in) ||
        (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
        (sa->sa_family == AF_INET6 && len < sizeof(struct sockaddr_in6)))
        return real(fd, sa, len);
    return kf_connect(fd, sa, len, real);
}
