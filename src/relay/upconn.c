/* upconn.c - one connection to the real server, as a state machine:
 *
 *   U_RESOLVE    a name (connect-to rules first): resolve.c, off the worker
 *   U_CONNECT    non-blocking connect, each address in turn, 10 s each
 *   U_PROXY_HOP  the user's own proxy (key.proxy, from relay_ctx_proxy_for):
 *                CONNECT through it before TLS (chainhop.c); U_RESOLVE and
 *                U_CONNECT then reach the proxy, not the target
 *   U_TLS        TLS client handshake, SNI + verification, 15 s
 *   U_READY      borrowed by a client connection (owner) ...
 *   U_POOLED     ... or idle in the worker's pool (pool.c)
 *
 * Every failure goes to the owner as one line of text (conn_up_failed).
 */
#include "relay.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/err.h>

#include "chain.h"
#include "kf_log.h"

static void on_timer(worker *w, rtimer *t);
static void step(upconn *u);

/* FNV-1a over the fields that make the key. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

void upkey_seal(upkey *k)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv(h, k->host, strlen(k->host) + 1);
    h = fnv(h, k->sni, strlen(k->sni) + 1);
    h = fnv(h, &k->port, sizeof k->port);
    h = fnv(h, &k->sslctx, sizeof k->sslctx);
    h = fnv(h, &k->by_addr, sizeof k->by_addr);
    h = fnv(h, &k->raw, sizeof k->raw);
    if (k->proxy)
        h = fnv(h, k->proxy, strlen(k->proxy) + 1);
    k->hash = h;
}

int upkey_eq(const upkey *a, const upkey *b)
{
    if (a->hash != b->hash || a->port != b->port || a->sslctx != b->sslctx || a->by_addr != b->by_addr ||
        a->raw != b->raw ||
        strcmp(a->host, b->host) || strcmp(a->sni, b->sni))
        return 0;
    if (!a->proxy != !b->proxy || (a->proxy && strcmp(a->proxy, b->proxy)))
        return 0;
    return 1;
}

static void vfail(upconn *u, int status, const char *fmt, va_list ap)
{
    char why[700];
    vsnprintf(why, sizeof why, fmt, ap);
    u->fail_status = (uint16_t)status;
    conn *k = u->owner;
    /* The owner frees u (and may retry or answer 502). */
    conn_up_failed(k, why);
}

void upconn_fail(upconn *u, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(u, status, fmt, ap);
    va_end(ap);
}

static void fail(upconn *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(upconn *u, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(u, 0, fmt, ap);
    va_end(ap);
}

void upconn_free(upconn *u)
{
    if (u->h.dead)
        return;
    worker *w = u->w;
    int pooled = u->state == U_POOLED;
    if (pooled)
        pool_remove(w, u);
    if (u->res)
        u->res->u = NULL; /* the resolver's answer will be dropped */
    timer_cancel(w, &u->tm);
    if (u->ai)
        freeaddrinfo(u->ai);
    if (u->u.ssl && pooled && !u->u.err) {
        ERR_clear_error();
        SSL_shutdown(u->u.ssl); /* close_notify to an idle server: polite */
    }
    rio_close(&u->u);
    chainhop_free(u);
    free(u->key.proxy);
    SSL_CTX_free(u->key.sslctx); /* the key's reference (upconn_start) */
    atomic_fetch_sub(&w->nup, 1);
    worker_bury(w, &u->h);
}

upconn *upconn_start(worker *w, conn *owner, const upkey *key)
{
    upconn *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->h.kind = H_UP;
    u->w = w;
    u->owner = owner;
    u->key = *key;
    u->key.proxy = key->proxy ? strdup(key->proxy) : NULL;
    u->reusable = 1;
    rio_init(&u->u, -1);
    timer_init(&u->tm, on_timer);
    atomic_fetch_add(&w->nup, 1);
    atomic_fetch_add(&g_relay.n_up_new, 1);
    if (key->proxy && !u->key.proxy) {
        free(u);
        atomic_fetch_sub(&w->nup, 1);
        return NULL;
    }
    u->state = U_RESOLVE;
    /* The first step runs from the timer heap, right after this round's
     * events: never inside the owner's pump (a failure frees the owner). */
    if (timer_arm(w, &u->tm, relay_now_ms()) < 0) {
        free(u->key.proxy);
        free(u);
        atomic_fetch_sub(&w->nup, 1);
        return NULL;
    }
    /* The key holds its own reference: the owner (and its context) may go
     * before this connection does (pooled). */
    if (u->key.sslctx)
        SSL_CTX_up_ref(u->key.sslctx);
    return u;
}

/* ---- resolve ------------------------------------------------------------ */

static struct addrinfo *one_addr(const struct sockaddr *sa, socklen_t len)
{
    struct addrinfo *ai = calloc(1, sizeof *ai + sizeof(struct sockaddr_storage));
    if (!ai)
        return NULL;
    ai->ai_family = sa->sa_family;
    ai->ai_socktype = SOCK_STREAM;
    ai->ai_addr = (struct sockaddr *)(ai + 1);
    ai->ai_addrlen = len;
    memcpy(ai->ai_addr, sa, len);
    return ai;
}

/* 1 addresses known now, 0 waiting for the resolver, -1 failed, -2 failed
 * and reported. */
static int resolve(upconn *u)
{
    const upkey *key = &u->key;
    char phost[256];
    unsigned pport = 0;
    int chained = chainhop_begin(u, phost, sizeof phost, &pport);
    if (chained < 0)
        return -2;
    if (key->by_addr && !chained) {
        socklen_t len = key->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : sizeof(struct sockaddr_in);
        u->ai = one_addr((const struct sockaddr *)&key->addr, len);
        return u->ai ? 1 : -1;
    }
    /* An upstream rule's host: honour connect-to like the shim does. */
    const char *addr = key->host, *ca;
    unsigned aport = key->port, cp;
    if (chained) {
        addr = phost;
        aport = pport;
    } else if (kf_rules_connect_to(conn_rules(u->owner), key->host, key->port, &ca, &cp)) {
        addr = ca;
        aport = cp;
    }
    rres *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    snprintf(r->host, sizeof r->host, "%s", addr);
    snprintf(r->port, sizeof r->port, "%u", aport);
    /* A literal address needs no resolver thread. */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    if (getaddrinfo(r->host, r->port, &hints, &u->ai) == 0) {
        free(r);
        return 1;
    }
    r->w = u->w;
    r->u = u;
    u->res = r;
    if (resolve_submit(r) < 0) {
        u->res = NULL;
        free(r);
        return -1;
    }
    return 0;
}

void upconn_resolved(rres *r)
{
    upconn *u = r->u;
    if (!u) { /* cancelled */
        if (r->ai)
            freeaddrinfo(r->ai);
        free(r);
        return;
    }
    u->res = NULL;
    if (r->err) {
        char host[256];
        snprintf(host, sizeof host, "%s", r->host);
        int e = r->err;
        free(r);
        if (u->ch)
            chainhop_io_failed(u, CH_IO_RESOLVE, 0);
        else
            fail(u, "cannot resolve %s: %s", host, gai_strerror(e));
        return;
    }
    u->ai = r->ai;
    free(r);
    u->ai_cur = NULL;
    u->state = U_CONNECT;
    step(u);
}

/* ---- connect -------------------------------------------------------------- */

static void connect_error(upconn *u, int e)
{
    char a[64];
    const struct sockaddr *sa = u->ai_cur->ai_addr;
    relay_addr_text(sa, a, sizeof a);
    unsigned port = ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                                     : ((const struct sockaddr_in *)sa)->sin_port);
    if (u->u.fd >= 0) {
        close(u->u.fd);
        u->u.fd = -1;
    }
    if (u->ai_cur->ai_next) {
        u->ai_cur = u->ai_cur->ai_next;
        step(u);
        return;
    }
    if (u->ch)
        chainhop_io_failed(u, CH_IO_REFUSED, e);
    else
        fail(u, "cannot connect to %s port %u: %s", a, port, strerror(e));
}

/* Start connecting to u->ai_cur. */
static void connect_next(upconn *u)
{
    const struct addrinfo *ai = u->ai_cur;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        fail(u, "socket: %s", strerror(errno));
        return;
    }
    rio_init(&u->u, fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* SSE: no Nagle */
    if (worker_add(u->w, fd, &u->h) < 0) {
        connect_error(u, errno);
        return;
    }
    timer_arm(u->w, &u->tm, relay_now_ms() + RELAY_CONNECT_MS);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
        return; /* the socket turns writable when connected (or failed) */
    connect_error(u, errno);
}

static void connected(upconn *u)
{
    int e = 0;
    socklen_t l = sizeof e;
    if (getsockopt(u->u.fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
        e = errno;
    if (e) {
        connect_error(u, e);
        return;
    }
    u->state = U_PROXY_HOP;
    step(u);
}

/* A target by name that resolved to this relay itself (loopback, our
 * port): connecting would loop. 1 when refused (reported). */
static int refuse_self(upconn *u)
{
    if (u->ch || u->key.by_addr)
        return 0;
    for (const struct addrinfo *ai = u->ai; ai; ai = ai->ai_next) {
        const struct sockaddr *sa = ai->ai_addr;
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        int loop = sa->sa_family == AF_INET
                       ? (ntohl(a4->sin_addr.s_addr) >> 24) == 127 && ntohs(a4->sin_port) == g_relay.port
                       : sa->sa_family == AF_INET6 && ntohs(a6->sin6_port) == g_relay.port &&
                             (IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ||
                              (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && a6->sin6_addr.s6_addr[12] == 127));
        if (loop) {
            upconn_fail(u, u->key.raw ? 403 : 502, "%s:%u is this relay itself", u->key.host,
                        u->key.port);
            return 1;
        }
    }
    return 0;
}

/* ---- TLS ------------------------------------------------------------------------ */

static void tls_start(upconn *u)
{
    if (!u->key.sslctx) { /* plain HTTP upstream */
        u->state = U_READY;
        return;
    }
    rio_set_ssl(&u->u, upstream_ssl_new(&u->key, u->u.fd));
    if (!u->u.ssl) {
        fail(u, "out of memory");
        return;
    }
    u->state = U_TLS;
    timer_arm(u->w, &u->tm, relay_now_ms() + RELAY_HANDSHAKE_MS);
}

static void tls_step(upconn *u)
{
    ERR_clear_error();
    int r = SSL_connect(u->u.ssl);
    if (r == 1) {
        u->state = U_READY;
        return;
    }
    int e = SSL_get_error(u->u.ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    char err[512];
    relay_ctx_tls_error(u->owner ? u->owner->ctx : NULL, u->u.ssl, u->key.sni, err, sizeof err);
    fail(u, "%s", err);
}

static void step(upconn *u)
{
    int r;
    switch (u->state) {
    case U_RESOLVE:
        r = resolve(u);
        if (r == -2)
            return;
        if (r < 0) {
            fail(u, "cannot resolve %s: out of memory", u->key.host);
            return;
        }
        if (r == 0)
            return;
        u->state = U_CONNECT;
        u->ai_cur = NULL;
        /* fall through */
    case U_CONNECT:
        if (!u->ai_cur) {
            if (refuse_self(u))
                return;
            u->ai_cur = u->ai;
            connect_next(u);
            return;
        }
        if (u->u.fd < 0) { /* connect_error moved on to the next address */
            connect_next(u);
            return;
        }
        if (u->u.ready & RIO_OUT)
            connected(u);
        return;
    case U_PROXY_HOP:
        if ((r = chainhop_step(u)) <= 0)
            return;
        tls_start(u);
        if (u->state != U_TLS)
            break;
        /* fall through */
    case U_TLS:
        tls_step(u);
        break;
    default:
        return;
    }
    if (u->state == U_READY) {
        timer_cancel(u->w, &u->tm);
        conn_up_ready(u->owner);
    }
}

void upconn_on_event(upconn *u, uint32_t ev)
{
    rio_event(&u->u, ev);
    if (u->state == U_READY)
        conn_run(u->owner); /* the pump, or a tunnel */
    else
        step(u);
}

static void on_timer(worker *w, rtimer *t)
{
    (void)w;
    upconn *u = (upconn *)((char *)t - offsetof(upconn, tm));
    switch (u->state) {
    case U_POOLED:
        upconn_free(u); /* idle too long */
        break;
    case U_RESOLVE:
        if (!u->kicked) {
            u->kicked = 1;
            timer_arm(u->w, &u->tm, relay_now_ms() + RELAY_CONNECT_MS);
            step(u);
        } else if (u->ch) {
            chainhop_io_failed(u, CH_IO_RESOLVE, 0);
        } else {
            fail(u, "cannot resolve %s: timed out", u->key.host);
        }
        break;
    case U_CONNECT:
        if (u->ai_cur)
            connect_error(u, ETIMEDOUT);
        else
            fail(u, "cannot connect: timed out");
        break;
    case U_PROXY_HOP:
        chainhop_io_failed(u, CH_IO_TIMEOUT, 0);
        break;
    case U_TLS:
        fail(u, "TLS to %s: handshake timed out", u->key.sni);
        break;
    default:
        break;
    }
}
