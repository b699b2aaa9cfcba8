/* proxyfront.c - the relay as an HTTP proxy: the front end (contract D;
 * docs/relay.md "Proxy carrier"). The pure parts are httpproxy*.c.
 *
 * A connection whose first bytes are an HTTP method token comes here while
 * still pending (before any credential): its head is *peeked* into the
 * worker's scratch buffer (at most HP_HEAD_MAX bytes) and scanned on every
 * new edge; only the head is consumed, so what follows it - a TLS
 * ClientHello after CONNECT, a body after an absolute-form head - stays in
 * the socket for the next phase. The scanner says 400 at the first wrong
 * byte of the request line and 431 at 16 KiB; the deadline says 408. Then
 * hp_parse() checks the credentials (407 before anything about the target
 * is said) and the target, and the connection becomes:
 *
 *   CONNECT to a rule host   200, then like a steered connection (conn.c:
 *                            TLS terminated, rewritten; the target by name)
 *   CONNECT elsewhere        a blind tunnel (tunnel.c): 200 only once the
 *                            upstream is connected
 *   absolute form http://    the upstream head (hp_upstream_head) through
 *                            the rewriter, one request (conn.c, pump.c)
 *
 * A refusal is answered, logged once (407s rate-limited across workers) and
 * closed after the client's bytes are drained (conn_refuse).
 */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "httpproxy.h"
#include "kf_log.h"

static pthread_mutex_t lim_mu = PTHREAD_MUTEX_INITIALIZER;
static hp_limit lim; /* one for all workers: a flood of bad credentials, few lines */

static void head_step(conn *k, ssize_t n, size_t cap);

void proxyfront_begin(conn *k, ssize_t peeked)
{
    k->px = calloc(1, sizeof *k->px);
    if (!k->px) {
        conn_close(k);
        return;
    }
    k->state = CS_PROXY_HEAD;
    timer_arm(k->w, &k->tm, k->born + RELAY_PROXY_HEAD_MS);
    /* front.c peeked KF_PROXY_MAX bytes into w->buf: when the socket held
     * fewer, those are all of them, and a second peek would only repeat
     * them (a system call is several us of the setup: bench figure 13). */
    if (peeked > 0 && (size_t)peeked < KF_PROXY_MAX)
        head_step(k, peeked, KF_PROXY_MAX);
    else
        proxyfront_step(k);
}

static void refuse(conn *k, int status, const hp_req *req, const char *why)
{
    char out[1500];
    atomic_fetch_add(&g_relay.n_px_refused, 1);
    pthread_mutex_lock(&lim_mu);
    hp_log_refusal(status, req, why, &lim, relay_now_ms());
    pthread_mutex_unlock(&lim_mu);
    free(k->px);
    k->px = NULL;
    ssize_t n = hp_reply(status, why, out, sizeof out);
    if (n < 0)
        conn_close(k);
    else
        conn_refuse(k, out, (size_t)n);
}

void proxyfront_timeout(conn *k)
{
    refuse(k, HP_408, NULL, "no complete request head in time");
}

/* CONNECT to a rule host: say yes now (the TLS handshake needs it), then
 * the steered path. */
static void connect_rule_host(conn *k)
{
    size_t n = strlen(hp_established);
    /* A new socket's send buffer takes 39 bytes: a short write here means
     * the client is gone. */
    if (send(k->c.fd, hp_established, n, MSG_NOSIGNAL) != (ssize_t)n) {
        conn_close(k);
        return;
    }
    conn_after_connect(k);
}

static void absolute(conn *k, const char *head, size_t n, const hp_req *req)
{
    size_t cap = n + 300; /* httpproxy.h: always enough */
    char *up = malloc(cap);
    ssize_t m = up ? hp_upstream_head(head, n, req, up, cap) : -1;
    if (m < 0) {
        free(up);
        conn_close(k);
        return;
    }
    conn_start_absolute(k, up, (size_t)m);
    free(up);
}

static void accepted(conn *k, const char *head, size_t n, const hp_req *req)
{
    free(k->px);
    k->px = NULL;
    conn_leave_pending(k);
    atomic_fetch_add(&g_relay.n_px_ok, 1);
    k->ctx = relay_ctx_for_id(req->ctxid);
    if (conn_set_proxy_target(k, req->host, req->port) < 0)
        return;
    if (req->kind == HP_ABSOLUTE)
        absolute(k, head, n, req);
    else if (hp_rule_host(conn_rules(k), req))
        connect_rule_host(k);
    else
        tunnel_start(k);
}

void proxyfront_step(conn *k)
{
    ssize_t n = recv(k->c.fd, k->w->buf, HP_HEAD_MAX, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (errno != EINTR)
            k->c.ready &= (uint8_t)~RIO_IN;
        return;
    }
    head_step(k, n, HP_HEAD_MAX);
}

/* n bytes peeked into w->buf by a peek of cap (n < cap: all the socket
 * held then). */
static void head_step(conn *k, ssize_t n, size_t cap)
{
    char *buf = k->w->buf;
    if (n <= 0) {
        kf_log(KF_LOG_DEBUG, "[relay] proxy: a client closed before its request head");
        conn_close(k);
        return;
    }
    ssize_t h = hp_scan_head(k->px, buf, (size_t)n);
    if (h == HP_SCAN_BAD)
        return refuse(k, HP_400, NULL, "malformed request line");
    if (h == HP_SCAN_TOO_BIG)
        return refuse(k, HP_431, NULL, "request head over 16 KiB");
    if (h == HP_SCAN_MORE) {
        k->c.ready &= (uint8_t)~RIO_IN; /* the same bytes until a new edge */
        if (k->c.hup) {
            kf_log(KF_LOG_DEBUG, "[relay] proxy: a client closed in the middle of its request head");
            conn_close(k);
        }
        return;
    }
    hp_req req;
    hp_cfg cfg = {.token = g_relay.token, .relay_port = g_relay.port};
    int st = hp_parse(buf, (size_t)h, &cfg, &req);
    /* Consume the head only: recv rewrites the same bytes in place. */
    if (recv(k->c.fd, buf, (size_t)h, 0) != h) {
        conn_close(k);
        return;
    }
    /* The head was all the socket held at the peek: nothing is left to
     * read, so the tunnel's first step need not ask (and find EAGAIN).
     * Bytes that came since raised an edge of their own (EPOLLET: each
     * arrival does), which sets RIO_IN again. */
    if (n == h && (size_t)n < cap && !k->c.hup) /* a FIN with the head: read it (half-close) */
        k->c.ready &= (uint8_t)~RIO_IN;
    if (st != HP_OK)
        return refuse(k, st, &req, req.why);
    accepted(k, buf, (size_t)h, &req);
}
