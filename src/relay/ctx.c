/* ctx.c - the per-connection client context (contract B).
 *
 * A connection holds `relay_ctx *ctx`; NULL means "no context": the relay's
 * own rules, upstream trust store, no proxy, the global log. The core never
 * looks inside a relay_ctx.
 *
 * Steered connections get none yet (the trust-ctx branch registers
 * contexts over RUNDIR/relay.sock, contract A, and finds one from the
 * PROXY v2 TLV 0xE1 in relay_ctx_for_conn()). Proxy-carrier connections
 * carry an id in their proxy user name (`kimifix-ID`); until that
 * registration carries the user's proxy and NO_PROXY, they come from the
 * client's lease file (RUNDIR/clients/ID, kf_lease.h), read on first use
 * and kept here: a small table shared by the workers (a mutex: one lookup
 * per proxy-carrier connection), refcounted, and forgotten once lease.c
 * removed the file.
 */
#include "relay.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain.h"
#include "kf_envplan.h"
#include "kf_lease.h"
#include "kf_log.h"

#define CTX_MAX 1024 /* kept contexts; past it the least recently used idle one goes */

struct relay_ctx {
    char id[KF_LEASE_ID_HEX + 1];
    int refs;                     /* connections holding it (under mu) */
    long last_used;               /* monotonic seconds */
    char *proxy, *noproxy;        /* NULL when the client had none */
    struct relay_ctx *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static relay_ctx *head;
static unsigned count;

static long now_s(void)
{
    return relay_now_ms() / 1000;
}

relay_ctx *relay_ctx_for_conn(const kf_proxy_info *pi)
{
    (void)pi;
    return NULL;
}

static relay_ctx *find(const char *id)
{
    for (relay_ctx *c = head; c; c = c->next)
        if (!strcmp(c->id, id))
            return c;
    return NULL;
}

static void ctx_free(relay_ctx *c)
{
    if (c->proxy)
        memset(c->proxy, 0, strlen(c->proxy)); /* credentials */
    free(c->proxy);
    free(c->noproxy);
    free(c);
}

static char *dup_str(kf_str s)
{
    char *d = s.p ? malloc(s.n + 1) : NULL;
    if (d) {
        memcpy(d, s.p, s.n);
        d[s.n] = 0;
    }
    return d;
}

/* A context from the lease file, or NULL (unknown id, unreadable). */
static relay_ctx *load(const char *id)
{
    char text[KF_LEASE_MAX];
    kf_lease l;
    ssize_t n = kf_lease_read(g_relay.rundir, id, text, sizeof text);
    if (n < 0 || kf_lease_parse(text, (size_t)n, &l) < 0) {
        kf_log(KF_LOG_DEBUG, "[relay] proxy: unknown client context %.8s...: defaults", id);
        return NULL;
    }
    relay_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->id, id, sizeof c->id);
    c->noproxy = dup_str(l.noproxy);
    if (l.proxy.p) {
        kf_purl u;
        c->proxy = dup_str(l.proxy);
        if (c->proxy && (kf_purl_parse(c->proxy, &u) < 0 || strcmp(u.scheme, "http"))) {
            kf_log(KF_LOG_WARN, "[relay] proxy: a client's proxy is not an http:// URL: its "
                   "connections go direct");
            memset(c->proxy, 0, strlen(c->proxy));
            free(c->proxy);
            c->proxy = NULL;
        }
    }
    memset(text, 0, sizeof text);
    return c;
}

/* Make room: drop the least recently used context nobody holds. */
static void evict_one(void)
{
    relay_ctx **victim = NULL;
    for (relay_ctx **pp = &head; *pp; pp = &(*pp)->next)
        if (!(*pp)->refs && (!victim || (*pp)->last_used < (*victim)->last_used))
            victim = pp;
    if (victim) {
        relay_ctx *c = *victim;
        *victim = c->next;
        count--;
        ctx_free(c);
    }
}

relay_ctx *relay_ctx_for_id(const char *hexid)
{
    if (!hexid || !*hexid || !kf_lease_id_ok(hexid))
        return NULL;
    pthread_mutex_lock(&mu);
    relay_ctx *c = find(hexid);
    if (c) {
        c->refs++;
        c->last_used = now_s();
        pthread_mutex_unlock(&mu);
        return c;
    }
    pthread_mutex_unlock(&mu);
    relay_ctx *n = load(hexid); /* a small file read, outside the lock */
    if (!n)
        return NULL;
    pthread_mutex_lock(&mu);
    c = find(hexid); /* another worker may have loaded it meanwhile */
    if (c) {
        ctx_free(n);
    } else {
        if (count >= CTX_MAX)
            evict_one();
        c = n;
        c->next = head;
        head = c;
        count++;
    }
    c->refs++;
    c->last_used = now_s();
    pthread_mutex_unlock(&mu);
    return c;
}

void relay_ctx_put(relay_ctx *ctx)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&mu);
    ctx->refs--;
    pthread_mutex_unlock(&mu);
}

long relay_ctx_last_used(const char *hexid)
{
    pthread_mutex_lock(&mu);
    relay_ctx *c = find(hexid);
    long t = c ? (c->refs ? now_s() : c->last_used) : 0;
    pthread_mutex_unlock(&mu);
    return t;
}

void relay_ctx_forget(const char *hexid)
{
    pthread_mutex_lock(&mu);
    for (relay_ctx **pp = &head; *pp; pp = &(*pp)->next) {
        relay_ctx *c = *pp;
        if (strcmp(c->id, hexid))
            continue;
        if (!c->refs) {
            *pp = c->next;
            count--;
            ctx_free(c);
        }
        break;
    }
    pthread_mutex_unlock(&mu);
}

const kf_ruleset *relay_ctx_rules(const relay_ctx *ctx)
{
    (void)ctx;
    return g_relay.rs;
}

SSL_CTX *relay_ctx_upstream_ssl_ctx(const relay_ctx *ctx)
{
    (void)ctx;
    return g_relay.up_ctx;
}

const char *relay_ctx_proxy(const relay_ctx *ctx)
{
    return ctx ? ctx->proxy : NULL;
}

const char *relay_ctx_noproxy(const relay_ctx *ctx)
{
    return ctx ? ctx->noproxy : NULL;
}

const char *relay_ctx_proxy_for(const relay_ctx *ctx, const char *host, unsigned port)
{
    const char *p = relay_ctx_proxy(ctx);
    return p && kf_chain_wanted(relay_ctx_noproxy(ctx), host, port) ? p : NULL;
}

void relay_log(const relay_ctx *ctx, int level, const char *fmt, ...)
{
    (void)ctx; /* per-client log sinks: the context's fd, when it has one */
    va_list ap;
    va_start(ap, fmt);
    kf_vlog(level, fmt, ap);
    va_end(ap);
}
