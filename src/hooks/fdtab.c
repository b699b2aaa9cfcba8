/* fdtab.c - per-fd state of tracked TCP client sockets (see fdtab.h).
 *
 * Locks: kf_tab_lock guards the slots' writers, refcounts and the live and
 * free lists; each kf_conn's mu guards its stream. Order: table lock, then
 * conn lock, and the table side only ever *tries* a conn lock, so a writer
 * holding its conn (possibly blocked in send) never deadlocks a close().
 * A writer holds its conn lock across the real send: bytes of one stream
 * must leave in order.
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

#define KF_FD_CAP (1u << 20) /* 8 MiB of address space at most, touched lazily */

struct kf_fdtab kf_fdtab;

static pthread_mutex_t kf_tab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kf_conn *kf_live, *kf_free;
static atomic_int kf_owner_pid; /* the process whose memory this table is */

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

/* With c->mu held and the connection dead: free its stream, recycle it.
 * `tab_locked`: the caller holds kf_tab_lock. Unlocks c->mu. */
static void kf_conn_cleanup(struct kf_conn *c, int tab_locked)
{
    if (c->claimed) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->claimed = 1;
    kf_stream_reset(&c->st);
    pthread_mutex_unlock(&c->mu);
    if (!tab_locked)
        pthread_mutex_lock(&kf_tab_lock);
    kf_list_del(&kf_live, c);
    kf_list_add(&kf_free, c);
    if (!tab_locked)
        pthread_mutex_unlock(&kf_tab_lock);
}

/* Drop one fd's reference (table lock held). */
static void kf_unref(struct kf_conn *c)
{
    if (--c->refs > 0)
        return;
    atomic_store(&c->dead, 1);
    /* A writer holding mu (perhaps blocked in send) cleans up on release. */
    if (pthread_mutex_trylock(&c->mu) == 0)
        kf_conn_cleanup(c, 1);
}

static _Atomic(struct kf_conn *) *kf_slots(int fd)
{
    _Atomic(struct kf_conn *) *s = atomic_load_explicit(&kf_fdtab.slots, memory_order_acquire);
    if (!s || fd < 0 || (size_t)fd >= kf_fdtab.n)
        return NULL;
    return s;
}

int kf_fd_track(int fd, const char *host, unsigned port)
{
    _Atomic(struct kf_conn *) *s = kf_slots(fd);
    struct stat st;
    if (!s) {
        if (fd >= 0)
            kf_shim_warn_once("fd-range", "fd %d is beyond the fd table; it passes through", fd);
        return -1;
    }
    if (fstat(fd, &st) != 0 || kf_foreign())
        return -1;

    pthread_mutex_lock(&kf_tab_lock);
    struct kf_conn *c = kf_free;
    if (c) {
        kf_list_del(&kf_free, c);
    } else {
        c = calloc(1, sizeof(*c));
        if (!c) {
            pthread_mutex_unlock(&kf_tab_lock);
            kf_shim_warn_once("oom-conn", "out of memory: a connection passes through");
            return -1;
        }
        pthread_mutex_init(&c->mu, NULL);
    }
    /* A stale reader may still lock c briefly: initialise under its lock. */
    pthread_mutex_lock(&c->mu);
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
    atomic_store(&c->dead, 0);
    pthread_mutex_unlock(&c->mu);
    kf_list_add(&kf_live, c);

    struct kf_conn *old = atomic_exchange(&s[fd], c);
    if (old)
        kf_unref(old);
    pthread_mutex_unlock(&kf_tab_lock);
    return 0;
}

void kf_fd_forget(int fd)
{
    _Atomic(struct kf_conn *) *s = kf_slots(fd);
    if (!s || !atomic_load_explicit(&s[fd], memory_order_acquire) || kf_foreign())
        return;
    pthread_mutex_lock(&kf_tab_lock);
    struct kf_conn *c = atomic_exchange(&s[fd], NULL);
    if (c)
        kf_unref(c);
    pthread_mutex_unlock(&kf_tab_lock);
}

void kf_fd_forget_range(unsigned lo, unsigned hi)
{
    _Atomic(struct kf_conn *) *s = atomic_load_explicit(&kf_fdtab.slots, memory_order_acquire);
    if (!s || lo >= kf_fdtab.n || kf_foreign())
        return;
    if (hi >= kf_fdtab.n)
        hi = (unsigned)kf_fdtab.n - 1;
    /* Walk the live conns rather than the (mostly untouched) slot array
     * when the range is large: clear only slots we know are set. */
    pthread_mutex_lock(&kf_tab_lock);
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
    pthread_mutex_unlock(&kf_tab_lock);
}

void kf_fd_share(int oldfd, int newfd)
{
    _Atomic(struct kf_conn *) *s = kf_slots(oldfd);
    if (!s || !kf_slots(newfd) || kf_foreign())
        return;
    pthread_mutex_lock(&kf_tab_lock);
    struct kf_conn *c = atomic_load(&s[oldfd]);
    if (c && !atomic_load(&c->dead))
        c->refs++;
    else
        c = NULL;
    struct kf_conn *old = atomic_exchange(&s[newfd], c);
    if (old)
        kf_unref(old);
    pthread_mutex_unlock(&kf_tab_lock);
}

struct kf_conn *kf_fd_acquire(int fd)
{
    struct kf_conn *c = kf_fd_peek(fd);
    if (!c)
        return NULL;
    if (pthread_mutex_trylock(&c->mu) != 0) {
        /* A signal handler writing while this thread is inside our own
         * write on the same connection: do not deadlock, pass it through. */
        if (pthread_equal(c->owner, pthread_self()))
            return NULL;
        pthread_mutex_lock(&c->mu);
    }
    if (kf_fd_peek(fd) != c || atomic_load(&c->dead) || c->poisoned) {
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    c->owner = pthread_self();
    /* The engine is about to look at bytes: make sure fd is still our
     * socket (it may have been closed behind our back, e.g. by fclose(),
     * and reused for a file or pipe). Not needed inside a sized body. */
    if (kf_stream_pass_budget(&c->st) == 0) {
        struct stat st;
        int saved = errno;
        int ok = fstat(fd, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino;
        errno = saved;
        if (!ok) {
            c->owner = 0;
            pthread_mutex_unlock(&c->mu);
            kf_fd_forget(fd);
            return NULL;
        }
    }
    return c;
}

void kf_fd_release(int fd, struct kf_conn *c)
{
    int done = kf_stream_is_passthrough(&c->st) && c->st.hb == NULL;
    c->owner = 0;
    pthread_mutex_unlock(&c->mu);
    if (atomic_load(&c->dead)) {
        if (pthread_mutex_trylock(&c->mu) == 0)
            kf_conn_cleanup(c, 0);
        return;
    }
    if (done)
        kf_fd_forget(fd); /* TLS or other non-HTTP bytes: nothing more to do */
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
        c->owner = 0;
    }
}

void kf_fdtab_child(void)
{
    atomic_store(&kf_owner_pid, getpid());
    kf_child_fix(kf_live);
    kf_child_fix(kf_free);
    pthread_mutex_init(&kf_tab_lock, NULL);
}
