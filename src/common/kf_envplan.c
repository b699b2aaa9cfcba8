/* kf_envplan.c - which carrier, and the variables that set it up
 * (kf_envplan.h). */
#include "kf_envplan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kf_mode.h"
#include "kf_str.h"
#include "kf_trust.h"

/* What HTTP Toolkit's terminal interception and mitmproxy's shell scripts
 * export (field-notes §7), less CGI_HTTP_PROXY (CGI scripts only). The
 * first four are the ones kf_env_relay_port reads. */
const char *const kf_proxy_vars[] = {
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
    "WSS_PROXY", "WS_PROXY",
    "GLOBAL_AGENT_HTTP_PROXY", "GLOBAL_AGENT_HTTPS_PROXY",
    "npm_config_proxy", "npm_config_https_proxy",
    NULL,
};

const char *kf_carrier_name(int carrier)
{
    return carrier == KF_CARRIER_PROXY ? "proxy" : carrier == KF_CARRIER_SHIM ? "shim" : "none";
}

/* ---- the choice ---- */

static int inherited_proxy(kf_getenv_fn get)
{
    return kf_env_relay_port(get) != 0;
}

/* The choice's reason. A plain one (the usual "no proxy in the
 * environment") is copied: every process start under the shim comes here,
 * and libc's printf code is pages a start need not touch (kf_str.h). */
__attribute__((format(printf, 2, 3))) static void why(kf_carrier_choice *c, const char *fmt, ...)
{
    if (!strchr(fmt, '%')) {
        kf_cat3(c->why, sizeof c->why, fmt, "", NULL);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
}

void kf_carrier_choose(const kf_carrier_in *in, kf_carrier_choice *c)
{
    memset(c, 0, sizeof *c);
    const char *mode = in->get("KIMIFIX_MODE");
    int none_or_shim = in->no_preload ? KF_CARRIER_NONE : KF_CARRIER_SHIM;
    int have = kf_user_proxy(in->get, 1, &c->up);
    c->inherited = inherited_proxy(in->get);
    int m = kf_mode_parse(mode);
    c->forced = m == KF_MODE_PROXY;
    if (m == KF_MODE_OFF) {
        c->carrier = KF_CARRIER_NONE;
        why(c, "KIMIFIX_MODE=off");
        return;
    }
    if (have && !c->up.usable) {
        c->carrier = none_or_shim;
        c->restore = c->inherited && !in->no_preload;
        why(c, "%s names %s: the relay can only chain through an http:// proxy, so the proxy "
               "carrier is off%s", c->up.var, c->up.shown,
            in->no_preload ? " and nothing else reaches this program: unfixed" : "");
        return;
    }
    if (m == KF_MODE_INPROCESS) {
        c->carrier = none_or_shim;
        c->restore = c->inherited && !in->no_preload;
        why(c, "KIMIFIX_MODE=inprocess");
        return;
    }
    if (c->forced) {
        c->carrier = KF_CARRIER_PROXY;
        why(c, "KIMIFIX_MODE=proxy%s%s", have ? "; chained to your proxy " : "",
            have ? c->up.shown : "");
        return;
    }
    if (!have && !c->inherited && !in->no_preload) {
        c->carrier = KF_CARRIER_SHIM;
        why(c, "no proxy in the environment");
        return;
    }
    if (in->tls_inprocess && !in->no_preload) {
        /* The hooks see this process's plaintext, also inside a CONNECT
         * tunnel to the user's proxy: keep that proxy, fix in-process. */
        c->carrier = KF_CARRIER_SHIM;
        c->restore = c->inherited;
        why(c, "the in-process hooks see this program's TLS%s%s", have ? "; it keeps your proxy " : "",
            have ? c->up.shown : "");
        return;
    }
    c->carrier = KF_CARRIER_PROXY;
    if (in->no_preload)
        why(c, "the program cannot load the shim%s%s", have ? "; chained to your proxy " : "",
            have ? c->up.shown : "");
    else if (have)
        why(c, "%s names your proxy %s: the relay is the program's proxy and chains to yours",
            c->up.var, c->up.shown);
    else
        why(c, "a parent kimifix made the relay this program's proxy");
}

/* ---- the variables ---- */

void kf_envplan_init(kf_envplan *p)
{
    p->n = 0;
    p->used = 0;
    p->full = 0;
}

static const char *pool_dup(kf_envplan *p, const char *s)
{
    size_t n = strlen(s) + 1;
    if (p->used + n > sizeof p->pool) {
        p->full = 1;
        return NULL;
    }
    char *d = p->pool + p->used;
    memcpy(d, s, n);
    p->used += n;
    return d;
}

static void push(kf_envplan *p, const char *name, const char *value)
{
    const char *n = pool_dup(p, name), *v = value ? pool_dup(p, value) : NULL;
    if (!n || (value && !v) || p->n >= KF_ENVPLAN_MAX) {
        p->full = 1;
        return;
    }
    p->v[p->n].name = n;
    p->v[p->n].value = v;
    p->n++;
}

void kf_envplan_put(kf_envplan *p, const char *name, const char *value)
{
    push(p, name, value);
}

static int orig_name(const char *name, char *out, size_t n)
{
    int w = snprintf(out, n, "KIMIFIX_ORIG_%s", name);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

void kf_envplan_set(kf_envplan *p, kf_getenv_fn get, const char *name, const char *value)
{
    char on[128];
    const char *cur = get(name);
    if (orig_name(name, on, sizeof on) < 0) {
        p->full = 1;
        return;
    }
    if (!get(on)) {
        /* First change: what the user had. A value naming a relay without
         * a saved original is not the user's (a hand-copied environment). */
        kf_purl u;
        int ours = cur && kf_purl_parse(cur, &u) == 0 && kf_purl_is_ours(&u);
        push(p, on, cur && !ours ? cur : "");
    }
    if (!cur || !value || strcmp(cur, value))
        push(p, name, value);
}

void kf_envplan_proxy(kf_envplan *p, kf_getenv_fn get, const char *url)
{
    for (const char *const *v = kf_proxy_vars; *v; v++)
        kf_envplan_set(p, get, *v, url);
}

void kf_envplan_restore(kf_envplan *p, kf_getenv_fn get)
{
    char on[128];
    for (const char *const *v = kf_proxy_vars; *v; v++) {
        const char *o = orig_name(*v, on, sizeof on) == 0 ? get(on) : NULL;
        const char *cur = get(*v);
        if (!o)
            continue; /* never changed by kimifix */
        if (!*o && cur)
            push(p, *v, NULL);
        else if (*o && (!cur || strcmp(cur, o)))
            push(p, *v, o);
    }
}

int kf_envplan_trust(kf_envplan *p, kf_getenv_fn get)
{
    kf_trust_plan t;
    int n = kf_trust_env(&t);
    if (n < 0)
        return -1;
    for (int i = 0; i < KF_TRUST_NVARS; i++)
        if (t.v[i].value[0])
            kf_envplan_set(p, get, t.v[i].name, t.v[i].value);
    return n;
}

int kf_envplan_apply(const kf_envplan *p, int (*set)(const char *, const char *, int),
                     int (*unset)(const char *))
{
    if (p->full) {
        errno = E2BIG;
        return -1;
    }
    for (unsigned i = 0; i < p->n; i++) {
        const kf_envset *e = &p->v[i];
        if (e->value ? set(e->name, e->value, 1) : unset(e->name))
            return -1;
    }
    return 0;
}

/* 1 DATADIR/ca.pem readable, 0 not, -1 the name does not fit in cap. */
static int ca_readable(char *ca, size_t cap)
{
    if (kf_data_dir_path(ca, cap - 8) < 0)
        return errno == ENAMETOOLONG ? -1 : 0;
    memcpy(ca + strlen(ca), "/ca.pem", 8);
    return access(ca, R_OK) == 0;
}

/* A data dir path too long for the usual buffer: its own frame. */
__attribute__((noinline)) static int ca_exists_long(void)
{
    char ca[4200];
    return ca_readable(ca, sizeof ca) == 1;
}

int kf_envplan_ca_exists(void)
{
    /* The name is enough here (is there a CA yet?): kf_trust_env checks
     * the directory right after, and every process start pays for this.
     * 512 bytes on the stack, not 4 KiB: a start that runs deeper than the
     * loader did touches a fresh stack page (a fault, bench figure 6). */
    char ca[512];
    errno = 0;
    int r = ca_readable(ca, sizeof ca);
    return r < 0 ? ca_exists_long() : r;
}
