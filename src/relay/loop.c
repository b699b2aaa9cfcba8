/* loop.c - a worker: its epoll set, the dispatch, the run-again list.
 *
 * Each worker owns its connections for their whole life (no locks on the
 * fast path): the client connections it accepted, their upstream
 * connections, its pool of idle upstreams, its timers. Listening sockets
 * are in every worker's set with EPOLLEXCLUSIVE, so a connection wakes one
 * idle worker. All other fds are edge-triggered for IN, OUT and RDHUP,
 * registered once: no epoll_ctl per state change.
 *
 * A step that stops with work left (a fairness bound) puts its connection
 * on the run-again list, which is drained before the next epoll_wait
 * sleeps.
 */
#include "relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kf_log.h"

#define MAX_EVENTS 256

relay_globals g_relay;

int worker_add(worker *w, int fd, rhandle *h)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = h};
    return epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
}

static rhandle listen_handle[2] = {{.kind = H_LISTEN}, {.kind = H_LISTEN}};

void worker_listen(worker *w, int on)
{
    if (on == w->listening)
        return;
    for (int i = 0; i < 2; i++) {
        if (g_relay.lfd[i] < 0)
            continue;
        if (on) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &listen_handle[i]};
            epoll_ctl(w->ep, EPOLL_CTL_ADD, g_relay.lfd[i], &ev);
        } else {
            epoll_ctl(w->ep, EPOLL_CTL_DEL, g_relay.lfd[i], NULL);
        }
    }
    w->listening = on;
}

void worker_wake(worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->evfd, &one, sizeof one);
    (void)r; /* the counter saturating still wakes the worker */
}

/* A queue, not a stack: a connection put back at the head would run again
 * before those that waited longer, and under load (h2load c128) the ones
 * at the bottom starved for hundreds of milliseconds. */
void conn_again(conn *k)
{
    if (k->on_again)
        return;
    worker *w = k->w;
    k->on_again = 1;
    k->again_next = NULL;
    if (w->again)
        w->again_tail->again_next = k;
    else
        w->again = k;
    w->again_tail = k;
}

static void run_again(worker *w)
{
    for (int i = 0; i < 64 && w->again; i++) {
        conn *k = w->again;
        w->again = k->again_next;
        k->on_again = 0;
        if (!k->h.dead)
            conn_run(k); /* may queue itself again, behind the others */
    }
}

void worker_bury(worker *w, rhandle *h)
{
    h->dead = 1;
    h->grave = w->grave;
    w->grave = h;
}

/* Free what this round closed; a closed connection still on the run-again
 * list waits for the next round. */
static void free_graves(worker *w)
{
    rhandle **pp = &w->grave;
    while (*pp) {
        rhandle *h = *pp;
        if (h->kind == H_CONN && ((conn *)h)->on_again) {
            pp = &h->grave;
            continue;
        }
        *pp = h->grave;
        free(h);
    }
}

static void on_wake(worker *w)
{
    uint64_t v;
    ssize_t r = read(w->evfd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&w->mu);
    rres *d = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    while (d) {
        rres *next = d->next;
        upconn_resolved(d);
        d = next;
    }
    accept_inbox(w);
}

static void dispatch(worker *w, struct epoll_event *ev)
{
    rhandle *h = ev->data.ptr;
    if (h->dead)
        return;
    switch (h->kind) {
    case H_LISTEN:
        accept_ready(w, g_relay.lfd[h == &listen_handle[1]]);
        break;
    case H_WAKE:
        on_wake(w);
        break;
    case H_CONN:
        conn_on_event((conn *)h, ev->events);
        break;
    case H_UP: {
        upconn *u = (upconn *)h;
        if (u->state == U_POOLED)
            pool_on_event(u, ev->events);
        else
            upconn_on_event(u, ev->events);
        break;
    }
    }
}

/* Stopping: close everything this worker owns. */
static void drain(worker *w)
{
    worker_listen(w, 0);
    while (w->pend_head)
        conn_close(w->pend_head);
    while (w->live)
        conn_close(w->live);
    pool_clear(w);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    worker_listen(w, 1);
    while (!atomic_load(&g_relay.stopping)) {
        int tmo = w->again ? 0 : timer_next_ms(w);
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, tmo < 0 || tmo > 1000 ? 1000 : tmo);
        if (n < 0 && errno != EINTR) {
            kf_log(KF_LOG_ERROR, "relay: worker %d: epoll_wait: %s", w->id, strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(w, &evs[i]);
        timer_run(w);
        run_again(w);
        free_graves(w);
    }
    drain(w);
    accept_inbox_close(w);
    free_graves(w);
    return NULL;
}

int worker_init(worker *w, int id)
{
    w->id = id;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->buf = malloc(RELAY_BUF);
    w->diag_fd = -1;
    w->wake.kind = H_WAKE;
    pthread_mutex_init(&w->mu, NULL);
    timer_init(&w->backoff, accept_backoff_end);
    if (w->ep < 0 || w->evfd < 0 || !w->buf)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->wake};
    return epoll_ctl(w->ep, EPOLL_CTL_ADD, w->evfd, &ev) < 0 ? -1 : 0;
}

int worker_run(worker *w)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    int r = pthread_create(&w->th, &a, worker_main, w);
    pthread_attr_destroy(&a);
    return r ? -1 : 0;
}

void worker_join(worker *w)
{
    worker_wake(w);
    pthread_join(w->th, NULL);
}
