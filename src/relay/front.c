/* front.c - the front door: what a new connection is, before the token.
 *
 * The first bytes decide (contract D, same listener):
 *   "\r\n\r\n\0\r\nQUIT\n" (PROXY v2 signature)  steered connection or control
 *   an HTTP method token ("CONNECT ", "GET ")    the HTTP proxy front end
 *                                                (proxyfront.c)
 *   anything else                                dropped
 * A pending connection owns no buffer: the preamble is peeked into the
 * worker's scratch buffer and consumed only once complete, so nothing past
 * it (the TLS ClientHello) is ever read here. Each new byte is a new edge.
 */
#include "relay.h"
#include "ctxtab.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "kf_log.h"

enum { FD_MORE, FD_PROXY_V2, FD_HTTP_PROXY, FD_DROP };

/* "GET " / "CONNECT " ...: an upper-case token and a space. */
static int http_method(const unsigned char *b, size_t n)
{
    size_t i = 0;
    while (i < n && i < 16 && b[i] >= 'A' && b[i] <= 'Z')
        i++;
    if (i == n && i < 16)
        return FD_MORE;
    return i > 0 && i < n && b[i] == ' ' ? FD_HTTP_PROXY : FD_DROP;
}

static int classify(const unsigned char *b, size_t n)
{
    static const unsigned char sig[KF_PROXY_SIG_LEN] = "\r\n\r\n\0\r\nQUIT\n";
    size_t m = n < sizeof sig ? n : sizeof sig;
    if (!memcmp(b, sig, m))
        return n >= sizeof sig ? FD_PROXY_V2 : FD_MORE;
    return http_method(b, n);
}

/* Bytes waiting in the socket, not consumed: >0, 0 EOF, -1 none yet. */
static ssize_t peek(conn *k, size_t n)
{
    ssize_t r = recv(k->c.fd, k->w->buf, n, MSG_PEEK);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            k->c.ready &= (uint8_t)~RIO_IN;
            return -1;
        }
        return 0;
    }
    return r;
}

static void drop(conn *k, const char *why)
{
    atomic_fetch_add(&g_relay.n_nopreamble, 1);
    kf_log(KF_LOG_DEBUG, "[relay] dropped a connection: %s", why);
    conn_close(k);
}

static void preamble(conn *k)
{
    ssize_t n = peek(k, KF_PROXY_MAX);
    if (n == 0)
        return drop(k, "closed before its preamble");
    if (n < 0)
        return;
    const unsigned char *b = (const unsigned char *)k->w->buf;
    switch (classify(b, (size_t)n)) {
    case FD_MORE:
        return;
    case FD_HTTP_PROXY:
        return proxyfront_begin(k, n); /* contract D: proxyfront.c */
    case FD_DROP:
        return drop(k, "no valid PROXY v2 preamble");
    }
    if (n < KF_PROXY_HDR_MIN)
        return;
    ssize_t total = kf_proxy_total_len(b, KF_PROXY_HDR_MIN);
    if (total < 0)
        return drop(k, "no valid PROXY v2 preamble");
    if (n < total)
        return; /* the rest comes with a later edge */
    kf_proxy_info pi;
    if (kf_proxy_parse(b, (size_t)total, &pi) != total)
        return drop(k, "no valid PROXY v2 preamble");
    if (recv(k->c.fd, k->w->buf, (size_t)total, 0) != total)
        return drop(k, "preamble vanished");
    /* The preamble was all the socket held at the peek: the first-byte
     * step need not ask again (a new arrival raises its own edge). */
    if (n == total && n < KF_PROXY_MAX && !k->c.hup)
        k->c.ready &= (uint8_t)~RIO_IN;
    if (!pi.has_token || CRYPTO_memcmp(pi.token, g_relay.token, KF_PROXY_TOKEN_LEN) != 0) {
        atomic_fetch_add(&g_relay.n_badtoken, 1);
        ratelog(RL_BADTOKEN, "[relay] dropped a connection without the right token");
        conn_close(k);
        return;
    }
    if (pi.local) {
        conn_leave_pending(k);
        k->state = CS_CONTROL;
        timer_arm(k->w, &k->tm, relay_now_ms() + RELAY_CLOSE_MS);
        conn_again(k);
        return;
    }
    conn_after_preamble(k, &pi);
}

size_t relay_status_text(char *out, size_t n)
{
    unsigned pend = 0, idle = 0, up = 0;
    for (unsigned i = 0; i < g_relay.nworkers; i++) {
        worker *w = &g_relay.workers[i];
        pend += atomic_load(&w->npend_pub);
        idle += atomic_load(&w->npool_pub);
        up += atomic_load(&w->nup);
    }
    int len = snprintf(out, n,
                       "pid %ld\nport %u\nuptime %ld\nactive %d\ntotal %lu\nca %s/ca.pem\n"
                       "names %s\nheap_in_use %zu\nworkers %u\npending %u\nupstream_open %u\n"
                       "pool_idle %u\nupstream_new %lu\nupstream_reused %lu\nupstream_retried %lu\n"
                       "refused_foreign %lu\ndropped_token %lu\ndropped_nopreamble %lu\n"
                       "dropped_pending %lu\nemfile %lu\npeer_uid_check %s\nresolvers %d\n"
                       "proxy_requests %lu\nproxy_refused %lu\ntunnels %lu\nchained %lu\n"
                       "chain_failed %lu\nleases %u\ncontexts %u\nclient_log_dropped %lu\n"
                       "rules_client_sets %u\n",
                       (long)getpid(), g_relay.port, (long)time(NULL) - g_relay.started,
                       atomic_load(&g_relay.active) - 1, atomic_load(&g_relay.total) - 1,
                       g_relay.datadir, ca_names(), mallinfo2().uordblks, g_relay.nworkers, pend, up,
                       idle, atomic_load(&g_relay.n_up_new), atomic_load(&g_relay.n_up_reused),
                       atomic_load(&g_relay.n_up_retried), atomic_load(&g_relay.n_foreign),
                       atomic_load(&g_relay.n_badtoken), atomic_load(&g_relay.n_nopreamble),
                       atomic_load(&g_relay.n_pending_dropped), atomic_load(&g_relay.n_emfile),
                       g_relay.diag_ok ? "on" : "off", atomic_load(&g_relay.resolvers),
                       atomic_load(&g_relay.n_px_ok), atomic_load(&g_relay.n_px_refused),
                       atomic_load(&g_relay.n_tunnels), atomic_load(&g_relay.n_chained),
                       atomic_load(&g_relay.n_chain_failed), atomic_load(&g_relay.leases),
                       ctxtab_count(), ctxlog_dropped(), relay_rules_cached());
    size_t used = len < 0 ? 0 : (size_t)len < n ? (size_t)len : n - 1;
    /* how the client connections are spread over the workers (accept.c) */
    for (unsigned i = 0; i < g_relay.nworkers && used + 16 < n; i++) {
        int k = snprintf(out + used, n - used, "%s%u%s", i ? "," : "conns_per_worker ",
                         atomic_load(&g_relay.workers[i].nconn_pub), i + 1 == g_relay.nworkers ? "\n" : "");
        used += k > 0 && (size_t)k < n - used ? (size_t)k : 0;
    }
    return used + relay_rules_status(out + used, n - used);
}

/* LOCAL command with the token: one line, `STATUS` or `STOP`. */
static void control(conn *k)
{
    ssize_t n = peek(k, 32);
    if (n < 0)
        return;
    char cmd[33];
    memcpy(cmd, k->w->buf, (size_t)n);
    cmd[n] = 0;
    char *nl = memchr(cmd, '\n', (size_t)n);
    if (!nl && n > 0 && n < 32)
        return; /* the rest of the line comes later */
    if (nl)
        *nl = 0;
    if (recv(k->c.fd, k->w->buf, nl ? (size_t)(nl - cmd + 1) : (size_t)n, 0) < 0) {
        conn_close(k);
        return;
    }
    char out[9000];
    size_t len;
    if (!strcmp(cmd, "STATUS")) {
        len = relay_status_text(out, sizeof out);
    } else if (!strcmp(cmd, "STOP")) {
        atomic_store(&g_relay.stopping, 1);
        len = (size_t)snprintf(out, sizeof out, "stopping\n");
    } else {
        len = (size_t)snprintf(out, sizeof out, "error unknown command\n");
    }
    conn_finish(k, out, len);
    /* Wake the main thread from its 1 s nap (it alone takes SIGTERM: the
     * workers block signals), so `kimifix relay stop` returns at once. */
    if (!strcmp(cmd, "STOP"))
        kill(getpid(), SIGTERM);
}

void front_step(conn *k)
{
    if (k->state == CS_PREAMBLE)
        preamble(k);
    else
        control(k);
}
