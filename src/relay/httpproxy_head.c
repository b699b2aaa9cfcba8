/* httpproxy_head.c - the head an absolute-form proxy request goes upstream
 * with, and base64 (httpproxy.h).
 *
 * Why `Connection: close`: a client may send its next request on the same
 * proxy connection for another host, and every one of them carries the
 * relay's credentials in Proxy-Authorization. Forwarding exactly one
 * request per client connection keeps both problems out: the upstream
 * closes after its answer, the client opens a new proxy connection (what
 * tinyproxy does too). The rules engine then rewrites this head like any
 * other (it sees an origin-form request with a Host header).
 */
#include "httpproxy.h"

#include <string.h>
#include <strings.h>

#include "kf_req.h"

#define MAX_CONN_TOKENS 16

typedef struct out_buf {
    char *p;
    size_t n, cap;
    int bad;
} out_buf;

static void put(out_buf *o, const char *s, size_t n)
{
    if (o->bad || o->n + n > o->cap) {
        o->bad = 1;
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void puts_(out_buf *o, const char *s)
{
    put(o, s, strlen(s));
}

static int name_is(kf_str name, const char *lit)
{
    return name.n == strlen(lit) && !strncasecmp(name.p, lit, name.n);
}

/* Header lines after the request line: call fn for each (name, value, line). */
typedef void (*line_fn)(void *ud, kf_str name, kf_str value, kf_str line);

static void each_header(const char *p, const char *end, line_fn fn, void *ud)
{
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf)
            return;
        const char *ce = lf > p && lf[-1] == '\r' ? lf - 1 : lf;
        const char *colon = memchr(p, ':', (size_t)(ce - p));
        if (ce == p || !colon)
            return; /* the empty line (hp_parse checked the rest) */
        fn(ud, (kf_str){p, (size_t)(colon - p)},
           kf_str_trim((kf_str){colon + 1, (size_t)(ce - colon - 1)}),
           (kf_str){p, (size_t)(lf + 1 - p)});
        p = lf + 1;
    }
}

typedef struct hop {
    kf_str tok[MAX_CONN_TOKENS];
    unsigned n;
    out_buf *o;
} hop;

static void conn_tokens(void *ud, kf_str name, kf_str value, kf_str line)
{
    hop *h = ud;
    (void)line;
    if (!name_is(name, "connection"))
        return;
    for (const char *p = value.p, *end = value.p + value.n; p < end && h->n < MAX_CONN_TOKENS;) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        if (!c)
            c = end;
        kf_str t = kf_str_trim((kf_str){p, (size_t)(c - p)});
        if (t.n)
            h->tok[h->n++] = t;
        p = c + 1;
    }
}

static void copy_end_to_end(void *ud, kf_str name, kf_str value, kf_str line)
{
    hop *h = ud;
    (void)value;
    static const char *const drop[] = {"proxy-authorization", "proxy-connection", "keep-alive",
                                       "connection", "host"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (name_is(name, drop[i]))
            return;
    for (unsigned i = 0; i < h->n; i++)
        if (kf_str_ieq(name, h->tok[i]))
            return; /* hop-by-hop: named by Connection */
    put(h->o, line.p, line.n);
}

static void put_port(out_buf *o, unsigned port)
{
    char d[8];
    int k = 0;
    do
        d[k++] = (char)('0' + port % 10);
    while ((port /= 10) && k < 7);
    while (k)
        put(o, &d[--k], 1);
}

ssize_t hp_upstream_head(const char *head, size_t n, const hp_req *r, char *out, size_t cap)
{
    out_buf o = {out, 0, cap, 0};
    const char *lf = memchr(head, '\n', n);
    if (!lf || r->kind != HP_ABSOLUTE || r->target_off + r->target_len > n)
        return -1;
    const char *eol = lf > head && lf[-1] == '\r' ? "\r\n" : "\n";
    const char *t = head + r->target_off, *ver = t + r->target_len + 1;
    puts_(&o, r->method);
    puts_(&o, " ");
    if (!r->target_len || t[0] != '/')
        puts_(&o, "/");
    put(&o, t, r->target_len);
    puts_(&o, " ");
    put(&o, ver, 8);
    puts_(&o, eol);
    puts_(&o, "Host: ");
    if (r->host_ip == 6)
        puts_(&o, "[");
    puts_(&o, r->host);
    if (r->host_ip == 6)
        puts_(&o, "]");
    if (r->port != 80) {
        puts_(&o, ":");
        put_port(&o, r->port);
    }
    puts_(&o, eol);
    hop h = {.n = 0, .o = &o};
    each_header(lf + 1, head + n, conn_tokens, &h);
    each_header(lf + 1, head + n, copy_end_to_end, &h);
    puts_(&o, "Connection: close");
    puts_(&o, eol);
    puts_(&o, eol);
    return o.bad ? -1 : (ssize_t)o.n;
}

/* ---- base64 ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

ssize_t hp_b64_encode(const void *in, size_t n, char *out, size_t cap)
{
    const unsigned char *s = in;
    size_t need = 4 * ((n + 2) / 3) + 1, o = 0;
    if (cap < need)
        return -1;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = 0;
    return (ssize_t)o;
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

ssize_t hp_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    size_t o = 0;
    if (n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int pad = (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=');
        if (pad && !last)
            return -1;
        int a = b64val(in[i]), b = b64val(in[i + 1]);
        int c = pad >= 2 ? 0 : b64val(in[i + 2]), d = pad >= 1 ? 0 : b64val(in[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0 || o + 3 - (size_t)pad >= cap)
            return -1;
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
        out[o++] = (unsigned char)(v >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(v >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)v;
    }
    out[o] = 0;
    return (ssize_t)o;
}
