/* pool.c - idle upstream connections, per worker.
 *
 * Key: (host, port, SNI, upstream SSL_CTX, proxy identity) - see upkey_eq.
 * Two trust sets never share a connection: each has its own SSL_CTX, and
 * a pooled SSL holds a reference to its SSL_CTX, so the pointer cannot be
 * reused by another context while the connection lives.
 * Bounded per key (POOL_PER_KEY) and in total (POOL_TOTAL); the least
 * recently used goes first. An idle connection is closed after
 * RELAY_POOL_IDLE_MS, and at once when the server closes it or sends
 * anything (it stays in the epoll set: EOF or stray bytes = discard).
 * Before reuse it is checked again (the event may still be queued).
 */
#include "relay.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/err.h>

#define POOL_FRESH_MS 1000 /* pooled this recently and drained: no peek (fresh) */

static void unlink_u(worker *w, upconn *u)
{
    if (u->pprev)
        u->pprev->pnext = u->pnext;
    else
        w->pool.head = u->pnext;
    if (u->pnext)
        u->pnext->pprev = u->pprev;
    u->pnext = u->pprev = NULL;
    w->pool.n--;
    atomic_store(&w->npool_pub, w->pool.n);
}

void pool_remove(worker *w, upconn *u)
{
    unlink_u(w, u);
    u->state = U_READY; /* no longer pooled: upconn_free will not unlink again */
}

/* 1 when an idle connection still looks usable: nothing to read (a TLS
 * record that carries no data - a session ticket - is fine). */
static int alive(upconn *u)
{
    char b;
    ssize_t r = recv(u->u.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK;
    if (r == 0 || !u->u.ssl)
        return 0; /* EOF, or stray bytes on a plain connection */
    char buf[64];
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(u->u.ssl, buf, sizeof buf, &got) == 1)
        return 0; /* application data nobody asked for */
    int e = SSL_get_error(u->u.ssl, 0);
    rio_trim(&u->u);
    return e == SSL_ERROR_WANT_READ && !SSL_has_pending(u->u.ssl);
}

/* Pooled a moment ago with its socket read empty, and no event since (an
 * event frees a dead one at once: pool_on_event): as good as a peek, and a
 * keep-alive client's next request borrows it without that system call
 * (bench figure 10). A server's idle timeout is seconds, not this; the
 * rare close in between fails before any response byte, and the request
 * is sent again on a new connection (pump.c). */
static int fresh(const upconn *u)
{
    return u->drained && relay_now_ms() - u->pooled_ms <= POOL_FRESH_MS;
}

upconn *pool_get(worker *w, const upkey *key)
{
    for (upconn *u = w->pool.head, *next; u; u = next) {
        next = u->pnext;
        if (!upkey_eq(&u->key, key))
            continue;
        int f = fresh(u);
        if (!f && !alive(u)) {
            upconn_free(u);
            continue;
        }
        pool_remove(w, u);
        timer_cancel(w, &u->tm);
        /* Edges may have been eaten while pooled (pool_on_event reads on
         * its own): ready both ways, except that a fresh one is known to
         * hold nothing to read (an arrival still queued comes as an event
         * of its own), so the request's write is not followed by a read
         * that can only say EAGAIN. */
        u->u.ready = f ? RIO_OUT : RIO_IN | RIO_OUT;
        return u;
    }
    return NULL;
}

void pool_put(worker *w, upconn *u)
{
    unsigned same = 0;
    upconn *last_same = NULL, *last = NULL;
    /* Counting by hash alone: a collision only makes the bound stricter,
     * and the full comparison per idle connection showed in profiles. */
    for (upconn *p = w->pool.head; p; p = p->pnext) {
        last = p;
        if (p->key.hash == u->key.hash) {
            same++;
            last_same = p;
        }
    }
    if (same >= POOL_PER_KEY)
        upconn_free(last_same);
    else if (w->pool.n >= POOL_TOTAL && last)
        upconn_free(last);
    u->owner = NULL;
    u->state = U_POOLED;
    u->pprev = NULL;
    u->pnext = w->pool.head;
    if (u->pnext)
        u->pnext->pprev = u;
    w->pool.head = u;
    w->pool.n++;
    atomic_store(&w->npool_pub, w->pool.n);
    u->drained = !(u->u.ready & RIO_IN) && u->u.rd_need == RIO_IN && !u->u.hup &&
                 !(u->u.ssl && SSL_has_pending(u->u.ssl));
    u->pooled_ms = relay_now_ms();
    rio_trim(&u->u);
    timer_arm(w, &u->tm, u->pooled_ms + RELAY_POOL_IDLE_MS);
}

void pool_on_event(upconn *u, uint32_t ev)
{
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (!alive(u))
            upconn_free(u);
    }
}

void pool_clear(worker *w)
{
    while (w->pool.head)
        upconn_free(w->pool.head);
}
