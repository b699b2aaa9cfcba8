/* kf_envplan_url.c - proxy URLs: parse, show without credentials, find the
 * user's in the environment (kf_envplan.h). */
#include "kf_envplan.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "kf_proxy.h"
#include "kf_req.h"
#include "kf_str.h"

/* Percent-decode s[0..n) into out (cap bytes incl. NUL). -1 on a bad
 * escape, a NUL byte or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = kf_hexval(s[i + 1]), lo = kf_hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return 0;
}

static unsigned default_port(const char *scheme)
{
    if (!strcmp(scheme, "https"))
        return 443;
    if (!strncmp(scheme, "socks", 5))
        return 1080;
    return 80;
}

/* host[:port] or [v6][:port] of an authority without userinfo. */
static int parse_hostport(const char *a, size_t n, kf_purl *out)
{
    const char *h = a, *rest;
    size_t hl;
    if (n && a[0] == '[') {
        const char *rb = memchr(a, ']', n);
        if (!rb)
            return -1;
        h = a + 1;
        hl = (size_t)(rb - h);
        rest = rb + 1;
        unsigned char buf[16];
        if (hl == 0 || hl >= sizeof out->host)
            return -1;
        memcpy(out->host, h, hl);
        out->host[hl] = 0;
        if (inet_pton(AF_INET6, out->host, buf) != 1)
            return -1;
    } else {
        const char *colon = memchr(a, ':', n);
        hl = colon ? (size_t)(colon - a) : n;
        rest = a + hl;
        if (hl == 0 || hl >= sizeof out->host || !kf_proxy_valid_host(a, hl))
            return -1;
        memcpy(out->host, a, hl);
        out->host[hl] = 0;
    }
    size_t left = (size_t)(a + n - rest);
    out->port = default_port(out->scheme);
    if (left == 0)
        return 0;
    if (rest[0] != ':' || left < 2 || left > 6)
        return -1;
    unsigned p = 0;
    for (size_t i = 1; i < left; i++) {
        if (rest[i] < '0' || rest[i] > '9')
            return -1;
        p = p * 10 + (unsigned)(rest[i] - '0');
    }
    if (p < 1 || p > 65535)
        return -1;
    out->port = p;
    return 0;
}

int kf_purl_parse(const char *url, kf_purl *out)
{
    memset(out, 0, sizeof *out);
    if (!url)
        return -1;
    const char *p = url, *sep = strstr(url, "://");
    snprintf(out->scheme, sizeof out->scheme, "http");
    if (sep) {
        size_t sl = (size_t)(sep - url);
        if (sl == 0 || sl >= sizeof out->scheme)
            return -1;
        for (size_t i = 0; i < sl; i++) {
            char c = url[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '-' || c == '.'))
                return -1;
            out->scheme[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        out->scheme[sl] = 0;
        p = sep + 3;
    }
    size_t alen = strcspn(p, "/?#");
    for (size_t i = alen; p[i]; i++) /* only a path of "/" may follow */
        if (!(i == alen && p[i] == '/' && p[i + 1] == 0))
            return -1;
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (p[i] == '@')
            at = p + i; /* the last '@' ends the userinfo, as in Go */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ul = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (pct_decode(p, ul, out->user, sizeof out->user) < 0 ||
            (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), out->pass, sizeof out->pass) < 0))
            return -1;
        out->has_auth = 1;
        alen -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    return parse_hostport(p, alen, out);
}

void kf_purl_shown(const kf_purl *u, char *out, size_t n)
{
    int v6 = strchr(u->host, ':') != NULL;
    snprintf(out, n, "%s%s%s:%u", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
}

int kf_purl_is_ours(const kf_purl *u)
{
    int loop = !strcmp(u->host, "127.0.0.1") || !strcmp(u->host, "::1") ||
               kf_ascii_ieq(u->host, "localhost");
    return loop && (!strcmp(u->user, "kimifix") || !strncmp(u->user, "kimifix-", 8));
}

int kf_relay_proxy_url(const kf_relay_state *st, const char *ctxid, char *out, size_t n)
{
    char tok[2 * KF_PROXY_TOKEN_LEN + 1];
    kf_hex_encode(st->token, KF_PROXY_TOKEN_LEN, tok);
    int w = snprintf(out, n, "http://kimifix%s%s:%s@127.0.0.1:%u", ctxid && *ctxid ? "-" : "",
                     ctxid && *ctxid ? ctxid : "", tok, st->port);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

const char *kf_user_env(kf_getenv_fn get, const char *name)
{
    char orig[64];
    if (kf_cat3(orig, sizeof orig, "KIMIFIX_ORIG_", name, NULL) < 0)
        return get(name);
    const char *o = get(orig);
    return o ? o : get(name);
}

int kf_user_proxy(kf_getenv_fn get, int https, kf_userproxy *out)
{
    static const char *const hs[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", NULL};
    static const char *const hp[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", NULL};
    memset(out, 0, sizeof *out);
    for (const char *const *v = https ? hs : hp; *v; v++) {
        const char *val = kf_user_env(get, *v);
        if (!val || !*val || strlen(val) >= sizeof out->url)
            continue;
        kf_purl u;
        int ok = kf_purl_parse(val, &u) == 0;
        if (ok && kf_purl_is_ours(&u))
            continue; /* a relay named without a saved original: not the user's */
        out->var = *v;
        snprintf(out->url, sizeof out->url, "%s", val);
        if (ok) {
            char hp_[280];
            out->u = u;
            out->usable = !strcmp(u.scheme, "http");
            kf_purl_shown(&u, hp_, sizeof hp_);
            snprintf(out->shown, sizeof out->shown, "%s://%s", u.scheme, hp_);
        } else {
            snprintf(out->shown, sizeof out->shown, "(malformed %s)", *v);
        }
        return 1;
    }
    return 0;
}

/* The first of HTTPS_PROXY, https_proxy, HTTP_PROXY, http_proxy naming a
 * relay, parsed into u. 1, or 0 when none does. */
static int env_relay(kf_getenv_fn get, kf_purl *u)
{
    for (unsigned i = 0; i < 4; i++) {
        const char *v = get(kf_proxy_vars[i]);
        if (v && kf_purl_parse(v, u) == 0 && kf_purl_is_ours(u))
            return 1;
    }
    return 0;
}

unsigned kf_env_relay_port(kf_getenv_fn get)
{
    kf_purl u;
    return env_relay(get, &u) ? u.port : 0;
}

int kf_env_relay_ctxid(kf_getenv_fn get, char *id, size_t n)
{
    kf_purl u;
    id[0] = 0;
    if (!env_relay(get, &u) || strncmp(u.user, "kimifix-", 8) || strlen(u.user + 8) >= n)
        return 0;
    memcpy(id, u.user + 8, strlen(u.user + 8) + 1);
    return 1;
}
