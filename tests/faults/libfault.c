/* libfault.c - a fault-injecting layer for the libc write paths, loaded
 * BELOW libkimifix:  LD_PRELOAD=libkimifix.so:libkffault.so
 *
 * libkimifix finds its real_write/real_send/... with dlsym(RTLD_NEXT), so
 * with this order every byte the shim sends goes through us first; the
 * client's own calls on untracked fds too. Without kimifix
 * (LD_PRELOAD=libkffault.so) the client's calls come here directly: the
 * same schedule gives the baseline behaviour to compare with.
 *
 * Only "faultable" fds are touched: TCP sockets whose peer port is
 * $KFFAULT_PORT. Every call on them (write, send, sendto, writev, sendmsg)
 * counts as one point, numbered from 1. Environment:
 *   KFFAULT_PORT    the server's port (required, else we only forward)
 *   KFFAULT_AT      the point to fault (0 = none)
 *   KFFAULT_KIND    eagain | eintr | short1 | shorthalf | epipe | reset
 *                   (reset: SO_LINGER 0 + shutdown: the peer sees a RST
 *                   mid-stream, the call fails with EPIPE)
 *   KFFAULT_EVERY   after KFFAULT_AT, fault again every N points (0: once)
 *   KFFAULT_REPORT  file to write "points N faults M\n" to at exit
 * Async-signal-safe on the forwarding path: no malloc, no stdio.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

enum { K_NONE, K_EAGAIN, K_EINTR, K_SHORT1, K_SHORTHALF, K_EPIPE, K_RESET };

static unsigned fport;
static long f_at, f_every;
static int f_kind;
static atomic_long points, faults;

static ssize_t (*r_write)(int, const void *, size_t);
static ssize_t (*r_send)(int, const void *, size_t, int);
static ssize_t (*r_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
static ssize_t (*r_writev)(int, const struct iovec *, int);
static ssize_t (*r_sendmsg)(int, const struct msghdr *, int);

__attribute__((constructor)) static void fault_init(void)
{
    r_write = dlsym(RTLD_NEXT, "write");
    r_send = dlsym(RTLD_NEXT, "send");
    r_sendto = dlsym(RTLD_NEXT, "sendto");
    r_writev = dlsym(RTLD_NEXT, "writev");
    r_sendmsg = dlsym(RTLD_NEXT, "sendmsg");
    const char *v = getenv("KFFAULT_PORT");
    fport = v ? (unsigned)atoi(v) : 0;
    v = getenv("KFFAULT_AT");
    f_at = v ? atol(v) : 0;
    v = getenv("KFFAULT_EVERY");
    f_every = v ? atol(v) : 0;
    v = getenv("KFFAULT_KIND");
    static const char *const names[] = { "none", "eagain", "eintr", "short1", "shorthalf",
                                         "epipe", "reset" };
    f_kind = K_NONE;
    for (int i = 0; v && i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(v, names[i]))
            f_kind = i;
}

__attribute__((destructor)) static void fault_fini(void)
{
    const char *path = getenv("KFFAULT_REPORT");
    if (!path || !r_write)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    char line[96];
    char *p = line + sizeof line;
    long vals[2] = { atomic_load(&faults), atomic_load(&points) };
    const char *words[2] = { " faults ", "points " };
    *--p = '\n';
    for (int k = 0; k < 2; k++) {
        long x = vals[k];
        do {
            *--p = (char)('0' + x % 10);
            x /= 10;
        } while (x);
        size_t wl = strlen(words[k]);
        p -= wl;
        memcpy(p, words[k], wl);
    }
    r_write(fd, p, (size_t)(line + sizeof line - p));
    close(fd);
}

static int faultable(int fd)
{
    if (!fport)
        return 0;
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    int e = errno, ok = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &l) == 0) {
        if (ss.ss_family == AF_INET)
            ok = ntohs(((struct sockaddr_in *)&ss)->sin_port) == fport;
        else if (ss.ss_family == AF_INET6)
            ok = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == fport;
    }
    errno = e;
    return ok;
}

/* What to do at this point: K_NONE or a fault kind. */
static int decide(int fd)
{
    if (!faultable(fd))
        return K_NONE;
    long n = atomic_fetch_add(&points, 1) + 1;
    if (!f_at || f_kind == K_NONE || n < f_at)
        return K_NONE;
    if (n != f_at && (!f_every || (n - f_at) % f_every))
        return K_NONE;
    atomic_fetch_add(&faults, 1);
    return f_kind;
}

/* Apply a failing kind; returns -1 with errno, or 0 for "go on with len". */
static int fail(int fd, int kind, size_t *len)
{
    switch (kind) {
    case K_EAGAIN:
        errno = EAGAIN;
        return -1;
    case K_EINTR:
        errno = EINTR;
        return -1;
    case K_EPIPE:
        errno = EPIPE;
        return -1;
    case K_RESET: {
        struct linger lg = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        shutdown(fd, SHUT_RDWR);
        errno = EPIPE;
        return -1;
    }
    case K_SHORT1:
        if (*len > 1)
            *len = 1;
        return 0;
    case K_SHORTHALF:
        if (*len > 1)
            *len /= 2;
        return 0;
    }
    return 0;
}

EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
    int k = decide(fd);
    if (k && fail(fd, k, &len) < 0)
        return -1;
    return r_write(fd, buf, len);
}

EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    int k = decide(fd);
    if (k && fail(fd, k, &len) < 0)
        return -1;
    return r_send(fd, buf, len, flags);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *a,
                      socklen_t al)
{
    int k = decide(fd);
    if (k && fail(fd, k, &len) < 0)
        return -1;
    return r_sendto(fd, buf, len, flags, a, al);
}

/* Short counts on vectors: send only the first byte (or half of the first
 * segment) through write(). */
static ssize_t short_vec(int fd, const struct iovec *iov, int cnt, int kind)
{
    for (int i = 0; i < cnt; i++) {
        if (!iov[i].iov_len)
            continue;
        size_t len = iov[i].iov_len;
        fail(fd, kind, &len);
        return r_send(fd, iov[i].iov_base, len, MSG_NOSIGNAL);
    }
    return r_writev(fd, iov, cnt);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    int k = decide(fd);
    size_t dummy = 0;
    if (k == K_SHORT1 || k == K_SHORTHALF)
        return short_vec(fd, iov, cnt, k);
    if (k && fail(fd, k, &dummy) < 0)
        return -1;
    return r_writev(fd, iov, cnt);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    int k = decide(fd);
    size_t dummy = 0;
    if (k == K_SHORT1 || k == K_SHORTHALF)
        return short_vec(fd, m->msg_iov, (int)m->msg_iovlen, k);
    if (k && fail(fd, k, &dummy) < 0)
        return -1;
    return r_sendmsg(fd, m, flags);
}
