/* chainhop.c - an upstream connection through the user's own proxy
 * (docs/relay.md "Proxy carrier", Chaining). chain.c says what the bytes
 * mean; this is the I/O, inside upconn.c's state machine:
 *
 *   chainhop_begin  (U_RESOLVE)    connect to the proxy instead of the target
 *                                  (its name is resolved; connect-to rules are
 *                                  for targets, not for the user's proxy)
 *   chainhop_step   (U_PROXY_HOP)  `CONNECT host:port` with its credentials,
 *                                  its answer read by peeking, so not a byte
 *                                  past it is taken from the tunnel; then TLS
 *                                  (upconn.c) runs over the tunnel. Plain HTTP
 *                                  that is not a blind tunnel sends no CONNECT
 *                                  (many proxies allow it to port 443 only):
 *                                  its heads go in absolute form instead
 *                                  (chainhop_absolute, from pump.c).
 *
 * Every failure becomes one text naming the proxy by host:port (never its
 * credentials) and the status the client gets: 502, or 504 when the proxy
 * did not answer in time.
 */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "chain.h"
#include "kf_log.h"

static void parsed_proxy_clear(kf_purl *p)
{
    memset(p, 0, sizeof *p); /* credentials */
}

int chainhop_begin(upconn *u, char *host, size_t hn, unsigned *port)
{
    kf_purl p;
    if (!u->key.proxy)
        return 0;
    if (kf_purl_parse(u->key.proxy, &p) < 0) {
        upconn_fail(u, 502, "your proxy's URL cannot be parsed");
        return -1;
    }
    u->ch = calloc(1, sizeof *u->ch);
    if (!u->ch) {
        parsed_proxy_clear(&p);
        upconn_fail(u, 502, "out of memory");
        return -1;
    }
    int r = kf_chain_begin(u->ch, &p, u->key.host, u->key.port);
    size_t l = strlen(p.host);
    if (r == 0 && l < hn) {
        memcpy(host, p.host, l + 1);
        *port = p.port;
    }
    parsed_proxy_clear(&p);
    if (r < 0 || l >= hn) {
        u->chain_failed = 1;
        upconn_fail(u, 502, "%s", u->ch->err[0] ? u->ch->err : "your proxy's name is too long");
        return -1;
    }
    return 1;
}

void chainhop_free(upconn *u)
{
    if (!u->ch)
        return;
    memset(u->ch, 0, sizeof *u->ch); /* the CONNECT request holds the credentials */
    free(u->ch);
    u->ch = NULL;
}

/* The chain's verdict is in u->ch: tell the owner (which frees u). */
static void failed(upconn *u)
{
    char err[sizeof u->ch->err];
    int status = u->ch->reply ? u->ch->reply : 502;
    memcpy(err, u->ch->err, sizeof err);
    u->chain_failed = 1;
    atomic_fetch_add(&g_relay.n_chain_failed, 1);
    chainhop_free(u);
    upconn_fail(u, status, "%s", err);
}

void chainhop_io_failed(upconn *u, int what, int err)
{
    kf_chain_io_failed(u->ch, what, err);
    failed(u);
}

static int io_error(upconn *u, int e)
{
    chainhop_io_failed(u, e == ECONNRESET || e == EPIPE ? CH_IO_RESET : CH_IO_CLOSED, e);
    return -1;
}

int chainhop_step(upconn *u)
{
    kf_chain *c = u->ch;
    if (!c)
        return 1; /* direct */
    if (!u->key.sslctx && !u->key.raw) {
        chainhop_free(u); /* plain HTTP: absolute form, no CONNECT */
        atomic_fetch_add(&g_relay.n_chained, 1);
        return 1;
    }
    if (!u->ch_sent && !c->seen)
        timer_arm(u->w, &u->tm, relay_now_ms() + RELAY_PROXY_HOP_MS);
    while (u->ch_sent < c->req_len) {
        ssize_t w = send(u->u.fd, c->req + u->ch_sent, c->req_len - u->ch_sent, MSG_NOSIGNAL);
        if (w > 0) {
            u->ch_sent += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            u->u.ready &= (uint8_t)~RIO_OUT;
            return 0;
        } else if (w < 0 && errno != EINTR) {
            return io_error(u, errno);
        }
    }
    for (;;) {
        char buf[4096];
        ssize_t n = recv(u->u.fd, buf, sizeof buf, MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            u->u.ready &= (uint8_t)~RIO_IN;
            return 0;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return io_error(u, n < 0 ? errno : 0);
        size_t used = 0;
        int r = kf_chain_feed(c, buf, (size_t)n, &used);
        if (used && recv(u->u.fd, buf, used, 0) != (ssize_t)used)
            return io_error(u, errno);
        if (r == CH_FAIL) {
            failed(u);
            return -1;
        }
        if (r == CH_OK) {
            chainhop_free(u);
            atomic_fetch_add(&g_relay.n_chained, 1);
            return 1;
        }
    }
}

int chainhop_absolute(const upkey *key, const char *hint, const char *head, size_t n, char **out,
                      size_t *outn)
{
    kf_purl p;
    *out = NULL;
    if (kf_purl_parse(key->proxy, &p) < 0)
        return 0;
    /* The name the request is for: an upstream rule's host, the CONNECT or
     * URL host, else (a steered connection) the client's name for it. */
    const char *host = key->by_addr && hint && *hint ? hint : key->host;
    size_t cap = n + 1200; /* chain.h: always enough */
    char *buf = malloc(cap);
    ssize_t m = buf ? kf_chain_absolute_head(head, n, &p, host, key->port, buf, cap) : -1;
    parsed_proxy_clear(&p);
    if (!buf)
        return -1;
    if (m < 0) { /* not an origin-form head: as it is */
        free(buf);
        return 0;
    }
    *out = buf;
    *outn = (size_t)m;
    return 0;
}
