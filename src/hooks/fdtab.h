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
 */
#ifndef KF_FDTAB_H
#define KF_FDTAB_H

#include <pthread.h>
#include <stdatomic.h>
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

struct kf_conn {
    pthread_mutex_t mu;     /* guards st and everything below it */
    pthread_t owner;        /* thread holding mu (signal re-entry check) */
    atomic_int dead;        /* every fd closed while a writer held mu */
    int claimed;            /* cleanup done (under mu) */
    int poisoned;           /* fork child: a parent thread was inside; pass through */
    unsigned refs;          /* fds pointing here (under the table lock) */
    kf_stream st;
    unsigned port;          /* destination port as the client asked for it */
    dev_t dev;              /* identity of the socket, to notice fd reuse */
    ino_t ino;              /*   after closes we could not see (fclose) */
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
void kf_fd_forget(int fd);
void kf_fd_forget_range(unsigned lo, unsigned hi);
/* newfd now refers to the same connection as oldfd (after a real dup). */
void kf_fd_share(int oldfd, int newfd);
/* Lock the connection of fd for a write; NULL: treat fd as untracked. */
struct kf_conn *kf_fd_acquire(int fd);
/* Unlock; forgets fd when its stream went passthrough for good. */
void kf_fd_release(int fd, struct kf_conn *c);

/* Fork: lock the table (prepare), unlock (parent), reinit (child). */
void kf_fdtab_prepare(void);
void kf_fdtab_parent(void);
void kf_fdtab_child(void);

/* Resolver memory (libc_dns.c): which name an address was resolved from. */
void kf_dns_remember(const struct sockaddr *sa, const char *name);
int kf_dns_name_of(const struct sockaddr *sa, char *name, size_t n);
void kf_dns_prepare(void);
void kf_dns_parent(void);
void kf_dns_child(void);

#endif
