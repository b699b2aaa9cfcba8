/* tunnel.c - CONNECT to a host no rule names: a blind byte tunnel
 * (docs/relay.md "Proxy carrier").
 *
 * The upstream is connected first (upconn.c: resolved, direct or through
 * the user's proxy) and only then does the client get `200 Connection
 * established`, so a failure can still be answered (502; 504 when the
 * user's proxy never answered; 403 for a name that is this relay). Then
 * bytes go both ways as they are: no rewriting, no TLS, nothing pooled.
 * Back-pressure: a side is read only while the other side's queue is
 * empty. Half-close: a FIN from one side is passed on once its bytes are
 * delivered, the other direction keeps flowing; a reset is passed on as a
 * reset. Nothing above debug is logged about a tunnel that works: these
 * are hosts kimifix has no business with.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "httpproxy.h"
#include "kf_log.h"

#define ROUNDS 16

void tunnel_start(conn *k)
{
    k->state = CS_TUNNEL;
    conn_choose_target(k); /* raw: CS_TUNNEL */
    atomic_fetch_add(&g_relay.n_tunnels, 1);
    k->last_io = relay_now_ms();
    timer_arm(k->w, &k->tm, k->last_io + RELAY_IDLE_MS);
    k->up = upconn_start(k->w, k, conn_key(k));
    if (!k->up)
        tunnel_up_failed(k, "out of memory");
}

void tunnel_up_ready(conn *k)
{
    if (!k->tunnel_up) {
        k->tunnel_up = 1;
        if (rbuf_add(&k->toc, hp_established, strlen(hp_established)) < 0) {
            conn_close(k);
            return;
        }
        const upkey *key = conn_key(k);
        kf_log(KF_LOG_DEBUG, "[relay] proxy: tunnel to %s:%u%s", key->host, key->port,
               key->proxy ? " through your proxy" : "");
    }
    tunnel_run(k);
}

void tunnel_up_failed(conn *k, const char *why)
{
    const upkey *key = conn_key(k);
    upconn *u = k->up;
    int status = u && u->fail_status ? u->fail_status : 502;
    /* The user's proxy failing, or a loop: worth a warning. A host that
     * cannot be reached directly is the client's business: debug. */
    int level = (u && u->chain_failed) || status == 403 ? KF_LOG_WARN : KF_LOG_DEBUG;
    if (u)
        upconn_free(u);
    k->up = NULL;
    if (k->tunnel_up) { /* after the 200: only a broken connection can say it */
        conn_close(k);
        return;
    }
    relay_log(k->ctx, level, "[relay] proxy: CONNECT %s:%u => %d (%s)", key->host, key->port, status,
              why);
    char out[1500];
    ssize_t n = hp_reply(status, why, out, sizeof out);
    if (n < 0)
        conn_close(k);
    else
        conn_refuse(k, out, (size_t)n);
}

/* A reset from one side goes to the other as a reset. */
static void abort_both(conn *k)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(k->c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (k->up)
        setsockopt(k->up->u.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    conn_close(k);
}

/* Bytes from `from` to `to` (q: what `to` could not take yet). 1 progress,
 * 0 none, -1 no memory. */
static int copy(conn *k, rio *from, rio *to, rbuf *q)
{
    if (rbuf_used(q) || !rio_can_read(from))
        return 0;
    worker *w = k->w;
    if (!w->tbuf && !(w->tbuf = malloc(TUNNEL_BUF)))
        return 0; /* retried on the next event */
    ssize_t r = rio_read(from, w->tbuf, TUNNEL_BUF);
    if (r < 0)
        return 0;
    if (r > 0 && rio_send_or_queue(to, q, w->tbuf, (size_t)r, NULL) < 0)
        return -1;
    return 1;
}

/* Flush a queue; 1 progress, 0 none, -1 error. */
static int flush(rio *r, rbuf *q)
{
    size_t before = rbuf_used(q);
    if (!before)
        return 0;
    if (rio_flush(r, q) < 0)
        return -1;
    return rbuf_used(q) < before;
}

/* A side's end, passed on once its bytes are out. 1 progress, 0 none, -1 reset. */
static int pass_end(rio *from, rio *to, const rbuf *q)
{
    if (!from->rd_eof || rbuf_used(q) || to->wr_shut)
        return 0;
    if (from->rd_unclean)
        return -1;
    rio_shutdown(to);
    return 1;
}

void tunnel_run(conn *k)
{
    upconn *u = k->up;
    if (!k->tunnel_up || !u || u->state != U_READY) {
        /* A reset client gave up waiting: drop the upstream too. A client
         * that only shut its sending side (a FIN after CONNECT) still
         * gets its tunnel: half-close is passed on once it is up. */
        if (k->c.gone && !k->tunnel_up) {
            kf_log(KF_LOG_DEBUG, "[relay] proxy: the client reset its CONNECT before the tunnel was up");
            conn_close(k);
        }
        return;
    }
    for (int round = 0; round < ROUNDS; round++) {
        int p = 0, r;
        if ((r = copy(k, &k->c, &u->u, &k->toup)) < 0 || (p |= r, (r = copy(k, &u->u, &k->c, &k->toc)) < 0))
            return conn_close(k);
        p |= r;
        if ((r = flush(&u->u, &k->toup)) < 0 || (p |= r, (r = flush(&k->c, &k->toc)) < 0))
            return abort_both(k);
        p |= r;
        if ((r = pass_end(&k->c, &u->u, &k->toup)) < 0 || (p |= r, (r = pass_end(&u->u, &k->c, &k->toc)) < 0))
            return abort_both(k);
        p |= r;
        if (k->c.wr_shut && u->u.wr_shut)
            return conn_close(k); /* both directions ended */
        if (!p)
            return;
        k->last_io = relay_now_ms();
    }
    conn_again(k);
}

void tunnel_timeout(conn *k)
{
    long due = k->last_io + RELAY_IDLE_MS;
    if (relay_now_ms() < due) {
        timer_arm(k->w, &k->tm, due);
        return;
    }
    kf_log(KF_LOG_DEBUG, "[relay] proxy: tunnel idle for %ld s: closing", RELAY_IDLE_MS / 1000);
    conn_close(k);
}
