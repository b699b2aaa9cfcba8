/* httpproxy.c - find and parse a proxy request head, check its
 * credentials (httpproxy.h). Hostile input by design: every length is
 * bounded, nothing is read past the caller's bytes, and a client learns
 * nothing about the target check before its credentials are right. */
#include "httpproxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "kf_paths.h"
#include "kf_req.h"
#include "kf_rules_hosts.h"

enum { PH_METHOD = 0, PH_TARGET, PH_VERSION, PH_CR, PH_LF, PH_HEADERS };

#define METHOD_MAX 23

static int tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* One request-line byte; -1 when it cannot belong there. */
static int line_byte(hp_scan *s, unsigned char c)
{
    static const char ver[] = "HTTP/1.";
    switch (s->phase) {
    case PH_METHOD:
        if (c == ' ' && s->count)
            s->phase = PH_TARGET, s->count = 0;
        else if (tchar(c) && s->count < METHOD_MAX)
            s->count++;
        else
            return -1;
        return 0;
    case PH_TARGET:
        if (c == ' ' && s->count)
            s->phase = PH_VERSION, s->count = 0;
        else if (c > 0x20 && c != 0x7f)
            s->count = 1;
        else
            return -1;
        return 0;
    case PH_VERSION:
        if (s->count < 7 ? c != (unsigned char)ver[s->count] : (c < '0' || c > '9'))
            return -1;
        if (++s->count == 8)
            s->phase = PH_CR;
        return 0;
    case PH_CR:
        if (c == '\r')
            s->phase = PH_LF;
        else if (c == '\n')
            s->phase = PH_HEADERS, s->eol = 1;
        else
            return -1;
        return 0;
    default: /* PH_LF */
        if (c != '\n')
            return -1;
        s->phase = PH_HEADERS;
        s->eol = 1;
        return 0;
    }
}

ssize_t hp_scan_head(hp_scan *s, const char *buf, size_t len)
{
    size_t lim = len < HP_HEAD_MAX ? len : HP_HEAD_MAX;
    while (s->off < lim) {
        unsigned char c = (unsigned char)buf[s->off++];
        if (s->phase != PH_HEADERS) {
            if (line_byte(s, c) < 0)
                return HP_SCAN_BAD;
            continue;
        }
        if (s->eol == 0) {
            const char *lf = memchr(buf + s->off - 1, '\n', lim - (s->off - 1));
            if (!lf) {
                s->off = lim;
                break;
            }
            s->off = (size_t)(lf - buf) + 1;
            s->eol = 1;
        } else if (c == '\n') {
            return (ssize_t)s->off;
        } else {
            s->eol = (s->eol == 1 && c == '\r') ? 2 : 0;
        }
    }
    return len >= HP_HEAD_MAX ? HP_SCAN_TOO_BIG : HP_SCAN_MORE;
}

/* ---- credentials ---- */

static int hexlow(unsigned char c)
{
    return (c >= 'A' && c <= 'F') ? c + 32 : c;
}

int hp_auth_ok(const char *v, size_t n, const unsigned char *token, char *ctxid)
{
    kf_str val = kf_str_trim((kf_str){v, n});
    ctxid[0] = 0;
    if (val.n < 7 || strncasecmp(val.p, "basic", 5) || (val.p[5] != ' ' && val.p[5] != '\t'))
        return 0;
    kf_str b = kf_str_trim((kf_str){val.p + 6, val.n - 6});
    unsigned char cred[160];
    ssize_t cl = b.n <= 200 ? hp_b64_decode(b.p, b.n, cred, sizeof cred) : -1;
    if (cl <= 0)
        return 0;
    const unsigned char *colon = memchr(cred, ':', (size_t)cl);
    if (!colon)
        return 0;
    size_t ul = (size_t)(colon - cred), pl = (size_t)cl - ul - 1;
    const char *user = (const char *)cred, *pass = (const char *)colon + 1;
    char ctx[HP_CTXID_LEN + 1] = "";
    if (ul == 8 + HP_CTXID_LEN && !memcmp(user, "kimifix-", 8)) {
        for (size_t i = 0; i < HP_CTXID_LEN; i++) {
            int c = hexlow((unsigned char)user[8 + i]);
            if (kf_hexval((char)c) < 0)
                return 0;
            ctx[i] = (char)c;
        }
        ctx[HP_CTXID_LEN] = 0;
    } else if (ul != 7 || memcmp(user, "kimifix", 7)) {
        return 0;
    }
    char want[2 * KF_PROXY_TOKEN_LEN + 1];
    kf_hex_encode(token, KF_PROXY_TOKEN_LEN, want);
    if (pl != 2 * KF_PROXY_TOKEN_LEN)
        return 0;
    /* Constant time over the secret: every byte compared, one result. */
    unsigned diff = 0;
    for (size_t i = 0; i < pl; i++)
        diff |= (unsigned)(hexlow((unsigned char)pass[i]) ^ (unsigned char)want[i]);
    if (diff)
        return 0;
    memcpy(ctxid, ctx, sizeof ctx);
    return 1;
}

/* ---- targets ---- */

static int set_why(hp_req *r, int status, const char *why)
{
    size_t n = strlen(why);
    if (n >= sizeof r->why)
        n = sizeof r->why - 1;
    memcpy(r->why, why, n);
    r->why[n] = 0;
    return status;
}

/* host[:port] / [v6][:port] (port required when need_port). */
static int parse_authority(const char *a, size_t n, int need_port, hp_req *r)
{
    const char *rest;
    size_t hl;
    if (n && a[0] == '[') {
        const char *rb = memchr(a, ']', n);
        unsigned char ip6[16];
        hl = rb ? (size_t)(rb - a - 1) : 0;
        if (!rb || hl == 0 || hl >= sizeof r->host)
            return set_why(r, HP_400, "bad IPv6 literal in the target");
        memcpy(r->host, a + 1, hl);
        r->host[hl] = 0;
        if (inet_pton(AF_INET6, r->host, ip6) != 1)
            return set_why(r, HP_400, "bad IPv6 literal in the target");
        r->host_ip = 6;
        rest = rb + 1;
    } else {
        const char *colon = memchr(a, ':', n);
        hl = colon ? (size_t)(colon - a) : n;
        if (hl == 0 || hl >= sizeof r->host || !kf_proxy_valid_host(a, hl))
            return set_why(r, HP_400, "bad host name in the target");
        for (size_t i = 0; i < hl; i++)
            r->host[i] = (char)(a[i] >= 'A' && a[i] <= 'Z' ? a[i] + 32 : a[i]);
        r->host[hl] = 0;
        unsigned char ip4[4];
        if (inet_pton(AF_INET, r->host, ip4) == 1)
            r->host_ip = 4;
        rest = a + hl;
    }
    size_t left = (size_t)(a + n - rest);
    if (left == 0) {
        r->port = 80;
        return need_port ? set_why(r, HP_400, "CONNECT target without a port") : HP_OK;
    }
    if (rest[0] != ':' || left == 1)
        return set_why(r, HP_400, "bad port in the target");
    unsigned long p = 0;
    for (size_t i = 1; i < left; i++) {
        if (rest[i] < '0' || rest[i] > '9')
            return set_why(r, HP_400, "bad port in the target");
        if (p <= 65535)
            p = p * 10 + (unsigned long)(rest[i] - '0');
    }
    if (p < 1 || p > 65535)
        return set_why(r, HP_400, "port outside 1-65535");
    r->port = (unsigned)p;
    return HP_OK;
}

static int loopback(const hp_req *r)
{
    unsigned char a[16];
    if (r->host_ip == 4 && inet_pton(AF_INET, r->host, a) == 1)
        return a[0] == 127 || !memcmp(a, "\0\0\0\0", 4);
    if (r->host_ip == 6 && inet_pton(AF_INET6, r->host, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        int zero15 = !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 15);
        return (zero15 && a[15] <= 1) || (!memcmp(a, mapped, 12) && a[12] == 127);
    }
    size_t n = strlen(r->host);
    return !strcmp(r->host, "localhost") || (n > 10 && !strcmp(r->host + n - 10, ".localhost"));
}

static int parse_target(const char *t, size_t n, const hp_cfg *cfg, hp_req *r, const char *head)
{
    if (r->kind == HP_CONNECT) {
        int st = parse_authority(t, n, 1, r);
        if (st == HP_OK && r->port == cfg->relay_port && loopback(r))
            return set_why(r, HP_403, "CONNECT to the relay's own port");
        return st;
    }
    if (n < 7 || strncasecmp(t, "http://", 7)) {
        if (n >= 8 && !strncasecmp(t, "https://", 8))
            return set_why(r, HP_400, "an https:// URL must be reached with CONNECT");
        return set_why(r, HP_400, "not a proxy request (CONNECT host:port or an http:// URL)");
    }
    const char *a = t + 7;
    size_t al = strcspn(a, "/? \r\n");
    if (al > (size_t)(t + n - a))
        al = (size_t)(t + n - a);
    if (memchr(a, '@', al))
        return set_why(r, HP_400, "user name in the URL");
    int st = parse_authority(a, al, 0, r);
    r->target_off = (size_t)(a + al - head);
    r->target_len = (size_t)(t + n - (a + al));
    return st;
}

/* ---- the head ---- */

/* Check a header block [p, end) (lines after the request line, ending with
 * the empty line) and find Proxy-Authorization. -1 when malformed. */
static int headers(const char *p, const char *end, kf_str *auth, int *nauth)
{
    *nauth = 0;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf)
            return -1;
        const char *ce = lf > p && lf[-1] == '\r' ? lf - 1 : lf;
        if (ce == p)
            return lf + 1 == end ? 0 : -1;
        const char *q = p;
        while (q < ce && tchar((unsigned char)*q))
            q++;
        if (q == p || q == ce || *q != ':')
            return -1;
        for (const char *v = q + 1; v < ce; v++)
            if ((unsigned char)*v < 0x20 ? *v != '\t' : *v == 0x7f)
                return -1;
        if ((size_t)(q - p) == 19 && !strncasecmp(p, "proxy-authorization", 19)) {
            *auth = (kf_str){q + 1, (size_t)(ce - q - 1)};
            ++*nauth;
        }
        p = lf + 1;
    }
    return -1;
}

int hp_parse(const char *head, size_t n, const hp_cfg *cfg, hp_req *r)
{
    memset(r, 0, sizeof *r);
    const char *lf = memchr(head, '\n', n);
    const char *ce = lf && lf > head && lf[-1] == '\r' ? lf - 1 : lf;
    const char *sp1 = lf ? memchr(head, ' ', (size_t)(ce - head)) : NULL;
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(ce - sp1 - 1)) : NULL;
    if (!sp2 || sp1 == head || sp2 == sp1 + 1 || (size_t)(sp1 - head) >= sizeof r->method ||
        ce - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) || sp2[8] < '0' || sp2[8] > '9')
        return set_why(r, HP_400, "malformed request line");
    memcpy(r->method, head, (size_t)(sp1 - head));
    kf_str auth = {NULL, 0};
    int nauth;
    if (headers(lf + 1, head + n, &auth, &nauth) < 0)
        return set_why(r, HP_400, "malformed header line");
    if (nauth != 1 || !hp_auth_ok(auth.p, auth.n, cfg->token, r->ctxid))
        return set_why(r, HP_407, nauth ? "wrong proxy credentials" : "no proxy credentials");
    r->kind = strcmp(r->method, "CONNECT") ? HP_ABSOLUTE : HP_CONNECT;
    return parse_target(sp1 + 1, (size_t)(sp2 - sp1 - 1), cfg, r, head);
}

int hp_rule_host(const kf_ruleset *rs, const hp_req *req)
{
    return rs && !req->host_ip && kf_rules_host_listed(rs, req->host, req->port);
}
