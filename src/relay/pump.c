/* pump.c - the bytes both ways between a client and its upstream.
 *
 * Each call tries every operation that can make progress until none does
 * (a bounded number of rounds, then the connection waits its turn on the
 * run-again list). Bytes are read into the worker's scratch buffer and
 * written straight on; only what the other side cannot take yet is copied
 * into a queue, and a side is read only while the other side's queue is
 * empty (back-pressure both ways, no buffer held by an idle connection).
 * Server->client bytes leave in the round they arrive: SSE events are
 * never held. Client->server bytes go through the kf_stream (rewriting).
 *
 * The upstream connection is borrowed per exchange: at a response boundary
 * (resp_tap says every request is answered and the framing allows reuse,
 * the request stream is between requests, nothing is queued) it goes back
 * to the worker's pool, and the next request borrows one again (or opens
 * one). A borrowed connection that fails before any response byte is
 * retried once on a new connection, from the request bytes kept for that
 * (up to REPLAY_MAX; past it there is no retry).
 */
#include "relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_log.h"

#define EARLY_MAX (KF_HEAD_MAX + 2 * 16384) /* queued before the upstream is there */
#define REPLAY_MAX (64 * 1024)
#define ROUNDS 16

static upconn *ready_up(conn *k)
{
    return k->up && k->up->state == U_READY ? k->up : NULL;
}

static void keep_replay(conn *k, const void *buf, size_t n)
{
    if (!k->up || !k->up->reused || k->resp_seen || k->replay_over)
        return;
    if (rbuf_used(&k->replay) + n > REPLAY_MAX || rbuf_add(&k->replay, buf, n) < 0) {
        k->replay_over = 1;
        rbuf_free(&k->replay);
    }
}

/* A head (on_head said one comes) for an upstream reached through the
 * user's proxy without CONNECT - plain HTTP - goes in absolute form with
 * the proxy's credentials (chainhop.c). *alt: what to send instead, or
 * NULL. -1: no memory. */
static int head_for_upstream(conn *k, const char *buf, size_t len, char **alt, size_t *altn)
{
    *alt = NULL;
    if (!k->first_done)
        conn_choose_target(k); /* on_head just told the rules' choice */
    const upkey *key = conn_key(k);
    if (!key->proxy || key->sslctx || key->raw)
        return 0;
    return chainhop_absolute(key, conn_host(k), buf, len, alt, altn);
}

/* kf_stream's sender: takes everything (back-pressure is the caller's
 * "read only while the queue is empty"). */
static ssize_t up_send(void *io, const void *buf, size_t len)
{
    conn *k = io;
    if (k->over) /* absolute form: a second request is never forwarded */
        return (ssize_t)len;
    char *alt = NULL;
    const char *out = buf;
    size_t n = len;
    if (k->head_next) {
        k->head_next = 0;
        if (head_for_upstream(k, buf, len, &alt, &n) < 0) {
            errno = ENOMEM;
            return -1;
        }
        out = alt ? alt : out;
    }
    upconn *u = ready_up(k);
    size_t sent = 0;
    int r = rio_send_or_queue(u ? &u->u : NULL, &k->toup, out, n, &sent);
    if (r == 0)
        keep_replay(k, out, sent);
    free(alt);
    if (r < 0) {
        errno = ENOMEM;
        return -1;
    }
    return (ssize_t)len;
}

int pump_feed(conn *k, const char *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = kf_stream_write(&k->st, &k->kctx, buf + off, n - off, KF_WR_PARTIAL, up_send, k);
        if (w <= 0) {
            conn_close(k);
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

/* 1 emptied, 0 bytes remain, -1 error; *moved when bytes went out. */
static int flush_up(conn *k, upconn *u, int *moved)
{
    while (rbuf_used(&k->toup)) {
        ssize_t w = rio_write(&u->u, k->toup.p + k->toup.off, rbuf_used(&k->toup));
        if (w < 0)
            return -1;
        if (w == 0)
            return 0;
        keep_replay(k, k->toup.p + k->toup.off, (size_t)w);
        rbuf_take(&k->toup, (size_t)w);
        *moved = 1;
    }
    return 1;
}

/* Attach an idle pooled connection or start a new one. 0, or -1 (closed). */
int pump_want_upstream(conn *k)
{
    if (!k->first_done)
        conn_choose_target(k);
    k->resp_seen = 0;
    k->replay_over = 0;
    rbuf_free(&k->replay);
    upconn *u = pool_get(k->w, conn_key(k));
    if (u) {
        u->owner = k;
        u->reused = 1;
        k->up = u;
        atomic_fetch_add(&g_relay.n_up_reused, 1);
        return 0;
    }
    k->up = upconn_start(k->w, k, conn_key(k));
    if (!k->up) {
        conn_fail_502(k, "out of memory");
        return -1;
    }
    return 0;
}

/* The upstream failed (error, or EOF before any response byte). */
static void upstream_failed(conn *k, const char *why)
{
    upconn *u = k->up;
    if (u && u->reused && !k->resp_seen && !k->replay_over) {
        /* A kept-alive connection the server closed as we reused it: the
         * request never reached an application. Once, on a new one. */
        if (rbuf_prepend(&k->toup, k->replay.p ? k->replay.p + k->replay.off : "",
                         rbuf_used(&k->replay)) == 0) {
            rbuf_free(&k->replay);
            upconn_free(u);
            atomic_fetch_add(&g_relay.n_up_retried, 1);
            kf_log(KF_LOG_DEBUG, "[relay] %s: a reused upstream connection failed (%s): retrying on a "
                   "new one", conn_host(k), why);
            k->up = upconn_start(k->w, k, conn_key(k));
            if (k->up)
                return;
        }
    }
    if (!k->resp_seen && k->tap && tap_waiting(k->tap))
        conn_fail(k, u && u->fail_status ? u->fail_status : 502, why);
    else
        conn_close(k); /* mid-answer: the client must see a broken connection */
}

void conn_up_failed(conn *k, const char *why)
{
    if (k->state == CS_TUNNEL)
        tunnel_up_failed(k, why);
    else
        upstream_failed(k, why);
}

void conn_up_ready(conn *k)
{
    if (k->state == CS_TUNNEL)
        tunnel_up_ready(k);
    else
        pump_run(k);
}

/* The response is complete and the upstream may serve someone else. */
static void maybe_release(conn *k)
{
    upconn *u = ready_up(k);
    if (!u || !u->reusable || !k->resp_seen || u->u.rd_eof || u->u.wr_shut || u->u.err ||
        rbuf_used(&k->toup) || !kf_stream_at_boundary(&k->st) || !k->tap ||
        !tap_reusable(k->tap) || (u->u.ssl && SSL_has_pending(u->u.ssl)))
        return;
    k->up = NULL;
    tap_free(k->tap); /* everything answered and logged */
    k->tap = NULL;
    rbuf_free(&k->replay);
    pool_put(k->w, u);
}

/* Client bytes through the rewriter. 1 progress, 0 none, -1 closed. */
static int client_in(conn *k)
{
    size_t lim = ready_up(k) ? 1 : EARLY_MAX;
    if (rbuf_used(&k->toup) >= lim || !rio_can_read(&k->c))
        return 0;
    char *buf = k->w->buf;
    ssize_t r = rio_read(&k->c, buf, RELAY_BUF);
    if (r < 0) {
        rio_trim(&k->c);
        return 0;
    }
    k->last_io = relay_now_ms();
    return pump_feed(k, buf, (size_t)r) < 0 ? -1 : 1;
}

/* Upstream bytes to the client, untouched. 1 progress, 0 none, -1 closed. */
static int upstream_in(conn *k, upconn *u)
{
    if (rbuf_used(&k->toc) || !rio_can_read(&u->u))
        return 0;
    char *buf = k->w->buf;
    ssize_t r = rio_read(&u->u, buf, RELAY_BUF);
    if (r < 0) {
        rio_trim(&u->u);
        return 0;
    }
    if (r == 0)
        return 1;
    k->last_io = relay_now_ms();
    if (!k->resp_seen) {
        k->resp_seen = 1;
        rbuf_free(&k->replay);
    }
    if (k->tap)
        tap_feed(k->tap, buf, (size_t)r);
    if (rio_send_or_queue(&k->c, &k->toc, buf, (size_t)r, NULL) < 0) {
        conn_close(k);
        return -1;
    }
    return 1;
}

/* Ends of the two directions. 1 progress, 0 none, -1 closed. */
static int ends(conn *k)
{
    upconn *u = ready_up(k);
    int progress = 0;
    if (k->c.rd_eof && !rbuf_used(&k->toup)) {
        if (k->c.rd_unclean) {
            conn_close(k); /* client aborted: drop the upstream too */
            return -1;
        }
        if (!k->up) {
            /* Between requests (or before any): nothing owed either way. */
            if (!rbuf_used(&k->toc)) {
                rio_shutdown(&k->c);
                conn_close(k);
                return -1;
            }
        } else if (u && !u->u.wr_shut) {
            u->reusable = 0;
            rio_shutdown(&u->u);
            progress = 1;
        }
    }
    if (u && u->u.rd_eof && !rbuf_used(&k->toc) && !k->c.wr_shut) {
        if (!k->resp_seen && k->tap && tap_waiting(k->tap)) {
            upstream_failed(k, u->u.rd_unclean ? "connection reset" : "closed without a response");
            return -1;
        }
        /* Many servers close without close_notify after a complete
         * response; only a cut inside a framed response is an error the
         * client must see (no close_notify from us either). */
        if (u->u.rd_unclean && !tap_at_boundary(k->tap)) {
            conn_close(k);
            return -1;
        }
        rio_shutdown(&k->c);
        progress = 1;
    }
    return progress;
}

static void arm_linger(conn *k)
{
    if (k->linger_from || !(k->c.wr_shut || (k->up && k->up->u.wr_shut)))
        return;
    k->linger_from = relay_now_ms();
    if (!k->tm.due || k->tm.due > k->linger_from + RELAY_LINGER_MS)
        timer_arm(k->w, &k->tm, k->linger_from + RELAY_LINGER_MS);
}

void pump_run(conn *k)
{
    for (int round = 0; round < ROUNDS; round++) {
        int progress = 0, r;
        if ((r = client_in(k)) < 0)
            return;
        progress |= r;
        if (!k->first_done && (k->nheads || kf_stream_is_passthrough(&k->st) ||
                               rbuf_used(&k->toup) >= EARLY_MAX || (k->c.rd_eof && rbuf_used(&k->toup))))
            conn_choose_target(k);
        if (!k->up && k->first_done && rbuf_used(&k->toup) && pump_want_upstream(k) < 0)
            return;
        upconn *u = ready_up(k);
        if (u && rbuf_used(&k->toup)) {
            int moved = 0;
            if (flush_up(k, u, &moved) < 0) {
                upstream_failed(k, "connection closed");
                return;
            }
            progress |= moved;
        }
        if (u && (r = upstream_in(k, u)) < 0)
            return;
        progress |= r;
        if (rbuf_used(&k->toc)) {
            size_t before = rbuf_used(&k->toc);
            if (rio_flush(&k->c, &k->toc) < 0) {
                conn_close(k); /* client gone */
                return;
            }
            progress |= rbuf_used(&k->toc) < before;
        }
        /* Release before looking at the ends: a client that closes right
         * after its answer must not cost the upstream connection. */
        maybe_release(k);
        if (k->over && k->resp_seen && k->tap && !tap_waiting(k->tap) && !rbuf_used(&k->toc)) {
            /* Absolute form, a second request came: the first one's answer
             * is out, whatever the server thinks of `Connection: close`. */
            rio_shutdown(&k->c);
            conn_close(k);
            return;
        }
        if ((r = ends(k)) < 0)
            return;
        progress |= r;
        if (k->c.wr_shut && (!k->up || k->up->u.wr_shut)) {
            conn_close(k);
            return;
        }
        if (!progress) {
            arm_linger(k);
            return;
        }
    }
    conn_again(k); /* more to do: after the others had their turn */
}

void pump_timeout(conn *k)
{
    long now = relay_now_ms(), due;
    if (!k->first_done)
        due = k->last_io + RELAY_FIRST_HEAD_MS;
    else
        due = k->last_io + RELAY_IDLE_MS;
    if (k->linger_from && k->linger_from + RELAY_LINGER_MS < due)
        due = k->linger_from + RELAY_LINGER_MS;
    if (now < due) {
        timer_arm(k->w, &k->tm, due);
        return;
    }
    if (!k->first_done)
        kf_log(KF_LOG_DEBUG, "[relay] %s: no request within %d s: closing", conn_host(k),
               RELAY_FIRST_HEAD_MS / 1000);
    conn_close(k);
}
