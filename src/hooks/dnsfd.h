/* dnsfd.h - which fds are DNS sockets (libc_recv.c), for the receive hooks
 * and for the fd lifetime hooks (connect, close, dup2/dup3, close_range).
 *
 * A socket becomes a "DNS socket" when it is connect()ed to port 53 (UDP:
 * c-ares, Node's dns.resolve*; TCP: their fallback for long answers) or
 * sends a datagram to port 53 (unconnected resolvers), and stops being one
 * when it is closed or connected elsewhere. Answers read from it are
 * handed to kf_dns_learn() (dns_learn.c).
 *
 * Fast path: kf_dnsfd_peek() is one load (NULL map) in every process that
 * never connected a socket to port 53; after that, a bounds check and one
 * byte load. Async-signal-safe.
 */
#ifndef KF_DNSFD_H
#define KF_DNSFD_H

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

enum { KF_DNSFD_NONE = 0, KF_DNSFD_UDP = 1, KF_DNSFD_TCP = 2 };

struct kf_dnsmap {
    _Atomic(unsigned char *) kind; /* one byte per fd; NULL until first use */
    size_t n;                      /* set before kind is published */
};
extern struct kf_dnsmap kf_dnsmap;

static inline int kf_dnsfd_peek(int fd)
{
    unsigned char *m = atomic_load_explicit(&kf_dnsmap.kind, memory_order_acquire);
    if (__builtin_expect(m == NULL || (size_t)(unsigned)fd >= kf_dnsmap.n, 1))
        return KF_DNSFD_NONE;
    return __atomic_load_n(&m[fd], __ATOMIC_RELAXED);
}

/* connect() hook (sa not NULL), before the real connect: mark fd when
 * sa's port is 53 (and rules are loaded), unmark it when it was a DNS socket and now goes
 * elsewhere (or AF_UNSPEC: a UDP socket dissolving its association). */
void kf_dnsfd_connect_slow(int fd, const struct sockaddr *sa, socklen_t len);
/* An IPv4/IPv6 address with port 53 (sin_port and sin6_port both sit
 * right after the family). On every sendto() with an address: a few
 * instructions (AF_INET 2 and AF_INET6 10 are the families with
 * family | 8 == 10). */
static inline int kf_dns_port53(const struct sockaddr *sa, socklen_t len)
{
    uint16_t port;
    if (len < 4) /* the caller's buffer may end before the port */
        return 0;
    memcpy(&port, sa->sa_data, sizeof port);
    return port == htons(53) && (sa->sa_family | 8) == AF_INET6;
}
static inline void kf_dnsfd_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (kf_dns_port53(sa, len) || __builtin_expect(kf_dnsfd_peek(fd) != KF_DNSFD_NONE, 0))
        kf_dnsfd_connect_slow(fd, sa, len);
}

/* sendto()/sendmsg() hooks with a destination address: a datagram to port
 * 53 makes fd a DNS socket (resolvers on unconnected UDP sockets:
 * hickory-dns, unbound), so its answers are read like a connected one's. */
void kf_dnsfd_sent53(int fd);
static inline void kf_dnsfd_sendto(int fd, const struct sockaddr *to, socklen_t len)
{
    if (__builtin_expect(kf_dns_port53(to, len), 0) && kf_dnsfd_peek(fd) == KF_DNSFD_NONE)
        kf_dnsfd_sent53(fd);
}

/* fd is closed (close, the target of dup2/dup3): forget it. */
void kf_dnsfd_forget_slow(int fd);
static inline void kf_dnsfd_forget(int fd)
{
    if (__builtin_expect(kf_dnsfd_peek(fd) != KF_DNSFD_NONE, 0))
        kf_dnsfd_forget_slow(fd);
}
void kf_dnsfd_forget_range(unsigned lo, unsigned hi);

/* dns_learn.c: learn address -> name from one DNS message (a UDP datagram,
 * or a TCP message without its length prefix). Never changes msg. */
void kf_dns_learn(const unsigned char *msg, size_t n);

#endif
