/* kf_headbuf.c - a small pool of head buffers.
 *
 * Why a pool: a connection only needs a head buffer while a request head is
 * in flight, and idle connections must stay small, yet steady state must
 * not call malloc per request. The lock is a try-lock on purpose: a write
 * hook may run inside a signal handler that interrupted the lock holder in
 * the same thread; instead of deadlocking we fall back to malloc/free.
 */
#include "kf_headbuf.h"
#include "kf_stream.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX 32
#define KEEP_CAP (16 * 1024) /* larger buffers are freed, not pooled */

static atomic_flag pool_busy = ATOMIC_FLAG_INIT;
static struct kf_headbuf *pool_top;
static unsigned pool_len;

static int pool_trylock(void)
{
    return !atomic_flag_test_and_set_explicit(&pool_busy, memory_order_acquire);
}

static void pool_release(void)
{
    atomic_flag_clear_explicit(&pool_busy, memory_order_release);
}

void kf_pool_lock(void)
{
    while (!pool_trylock())
        sched_yield();
}

void kf_pool_unlock(void)
{
    pool_release();
}

static void headbuf_clear(struct kf_headbuf *hb)
{
    hb->in_len = 0;
    hb->rl_phase = hb->rl_count = 0;
    hb->eol_state = 0;
    hb->out = NULL;
    hb->out_len = hb->out_off = 0;
    hb->next = NULL;
}

struct kf_headbuf *kf_headbuf_get(void)
{
    struct kf_headbuf *hb = NULL;
    if (pool_trylock()) {
        hb = pool_top;
        if (hb) {
            pool_top = hb->next;
            pool_len--;
        }
        pool_release();
    }
    if (!hb) {
        hb = calloc(1, sizeof(*hb));
        if (!hb)
            return NULL;
    }
    headbuf_clear(hb);
    return hb;
}

static void headbuf_free(struct kf_headbuf *hb)
{
    free(hb->in);
    free(hb->obuf);
    free(hb);
}

void kf_headbuf_put(struct kf_headbuf *hb)
{
    if (!hb)
        return;
    if (hb->in_cap > KEEP_CAP || hb->obuf_cap > KEEP_CAP) {
        headbuf_free(hb);
        return;
    }
    if (pool_trylock()) {
        if (pool_len < POOL_MAX) {
            hb->next = pool_top;
            pool_top = hb;
            pool_len++;
            hb = NULL;
        }
        pool_release();
    }
    if (hb)
        headbuf_free(hb);
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

int kf_headbuf_reserve_in(struct kf_headbuf *hb, size_t need)
{
    return grow(&hb->in, &hb->in_cap, need);
}

int kf_headbuf_reserve_out(struct kf_headbuf *hb, size_t need)
{
    return grow(&hb->obuf, &hb->obuf_cap, need);
}
