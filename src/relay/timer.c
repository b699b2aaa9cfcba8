/* timer.c - one binary min-heap of deadlines per worker.
 *
 * Every object with a deadline embeds an rtimer; arming an armed timer
 * moves it. Deadlines that move often (the pump's idle hour) are re-armed
 * lazily by their owner when the timer fires, so I/O never touches the
 * heap. Only the owning worker's thread uses its heap.
 */
#include "kf_clock.h"
#include "relay.h"

#include <stdlib.h>
#include <time.h>

long relay_now_ms(void)
{
    return kf_mono_ms();
}

void timer_init(rtimer *t, void (*fire)(struct worker *, rtimer *))
{
    t->due = 0;
    t->idx = -1;
    t->fire = fire;
}

static void swap(theap *h, int a, int b)
{
    rtimer *t = h->v[a];
    h->v[a] = h->v[b];
    h->v[b] = t;
    h->v[a]->idx = a;
    h->v[b]->idx = b;
}

static void up(theap *h, int i)
{
    while (i > 0 && h->v[(i - 1) / 2]->due > h->v[i]->due) {
        swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void down(theap *h, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l]->due < h->v[m]->due)
            m = l;
        if (r < h->n && h->v[r]->due < h->v[m]->due)
            m = r;
        if (m == i)
            return;
        swap(h, i, m);
        i = m;
    }
}

void timer_cancel(worker *w, rtimer *t)
{
    theap *h = &w->timers;
    int i = t->idx;
    if (i < 0)
        return;
    t->idx = -1;
    t->due = 0;
    h->n--;
    if (i == h->n)
        return;
    h->v[i] = h->v[h->n];
    h->v[i]->idx = i;
    up(h, i);
    down(h, h->v[i]->idx);
}

int timer_arm(worker *w, rtimer *t, long due)
{
    theap *h = &w->timers;
    if (t->idx >= 0) {
        long old = t->due;
        t->due = due;
        if (due < old)
            up(h, t->idx);
        else
            down(h, t->idx);
        return 0;
    }
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 256;
        rtimer **v = realloc(h->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    t->due = due;
    t->idx = h->n;
    h->v[h->n++] = t;
    up(h, t->idx);
    return 0;
}

int timer_next_ms(worker *w)
{
    theap *h = &w->timers;
    if (!h->n)
        return -1;
    long d = h->v[0]->due - relay_now_ms();
    return d <= 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

void timer_run(worker *w)
{
    theap *h = &w->timers;
    long now = relay_now_ms();
    /* A bounded batch: a callback may re-arm its timer for "now". */
    for (int i = 0; i < 4096 && h->n && h->v[0]->due <= now; i++) {
        rtimer *t = h->v[0];
        timer_cancel(w, t);
        t->fire(w, t);
    }
}
