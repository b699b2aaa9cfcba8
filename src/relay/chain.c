/* chain.c - CONNECT through the user's proxy as a state machine
 * (chain.h). */
#include "chain.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "httpproxy.h"

__attribute__((format(printf, 3, 4))) static int fail(kf_chain *c, int reply, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->reply = reply;
    c->phase = 2;
    return CH_FAIL;
}

static int is_loopback(const char *host)
{
    unsigned char a[16];
    size_t n = strlen(host);
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1)
        return !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 15) && a[15] == 1;
    return !strcasecmp(host, "localhost") || (n > 10 && !strcasecmp(host + n - 10, ".localhost"));
}

int kf_chain_wanted(const char *noproxy, const char *host, unsigned port)
{
    return !is_loopback(host) && !kf_noproxy_match(noproxy, host, port);
}

/* host:port with [brackets] around an IPv6 literal. */
static int hostport(const char *host, unsigned port, char *out, size_t n)
{
    int v6 = strchr(host, ':') != NULL;
    int w = snprintf(out, n, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* "Proxy-Authorization: Basic B64\r\n" for a proxy with credentials, "" without. */
static int auth_line(const kf_purl *p, char *out, size_t n)
{
    char cred[600], b[820];
    out[0] = 0;
    if (!p->has_auth)
        return 0;
    int cl = snprintf(cred, sizeof cred, "%s:%s", p->user, p->pass);
    if (cl < 0 || (size_t)cl >= sizeof cred || hp_b64_encode(cred, (size_t)cl, b, sizeof b) < 0)
        return -1;
    int w = snprintf(out, n, "Proxy-Authorization: Basic %s\r\n", b);
    memset(cred, 0, sizeof cred);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

int kf_chain_begin(kf_chain *c, const kf_purl *proxy, const char *host, unsigned port)
{
    char auth[900];
    memset(c, 0, sizeof *c);
    kf_purl_shown(proxy, c->shown, sizeof c->shown);
    if (hostport(host, port, c->target, sizeof c->target) < 0 ||
        auth_line(proxy, auth, sizeof auth) < 0)
        return fail(c, 502, "cannot build a CONNECT for your proxy %s", c->shown);
    int w = snprintf(c->req, sizeof c->req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", c->target,
                     c->target, auth);
    memset(auth, 0, sizeof auth);
    if (w < 0 || (size_t)w >= sizeof c->req)
        return fail(c, 502, "cannot build a CONNECT for your proxy %s", c->shown);
    c->req_len = (size_t)w;
    return 0;
}

/* "407 Proxy Authentication Required" from the status line, printable only. */
static void status_text(const kf_chain *c, char *out, size_t n)
{
    const char *sp = memchr(c->line, ' ', c->line_len);
    size_t o = 0;
    for (size_t i = sp ? (size_t)(sp + 1 - c->line) : c->line_len; i < c->line_len && o + 1 < n; i++)
        if (c->line[i] >= 0x20 && c->line[i] < 0x7f)
            out[o++] = c->line[i];
    out[o] = 0;
}

/* The status line is complete: 2xx goes on to the end of the head. */
static int judge(kf_chain *c)
{
    const char *l = c->line;
    size_t n = c->line_len;
    while (n && (l[n - 1] == '\r'))
        n--;
    if (n < 12 || memcmp(l, "HTTP/1.", 7) || l[8] != ' ' || l[9] < '1' || l[9] > '5' ||
        l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' || (n > 12 && l[12] != ' '))
        return fail(c, 502, "your proxy %s sent something that is not an HTTP answer to CONNECT %s",
                    c->shown, c->target);
    c->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    if (c->status / 100 == 2)
        return CH_MORE;
    char st[100];
    status_text(c, st, sizeof st);
    if (c->status == 407)
        return fail(c, 502, "your proxy %s wants credentials it did not get (%s): check the user "
                            "name and password in your proxy variable", c->shown, st);
    return fail(c, 502, "your proxy %s refused CONNECT %s: %s", c->shown, c->target, st);
}

int kf_chain_feed(kf_chain *c, const char *buf, size_t n, size_t *used)
{
    *used = 0;
    if (c->phase == 2)
        return c->status / 100 == 2 && !c->err[0] ? CH_OK : CH_FAIL;
    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (++c->seen > CH_HEAD_MAX)
            return fail(c, 502, "your proxy %s sent an answer head over 16 KiB", c->shown);
        if (c->phase == 0) {
            if (c->line_len < sizeof c->line)
                c->line[c->line_len++] = ch;
            if (ch != '\n')
                continue;
            if (c->line_len && c->line[c->line_len - 1] == '\n')
                c->line_len--; /* the LF */
            c->phase = 1;
            c->eol = 1;
            if (judge(c) == CH_FAIL) {
                *used = i + 1;
                return CH_FAIL;
            }
            continue;
        }
        if (ch == '\n' && c->eol) {
            c->phase = 2;
            *used = i + 1;
            return CH_OK;
        }
        c->eol = ch == '\n' ? 1 : (c->eol == 1 && ch == '\r') ? 2 : 0;
    }
    *used = n;
    return CH_MORE;
}

void kf_chain_io_failed(kf_chain *c, int what, int err)
{
    const char *e = err ? strerror(err) : "";
    switch (what) {
    case CH_IO_RESOLVE:
        fail(c, 502, "cannot resolve your proxy %s", c->shown);
        break;
    case CH_IO_REFUSED:
        fail(c, 502, "cannot connect to your proxy %s%s%s%s", c->shown, *e ? " (" : "", e, *e ? ")" : "");
        break;
    case CH_IO_RESET:
        fail(c, 502, "your proxy %s reset the connection during CONNECT %s", c->shown, c->target);
        break;
    case CH_IO_TIMEOUT:
        fail(c, 504, "your proxy %s did not answer CONNECT %s in time", c->shown, c->target);
        break;
    default:
        fail(c, 502, "your proxy %s closed the connection before answering CONNECT %s", c->shown,
             c->target);
        break;
    }
}

ssize_t kf_chain_absolute_head(const char *head, size_t n, const kf_purl *proxy,
                               const char *host, unsigned port, char *out, size_t cap)
{
    const char *lf = memchr(head, '\n', n);
    const char *sp1 = lf ? memchr(head, ' ', (size_t)(lf - head)) : NULL;
    char auth[900], hp[300];
    if (!sp1 || sp1[1] != '/' || auth_line(proxy, auth, sizeof auth) < 0 ||
        (port == 80 ? snprintf(hp, sizeof hp, "%s%s%s", strchr(host, ':') ? "[" : "", host,
                               strchr(host, ':') ? "]" : "") < 0
                    : hostport(host, port, hp, sizeof hp) < 0))
        return -1;
    size_t m = (size_t)(sp1 + 1 - head), hl = strlen(hp), al = strlen(auth);
    size_t total = m + 7 + hl + (size_t)(lf + 1 - (sp1 + 1)) + al + (n - (size_t)(lf + 1 - head));
    if (total > cap) {
        memset(auth, 0, sizeof auth);
        return -1;
    }
    char *o = out;
    memcpy(o, head, m), o += m;                          /* "METHOD " */
    memcpy(o, "http://", 7), o += 7;
    memcpy(o, hp, hl), o += hl;                          /* authority */
    memcpy(o, sp1 + 1, (size_t)(lf - sp1)), o += lf - sp1; /* "/path VER\r\n" */
    memcpy(o, auth, al), o += al;
    memcpy(o, lf + 1, n - (size_t)(lf + 1 - head)), o += n - (size_t)(lf + 1 - head);
    memset(auth, 0, sizeof auth);
    return o - out;
}
