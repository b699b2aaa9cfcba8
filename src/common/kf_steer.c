/* kf_steer.c - steer a client connection to the relay (kf_steer.h). */
#include "kf_sys.h"
#include "kf_steer.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kf_proxy.h"
#include "kf_rules_hosts.h"

int kf_steer_wanted(const kf_ruleset *rs, const char *host, unsigned port, int mode,
                    int tls_interposable)
{
    if (!rs || !host || !*host || mode == KF_MODE_INPROCESS || mode == KF_MODE_OFF)
        return 0;
    if (!kf_rules_host_listed(rs, host, port))
        return 0;
    if (mode == KF_MODE_RELAY)
        return 1;
    return !tls_interposable || kf_rules_host_needs_upstream(rs, host, port);
}

int kf_relay_lookup(kf_relay_state *st, char *why, size_t wn)
{
    char dir[4096];
    if (kf_relay_dir(dir, sizeof dir, 0) < 0) {
        snprintf(why, wn, "no runtime directory");
        return -1;
    }
    if (kf_relay_state_read(dir, st) < 0) {
        snprintf(why, wn, "no %s/%s", dir, KF_RELAY_STATE_FILE);
        return -1;
    }
    return kf_relay_live(dir, st, why, wn) ? 0 : -1;
}

static int relay_addr(int fd, int family, const kf_relay_state *st, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)st->port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = sizeof *a;
        return 0;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)st->port);
    if (st->v6) {
        a->sin6_addr = in6addr_loopback;
    } else {
        int v6only = 0;
        socklen_t l = sizeof v6only;
        if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l) == 0 && v6only) {
            errno = EAFNOSUPPORT;
            return -1;
        }
        a->sin6_addr.s6_addr[10] = a->sin6_addr.s6_addr[11] = 0xff; /* ::ffff:127.0.0.1 */
        a->sin6_addr.s6_addr[12] = 127;
        a->sin6_addr.s6_addr[15] = 1;
    }
    *len = sizeof *a;
    return 0;
}

int kf_steer_connect(int fd, const struct sockaddr *dst, socklen_t dstlen, const char *authority,
                     const kf_relay_state *st, const kf_steer_io *io)
{
    return kf_steer_connect_ctx(fd, dst, dstlen, authority, st, io, NULL);
}

int kf_steer_connect_ctx(int fd, const struct sockaddr *dst, socklen_t dstlen,
                         const char *authority, const kf_relay_state *st, const kf_steer_io *io,
                         const unsigned char *ctx)
{
    unsigned char pre[KF_PROXY_MAX];
    struct sockaddr_storage ra;
    socklen_t rlen;
    if (!dst || (dst->sa_family != AF_INET && dst->sa_family != AF_INET6) ||
        dstlen < (dst->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6))) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (authority && !kf_proxy_valid_host(authority, strlen(authority)))
        authority = NULL;
    ssize_t n = kf_proxy_encode_ctx(pre, sizeof pre, 0, NULL, dst, authority, st->token, ctx);
    if (n < 0 || relay_addr(fd, dst->sa_family, st, &ra, &rlen) < 0) {
        if (n < 0)
            errno = EINVAL;
        return -1;
    }
    int flags = kf_sys_fcntl(fd, F_GETFL, 0);
    if (flags < 0)
        return -1;
    if ((flags & O_NONBLOCK) && kf_sys_fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
        return -1;
    int rc = 0, saved = 0;
    int r;
    while ((r = io->connect(fd, (struct sockaddr *)&ra, rlen)) < 0 && errno == EINTR)
        ;
    if (r < 0) {
        rc = -1;
        saved = errno;
    }
    for (ssize_t off = 0; rc == 0 && off < n;) {
        ssize_t w = io->write(fd, pre + off, (size_t)(n - off));
        if (w > 0)
            off += w;
        else if (w < 0 && errno == EINTR)
            continue;
        else {
            /* Connected to the relay but the preamble failed: the socket
             * cannot be reused for a direct connect. */
            rc = -1;
            saved = w < 0 ? errno : EIO;
        }
    }
    if (flags & O_NONBLOCK)
        kf_sys_fcntl(fd, F_SETFL, flags);
    errno = saved;
    return rc;
}
