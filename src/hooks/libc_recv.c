/* libc_recv.c - the receive calls resolvers use (recv, recvfrom, recvmsg),
 * so names come from DNS answers a program reads itself (see dnsfd.h).
 *
 * Which bytes are DNS answers: anything read from a socket connect()ed to
 * port 53 (c-ares and Node's dns.resolve* connect their UDP sockets; TCP
 * is their fallback for answers that do not fit a datagram), or that sent
 * a datagram to port 53 (resolvers on unconnected UDP sockets:
 * hickory-dns, unbound). The fd is marked by the connect/sendto/sendmsg
 * hooks. Every other read takes the fast path: one load (no DNS socket in
 * the process) or a bounds check and a byte load, then the real function.
 *
 * The caller's bytes are only read, never changed; errno is kept. A UDP
 * datagram is one message. TCP messages carry a 2-byte length and arrive
 * in pieces (c-ares reads the length, then the rest): a small per-socket
 * buffer reassembles them (KF_TCP_SLOTS sockets at a time, messages up to
 * KF_TCP_MSGMAX bytes; longer ones are skipped, not parsed). Once bytes of
 * a TCP stream were missed (a peek, a discarding read, a concurrent
 * reader) that stream is no longer parsed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "dnsfd.h"
#include "fdtab.h"
#include "kf_shim.h"

#define KF_DNSMAP_CAP (1u << 20) /* 1 MiB of address space at most, touched lazily */
#define KF_TCP_SLOTS 8
#define KF_TCP_MSGMAX 4096

struct kf_dnsmap kf_dnsmap;
static atomic_uint kf_dnsfd_count; /* marked fds: range closes skip the scan at 0 */

/* ---- the per-fd map ---- */

static void kf_dnsmap_init(void)
{
    struct rlimit rl;
    size_t n = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t m = rl.rlim_max > rl.rlim_cur ? rl.rlim_max : rl.rlim_cur;
        n = (m == RLIM_INFINITY || m > KF_DNSMAP_CAP) ? KF_DNSMAP_CAP : (size_t)m;
        if (n < 1024)
            n = 1024;
    }
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        kf_shim_warn_once("dnsmap", "cannot map the DNS socket table (%s); names from DNS "
                                    "answers are not learned", strerror(errno));
        return;
    }
    kf_dnsmap.n = n;
    atomic_store_explicit(&kf_dnsmap.kind, (unsigned char *)p, memory_order_release);
}

static unsigned char *kf_dnsmap_get(int fd)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, kf_dnsmap_init);
    unsigned char *m = atomic_load_explicit(&kf_dnsmap.kind, memory_order_acquire);
    return m && fd >= 0 && (size_t)fd < kf_dnsmap.n ? m : NULL;
}

static void kf_dnsmap_set(int fd, int kind)
{
    unsigned char *m = kf_dnsmap_get(fd);
    if (!m)
        return;
    unsigned char old = __atomic_exchange_n(&m[fd], (unsigned char)kind, __ATOMIC_RELAXED);
    if (!old && kind)
        atomic_fetch_add(&kf_dnsfd_count, 1);
    else if (old && !kind)
        atomic_fetch_sub(&kf_dnsfd_count, 1);
}

/* ---- TCP reassembly ---- */

/* All zero when free (so the table is .bss: untouched in most processes). */
struct kf_tcp {
    pthread_mutex_t mu; /* only ever tried: a reader that cannot get it desyncs */
    atomic_int fdp1;    /* fd + 1; 0: free */
    atomic_int desync;  /* bytes were missed: stop parsing this stream */
    unsigned lenhave;   /* bytes of the 2-byte length prefix seen */
    unsigned need;      /* message length (valid once lenhave == 2) */
    unsigned got;       /* message bytes seen so far */
    unsigned char len[2];
    unsigned char buf[KF_TCP_MSGMAX];
};
static struct kf_tcp kf_tcp[KF_TCP_SLOTS]; /* glibc: PTHREAD_MUTEX_INITIALIZER is all zero */

static struct kf_tcp *kf_tcp_find(int fd)
{
    for (int i = 0; i < KF_TCP_SLOTS; i++)
        if (atomic_load_explicit(&kf_tcp[i].fdp1, memory_order_acquire) == fd + 1)
            return &kf_tcp[i];
    return NULL;
}

static void kf_tcp_release(int fd)
{
    struct kf_tcp *t = kf_tcp_find(fd);
    int want = fd + 1;
    if (t)
        atomic_compare_exchange_strong(&t->fdp1, &want, 0);
}

static int kf_tcp_claim(int fd)
{
    struct kf_tcp *t = kf_tcp_find(fd);
    for (int i = 0; !t && i < KF_TCP_SLOTS; i++) {
        int free_ = 0;
        if (atomic_compare_exchange_strong(&kf_tcp[i].fdp1, &free_, fd + 1))
            t = &kf_tcp[i];
    }
    if (!t)
        return -1;
    if (pthread_mutex_trylock(&t->mu) != 0) {
        kf_tcp_release(fd);
        return -1;
    }
    t->desync = 0;
    t->lenhave = t->need = t->got = 0;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

/* Feed stream bytes; a complete message goes to kf_dns_learn. */
static void kf_tcp_feed(struct kf_tcp *t, const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (t->lenhave < 2) {
            t->len[t->lenhave++] = *p++;
            n--;
            if (t->lenhave == 2) {
                t->need = (unsigned)t->len[0] << 8 | t->len[1];
                t->got = 0;
            }
        } else {
            size_t k = t->need - t->got < n ? t->need - t->got : n;
            if (t->need <= KF_TCP_MSGMAX)
                memcpy(t->buf + t->got, p, k);
            t->got += (unsigned)k;
            p += k;
            n -= k;
        }
        if (t->lenhave == 2 && t->got == t->need) {
            if (t->need <= KF_TCP_MSGMAX)
                kf_dns_learn(t->buf, t->need);
            t->lenhave = 0;
        }
    }
}

/* One read's worth of stream bytes (iov: the caller's buffers, r bytes). */
static void kf_tcp_read(int fd, const struct iovec *iov, size_t cnt, size_t r, int missed)
{
    struct kf_tcp *t = kf_tcp_find(fd);
    if (!t)
        return;
    if (pthread_mutex_trylock(&t->mu) != 0) {
        t->desync = 1; /* another thread is inside: this stream is lost to us */
        return;
    }
    if (missed)
        t->desync = 1;
    for (size_t i = 0; i < cnt && r > 0 && !t->desync; i++) {
        size_t k = iov[i].iov_len < r ? iov[i].iov_len : r;
        kf_tcp_feed(t, iov[i].iov_base, k);
        r -= k;
    }
    pthread_mutex_unlock(&t->mu);
}

/* ---- fd lifetime (called by the connect and close hooks) ---- */

void kf_dnsfd_connect_slow(int fd, const struct sockaddr *sa, socklen_t len)
{
    int saved = errno;
    kf_dnsfd_forget_slow(fd);
    int type = 0;
    socklen_t tl = sizeof type;
    if (kf_dns_port53(sa, len) && kf_shim_rules() && kf_dnsmap_get(fd) &&
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0) {
        if (type == SOCK_DGRAM) {
            kf_dnsmap_set(fd, KF_DNSFD_UDP);
        } else if (type == SOCK_STREAM) {
            if (kf_tcp_claim(fd) == 0)
                kf_dnsmap_set(fd, KF_DNSFD_TCP);
            else
                kf_shim_warn_once("dns-tcp-slots", "[dns] more than %d DNS-over-TCP sockets at "
                                  "once: answers on the others are not read", KF_TCP_SLOTS);
        }
    }
    errno = saved;
}

void kf_dnsfd_sent53(int fd)
{
    int saved = errno, type = 0;
    socklen_t tl = sizeof type;
    if (kf_shim_rules() && kf_dnsmap_get(fd) &&
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_DGRAM)
        kf_dnsmap_set(fd, KF_DNSFD_UDP);
    errno = saved;
}

void kf_dnsfd_forget_slow(int fd)
{
    int kind = kf_dnsfd_peek(fd);
    if (kind == KF_DNSFD_NONE)
        return;
    if (kind == KF_DNSFD_TCP)
        kf_tcp_release(fd);
    kf_dnsmap_set(fd, KF_DNSFD_NONE);
}

void kf_dnsfd_forget_range(unsigned lo, unsigned hi)
{
    unsigned char *m = atomic_load_explicit(&kf_dnsmap.kind, memory_order_acquire);
    if (!m || atomic_load(&kf_dnsfd_count) == 0 || lo >= kf_dnsmap.n)
        return;
    if (hi >= kf_dnsmap.n)
        hi = (unsigned)kf_dnsmap.n - 1;
    for (unsigned fd = lo; fd <= hi && atomic_load(&kf_dnsfd_count); fd++)
        if (__atomic_load_n(&m[fd], __ATOMIC_RELAXED))
            kf_dnsfd_forget_slow((int)fd);
}

/* ---- after a read ---- */

#define KF_SLOW __attribute__((noinline, cold))

/* r bytes were read into iov (cnt buffers). kind: the fd's mark, or UDP
 * for an unmarked socket whose datagram came from port 53. Keeps errno. */
KF_SLOW static void kf_after_read(int fd, int kind, const struct iovec *iov, size_t cnt,
                                  ssize_t r, int flags)
{
    if (r <= 0 || cnt < 1)
        return; /* nothing consumed (error, EOF, empty datagram) */
    int saved = errno;
    if (kind == KF_DNSFD_TCP) {
        if (!(flags & MSG_PEEK)) /* peeked bytes come again */
            kf_tcp_read(fd, iov, cnt, (size_t)r, (flags & MSG_TRUNC) != 0);
    } else if ((size_t)r <= iov[0].iov_len || cnt == 1) {
        /* A datagram, parsed where it sits: in one buffer only. MSG_TRUNC:
         * r is the datagram's size and the buffer holds a prefix, which
         * the parser refuses if an answer is cut off. */
        kf_dns_learn(iov[0].iov_base, (size_t)r < iov[0].iov_len ? (size_t)r : iov[0].iov_len);
    }
    errno = saved;
}

/* ---- hooks ----
 * The fast path of each hook is: the real function's slot and the fd's
 * mark (both one load in most processes), then a tail call. Everything
 * else is out of line, so that path sets up no stack frame: a NULL slot
 * (before the constructor) and DNS sockets go to the KF_SLOW functions,
 * which use KF_REAL. */

/* The slot as kf_libc_fn() reads it, without its out-of-line fallback
 * (whose call would give every hook a frame). */
#define KF_SLOT(name) \
    ((__typeof__(&name))atomic_load_explicit(&kf_libc_slots[KF_LIBC_##name], memory_order_relaxed))

/* The real function, or NULL with errno ENOSYS (never call NULL). */
#define KF_REAL_OR_ENOSYS(name, real)                                                   \
    __typeof__(&name) real = KF_REAL(name);                                             \
    if (!real) {                                                                        \
        errno = ENOSYS;                                                                 \
        return -1;                                                                      \
    }

KF_SLOW static ssize_t kf_recv_slow(int fd, void *buf, size_t n, int flags)
{
    KF_REAL_OR_ENOSYS(recv, real)
    ssize_t r = real(fd, buf, n, flags);
    struct iovec v = { buf, n };
    kf_after_read(fd, kf_dnsfd_peek(fd), &v, 1, r, flags);
    return r;
}

KF_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    __typeof__(&recv) real = KF_SLOT(recv);
    if (__builtin_expect(real != NULL && kf_dnsfd_peek(fd) == KF_DNSFD_NONE, 1))
        return real(fd, buf, n, flags);
    return kf_recv_slow(fd, buf, n, flags);
}

KF_SLOW static ssize_t kf_recvfrom_slow(int fd, void *buf, size_t n, int flags,
                                        struct sockaddr *from, socklen_t *alen)
{
    KF_REAL_OR_ENOSYS(recvfrom, real)
    ssize_t r = real(fd, buf, n, flags, from, alen);
    struct iovec v = { buf, n };
    kf_after_read(fd, kf_dnsfd_peek(fd), &v, 1, r, flags);
    return r;
}

KF_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, __SOCKADDR_ARG arg,
                           socklen_t *alen)
{
    __typeof__(&recvfrom) real = KF_SLOT(recvfrom);
    if (__builtin_expect(real != NULL && kf_dnsfd_peek(fd) == KF_DNSFD_NONE, 1))
        return real(fd, buf, n, flags, arg, alen);
    return kf_recvfrom_slow(fd, buf, n, flags, KF_SA(arg), alen);
}

KF_SLOW static ssize_t kf_recvmsg_slow(int fd, struct msghdr *msg, int flags)
{
    KF_REAL_OR_ENOSYS(recvmsg, real)
    ssize_t r = real(fd, msg, flags);
    /* MSG_TRUNC in msg_flags: the datagram did not fit (a prefix). */
    if (msg)
        kf_after_read(fd, kf_dnsfd_peek(fd), msg->msg_iov, msg->msg_iov ? msg->msg_iovlen : 0, r,
                      flags | (msg->msg_flags & MSG_TRUNC));
    return r;
}

KF_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    __typeof__(&recvmsg) real = KF_SLOT(recvmsg);
    if (__builtin_expect(real != NULL && kf_dnsfd_peek(fd) == KF_DNSFD_NONE, 1))
        return real(fd, msg, flags);
    return kf_recvmsg_slow(fd, msg, flags);
}
