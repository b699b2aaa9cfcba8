/* fdtab.c - per-fd state of tracked TCP client sockets (see fdtab.h).
 *
 * Locks: kf_tab_lock guards the slots' writers, refcounts and the live and
 * free lists; each kf_conn's mu guards its stream. Order: table lock, then
 * conn lock, and the table side only ever *tries* a conn lock, so a writer
 * holding its conn (possibly blocked in send) never deadlocks a close().
 * A writer holds its conn lock across the real send: bytes of one stream
 * must leave in order.
 *
 * Signal handlers: both locks are taken with kf_lock() (kf_shim.h), so a
 * hook entered from a handler that interrupted this thread inside a section
 * sees kf_reentered() and takes the lock-free path: slots are atomics, so
 * clearing one is a single exchange; the reference that slot held is
 * pushed on a lock-free list (kf_deferred) and dropped by the next thread
 * that takes the table lock (kf_tab_unlock drains it), where freeing the
 * stream is safe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdtab.h"
#include "kf_shim.h"
#include "kf_stream_sig.h"

#define KF_FD_CAP (1u << 20) /* 8 MiB of address space at most, touched lazily */

struct kf_fdtab kf_fdtab KF_START_DATA;

static pthread_mutex_t kf_tab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kf_conn *kf_live, *kf_free;
static atomic_int kf_owner_pid KF_START_DATA; /* the process whose memory this table is */
static atomic_int kf_fd_hi = -1; /* highest fd ever given a slot: bounds range walks */
static _Atomic(struct kf_conn *) kf_deferred; /* conns with unrefs left by handlers */

/* A vfork() child (CPython's _posixsubprocess, posix_spawn-like code) runs
 * in its parent's memory and closes fds (close, close_range, closefrom)
 * before exec. Its closes must not forget the *parent's* connections, so
 * a process that is not the table's owner leaves the table alone. Only
 * called off the fast path (an fd is tracked, or a range close). */
static int kf_foreign(void)
{
    return getpid() != atomic_load_explicit(&kf_owner_pid, memory_order_relaxed);
}

void kf_fdtab_init(void)
{
    struct rlimit rl;
    size_t n = 65536;
    if (atomic_load(&kf_fdtab.slots))
        return;
    /* Size from the hard limit: Node raises its soft limit to it at start. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t m = rl.rlim_max > rl.rlim_cur ? rl.rlim_max : rl.rlim_cur;
        n = (m == RLIM_INFINITY || m > KF_FD_CAP) ? KF_FD_CAP : (size_t)m;
        if (n < 1024)
            n = 1024;
    }
    void *p = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        kf_log(KF_LOG_ERROR, "cannot map the fd table (%s); libc sockets pass through",
               strerror(errno));
        return;
    }
    atomic_store(&kf_owner_pid, getpid());
    kf_fdtab.n = n;
    atomic_store_explicit(&kf_fdtab.slots, (_Atomic(struct kf_conn *) *)p, memory_order_release);
}

static void kf_list_del(struct kf_conn **head, struct kf_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void kf_list_add(struct kf_conn **head, struct kf_conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

/* 0 with c->mu held (*token for kf_unlock), or -1. */
static int kf_conn_trylock(struct kf_conn *c, unsigned *token)
{
    if (pthread_mutex_trylock(&c->mu) != 0)
        return -1;
    *token = kf_held_enter(KF_HOLD_CONN);
    return 0;
}

/* With c->mu held (`token` from taking it) and the connection dead: free
 * its stream, recycle it. `tab_locked`: the caller holds kf_tab_lock.
 * Unlocks c->mu. */
static void kf_tab_unlock(unsigned token);
static void kf_conn_cleanup(struct kf_conn *c, int tab_locked, unsigned token)
{
    if (c->claimed) {
        kf_unlock(&c->mu, token);
        return;
    }
    c->claimed = 1;
    kf_stream_reset(&c->st);
    kf_unlock(&c->mu, token);
    unsigned t = 0;
    if (!tab_locked)
        t = kf_lock(&kf_tab_lock, KF_HOLD_TAB);
    kf_list_del(&kf_live, c);
    kf_list_add(&kf_free, c);
    if (!tab_locked)
        kf_tab_unlock(t);
}

/* Drop one fd's reference (table lock held). */
static void kf_unref(struct kf_conn *c)
{
    if (--c->refs > 0)
        return;
    atomic_store(&c->dead, 1);
    /* A writer holding mu (perhaps blocked in send) cleans up on release. */
    unsigned t;
    if (kf_conn_trylock(c, &t) == 0)
        kf_conn_cleanup(c, 1, t);
}

/* From a signal handler (no lock, no allocation): remember that c lost a
 * reference. A conn is on the list at most once: `deferred` counts. */
static void kf_defer_unref(struct kf_conn *c)
{
    if (atomic_fetch_add(&c->deferred, 1) != 0)
        return; /* already listed; the drain takes the whole count */
    struct kf_conn *h = atomic_load(&kf_deferred);
    do
        c->dnext = h;
    while (!atomic_compare_exchange_weak(&kf_deferred, &h, c));
}

/* Table lock held: apply what handlers deferred. The list is taken whole
 * (no ABA: nothing pops single entries); `next` is read before the count is
 * taken, so a handler re-listing c meanwhile cannot cut the walk. */
static void kf_drain_deferred(void)
{
    struct kf_conn *c = atomic_exchange(&kf_deferred, NULL);
    while (c) {
        struct kf_conn *next = c->dnext;
        unsigned k = atomic_exchange(&c->deferred, 0);
        while (k--)
            kf_unref(c);
        c = next;
    }
}

static void kf_tab_unlock(unsigned token)
{
    kf_drain_deferred();
    kf_unlock(&kf_tab_lock, token);
}

static _Atomic(struct kf_conn *) *kf_slots(int fd)
{
    _Atomic(struct kf_conn *) *s = atomic_load_explicit(&kf_fdtab.slots, memory_order_acquire);
    if (!s || fd < 0 || (size_t)fd >= kf_fdtab.n)
        return NULL;
    return s;
}

static void kf_note_fd(int fd)
{
    int hi = atomic_load_explicit(&kf_fd_hi, memory_order_relaxed);
    while (fd > hi && !atomic_compare_exchange_weak(&kf_fd_hi, &hi, fd))
        ;
}

/* Clear fd's slot without the table lock (signal handler path). */
static void kf_slot_clear_deferred(_Atomic(struct kf_conn *) *s, int fd)
{
    struct kf_conn *c = atomic_exchange(&s[fd], NULL);
    if (c)
        kf_defer_unref(c);
}

/* Same socket as when tracked? (closes we could not see: fclose()). */
static int kf_same_socket(int fd, const struct kf_conn *c)
{
    struct stat st;
    int saved = errno;
    int ok = fstat(fd, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino;
    errno = saved;
    return ok;
}

static int kf_track(int fd, const char *host, unsigned port, const struct sockaddr *dst,
                    socklen_t dstlen)
{
    _Atomic(struct kf_conn *) *s = kf_slots(fd);
    struct stat st;
    if (!s) {
        if (fd >= 0 && !kf_reentered())
            kf_shim_warn_once("fd-range", "fd %d is beyond the fd table; it passes through", fd);
        return -1;
    }
    if (kf_foreign())
        return -1;
    if (kf_reentered()) {
        /* A handler's connect: no allocation, no lock. The fd is new: old
         * state must go; the connection itself passes through untracked. */
        kf_slot_clear_deferred(s, fd);
        return -1;
    }
    if (fstat(fd, &st) != 0 ||
        (dst && (dstlen > sizeof(union kf_sockaddr) ||
                 (dst->sa_family != AF_INET && dst->sa_family != AF_INET6))))
        return -1;

    unsigned tt = kf_lock(&kf_tab_lock, KF_HOLD_TAB);
    struct kf_conn *c = kf_free;
    if (c) {
        kf_list_del(&kf_free, c);
    } else {
        c = calloc(1, sizeof(*c));
        if (!c) {
            kf_tab_unlock(tt);
            kf_shim_warn_once("oom-conn", "out of memory: a connection passes through");
            return -1;
        }
        pthread_mutex_init(&c->mu, NULL);
    }
    /* A stale reader may still lock c briefly: initialise under its lock. */
    unsigned ct = kf_lock(&c->mu, KF_HOLD_CONN);
    kf_stream_init(&c->st);
    c->claimed = 0;
    c->poisoned = 0;
    c->refs = 1;
    c->port = port;
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    c->host[0] = 0;
    if (host) {
        size_t l = strnlen(host, KF_HOSTMAX - 1);
        memcpy(c->host, host, l);
        c->host[l] = 0;
    }
    c->dstlen = dst ? dstlen : 0;
    if (dst)
        memcpy(&c->dst, dst, dstlen);
    atomic_store(&c->steered, dst != NULL);
    atomic_store(&c->dead, 0);
    kf_unlock(&c->mu, ct);
    kf_list_add(&kf_live, c);

    kf_note_fd(fd);
    struct kf_conn *old = atomic_exchange(&s[fd], c);
    if (old)
        kf_unref(old);
    kf_tab_unlock(tt);
    return 0;
}

int kf_fd_track(int fd, const char *host, unsigned port)
{
    return kf_track(fd, host, port, NULL, 0);
}

int kf_fd_track_steered(int fd, const char *host, unsigned port, const struct sockaddr *dst,
                        socklen_t dstlen)
{
    return dst ? kf_track(fd, host, port, dst, dstlen) : -1;
}

/* Forget fd; with `only` set, only while its slot still holds `only`. */
static void kf_forget(int fd, struct kf_conn *only)
{
    _Atomic(struct kf_conn *) *s = kf_slots(fd);
    if (!s || !atomic_load_explicit(&s[fd], memory_order_acquire) || kf_foreign())
        return;
    if (kf_reentered()) {
        if (!only)
            kf_slot_clear_deferred(s, fd);
        return;
    }
    unsigned t = kf_lock(&kf_tab_lock, KF_HOLD_TAB);
    struct kf_conn *c = atomic_load(&s[fd]);
    if (c && (!only || c == only) && atomic_compare_exchange_strong(&s[fd], &c, NULL))
        kf_unref(c);
    kf_tab_unlock(t);
}

void kf_fd_forget(int fd)
{
    kf_forget(fd, NULL);
}

void kf_fd_forget_range(unsigned lo, unsigned hi)
{
    _Atomic(struct kf_conn *) *s = atomic_load_explicit(&kf_fdtab.slots, memory_order_acquire);
    int top = atomic_load(&kf_fd_hi);
    if (!s || top < 0 || lo > (unsigned)top || kf_foreign())
        return;
    if (hi > (unsigned)top)
        hi = (unsigned)top; /* no slot above it was ever set */
    if (kf_reentered()) {
        for (unsigned fd = lo; fd <= hi; fd++)
            if (atomic_load_explicit(&s[fd], memory_order_relaxed))
                kf_slot_clear_deferred(s, (int)fd);
        return;
    }
    unsigned t = kf_lock(&kf_tab_lock, KF_HOLD_TAB);
    for (unsigned fd = lo; fd <= hi; fd++) {
        if (!atomic_load_explicit(&s[fd], memory_order_relaxed)) {
            if (!kf_live)
                break; /* nothing tracked at all */
            continue;
        }
        struct kf_conn *c = atomic_exchange(&s[fd], NULL);
        if (c)
            kf_unref(c);
    }
    kf_tab_unlock(t);
}

void kf_fd_share(int oldfd, int newfd)
{
    _Atomic(struct kf_conn *) *s = kf_slots(oldfd);
    if (!s || !kf_slots(newfd) || kf_foreign())
        return;
    if (kf_reentered()) {
        /* A handler's dup: newfd's old state goes; newfd passes through. */
        kf_slot_clear_deferred(s, newfd);
        return;
    }
    unsigned t = kf_lock(&kf_tab_lock, KF_HOLD_TAB);
    struct kf_conn *c = atomic_load(&s[oldfd]);
    if (c && !atomic_load(&c->dead))
        c->refs++;
    else
        c = NULL;
    if (c)
        kf_note_fd(newfd);
    struct kf_conn *old = atomic_exchange(&s[newfd], c);
    if (old)
        kf_unref(old);
    kf_tab_unlock(t);
}

static ssize_t kf_sig_send(void *io, const void *buf, size_t n)
{
    int fd = *(const int *)io;
    ssize_t r;
    while ((r = KF_REAL(send)(fd, buf, n, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return r;
}

/* A write from a signal handler that interrupted this thread inside the
 * shim: its bytes pass through (no engine: it may allocate or take locks
 * this thread holds), but bytes the stream holds back from earlier writes
 * go first, in order -- when the connection's lock is free (if this
 * thread was interrupted inside a write on this very connection, the
 * handler's bytes interleave with it, as they would with no shim). */
static void kf_reentry_flush(int fd, struct kf_conn *c)
{
    unsigned t;
    if (!c->st.hb || kf_conn_trylock(c, &t) != 0)
        return;
    if (kf_fd_peek(fd) == c && !atomic_load(&c->dead) && !c->poisoned) {
        int saved = errno;
        kf_stream_flush_held(&c->st, kf_sig_send, &fd);
        errno = saved;
    }
    kf_unlock(&c->mu, t);
}

struct kf_conn *kf_fd_acquire(int fd)
{
    struct kf_conn *c = kf_fd_peek(fd);
    /* A steered socket is the relay's to rewrite. */
    if (!c || atomic_load_explicit(&c->steered, memory_order_relaxed))
        return NULL;
    /* Re-entered from a signal handler (this thread may hold this very
     * conn, the table, or a lock the engine takes): pass through. */
    if (kf_reentered()) {
        kf_reentry_flush(fd, c);
        return NULL;
    }
    /* Not re-entered: this thread holds no shim lock, so the token is the
     * bit itself, and kf_fd_release() clears it. */
    kf_lock(&c->mu, KF_HOLD_CONN);
    if (kf_fd_peek(fd) != c || atomic_load(&c->dead) || c->poisoned || atomic_load(&c->steered)) {
        kf_unlock(&c->mu, KF_HOLD_CONN);
        return NULL;
    }
    /* The engine is about to look at bytes: make sure fd is still our
     * socket (it may have been closed behind our back, e.g. by fclose(),
     * and reused for a file or pipe). Not needed inside a sized body. */
    if (kf_stream_pass_budget(&c->st) == 0 && !kf_same_socket(fd, c)) {
        kf_unlock(&c->mu, KF_HOLD_CONN);
        kf_forget(fd, c);
        return NULL;
    }
    return c;
}

void kf_fd_release(int fd, struct kf_conn *c)
{
    int done = kf_stream_is_passthrough(&c->st) && c->st.hb == NULL;
    kf_unlock(&c->mu, KF_HOLD_CONN);
    unsigned t;
    if (atomic_load(&c->dead)) {
        if (kf_conn_trylock(c, &t) == 0)
            kf_conn_cleanup(c, 0, t);
        return;
    }
    if (done)
        kf_forget(fd, c); /* TLS or other non-HTTP bytes: nothing more to do */
}

int kf_fd_steered(int fd, struct sockaddr_storage *dst, socklen_t *len)
{
    struct kf_conn *c = kf_fd_peek(fd);
    if (!c || !atomic_load(&c->steered))
        return 0;
    /* Nobody writes through a steered conn, so its lock is free unless
     * this thread was interrupted holding it: a handler only tries. */
    unsigned t;
    if (kf_reentered()) {
        if (kf_conn_trylock(c, &t) != 0)
            return 0;
    } else {
        t = kf_lock(&c->mu, KF_HOLD_CONN);
    }
    int found = kf_fd_peek(fd) == c && atomic_load(&c->steered) && !atomic_load(&c->dead) &&
                kf_same_socket(fd, c);
    if (found && dst) {
        memset(dst, 0, sizeof *dst);
        memcpy(dst, &c->dst, c->dstlen);
    }
    if (found && len)
        *len = c->dstlen;
    kf_unlock(&c->mu, t);
    return found;
}

void kf_fdtab_prepare(void)
{
    pthread_mutex_lock(&kf_tab_lock);
}

void kf_fdtab_parent(void)
{
    pthread_mutex_unlock(&kf_tab_lock);
}

/* In the child only the forking thread exists. A conn whose lock is held
 * belonged to a thread that was inside a write: its stream state is
 * unknown here, so the child passes that connection through. */
static void kf_child_fix(struct kf_conn *list)
{
    for (struct kf_conn *c = list; c; c = c->next) {
        if (pthread_mutex_trylock(&c->mu) != 0) {
            pthread_mutex_init(&c->mu, NULL);
            c->poisoned = 1;
        } else {
            pthread_mutex_unlock(&c->mu);
        }
    }
}

void kf_fdtab_child(void)
{
    atomic_store(&kf_owner_pid, getpid());
    kf_child_fix(kf_live);
    kf_child_fix(kf_free);
    pthread_mutex_init(&kf_tab_lock, NULL);
}
