/* wcount.c - counts the write-family calls (write, send, sendto, writev,
 * sendmsg) made on the test server's connection. An LD_PRELOAD layer:
 *   LD_PRELOAD=libkimifix.so:libwcount.so   below the shim: the shim finds
 *        its real functions with dlsym(RTLD_NEXT), so every real call it
 *        makes comes here (and so do libssl's and GnuTLS's socket writes);
 *   LD_PRELOAD=libwcount.so                 the baseline without the shim.
 * KFCOUNT_PORT: the server's port (TCP peer port); KFCOUNT_REPORT: file
 * that gets "calls=N bytes=M sizes=a,b,..." at exit (the first 32 sizes).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define NSIZES 32

static unsigned port;
static atomic_long calls, bytes;
static long sizes[NSIZES];

static ssize_t (*r_write)(int, const void *, size_t);
static ssize_t (*r_send)(int, const void *, size_t, int);
static ssize_t (*r_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
static ssize_t (*r_writev)(int, const struct iovec *, int);
static ssize_t (*r_sendmsg)(int, const struct msghdr *, int);

__attribute__((constructor)) static void wc_init(void)
{
    r_write = dlsym(RTLD_NEXT, "write");
    r_send = dlsym(RTLD_NEXT, "send");
    r_sendto = dlsym(RTLD_NEXT, "sendto");
    r_writev = dlsym(RTLD_NEXT, "writev");
    r_sendmsg = dlsym(RTLD_NEXT, "sendmsg");
    const char *v = getenv("KFCOUNT_PORT");
    port = v ? (unsigned)atoi(v) : 0;
}

__attribute__((destructor)) static void wc_fini(void)
{
    const char *path = getenv("KFCOUNT_REPORT");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f)
        return;
    long n = atomic_load(&calls);
    fprintf(f, "calls=%ld bytes=%ld sizes=", n, atomic_load(&bytes));
    for (long i = 0; i < n && i < NSIZES; i++)
        fprintf(f, "%s%ld", i ? "," : "", sizes[i]);
    fprintf(f, "\n");
    fclose(f);
}

static int watched(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    return port && getpeername(fd, (struct sockaddr *)&a, &l) == 0 && a.sin_family == AF_INET &&
           ntohs(a.sin_port) == port;
}

static ssize_t note(int fd, ssize_t r)
{
    int e = errno; /* the caller reads the real call's errno */
    if (watched(fd)) {
        long i = atomic_fetch_add(&calls, 1);
        if (i < NSIZES)
            sizes[i] = r;
        if (r > 0)
            atomic_fetch_add(&bytes, r);
    }
    errno = e;
    return r;
}

EXPORT ssize_t write(int fd, const void *b, size_t n)
{
    return note(fd, r_write(fd, b, n));
}

EXPORT ssize_t send(int fd, const void *b, size_t n, int fl)
{
    return note(fd, r_send(fd, b, n, fl));
}

EXPORT ssize_t sendto(int fd, const void *b, size_t n, int fl, const struct sockaddr *to, socklen_t tl)
{
    return note(fd, r_sendto(fd, b, n, fl, to, tl));
}

EXPORT ssize_t writev(int fd, const struct iovec *v, int cnt)
{
    return note(fd, r_writev(fd, v, cnt));
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int fl)
{
    return note(fd, r_sendmsg(fd, m, fl));
}
