/* kf_sockdiag.c - owner of the TCP listeners on a loopback port
 * (kf_sockdiag.h). */
#include "kf_sockdiag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#define KF_TCP_LISTEN 10 /* include/net/tcp_states.h */

struct scan {
    unsigned port;
    uid_t uid;
    int v4, v6, foreign;
};

/* Raw system calls: no hook of the shim in between. */
static void raw_close(int fd)
{
    syscall(SYS_close, fd);
}

/* Could a connect to 127.0.0.1 / [::1] reach a listener bound here? */
static int reachable(int family, const uint32_t *a)
{
    static const uint32_t any = 0;
    uint32_t lo = htonl(INADDR_LOOPBACK);
    if (family == AF_INET)
        return a[0] == lo || a[0] == any;
    if (family != AF_INET6 || a[0] || a[1])
        return 0;
    if (a[2] == 0) /* :: or ::1 */
        return a[3] == 0 || a[3] == htonl(1);
    return a[2] == htonl(0xffff) && (a[3] == lo || a[3] == any); /* v4-mapped */
}

static void note(struct scan *s, int family, const uint32_t *addr, unsigned port, unsigned uid)
{
    if (port != s->port || !reachable(family, addr))
        return;
    if (uid != (unsigned)s->uid)
        s->foreign = 1;
    else if (family == AF_INET)
        s->v4 = 1;
    else
        s->v6 = 1;
}

void kf_diag_req_init(struct kf_diag_req *q, int family, unsigned states, unsigned flags, unsigned seq)
{
    memset(q, 0, sizeof *q);
    q->nlh.nlmsg_len = sizeof *q;
    q->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    q->nlh.nlmsg_flags = (unsigned short)flags;
    q->nlh.nlmsg_seq = seq;
    q->r.sdiag_family = (unsigned char)family;
    q->r.sdiag_protocol = IPPROTO_TCP;
    q->r.idiag_states = states;
}

/* inet_diag: the kernel sends only listening sockets. 0 or -1. */
static int diag_dump(int family, struct scan *s)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    struct timeval tv = { 1, 0 }; /* hang guard: the kernel answers at once */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct kf_diag_req req;
    kf_diag_req_init(&req, family, 1u << KF_TCP_LISTEN, NLM_F_REQUEST | NLM_F_DUMP, 0);
    struct sockaddr_nl nl;
    memset(&nl, 0, sizeof nl);
    nl.nl_family = AF_NETLINK;
    if (syscall(SYS_sendto, fd, &req, sizeof req, 0, &nl, sizeof nl) != (long)sizeof req) {
        raw_close(fd);
        return -1;
    }
    long buf[8192 / sizeof(long)];
    for (;;) {
        long n = syscall(SYS_recvfrom, fd, buf, sizeof buf, 0, NULL, NULL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        unsigned len = (unsigned)n; /* NLMSG_OK compares it with the u32 nlmsg_len */
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                raw_close(fd);
                return 0;
            }
            if (h->nlmsg_type == NLMSG_ERROR)
                goto fail;
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof *m))
                continue;
            note(s, m->idiag_family, m->id.idiag_src, ntohs(m->id.idiag_sport), m->idiag_uid);
        }
    }
fail:
    raw_close(fd);
    return -1;
}

static unsigned hexval(char c)
{
    return c >= '0' && c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* One line of /proc/net/tcp{,6}: "N: ADDR:PORT REM:PORT ST ... UID ...".
 * The kernel prints each 32-bit word of the address as a host-order
 * number: parsing the words back gives the bytes as they are in memory. */
static void proc_line(const char *line, int family, struct scan *s)
{
    char addr[33];
    unsigned port, st, uid;
    if (sscanf(line, " %*u: %32[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %u", addr,
               &port, &st, &uid) != 4 || st != KF_TCP_LISTEN)
        return;
    size_t words = family == AF_INET ? 1 : 4;
    if (strlen(addr) != 8 * words)
        return;
    uint32_t a[4] = { 0, 0, 0, 0 };
    for (size_t w = 0; w < words; w++)
        for (int i = 0; i < 8; i++)
            a[w] = a[w] << 4 | hexval(addr[8 * w + (size_t)i]);
    note(s, family, a, port, uid);
}

static int proc_scan(const char *path, int family, struct scan *s)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = 0;
        char *p = buf, *nl;
        while ((nl = strchr(p, '\n'))) {
            *nl = 0;
            proc_line(p, family, s);
            p = nl + 1;
        }
        have -= (size_t)(p - buf);
        memmove(buf, p, have);
        if (have == sizeof buf - 1)
            have = 0; /* a line longer than any the kernel writes: drop it */
    }
    raw_close(fd);
    return 0;
}

int kf_tcp_listener_owner(unsigned port, int v6, uid_t uid)
{
    struct scan s = { port, uid, 0, 0, 0 };
    int saved = errno;
    int ok4 = diag_dump(AF_INET, &s) == 0, ok6 = ok4 && diag_dump(AF_INET6, &s) == 0;
    if (!ok4 || !ok6) {
        memset(&s, 0, sizeof s);
        s.port = port;
        s.uid = uid;
        ok4 = proc_scan("/proc/net/tcp", AF_INET, &s) == 0;
        ok6 = proc_scan("/proc/net/tcp6", AF_INET6, &s) == 0 || !v6; /* no IPv6 at all */
    }
    errno = saved;
    if (!ok4 || !ok6)
        return KF_LISTEN_UNKNOWN;
    if (s.foreign)
        return KF_LISTEN_FOREIGN;
    return s.v4 && (!v6 || s.v6) ? KF_LISTEN_OURS : KF_LISTEN_NONE;
}
