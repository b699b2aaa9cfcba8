/* kf_rules_lazy.c - a process's ruleset, built by its first user.
 *
 * Why: the shim is inherited by every child of an agent (shells, git,
 * compilers); most of them never open a socket, so they must never parse
 * rules. The first hooked call that needs them builds them, once; every
 * later call is one atomic load.
 *
 * Locking: one mutex around the build. A hook that re-enters from inside
 * the build (same thread: a signal handler, or a call the loader makes)
 * gets NULL and passes its bytes through, rather than waiting for itself.
 * fork(): kf_rules_fork_prepare() (kf_rules_apply.c) takes the mutex, so a
 * child never inherits it held by a thread it does not have.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "kf_rules_int.h"
#include "kf_startdata.h"

static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;
/* Read by every start (kf_rules_lazy_tried): on the start page, not on a
 * .bss page of their own (kf_startdata.h). */
static _Atomic(const kf_ruleset *) lazy_rs KF_START_DATA;
static atomic_int lazy_done KF_START_DATA;
/* initial-exec: no allocation on a thread's first access, signal-safe */
static __thread __attribute__((tls_model("initial-exec"))) unsigned char lazy_busy, lazy_forked;

const kf_ruleset *kf_rules_lazy(kf_ruleset *(*load)(void *ud), void *ud)
{
    const kf_ruleset *rs = atomic_load_explicit(&lazy_rs, memory_order_acquire);
    if (__builtin_expect(rs != NULL, 1) || atomic_load_explicit(&lazy_done, memory_order_acquire))
        return rs;
    if (lazy_busy)
        return NULL; /* re-entered from our own build: pass through */
    pthread_mutex_lock(&lazy_lock);
    if (!atomic_load_explicit(&lazy_done, memory_order_relaxed)) {
        lazy_busy = 1;
        rs = load(ud);
        lazy_busy = 0;
        atomic_store_explicit(&lazy_rs, rs, memory_order_release);
        atomic_store_explicit(&lazy_done, 1, memory_order_release);
    }
    pthread_mutex_unlock(&lazy_lock);
    return atomic_load_explicit(&lazy_rs, memory_order_acquire);
}

int kf_rules_lazy_tried(void)
{
    return atomic_load_explicit(&lazy_done, memory_order_acquire);
}

/* A thread that forks from inside its own build (a signal handler) must not
 * wait for the lock it holds; its child finishes that build itself. */
void kf_rules_lazy_fork_prepare(void)
{
    lazy_forked = !lazy_busy;
    if (lazy_forked)
        pthread_mutex_lock(&lazy_lock);
}

void kf_rules_lazy_fork_parent(void)
{
    if (lazy_forked)
        pthread_mutex_unlock(&lazy_lock);
}

void kf_rules_lazy_fork_child(void)
{
    if (lazy_forked)
        pthread_mutex_init(&lazy_lock, NULL);
}
