/* accept.c - taking connections in, and keeping a flood out.
 *
 * Another local user can connect to the relay's port (it is TCP: the
 * steered socket is the client's own TCP socket). Defences, cheapest
 * first:
 *  - the peer socket's owner (peeruid.c, NETLINK_SOCK_DIAG): another uid
 *    is closed at once, before any allocation; one log line per interval;
 *  - a pending (pre-token) connection costs a small struct and a timer, no
 *    thread and no buffer; at most g_relay.pending_cap per worker, the
 *    oldest dropped first when a new one comes, each with the 5 s preamble
 *    deadline (front.c);
 *  - out of descriptors (EMFILE/ENFILE): drop the oldest pending connection
 *    to make room (if it waited RELAY_BACKOFF_MS already), or else stop
 *    listening for RELAY_BACKOFF_MS: the
 *    listener stays readable at EMFILE and a level-triggered loop would
 *    spin on it.
 *
 * Spreading: the listeners are in every worker's set with EPOLLEXCLUSIVE,
 * which wakes the first idle worker: with clients connecting in a burst
 * (128 at once) that is the same worker every time, and one worker would
 * carry every connection while the others idle (bench figure 10 at c128,
 * per-thread CPU ticks: 147:279, and 655:0 accepting one at a time). So the worker that accepts keeps a connection only when no
 * other worker owns fewer; else it hands it on to the one that owns the
 * fewest (its inbox, then its eventfd). One connection at a time (a
 * CONNECT, a short request) stays where it was accepted: no wake-up of
 * another thread, which costs tens of microseconds on a VM.
 */
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_log.h"

/* Make room among the pending connections. The oldest first gets its
 * turn: a relay short of CPU accepts a burst faster than it reads, and a
 * client's preamble may be waiting in its socket already (the shim writes
 * it with connect()); front_step() only peeks, it never waits. Only a
 * connection still without its preamble is dropped. */
static void drop_oldest_pending(worker *w, const char *why)
{
    conn *k = w->pend_head;
    front_step(k);
    if (w->pend_head != k)
        return; /* it left the pending list (past its token, or refused) */
    atomic_fetch_add(&g_relay.n_pending_dropped, 1);
    ratelog(RL_PENDING, "relay: dropped the oldest connection still without its preamble (%s)", why);
    conn_close(k);
}

void accept_backoff_end(worker *w, rtimer *t)
{
    (void)t;
    if (!atomic_load(&g_relay.stopping))
        worker_listen(w, 1);
}

static void out_of_fds(worker *w, int err)
{
    atomic_fetch_add(&g_relay.n_emfile, 1);
    ratelog(RL_EMFILE, "relay: cannot accept: %s: pausing the listener for %d ms",
            err == EMFILE ? "too many open files (EMFILE)" : err == ENFILE ? "system file table full (ENFILE)"
                                                                          : "out of memory",
            RELAY_BACKOFF_MS);
    worker_listen(w, 0);
    timer_arm(w, &w->backoff, relay_now_ms() + RELAY_BACKOFF_MS);
}

/* 1: the connection may stay; 0: closed (another user). */
/* The listener's own address: what every connection it accepts has as its
 * local end (the relay binds loopback addresses, never a wildcard). Asked
 * once per listener and worker; NULL (ask per connection) for a wildcard
 * listener or when the table is full. */
static const struct sockaddr_storage *listener_addr(worker *w, int lfd)
{
    for (unsigned i = 0; i < w->nlname; i++)
        if (w->lname[i].fd == lfd)
            return &w->lname[i].ss;
    if (w->nlname >= sizeof w->lname / sizeof w->lname[0])
        return NULL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(lfd, (struct sockaddr *)&ss, &len) < 0)
        return NULL;
    if ((ss.ss_family == AF_INET &&
         ((const struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
        (ss.ss_family == AF_INET6 &&
         IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&ss)->sin6_addr)) ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return NULL;
    w->lname[w->nlname].fd = lfd;
    w->lname[w->nlname].ss = ss;
    return &w->lname[w->nlname++].ss;
}

static int owner_ok(worker *w, int fd, const struct sockaddr_storage *me,
                    const struct sockaddr_storage *peer)
{
    uid_t uid;
    int r = peeruid_of(w, fd, me, peer, &uid);
    /* Not found (-1): the peer is already gone, or the kernel did not say;
     * unavailable (-2, said once at start): the token still decides.
     * Never refuse on a guess. */
    if (r != 0 || uid == g_relay.uid)
        return 1;
    atomic_fetch_add(&g_relay.n_foreign, 1);
    ratelog(RL_FOREIGN, "relay: refused a connection from another user (uid %u)", (unsigned)uid);
    close(fd);
    return 0;
}

/* Own fd from now on: the pending cap, then a connection. */
static void take(worker *w, int fd)
{
    if (w->npend >= g_relay.pending_cap && w->pend_head)
        drop_oldest_pending(w, "too many pending connections");
    if (!conn_new(w, fd)) {
        kf_log(KF_LOG_ERROR, "relay: out of memory: dropping a connection");
        close(fd);
    }
}

/* Give fd to worker t: 1 done, 0 cannot (out of memory, or t has stopped
 * and closed its inbox: keep it here). */
static int hand_on(worker *t, int fd)
{
    pthread_mutex_lock(&t->mu);
    if (t->inbox_closed) {
        pthread_mutex_unlock(&t->mu);
        return 0;
    }
    if (t->ninbox == t->capinbox) {
        unsigned cap = t->capinbox ? t->capinbox * 2 : 16;
        int *p = realloc(t->inbox, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&t->mu);
            return 0;
        }
        t->inbox = p;
        t->capinbox = cap;
    }
    t->inbox[t->ninbox++] = fd;
    atomic_fetch_add(&t->nhanded, 1);
    pthread_mutex_unlock(&t->mu);
    worker_wake(t);
    return 1;
}

void accept_inbox(worker *w)
{
    int fds[64];
    for (;;) {
        pthread_mutex_lock(&w->mu);
        unsigned n = w->ninbox < 64 ? w->ninbox : 64;
        if (n) { /* the oldest first; inbox is NULL until the first hand-on */
            memcpy(fds, w->inbox, n * sizeof *fds);
            memmove(w->inbox, w->inbox + n, (w->ninbox - n) * sizeof *fds);
        }
        w->ninbox -= n;
        pthread_mutex_unlock(&w->mu);
        if (!n)
            return;
        for (unsigned i = 0; i < n; i++) {
            if (atomic_load(&g_relay.stopping))
                close(fds[i]);
            else
                take(w, fds[i]);
            atomic_fetch_sub(&w->nhanded, 1); /* counted by take's conn_new now */
        }
    }
}

void accept_inbox_close(worker *w)
{
    pthread_mutex_lock(&w->mu);
    for (unsigned i = 0; i < w->ninbox; i++)
        close(w->inbox[i]);
    free(w->inbox);
    w->inbox = NULL;
    w->ninbox = w->capinbox = 0;
    w->inbox_closed = 1;
    pthread_mutex_unlock(&w->mu);
}

/* Connections a worker owns or has been handed and not yet taken. */
static unsigned load_of(worker *x)
{
    return atomic_load_explicit(&x->nconn_pub, memory_order_relaxed) +
           atomic_load_explicit(&x->nhanded, memory_order_relaxed);
}

/* The worker that owns the fewest connections; w itself on a tie. */
static worker *owner_for(worker *w)
{
    worker *best = w;
    unsigned least = load_of(w);
    for (unsigned i = 0; i < g_relay.nworkers; i++) {
        unsigned l = load_of(&g_relay.workers[i]);
        if (l < least) {
            least = l;
            best = &g_relay.workers[i];
        }
    }
    return best;
}

void accept_ready(worker *w, int lfd)
{
    /* A bounded batch per wake-up: other workers and connections get
     * their turn; the listener stays readable for the next round. */
    const struct sockaddr_storage *me = listener_addr(w, lfd);
    for (int i = 0; i < 64 && !atomic_load(&g_relay.stopping); i++) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED || e == EPERM || e == EPROTO)
                continue;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                /* Make room by dropping a pending connection that had its
                 * chance (the shim writes the preamble with connect());
                 * one that just came in may be a client mid-way. */
                if (w->pend_head && relay_now_ms() - w->pend_head->born >= RELAY_BACKOFF_MS) {
                    drop_oldest_pending(w, "out of file descriptors");
                    continue;
                }
                out_of_fds(w, e);
            }
            return; /* EAGAIN: another worker took it, or none left */
        }
        if (!owner_ok(w, fd, me, pl <= sizeof peer ? &peer : NULL))
            continue;
        worker *t = g_relay.nworkers > 1 ? owner_for(w) : w;
        if (t == w || !hand_on(t, fd))
            take(w, fd);
    }
}
