/* ctx.c - the per-connection client context (contract B).
 *
 * A connection holds `relay_ctx *ctx`; NULL means "no context": the relay's
 * own rules, the system trust store, no proxy, the global log. The core
 * never looks inside a relay_ctx.
 *
 * A relay_ctx is a registered client context (ctxtab.h, contract A): what
 * one client told the relay about itself (trust sources, proxy, program).
 *
 *   steered connections   PROXY v2 TLV 0xE1 -> ctxtab_get(), when the
 *                         preamble is parsed (relay_ctx_for_conn)
 *   proxy-carrier ones    the proxy user name `kimifix-ID` names a lease
 *                         file (RUNDIR/clients/ID, kf_lease.h); the file is
 *                         itself a registration (`kfctx 1`, `trust`,
 *                         `proxy`, `noproxy` lines), registered into the
 *                         table on first use and kept here by lease id: a
 *                         small table shared by the workers (a mutex: one
 *                         lookup per proxy-carrier connection) that holds
 *                         one reference on each context, dropped once
 *                         lease.c removed the file (relay_ctx_forget).
 *
 * So one id in the URL finds the client's proxy and its trust.
 */
#include "relay.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "chain.h"
#include "ctxtab.h"
#include "kf_lease.h"
#include "kf_log.h"
#include "truststore.h"

#define LEASE_CTX_MAX 1024 /* kept lease ids; past it the least recently used idle one goes */

typedef struct lease_ent {
    char id[KF_LEASE_ID_HEX + 1];
    relay_ctx *c;                 /* our reference */
    long last_used;               /* monotonic seconds */
    struct lease_ent *next;
} lease_ent;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static lease_ent *head;
static unsigned count;

static long now_s(void)
{
    return relay_now_ms() / 1000;
}

relay_ctx *relay_ctx_for_conn(const kf_proxy_info *pi)
{
    if (!pi->has_ctx) {
        kf_log(KF_LOG_DEBUG, "[relay] a steered connection without a client context: defaults");
        return NULL;
    }
    relay_ctx *c = ctxtab_get(pi->ctx);
    if (!c) {
        char hex[2 * KF_CTX_ID_LEN + 1];
        kf_ctx_id_hex(pi->ctx, hex);
        kf_log(KF_LOG_DEBUG, "[relay] client context %.8s... unknown or expired: defaults", hex);
    }
    return c;
}

static lease_ent *find(const char *id)
{
    for (lease_ent *e = head; e; e = e->next)
        if (!strcmp(e->id, id))
            return e;
    return NULL;
}

/* A lease's `log stderr`: the lease holder's own stderr, opened anew
 * through /proc (a file description of our own: O_NONBLOCK here does not
 * touch the client's; O_APPEND so a redirected file is not overwritten),
 * only while that very process lives (pid and start time, checked after
 * a pidfd pins it; ctxlog.c closes it when the process exits). -1: none. */
static int lease_stderr(const kf_lease *l)
{
    int pfd = (int)syscall(SYS_pidfd_open, l->pid, 0), fd = -1;
    if (pfd < 0)
        return -1;
    if (kf_lease_alive(l->pid, l->start)) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%ld/fd/2", (long)l->pid);
        fd = open(p, O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        struct pollfd pf = {.fd = pfd, .events = POLLIN};
        if (fd >= 0 && poll(&pf, 1, 0) != 0) { /* it exited meanwhile: that fd may be another's */
            close(fd);
            fd = -1;
        }
    }
    close(pfd);
    return fd;
}

/* Register the lease file's text as a context: a reference, or NULL
 * (unknown id, unreadable, not a registration). */
static relay_ctx *load(const char *id)
{
    char text[KF_LEASE_MAX], why[256];
    kf_lease l;
    kf_ctxmsg m;
    const char *pw = "";
    unsigned char cid[KF_CTX_ID_LEN];
    relay_ctx *c = NULL;
    ssize_t n = kf_lease_read(g_relay.rundir, id, text, sizeof text), len = -1;
    if (n < 0 || kf_lease_parse(text, (size_t)n, &l) < 0 ||
        (len = kf_ctxmsg_parse(text, (size_t)n, &m, &pw)) <= 0) {
        kf_log(KF_LOG_DEBUG, "[relay] proxy: unknown client context %.8s...%s%s: defaults", id,
               len < 0 ? ": " : "", len < 0 ? pw : "");
    } else if (ctxtab_register_pid(&m, text, (size_t)len,
                                   m.log.n == 6 && !memcmp(m.log.p, "stderr", 6) ? lease_stderr(&l) : -1,
                                   l.pid, cid, why, sizeof why) < 0) {
        kf_log(KF_LOG_WARN, "[relay] proxy: client context %.8s...: %s: defaults", id, why);
    } else {
        c = ctxtab_get(cid);
    }
    memset(text, 0, sizeof text); /* the proxy's credentials */
    return c;
}

/* Make room: drop the least recently used lease nobody's connection holds. */
static void evict_one(void)
{
    lease_ent **victim = NULL;
    for (lease_ent **pp = &head; *pp; pp = &(*pp)->next)
        if (atomic_load(&(*pp)->c->refs) <= 1 && (!victim || (*pp)->last_used < (*victim)->last_used))
            victim = pp;
    if (victim) {
        lease_ent *e = *victim;
        *victim = e->next;
        count--;
        ctxtab_put(e->c);
        free(e);
    }
}

relay_ctx *relay_ctx_for_id(const char *hexid)
{
    if (!hexid || !*hexid || !kf_lease_id_ok(hexid))
        return NULL;
    pthread_mutex_lock(&mu);
    lease_ent *e = find(hexid);
    if (e) {
        ctxtab_ref(e->c);
        e->last_used = now_s();
        pthread_mutex_unlock(&mu);
        return e->c;
    }
    pthread_mutex_unlock(&mu);
    relay_ctx *c = load(hexid); /* a small file read, outside the lock */
    if (!c)
        return NULL;
    lease_ent *n = calloc(1, sizeof *n);
    pthread_mutex_lock(&mu);
    e = find(hexid); /* another worker may have loaded it meanwhile */
    if (!e && n) {
        if (count >= LEASE_CTX_MAX)
            evict_one();
        memcpy(n->id, hexid, sizeof n->id);
        n->c = c;
        c = NULL; /* the table's reference now */
        n->next = head;
        head = n;
        count++;
        e = n;
        n = NULL;
    }
    relay_ctx *r = e ? e->c : c;
    if (e) {
        ctxtab_ref(r);
        e->last_used = now_s();
    }
    pthread_mutex_unlock(&mu);
    free(n);
    if (e && c)
        ctxtab_put(c); /* lost the race: the table has its own */
    return r;
}

void relay_ctx_put(relay_ctx *ctx)
{
    ctxtab_put(ctx);
}

long relay_ctx_last_used(const char *hexid)
{
    pthread_mutex_lock(&mu);
    lease_ent *e = find(hexid);
    long t = e ? (atomic_load(&e->c->refs) > 1 ? now_s() : e->last_used) : 0;
    pthread_mutex_unlock(&mu);
    return t;
}

void relay_ctx_forget(const char *hexid)
{
    pthread_mutex_lock(&mu);
    for (lease_ent **pp = &head; *pp; pp = &(*pp)->next) {
        lease_ent *e = *pp;
        if (strcmp(e->id, hexid))
            continue;
        if (atomic_load(&e->c->refs) <= 1) {
            *pp = e->next;
            count--;
            ctxtab_put(e->c); /* expires like any other context from now */
            free(e);
        }
        break;
    }
    pthread_mutex_unlock(&mu);
}

relay_rules *relay_ctx_rules(relay_ctx *ctx)
{
    relay_rules *r = ctx && ctx->rules ? relay_rules_for(ctx->rules, ctx) : relay_rules_get();
    const char *state = relay_rules_state(r);
    unsigned long gen = relay_rules_gen(r);
    /* The relay's log said it when the set was loaded; the client's log
     * says it once per set, as each in-process client does. */
    if (state && ctx && atomic_exchange(&ctx->rules_gen, gen) != gen)
        relay_log_client(ctx, KF_LOG_ERROR, "relay: rules: %s", state);
    return r;
}

SSL_CTX *relay_ctx_upstream_ssl_ctx(const relay_ctx *ctx)
{
    /* The system store (directory and bundle) plus the client's sources,
     * never the kimifix CA; a cache hit is a lock, a lookup, a reference. */
    SSL_CTX *s = truststore_ready() ? ctxtab_upstream_ctx(ctx) : NULL;
    if (!s && g_relay.up_ctx && SSL_CTX_up_ref(g_relay.up_ctx) == 1)
        s = g_relay.up_ctx;
    return s;
}

void relay_ctx_tls_error(const relay_ctx *ctx, SSL *ssl, const char *host, char *err, size_t n)
{
    long v = SSL_get_verify_result(ssl);
    if (v == X509_V_OK || !truststore_ready()) {
        upstream_tls_error(ssl, host, err, n);
        return;
    }
    char what[1400];
    truststore_verify_error(what, sizeof what, v, ctx ? ctx->trust : NULL, ctx ? ctx->ntrust : 0);
    snprintf(err, n, "TLS to %s: %s", host, what);
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

const char *relay_ctx_exe(const relay_ctx *ctx)
{
    return ctx ? ctx->exe : NULL;
}

const char *relay_ctx_buildid(const relay_ctx *ctx)
{
    return ctx ? ctx->buildid : NULL;
}

/* A line for the relay's own log (relay_too) and the client's when its
 * context has one (ctxlog.c), formatted and masked once. */
static void vlog_to(const relay_ctx *ctx, int level, int relay_too, const char *fmt, va_list ap)
{
    relay_ctx *c = (relay_ctx *)ctx; /* its log_mu */
    int client = ctxlog_wants(c, level);
    relay_too = relay_too && kf_log_enabled(level);
    if (!relay_too && !client)
        return;
    char line[1024];
    size_t n = kf_log_format(line, sizeof line, fmt, ap);
    if (relay_too)
        kf_log_emit(level, line, n);
    if (client)
        ctxlog_write(c, level, line, n);
}

void relay_log(const relay_ctx *ctx, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_to(ctx, level, 1, fmt, ap);
    va_end(ap);
}

void relay_log_client(const relay_ctx *ctx, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_to(ctx, level, 0, fmt, ap);
    va_end(ap);
}
