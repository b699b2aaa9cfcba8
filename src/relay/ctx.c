/* ctx.c - the per-connection client context (contract B): defaults.
 *
 * A connection holds `relay_ctx *ctx`; NULL means "no context": the relay's
 * own rules, upstream trust store, no proxy, the global log. The trust-ctx
 * branch registers contexts over RUNDIR/relay.sock (contract A), finds one
 * from the PROXY v2 TLV 0xE1 in relay_ctx_for_conn(), and returns its
 * values here. The core never looks inside a relay_ctx.
 */
#include "relay.h"

#include <stdarg.h>

#include "kf_log.h"

relay_ctx *relay_ctx_for_conn(const kf_proxy_info *pi)
{
    (void)pi;
    return NULL;
}

void relay_ctx_put(relay_ctx *ctx)
{
    (void)ctx;
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
    (void)ctx;
    return NULL;
}

void relay_log(const relay_ctx *ctx, int level, const char *fmt, ...)
{
    (void)ctx; /* per-client log sinks: the context's fd, when it has one */
    va_list ap;
    va_start(ap, fmt);
    kf_vlog(level, fmt, ap);
    va_end(ap);
}
