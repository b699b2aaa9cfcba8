/* conn.c - one client connection: its phases and its end.
 *
 *  CS_PREAMBLE  pending: PROXY v2 preamble and token (front.c), 5 s
 *  CS_CONTROL   LOCAL command with the token: one line (front.c)
 *  CS_FIRSTBYTE after the preamble: 0x16 = TLS, else plain HTTP, 30 s
 *  CS_TLS       TLS handshake, leaf for the SNI (tlsterm.c), 15 s
 *  CS_PUMP      first head (120 s), upstream choice, bytes both ways
 *               (pump.c); the upstream connection is borrowed per exchange
 *  CS_CLOSING   a final answer (502, control reply) is flushed, then close
 *  CS_PROXY_HEAD, CS_TUNNEL  the HTTP proxy front end (proxyfront.c,
 *               tunnel.c): a CONNECT to a rule host continues at
 *               CS_FIRSTBYTE with the target by name, an absolute-form
 *               request at CS_PUMP with its upstream head fed in first
 *
 * The first request head decides where the connection's requests go: an
 * `upstream` rule (sk-kimi- key on api.moonshot.ai -> api.kimi.com), else
 * the original destination. A later request that a rule would send
 * elsewhere is logged and goes to the same place.
 */
#include "relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/err.h>

#include "kf_log.h"
#include "truststore.h"

struct conn_info {
    struct sockaddr_storage dst;  /* the client's original destination */
    char authority[KF_PROXY_AUTH_MAX + 1];
    unsigned dport;
    char host[256];               /* the client's idea of the host (SNI/authority) */
    int rerouted;
    int by_name;                  /* proxy carrier: dst is authority:dport, resolved */
    upkey key;                    /* where the requests go, after the first head */
    tlsterm_info *ti;             /* during the handshake only */
};

const upkey *conn_key(const conn *k)
{
    return &k->info->key;
}

const char *conn_host(const conn *k)
{
    return k->info ? k->info->host : "";
}

static void on_timer(worker *w, rtimer *t);

conn *conn_new(worker *w, int fd)
{
    conn *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->h.kind = H_CONN;
    k->w = w;
    rio_init(&k->c, fd);
    k->state = CS_PREAMBLE;
    k->pending = 1;
    k->born = k->last_io = relay_now_ms();
    timer_init(&k->tm, on_timer);
    if (worker_add(w, fd, &k->h) < 0 || timer_arm(w, &k->tm, k->born + RELAY_PREAMBLE_MS) < 0) {
        timer_cancel(w, &k->tm);
        free(k);
        return NULL;
    }
    k->pprev = w->pend_tail;
    if (w->pend_tail)
        w->pend_tail->pnext = k;
    else
        w->pend_head = k;
    w->pend_tail = k;
    w->npend++;
    atomic_store(&w->npend_pub, w->npend);
    atomic_fetch_add(&g_relay.active, 1);
    atomic_fetch_add(&w->nconn_pub, 1);
    atomic_fetch_add(&g_relay.total, 1);
    atomic_store(&g_relay.last_activity, (long)time(NULL));
    return k;
}

static void unlink_conn(conn *k)
{
    worker *w = k->w;
    conn **head = k->pending ? &w->pend_head : &w->live;
    if (k->pprev)
        k->pprev->pnext = k->pnext;
    else
        *head = k->pnext;
    if (k->pnext)
        k->pnext->pprev = k->pprev;
    else if (k->pending)
        w->pend_tail = k->pprev; /* the live list has no tail */
    if (k->pending) {
        w->npend--;
        atomic_store(&w->npend_pub, w->npend);
    }
    k->pnext = k->pprev = NULL;
}

void conn_leave_pending(conn *k)
{
    unlink_conn(k);
    k->pending = 0;
    k->pnext = k->w->live;
    if (k->pnext)
        k->pnext->pprev = k;
    k->w->live = k;
}

void conn_close(conn *k)
{
    if (k->h.dead)
        return;
    worker *w = k->w;
    unlink_conn(k);
    timer_cancel(w, &k->tm);
    if (k->up)
        upconn_free(k->up);
    k->up = NULL;
    if (k->tap) {
        tap_finish(k->tap);
        tap_free(k->tap);
    }
    kf_stream_reset(&k->st);
    free(k->px);
    rbuf_free(&k->toup);
    rbuf_free(&k->toc);
    rbuf_free(&k->replay);
    rio_close(&k->c);
    if (k->info) {
        SSL_CTX_free(k->info->key.sslctx); /* the reference conn_choose_target took */
        free(k->info->ti);
        free(k->info);
    }
    relay_ctx_put(k->ctx);
    relay_rules_put(k->rules);
    atomic_fetch_sub(&g_relay.active, 1);
    atomic_fetch_sub(&w->nconn_pub, 1);
    atomic_store(&g_relay.last_activity, (long)time(NULL));
    worker_bury(w, &k->h);
}

/* The one accessor: the client's rules, or the relay's, taken once per
 * connection (a reference, dropped in conn_close). */
const kf_ruleset *conn_rules(conn *k)
{
    if (!k->rules)
        k->rules = relay_ctx_rules(k->ctx);
    return relay_rules_set(k->rules);
}

/* ---- request heads (kf_stream callbacks) ------------------------------- */

static int header_has(const kf_req *req, const char *name, const char *token)
{
    int i = kf_req_find_header(req, kf_str_c(name), 0);
    if (i < 0)
        return 0;
    if (!token)
        return 1;
    kf_str v = req->hdr[i].value;
    size_t tl = strlen(token);
    for (size_t j = 0; j + tl <= v.n; j++)
        if (!strncasecmp(v.p + j, token, tl))
            return 1;
    return 0;
}

static void on_head(void *ud, const kf_req *req)
{
    conn *k = ud;
    struct conn_info *in = k->info;
    char line[TAP_LINE_MAX];
    if (k->absolute && k->nheads) {
        /* One request per absolute-form proxy connection (httpproxy_head.c):
         * from a second head on nothing is forwarded (up_send drops it),
         * and the client connection closes after the first answer
         * (pump_run). */
        if (!k->over)
            kf_log(KF_LOG_DEBUG, "[relay] proxy: a second request on an absolute-form connection: "
                   "not forwarded");
        k->over = 1;
        return;
    }
    k->head_next = 1; /* up_send: chained plain HTTP gets the absolute form */
    kf_req_log_text(req, line, sizeof line);
    if (k->rules && k->kctx.rs == relay_rules_set(k->rules))
        relay_rules_hit(k->rules, req);
    if (k->nheads++ == 0) {
        if (req->upstream_host.n && req->upstream_host.n < sizeof in->key.host) {
            memcpy(in->key.host, req->upstream_host.p, req->upstream_host.n);
            in->key.host[req->upstream_host.n] = 0;
            in->key.port = req->upstream_port ? req->upstream_port : (k->tls ? 443 : 80);
            in->rerouted = 1;
        }
    } else if (req->upstream_host.n &&
               (!in->rerouted || req->upstream_host.n != strlen(in->key.host) ||
                memcmp(req->upstream_host.p, in->key.host, req->upstream_host.n))) {
        relay_log(k->ctx, KF_LOG_WARN, "[relay] %s: a later request on this connection wants upstream "
                  "%.*s, but the connection already goes to %s: sent there",
                  in->host, (int)req->upstream_host.n, req->upstream_host.p,
                  in->rerouted ? in->key.host : "the original destination");
    }
    if (!k->tap && (k->tap = tap_new(in->host)))
        tap_set_ctx(k->tap, k->ctx);
    tap_request(k->tap, line, kf_str_ieq_c(req->method, "HEAD"), req->nfired > 0);
    /* These end the upstream connection's reuse after this exchange. */
    if (kf_str_ieq_c(req->version, "HTTP/1.0") || header_has(req, "connection", "close") ||
        header_has(req, "upgrade", NULL))
        tap_request_no_reuse(k->tap);
}

static void on_notice(void *ud, const char *msg)
{
    conn *k = ud;
    relay_log(k->ctx, KF_LOG_INFO, "[relay] %s: %s", k->info->host, msg);
}

/* The first head is through (or the bytes are not HTTP): fix the target. */
void conn_choose_target(conn *k)
{
    struct conn_info *in = k->info;
    upkey *key = &in->key;
    k->first_done = 1;
    if (!in->rerouted && in->by_name) {
        key->by_addr = 0; /* the CONNECT/URL host: resolved, connect-to honoured */
        snprintf(key->host, sizeof key->host, "%s", in->authority);
        key->port = in->dport;
        snprintf(key->sni, sizeof key->sni, "%s", k->tls ? in->host : "");
    } else if (!in->rerouted && in->host[0] && relay_ctx_proxy_for(k->ctx, in->host, in->dport)) {
        /* Through the user's proxy the name goes in the CONNECT: the proxy
         * resolves it (its network may be the only one that can). */
        key->by_addr = 0;
        snprintf(key->host, sizeof key->host, "%s", in->host);
        key->port = in->dport;
        snprintf(key->sni, sizeof key->sni, "%s", k->tls ? in->host : "");
    } else if (!in->rerouted) {
        key->by_addr = 1;
        key->addr = in->dst;
        relay_addr_text((struct sockaddr *)&in->dst, key->host, sizeof key->host);
        key->port = in->dport;
        snprintf(key->sni, sizeof key->sni, "%s", k->tls ? in->host : "");
    } else {
        snprintf(key->sni, sizeof key->sni, "%s", k->tls ? key->host : "");
    }
    SSL_CTX_free(key->sslctx); /* ours (a reference): never twice, but never leaked */
    key->sslctx = k->tls ? relay_ctx_upstream_ssl_ctx(k->ctx) : NULL;
    key->raw = k->state == CS_TUNNEL;
    key->proxy = (char *)relay_ctx_proxy_for(k->ctx, key->host, key->port);
    upkey_seal(key);
}

/* ---- phases -------------------------------------------------------------- */

/* head: bytes that go through the rewriter before the client's (the
 * absolute form's upstream head), or NULL. */
static void start_pump(conn *k, const char *head, size_t n)
{
    struct conn_info *in = k->info;
    kf_stream_init(&k->st);
    k->kctx = (kf_ctx){.rs = conn_rules(k), .host = in->host[0] ? in->host : NULL,
                       .port = in->dport, .tls = k->tls, .caps = KF_CAP_UPSTREAM,
                       .on_head = on_head, .notice = on_notice, .ud = k};
    k->state = CS_PUMP;
    k->last_io = relay_now_ms();
    timer_arm(k->w, &k->tm, k->last_io + RELAY_FIRST_HEAD_MS);
    if (head && pump_feed(k, head, n) < 0)
        return;
    pump_run(k);
}

int conn_set_proxy_target(conn *k, const char *host, unsigned port)
{
    struct conn_info *in = calloc(1, sizeof *in);
    if (!in) {
        conn_close(k);
        return -1;
    }
    k->info = in;
    snprintf(in->authority, sizeof in->authority, "%s", host);
    in->dport = port;
    in->by_name = 1;
    /* TCP_NODELAY: the listener's, inherited (main.c) */
    return 0;
}

void conn_after_connect(conn *k)
{
    k->state = CS_FIRSTBYTE;
    timer_arm(k->w, &k->tm, relay_now_ms() + RELAY_FIRST_BYTE_MS);
    conn_run(k);
}

void conn_start_absolute(conn *k, const char *head, size_t n)
{
    snprintf(k->info->host, sizeof k->info->host, "%s", k->info->authority);
    k->absolute = 1;
    start_pump(k, head, n);
}

void conn_after_preamble(conn *k, const kf_proxy_info *pi)
{
    conn_leave_pending(k);
    struct conn_info *in = calloc(1, sizeof *in);
    if (!in) {
        conn_close(k);
        return;
    }
    k->info = in;
    in->dst = pi->dst;
    snprintf(in->authority, sizeof in->authority, "%s", pi->authority);
    in->dport = ntohs(pi->family == AF_INET6 ? ((const struct sockaddr_in6 *)&pi->dst)->sin6_port
                                              : ((const struct sockaddr_in *)&pi->dst)->sin_port);
    k->ctx = relay_ctx_for_conn(pi);
    /* SSE: no Nagle (TCP_NODELAY: the listener's, inherited: main.c) */
    k->state = CS_FIRSTBYTE;
    timer_arm(k->w, &k->tm, relay_now_ms() + RELAY_FIRST_BYTE_MS);
    conn_run(k);
}

static void first_byte(conn *k)
{
    unsigned char b;
    /* Nothing new to read since the last EAGAIN (or since the preamble,
     * which was all there was: front.c): an event for writing only, or
     * none yet. The client's first byte raises RIO_IN (so does a hang-up). */
    if (!(k->c.ready & RIO_IN))
        return;
    ssize_t r = recv(k->c.fd, &b, 1, MSG_PEEK);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        k->c.ready &= (uint8_t)~RIO_IN;
        return;
    }
    if (r <= 0) {
        conn_close(k);
        return;
    }
    struct conn_info *in = k->info;
    k->tls = b == 0x16;
    if (!k->tls) {
        snprintf(in->host, sizeof in->host, "%s", in->authority);
        start_pump(k, NULL, 0);
        return;
    }
    SSL *ssl = SSL_new(g_relay.srv_ctx);
    in->ti = calloc(1, sizeof *in->ti);
    if (!ssl || !in->ti) {
        SSL_free(ssl);
        conn_close(k);
        return;
    }
    in->ti->authority = in->authority;
    in->ti->port = in->dport;
    in->ti->rs = conn_rules(k);
    SSL_set_ex_data(ssl, tlsterm_ex_index(), in->ti);
    SSL_set_fd(ssl, k->c.fd);
    rio_set_ssl(&k->c, ssl);
    k->state = CS_TLS;
    timer_arm(k->w, &k->tm, relay_now_ms() + RELAY_HANDSHAKE_MS);
    conn_run(k);
}

static void tls_failed(conn *k)
{
    tlsterm_info *ti = k->info->ti;
    if (ti && ti->why[0]) {
        relay_log(k->ctx, KF_LOG_WARN, "[relay] refused TLS from a client: %s", ti->why);
    } else {
        unsigned long le = ERR_peek_error();
        /* The client's alert refusing our certificate: learn that this
         * program distrusts the relay (its context names it), loudly once. */
        if (!le || !distrust_note(le, g_relay.datadir, relay_ctx_exe(k->ctx),
                                  relay_ctx_buildid(k->ctx),
                                  ti ? (ti->host[0] ? ti->host : ti->authority) : NULL))
            relay_log(k->ctx, KF_LOG_DEBUG, "[relay] client TLS handshake failed: %s",
                      le ? ERR_reason_error_string(le) : "closed or timed out");
    }
    conn_close(k);
}

static void tls_step(conn *k)
{
    ERR_clear_error();
    int r = SSL_accept(k->c.ssl);
    if (r == 1) {
        struct conn_info *in = k->info;
        snprintf(in->host, sizeof in->host, "%s", in->ti->host);
        free(in->ti);
        in->ti = NULL;
        rio_trim(&k->c);
        start_pump(k, NULL, 0);
        return;
    }
    int e = SSL_get_error(k->c.ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        k->c.ready &= (uint8_t)~RIO_IN;
    else if (e == SSL_ERROR_WANT_WRITE)
        k->c.ready &= (uint8_t)~RIO_OUT;
    else
        tls_failed(k);
}

/* Read and drop what the client still sends: 1 at its end (or past a
 * bound), 0 when it may send more. */
static int drained(conn *k)
{
    for (int i = 0; i < 64; i++) {
        ssize_t r = recv(k->c.fd, k->w->buf, RELAY_BUF, 0);
        if (r == 0)
            return 1;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            k->c.ready &= (uint8_t)~RIO_IN;
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return 1;
    }
    return 1; /* a client that keeps sending gets the reset it asked for */
}

static void closing_step(conn *k)
{
    int f = rio_flush(&k->c, &k->toc);
    if (f == 0)
        return;
    if (f > 0)
        rio_shutdown(&k->c);
    if (f > 0 && k->drain && !drained(k))
        return;
    conn_close(k);
}

void conn_refuse(conn *k, const char *reply, size_t n)
{
    /* Still pending when refused before the credentials: the pending cap
     * and its drop-the-oldest apply while it drains. */
    if (rbuf_add(&k->toc, reply, n) < 0) {
        conn_close(k);
        return;
    }
    k->drain = 1;
    k->state = CS_CLOSING;
    timer_arm(k->w, &k->tm, relay_now_ms() + RELAY_CLOSE_MS);
    k->c.ready |= RIO_OUT | RIO_IN;
    closing_step(k);
}

void conn_finish(conn *k, const char *reply, size_t n)
{
    if (k->up)
        upconn_free(k->up);
    k->up = NULL;
    rbuf_free(&k->toup);
    if (k->pending)
        conn_leave_pending(k);
    if (rbuf_add(&k->toc, reply, n) < 0) {
        conn_close(k);
        return;
    }
    k->state = CS_CLOSING;
    timer_arm(k->w, &k->tm, relay_now_ms() + RELAY_CLOSE_MS);
    k->c.ready |= RIO_OUT; /* try at once; a full socket clears it */
    closing_step(k);
}

static void json_escape(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (; *in && o + 2 < n; in++) {
        if (*in == '"' || *in == '\\')
            out[o++] = '\\';
        out[o++] = (unsigned char)*in < 0x20 ? ' ' : *in;
    }
    out[o] = 0;
}

void conn_fail_502(conn *k, const char *why)
{
    conn_fail(k, 502, why);
}

/* The upstream could not be reached (or broke before any answer): the
 * waiting request gets a 502 (504: the user's proxy did not answer) with a
 * JSON body, and the log says why. */
void conn_fail(conn *k, int status, const char *why)
{
    const struct conn_info *in = k->info;
    const upkey *key = &in->key;
    /* The name the user knows: the rule's host, else the client's. */
    const char *name = in->rerouted || !in->host[0] ? key->host : in->host;
    const char *line = k->tap ? tap_oldest_line(k->tap) : NULL;
    relay_log(k->ctx, KF_LOG_WARN, "[relay] %s: %s => %d (upstream %s:%u: %s)", in->host,
              line ? line : "(no request)", status, name, key->port, why);
    if (!line) {
        conn_close(k);
        return;
    }
    if (k->tap)
        tap_drop_oldest(k->tap); /* logged above: no "no response" line */
    char esc[1000], body[1400], resp[1700];
    char full[900];
    snprintf(full, sizeof full, "upstream %s:%u: %s", name, key->port, why);
    json_escape(full, esc, sizeof esc);
    int bl = snprintf(body, sizeof body,
                      "{\"error\":{\"type\":\"kimifix_relay_error\",\"message\":\"kimifix relay: %s\"}}",
                      esc);
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      status, status == 504 ? "Gateway Timeout" : "Bad Gateway", bl, body);
    conn_finish(k, resp, (size_t)rl);
}

void conn_run(conn *k)
{
    switch (k->state) {
    case CS_PREAMBLE:
    case CS_CONTROL:
        front_step(k);
        break;
    case CS_FIRSTBYTE:
        first_byte(k);
        break;
    case CS_TLS:
        tls_step(k);
        break;
    case CS_PUMP:
        pump_run(k);
        break;
    case CS_CLOSING:
        closing_step(k);
        break;
    case CS_PROXY_HEAD:
        proxyfront_step(k);
        break;
    case CS_TUNNEL:
        tunnel_run(k);
        break;
    }
}

void conn_on_event(conn *k, uint32_t ev)
{
    rio_event(&k->c, ev);
    conn_run(k);
}

static void on_timer(worker *w, rtimer *t)
{
    (void)w;
    conn *k = (conn *)((char *)t - offsetof(conn, tm));
    switch (k->state) {
    case CS_PREAMBLE:
        atomic_fetch_add(&g_relay.n_nopreamble, 1);
        kf_log(KF_LOG_DEBUG, "[relay] dropped a connection: no preamble within %d ms",
               RELAY_PREAMBLE_MS);
        conn_close(k);
        break;
    case CS_PUMP:
        pump_timeout(k);
        break;
    case CS_PROXY_HEAD:
        proxyfront_timeout(k);
        break;
    case CS_TUNNEL:
        tunnel_timeout(k);
        break;
    default: /* control, first byte, handshake, closing: out of time */
        if (k->state == CS_TLS)
            tls_failed(k);
        else
            conn_close(k);
        break;
    }
}
