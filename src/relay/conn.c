/* conn.c - one client connection, start to end (one thread each).
 *
 *  1. PROXY v2 preamble (5 s): original destination, authority, token.
 *     Wrong or missing token: dropped. LOCAL command: control channel.
 *  2. TLS (first byte 0x16) terminated with a leaf for the SNI, or plain.
 *  3. Client bytes run through the kf_stream into a buffer until the first
 *     request head has been seen: an `upstream` rule may choose where the
 *     connection goes (sk-kimi- key on api.moonshot.ai -> api.kimi.com).
 *  4. Upstream: that host (by name), else the original destination; TLS
 *     with SNI and verification. Failure: 502 with a JSON body, logged.
 *  5. pump_run() until both directions are done.
 * The upstream is chosen once per connection. A later request on the same
 * connection that an `upstream` rule would send elsewhere is logged.
 */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "kf_log.h"
#include "kf_stream.h"

#define PREAMBLE_MS 5000
#define FIRST_BYTE_MS 30000
#define HANDSHAKE_MS 15000
#define FIRST_HEAD_MS 120000 /* clients may open a connection before they need it */
#define EARLY_MAX (KF_HEAD_MAX + 2 * EP_QCAP)

typedef struct conn {
    endpoint c, u;
    kf_proxy_info pi;
    tlsterm_info ti;
    kf_stream st;
    kf_ctx ctx;
    resp_tap *tap;
    char *early;
    size_t early_len, early_cap;
    int nheads, tls, rerouted;
    char host[256];      /* the client's idea of the host (SNI/authority) */
    char up_host[256];   /* where this connection goes */
    unsigned dport, up_port;
    char first_line[TAP_LINE_MAX];
} conn;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int wait_ev(int fd, short ev, long deadline)
{
    long left = deadline - now_ms();
    struct pollfd p = {.fd = fd, .events = ev};
    if (left <= 0)
        return 0;
    int r;
    while ((r = poll(&p, 1, (int)left)) < 0 && errno == EINTR)
        ;
    return r > 0;
}

/* Read exactly n bytes from a non-blocking plain socket before deadline. */
static int read_exact(int fd, void *buf, size_t n, long deadline)
{
    char *p = buf;
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR) || !wait_ev(fd, POLLIN, deadline)) {
            return -1;
        }
    }
    return 0;
}

static int read_preamble(conn *k)
{
    unsigned char buf[KF_PROXY_MAX];
    long deadline = now_ms() + PREAMBLE_MS;
    if (read_exact(k->c.fd, buf, KF_PROXY_HDR_MIN, deadline) < 0)
        return -1;
    ssize_t total = kf_proxy_total_len(buf, KF_PROXY_HDR_MIN);
    if (total < 0 || read_exact(k->c.fd, buf + KF_PROXY_HDR_MIN,
                                (size_t)total - KF_PROXY_HDR_MIN, deadline) < 0)
        return -1;
    return kf_proxy_parse(buf, (size_t)total, &k->pi) == total ? 0 : -1;
}

/* LOCAL command with the token: one-line commands for `kimifix relay`. */
static void control(conn *k)
{
    char cmd[32] = "";
    long deadline = now_ms() + PREAMBLE_MS;
    size_t n = 0;
    while (n < sizeof cmd - 1 && wait_ev(k->c.fd, POLLIN, deadline)) {
        ssize_t r = recv(k->c.fd, cmd + n, 1, 0);
        if (r <= 0 || cmd[n] == '\n')
            break;
        n++;
    }
    cmd[n] = 0;
    char out[9000];
    int len;
    if (!strcmp(cmd, "STATUS")) {
        len = snprintf(out, sizeof out,
                       "pid %ld\nport %u\nuptime %ld\nactive %d\ntotal %lu\nca %s/ca.pem\n"
                       "names %s\nheap_in_use %zu\n",
                       (long)getpid(), g_relay.port, (long)time(NULL) - g_relay.started,
                       atomic_load(&g_relay.active) - 1, atomic_load(&g_relay.total) - 1,
                       g_relay.datadir, ca_names(), mallinfo2().uordblks);
    } else if (!strcmp(cmd, "STOP")) {
        atomic_store(&g_relay.stopping, 1);
        len = snprintf(out, sizeof out, "stopping\n");
    } else {
        len = snprintf(out, sizeof out, "error unknown command\n");
    }
    ep_write_all(&k->c, out, (size_t)(len < (int)sizeof out ? len : (int)sizeof out - 1), 2000);
}

static int tls_accept(conn *k)
{
    SSL *ssl = SSL_new(g_relay.srv_ctx);
    if (!ssl)
        return -1;
    k->ti.authority = k->pi.authority;
    k->ti.port = k->dport;
    SSL_set_ex_data(ssl, tlsterm_ex_index(), &k->ti);
    SSL_set_fd(ssl, k->c.fd);
    k->c.ssl = ssl;
    long deadline = now_ms() + HANDSHAKE_MS;
    for (;;) {
        ERR_clear_error();
        int r = SSL_accept(ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(ssl, r);
        if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
            wait_ev(k->c.fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))
            continue;
        if (k->ti.why[0])
            kf_log(KF_LOG_WARN, "[relay] refused TLS from a client: %s", k->ti.why);
        else {
            unsigned long le = ERR_peek_error();
            kf_log(KF_LOG_DEBUG, "[relay] client TLS handshake failed: %s",
                   le ? ERR_reason_error_string(le) : "closed or timed out");
        }
        return -1;
    }
}

static ssize_t early_send(void *io, const void *buf, size_t len)
{
    conn *k = io;
    if (k->early_len + len > k->early_cap) {
        size_t cap = (k->early_len + len) * 2;
        char *nb = realloc(k->early, cap);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        k->early = nb;
        k->early_cap = cap;
    }
    memcpy(k->early + k->early_len, buf, len);
    k->early_len += len;
    return (ssize_t)len;
}

static void on_head(void *ud, const kf_req *req)
{
    conn *k = ud;
    char line[TAP_LINE_MAX];
    kf_req_log_text(req, line, sizeof line);
    if (k->nheads++ == 0) {
        snprintf(k->first_line, sizeof k->first_line, "%s", line);
        if (req->upstream_host.n && req->upstream_host.n < sizeof k->up_host) {
            memcpy(k->up_host, req->upstream_host.p, req->upstream_host.n);
            k->up_host[req->upstream_host.n] = 0;
            k->up_port = req->upstream_port ? req->upstream_port : (k->tls ? 443 : 80);
            k->rerouted = 1;
        }
    } else if (req->upstream_host.n &&
               (!k->rerouted || req->upstream_host.n != strlen(k->up_host) ||
                memcmp(req->upstream_host.p, k->up_host, req->upstream_host.n))) {
        kf_log(KF_LOG_WARN, "[relay] %s: a later request on this connection wants upstream "
               "%.*s, but the connection already goes to %s: sent there",
               k->host, (int)req->upstream_host.n, req->upstream_host.p,
               k->rerouted ? k->up_host : "the original destination");
    }
    tap_request(k->tap, line, kf_str_ieq_c(req->method, "HEAD"), req->nfired > 0);
}

static void on_notice(void *ud, const char *msg)
{
    conn *k = ud;
    kf_log(KF_LOG_INFO, "[relay] %s: %s", k->host, msg);
}

/* Feed the client's bytes until the first head is through (or it is not
 * HTTP). Returns 0 to go on, -1 when the client left first. */
static int first_head(conn *k)
{
    /* Read into the client's output queue: nothing goes to the client in
     * this phase, and a stack buffer would deepen every thread's stack. */
    char *buf = k->c.q;
    long deadline = now_ms() + FIRST_HEAD_MS;
    while (k->nheads == 0 && !kf_stream_is_passthrough(&k->st) && k->early_len < EARLY_MAX) {
        k->c.want = 0;
        ssize_t r = ep_read(&k->c, buf, EP_QCAP);
        if (r == 0)
            return -1;
        if (r < 0) {
            if (!wait_ev(k->c.fd, (short)k->c.want, deadline))
                return -1;
            continue;
        }
        for (size_t off = 0; off < (size_t)r;) {
            ssize_t w = kf_stream_write(&k->st, &k->ctx, buf + off, (size_t)r - off,
                                        KF_WR_PARTIAL, early_send, k);
            if (w <= 0)
                return -1;
            off += (size_t)w;
        }
    }
    return 0;
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

static void send_502(conn *k, const char *why)
{
    char esc[1000], body[1200], resp[1400];
    json_escape(why, esc, sizeof esc);
    int bl = snprintf(body, sizeof body,
                      "{\"error\":{\"type\":\"kimifix_relay_error\",\"message\":\"kimifix relay: %s\"}}",
                      esc);
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      bl, body);
    ep_write_all(&k->c, resp, (size_t)rl, 5000);
    ep_shutdown(&k->c);
}

static int connect_upstream(conn *k)
{
    char err[512];
    const char *host = k->rerouted ? k->up_host : k->host;
    unsigned port = k->rerouted ? k->up_port : k->dport;
    int fd = upstream_connect(k->rerouted ? NULL : (struct sockaddr *)&k->pi.dst, host, port, err,
                              sizeof err);
    SSL *ssl = NULL;
    if (fd >= 0 && k->tls && !(ssl = upstream_tls(fd, host, err, sizeof err))) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        kf_log(KF_LOG_WARN, "[relay] %s: %s => 502 (upstream %s:%u: %s)", k->host,
               k->nheads ? k->first_line : "(no request)", host, port, err);
        if (k->nheads) {
            char why[900];
            snprintf(why, sizeof why, "upstream %s:%u: %s", host, port, err);
            send_502(k, why);
        }
        tap_free(k->tap); /* logged above: no "no response" line */
        k->tap = NULL;
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    k->u.fd = fd;
    k->u.ssl = ssl;
    return 0;
}

static void serve(conn *k)
{
    if (read_preamble(k) < 0) {
        kf_log(KF_LOG_DEBUG, "[relay] dropped a connection: no valid PROXY v2 preamble");
        return;
    }
    if (!k->pi.has_token ||
        CRYPTO_memcmp(k->pi.token, g_relay.token, KF_PROXY_TOKEN_LEN) != 0) {
        kf_log(KF_LOG_WARN, "[relay] dropped a connection without the right token");
        return;
    }
    if (k->pi.local) {
        control(k);
        return;
    }
    k->dport = ntohs(k->pi.family == AF_INET6 ? ((struct sockaddr_in6 *)&k->pi.dst)->sin6_port
                                              : ((struct sockaddr_in *)&k->pi.dst)->sin_port);
    unsigned char first;
    long deadline = now_ms() + FIRST_BYTE_MS;
    ssize_t r;
    while ((r = recv(k->c.fd, &first, 1, MSG_PEEK)) < 0 && (errno == EAGAIN || errno == EINTR))
        if (!wait_ev(k->c.fd, POLLIN, deadline))
            return;
    if (r <= 0)
        return;
    k->tls = first == 0x16;
    if (k->tls) {
        if (tls_accept(k) < 0)
            return;
        snprintf(k->host, sizeof k->host, "%s", k->ti.host);
    } else {
        snprintf(k->host, sizeof k->host, "%s", k->pi.authority);
    }
    k->tap = tap_new(k->host);
    kf_stream_init(&k->st);
    k->ctx = (kf_ctx){.rs = g_relay.rs, .host = k->host[0] ? k->host : NULL, .port = k->dport,
                      .tls = k->tls, .caps = KF_CAP_UPSTREAM, .on_head = on_head,
                      .notice = on_notice, .ud = k};
    if (first_head(k) == 0 && connect_upstream(k) == 0 &&
        (k->early_len == 0 || ep_write_all(&k->u, k->early, k->early_len, 30000) == 0)) {
        free(k->early);
        k->early = NULL;
        pump_run(&k->c, &k->u, &k->st, &k->ctx, k->tap);
    }
    tap_finish(k->tap);
    kf_stream_reset(&k->st);
}

void *conn_thread(void *arg)
{
    conn *k = calloc(1, sizeof *k);
    int fd = (int)(intptr_t)arg;
    if (k) {
        k->c.fd = fd;
        k->u.fd = -1;
        k->c.q = malloc(EP_QCAP);
        k->u.q = malloc(EP_QCAP);
        if (k->c.q && k->u.q)
            serve(k);
        if (k->u.ssl)
            SSL_free(k->u.ssl);
        if (k->u.fd >= 0)
            close(k->u.fd);
        if (k->c.ssl)
            SSL_free(k->c.ssl);
        tap_free(k->tap);
        free(k->c.q);
        free(k->u.q);
        free(k->early);
        free(k);
    }
    close(fd);
    atomic_fetch_sub(&g_relay.active, 1);
    atomic_store(&g_relay.last_activity, (long)time(NULL));
    return NULL;
}
