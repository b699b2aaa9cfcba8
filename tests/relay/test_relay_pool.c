/* test_relay_pool.c - the relay's upstream pool (src/relay/pool.c) and the
 * response tap's reuse verdict (resp_tap.c): which connection may carry
 * whose next request. Plain socketpairs stand in for upstream sockets; the
 * SSL_CTX pointers are real contexts (one per trust set), compared only. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kf_log.h"
#include "relay.h"

static worker w;

static void key_init(upkey *k, SSL_CTX *ctx, const char *proxy)
{
    memset(k, 0, sizeof *k);
    strcpy(k->host, "api.kimi.com");
    strcpy(k->sni, "api.kimi.com");
    k->port = 443;
    k->sslctx = ctx;
    k->proxy = (char *)proxy;
    upkey_seal(k);
}

/* An idle upstream connection with key k; *peer is the server's end. */
static upconn *mk(const upkey *k, int *peer)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    upconn *u = calloc(1, sizeof *u);
    u->h.kind = H_UP;
    u->w = &w;
    rio_init(&u->u, sv[0]);
    u->u.ready = RIO_IN | RIO_OUT; /* not known to be drained: checked at reuse */
    u->tm.idx = -1;
    u->key = *k;
    u->key.proxy = k->proxy ? strdup(k->proxy) : NULL;
    if (u->key.sslctx)
        SSL_CTX_up_ref(u->key.sslctx); /* the key's reference, as upconn_start takes */
    u->state = U_READY;
    u->reusable = 1;
    atomic_fetch_add(&w.nup, 1);
    *peer = sv[1];
    return u;
}

static void reset(void)
{
    pool_clear(&w);
    memset(&w, 0, sizeof w);
}

Test(pool, trust_sets_never_share)
{
    reset();
    SSL_CTX *a = SSL_CTX_new(TLS_client_method()), *b = SSL_CTX_new(TLS_client_method());
    upkey ka, kb;
    key_init(&ka, a, NULL);
    key_init(&kb, b, NULL);
    int pa;
    upconn *ua = mk(&ka, &pa);
    pool_put(&w, ua);
    cr_assert_eq(w.pool.n, 1);
    cr_assert_null(pool_get(&w, &kb), "another SSL_CTX (trust set) got A's connection");
    cr_assert_eq(pool_get(&w, &ka), ua);
    cr_assert_eq(w.pool.n, 0);
    upconn_free(ua);
    close(pa);
    SSL_CTX_free(a);
    SSL_CTX_free(b);
}

Test(pool, key_fields)
{
    reset();
    SSL_CTX *a = SSL_CTX_new(TLS_client_method());
    upkey k, other;
    key_init(&k, a, "http://u:p@proxy:3128");
    int p;
    pool_put(&w, mk(&k, &p));
    other = k;
    other.proxy = "http://u:p@proxy:3128"; /* same identity, another pointer */
    upkey_seal(&other);
    upconn *u = pool_get(&w, &other);
    cr_assert_not_null(u, "same proxy identity must share");
    pool_put(&w, u);
    other.proxy = NULL;
    upkey_seal(&other);
    cr_assert_null(pool_get(&w, &other), "direct vs through a proxy");
    other = k;
    other.port = 8443;
    upkey_seal(&other);
    cr_assert_null(pool_get(&w, &other), "another port");
    other = k;
    strcpy(other.sni, "api.kimi.ai");
    upkey_seal(&other);
    cr_assert_null(pool_get(&w, &other), "another SNI");
    other = k;
    other.sslctx = NULL;
    upkey_seal(&other);
    cr_assert_null(pool_get(&w, &other), "plain vs TLS");
    other = k;
    other.by_addr = 1;
    upkey_seal(&other);
    cr_assert_null(pool_get(&w, &other), "by address vs by name");
    cr_assert_not_null(pool_get(&w, &k));
    close(p);
    SSL_CTX_free(a);
}

Test(pool, dead_or_chatty_connections_are_dropped)
{
    reset();
    upkey k;
    key_init(&k, NULL, NULL);
    int p1, p2;
    pool_put(&w, mk(&k, &p1));
    pool_put(&w, mk(&k, &p2));
    close(p2);                          /* the server closed it (EOF) */
    cr_assert_eq(write(p1, "x", 1), 1); /* stray bytes on an idle connection */
    cr_assert_null(pool_get(&w, &k));
    cr_assert_eq(w.pool.n, 0);
    close(p1);
}

/* A connection pooled with its socket read empty (rio: a short read or
 * EAGAIN used the edge up) is reused within a second without a peek: an
 * event would have freed it (pool_on_event), and a close that no event
 * has told yet is the pump's retried case. Later, or not drained: the peek
 * decides again. */
Test(pool, fresh_drained_connection_reused_without_a_peek)
{
    reset();
    upkey k;
    key_init(&k, NULL, NULL);
    int p1, p2, p3;
    upconn *a = mk(&k, &p1);
    a->u.ready = RIO_OUT; /* drained */
    pool_put(&w, a);
    cr_assert(a->drained);
    close(p1); /* closed, but no epoll event has said so yet */
    cr_assert_eq(pool_get(&w, &k), a, "fresh and drained: taken as it is");
    upconn_free(a);
    /* the same, pooled over a second ago: peeked, found closed */
    upconn *b = mk(&k, &p2);
    b->u.ready = RIO_OUT;
    pool_put(&w, b);
    b->pooled_ms -= 1500;
    close(p2);
    cr_assert_null(pool_get(&w, &k));
    cr_assert_eq(w.pool.n, 0);
    /* not drained when pooled (its last read was not short): peeked */
    upconn *c = mk(&k, &p3);
    pool_put(&w, c);
    cr_assert_not(c->drained);
    cr_assert_eq(write(p3, "x", 1), 1);
    cr_assert_null(pool_get(&w, &k));
    close(p3);
}

Test(pool, bounded_per_key_and_in_total)
{
    reset();
    upkey k;
    key_init(&k, NULL, NULL);
    int peers[POOL_TOTAL + 8];
    for (int i = 0; i < POOL_PER_KEY + 5; i++)
        pool_put(&w, mk(&k, &peers[i]));
    cr_assert_eq(w.pool.n, POOL_PER_KEY);
    for (int i = 0; i < POOL_TOTAL + 8; i++) {
        upkey o;
        key_init(&o, NULL, NULL);
        o.port = 1000 + (unsigned)i;
        upkey_seal(&o);
        int pp;
        pool_put(&w, mk(&o, &pp));
    }
    cr_assert_eq(w.pool.n, POOL_TOTAL);
    /* Most recently used kept: the oldest (key k) went first. */
    cr_assert_null(pool_get(&w, &k));
}

static resp_tap *fed(const char *req_extra, const char *resp)
{
    resp_tap *t = tap_new("h");
    tap_request(t, "GET /x", 0, 0);
    if (req_extra)
        tap_request_no_reuse(t);
    tap_feed(t, resp, strlen(resp));
    return t;
}

Test(tap, reuse_verdict)
{
    kf_log_open("off");
    struct {
        const char *resp;
        int req_close, reusable;
    } c[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0, 1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 0, 1},
        {"HTTP/1.1 204 No Content\r\n\r\n", 0, 1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", 0, 0},
        {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0, 0},
        {"HTTP/1.1 200 OK\r\n\r\nuntil close", 0, 0},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{", 0, 0}, /* not complete yet */
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 1, 0}, /* request said close */
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1", 0, 0}, /* more follows */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        resp_tap *t = fed(c[i].req_close ? "close" : NULL, c[i].resp);
        cr_assert_eq(tap_reusable(t), c[i].reusable, "case %zu: %s", i, c[i].resp);
        tap_free(t);
    }
    resp_tap *t = tap_new("h");
    cr_assert_not(tap_reusable(t), "nothing answered yet");
    tap_request(t, "GET /a", 0, 0);
    cr_assert(tap_waiting(t));
    cr_assert_str_eq(tap_oldest_line(t), "GET /a");
    tap_drop_oldest(t);
    cr_assert_not(tap_waiting(t));
    tap_free(t);
}
