/* fdtab.h - per-fd state of tracked TCP client sockets (libc hooks), and the
 * resolver's address -> name memory.
 *
 * Fast path: kf_fd_peek() is one bounds check and one atomic load of a
 * pointer in an mmap'd array indexed by fd: no lock, no malloc, no dlsym,
 * async-signal-safe. Everything else is off the fast path.
 *
 * Lifetime: a kf_conn is never returned to malloc; closed ones go on a free
 * list and are reused (type-stable memory), so a thread that loaded a stale
 * pointer can still lock it and then sees that the slot no longer holds it.
 * Several fds may share one kf_conn (dup/dup2/dup3/F_DUPFD): refcounted.
 *
 * Signal handlers (kf_reentered() in kf_shim.h): every function here is
 * safe to call from a handler that interrupted its own thread inside the
 * shim. Such a call never waits for a lock: forget/track/share clear the
 * fd's slot with one atomic exchange and leave the reference count to the
 * next thread that takes the table lock; acquire returns NULL (the bytes
 * pass through).
 *
 * Steered sockets (steer.c) are tracked too, marked `steered`, with their
 * original destination: the relay rewrites them, so the write hooks leave
 * them alone (acquire returns NULL), and getpeername()/the TLS carriers ask
 * kf_fd_steered(). Any number of them, like any other tracked socket.
 */
#ifndef KF_FDTAB_H
#define KF_FDTAB_H

#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "kf_stream.h"

#define KF_HOSTMAX 256

/* glibc declares socket address parameters as a transparent union under
 * _GNU_SOURCE in C; hooks must match the declaration. */
#if defined(__USE_GNU) && !defined(__cplusplus)
#define KF_SA(arg) ((arg).__sockaddr__)
#else
#define KF_SA(arg) (arg)
#endif

union kf_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct kf_conn {
    pthread_mutex_t mu;     /* guards st and everything below it */
    atomic_int dead;        /* every fd closed while a writer held mu */
    atomic_int steered;     /* connected to the relay instead of dst (steer.c) */
    atomic_uint deferred;   /* unrefs a signal handler left to the table's next user */
    struct kf_conn *dnext;  /*   the deferred list's link */
    int claimed;            /* cleanup done (under mu) */
    int poisoned;           /* fork child: a parent thread was inside; pass through */
    unsigned refs;          /* fds pointing here (under the table lock) */
    kf_stream st;
    unsigned port;          /* destination port as the client asked for it */
    dev_t dev;              /* identity of the socket, to notice fd reuse */
    ino_t ino;              /*   after closes we could not see (fclose) */
    socklen_t dstlen;       /* steered: the original destination, for getpeername() */
    union kf_sockaddr dst;
    char host[KF_HOSTMAX];  /* name the destination came from, or "" */
    struct kf_conn *next, *prev; /* live list / free list (table lock) */
};

struct kf_fdtab {
    _Atomic(_Atomic(struct kf_conn *) *) slots;
    size_t n;
};
extern struct kf_fdtab kf_fdtab;

/* The fast path: NULL for every untracked fd. */
static inline struct kf_conn *kf_fd_peek(int fd)
{
    _Atomic(struct kf_conn *) *s = atomic_load_explicit(&kf_fdtab.slots, memory_order_acquire);
    if (__builtin_expect(s == NULL || (size_t)(unsigned)fd >= kf_fdtab.n, 1))
        return NULL;
    return atomic_load_explicit(&s[fd], memory_order_acquire);
}

void kf_fdtab_init(void);
/* Track fd (replacing any previous state). host may be NULL. 0 or -1. */
int kf_fd_track(int fd, const char *host, unsigned port);
/* The same for a socket about to be steered to the relay: remembers dst
 * (AF_INET or AF_INET6) as its original destination. 0 or -1 (then the
 * caller must not steer it: nothing would know it was steered). */
int kf_fd_track_steered(int fd, const char *host, unsigned port, const struct sockaddr *dst,
                        socklen_t dstlen);
/* 1 when fd is a steered socket (still the same socket); copies its
 * original destination into dst/len when they are not NULL. */
int kf_fd_steered(int fd, struct sockaddr_storage *dst, socklen_t *len);
void kf_fd_forget(int fd);
void kf_fd_forget_range(unsigned lo, unsigned hi);
/* newfd now refers to the same connection as oldfd (after a real dup). */
void kf_fd_share(int oldfd, int newfd);
/* Lock the connection of fd for a write; NULL: treat fd as untracked. */
struct kf_conn *kf_fd_acquire(int fd);
/* Unlock; forgets fd when its stream went passthrough for good. A
 * connection that is not HTTP/1 is forgotten, so its later writes take the
 * fast path. */
void kf_fd_release(int fd, struct kf_conn *c);

/* Fork: lock the table (prepare), unlock (parent), reinit (child). */
void kf_fdtab_prepare(void);
void kf_fdtab_parent(void);
void kf_fdtab_child(void);

#endif
