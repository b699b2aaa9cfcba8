/* peeruid.c - who owns the socket at the other end of a loopback TCP
 * connection.
 *
 * SO_PEERCRED is for Unix sockets only. The kernel's socket diagnostics
 * (NETLINK_SOCK_DIAG, inet_diag: what `ss -e` uses) look a TCP socket up
 * by its exact 4-tuple and report the uid that owns it. The peer's socket
 * is the one whose local end is our remote end: ask for src = peer,
 * dst = us. The request is answered synchronously inside sendmsg(), so the
 * reply is already queued when recv() runs (MSG_DONTWAIT: never blocks a
 * worker). One netlink socket per worker, opened on first use.
 */
#include "relay.h"
#include "kf_sockdiag.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

static int diag_open(worker *w)
{
    if (w->diag_fd >= 0)
        return w->diag_fd;
    if (w->diag_fd == -2)
        return -1; /* failed before: do not retry per connection */
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_SOCK_DIAG);
    w->diag_fd = fd >= 0 ? fd : -2;
    return fd;
}

static void put_addr(__be32 *dst, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        memcpy(dst, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    else
        memcpy(dst, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

static __be16 port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                    : ((const struct sockaddr_in6 *)ss)->sin6_port;
}

static int lookup(int nl, int fd, const struct sockaddr_storage *me,
                  const struct sockaddr_storage *peer, uid_t *uid);

int peeruid_of(worker *w, int fd, const struct sockaddr_storage *me,
               const struct sockaddr_storage *peer, uid_t *uid)
{
    if (!g_relay.diag_ok)
        return -2;
    int nl = diag_open(w);
    return nl < 0 ? -2 : lookup(nl, fd, me, peer, uid);
}

/* At start: a loopback connection of our own must come back with our uid.
 * ENOENT is both "no such socket" and "no inet_diag in this kernel", so
 * this probe is what tells them apart. */
int peeruid_probe(void)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c = -1, a = -1, nl = -1, ok = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (l >= 0 && bind(l, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(l, 1) == 0 &&
        getsockname(l, (struct sockaddr *)&sa, &sl) == 0 &&
        (c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
        connect(c, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        (a = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0 &&
        (nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_SOCK_DIAG)) >= 0) {
        uid_t uid;
        ok = lookup(nl, a, NULL, NULL, &uid) == 0 && uid == geteuid();
    }
    int fds[] = {l, c, a, nl};
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return ok;
}

/* A system call each on a VM costs several us of a connection's setup
 * (bench figure 13): the caller's addresses save two. */
static int lookup(int nl, int fd, const struct sockaddr_storage *me_known,
                  const struct sockaddr_storage *peer_known, uid_t *uid)
{
    struct sockaddr_storage me_buf, peer_buf;
    const struct sockaddr_storage *me = me_known, *peer = peer_known;
    socklen_t ml = sizeof me_buf, pl = sizeof peer_buf;
    if (!me) {
        if (getsockname(fd, (struct sockaddr *)&me_buf, &ml) < 0)
            return -1;
        me = &me_buf;
    }
    if (!peer) {
        if (getpeername(fd, (struct sockaddr *)&peer_buf, &pl) < 0)
            return -1;
        peer = &peer_buf;
    }
    if (me->ss_family != peer->ss_family || (me->ss_family != AF_INET && me->ss_family != AF_INET6))
        return -1;
    struct kf_diag_req req;
    kf_diag_req_init(&req, me->ss_family, ~0u, NLM_F_REQUEST, (unsigned)fd);
    req.r.id.idiag_sport = port_of(peer);
    req.r.id.idiag_dport = port_of(me);
    put_addr(req.r.id.idiag_src, peer);
    put_addr(req.r.id.idiag_dst, me);
    req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(nl, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
        return -1;
    union {
        struct nlmsghdr h;
        char b[1024];
    } ans;
    for (;;) {
        ssize_t n = recv(nl, &ans, sizeof ans, MSG_DONTWAIT);
        if (n < 0)
            return -1;
        for (struct nlmsghdr *h = &ans.h; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != (unsigned)fd)
                continue; /* a stale answer to an earlier question */
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                (void)e; /* the peer left (ENOENT), or the kernel would not say */
                return -1;
            }
            if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
                h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
                const struct inet_diag_msg *m = NLMSG_DATA(h);
                *uid = m->idiag_uid;
                return 0;
            }
        }
    }
}
