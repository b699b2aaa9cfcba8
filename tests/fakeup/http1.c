/* http1.c: HTTP/1.x server side of one connection: keep-alive, pipelining,
 * Content-Length and chunked bodies (with trailers), Expect: 100-continue,
 * HEAD, SSE streamed as chunks. Malformed input gets 400 and a close. */
#include "fakeup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEAD_MAX (64 * 1024)
#define LINE_MAX_ (8 * 1024)
#define RBUF (256 * 1024)

struct h1 {
    struct fu_conn *c;
    char *buf;
    size_t off, len; /* unread bytes: buf[off, len) */
    unsigned served; /* requests answered on this connection */
};

/* Read more bytes; 1 on progress, 0 on EOF/error/full buffer. */
static int fill(struct h1 *h)
{
    if (h->off == h->len)
        h->off = h->len = 0;
    if (h->len == RBUF) {
        if (!h->off)
            return 0;
        memmove(h->buf, h->buf + h->off, h->len - h->off);
        h->len -= h->off;
        h->off = 0;
    }
    ssize_t n = fu_conn_read(h->c, h->buf + h->len, RBUF - h->len);
    if (n <= 0)
        return 0;
    h->len += (size_t)n;
    return 1;
}

/* End of the head (after its empty line) in p[0,n), or 0. Bare LF is
 * accepted as a line end, like most servers. */
static size_t head_end(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 < n && p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* One header line (no line end) into hs; -1 if malformed. */
static int parse_field(struct fu_hdrs *hs, const char *l, size_t n)
{
    size_t i = 0;
    while (i < n && tchar((unsigned char)l[i]))
        i++;
    if (i == 0 || i == n || l[i] != ':')
        return -1; /* also rejects obs-fold and space before ':' */
    size_t v = i + 1, e = n;
    while (v < e && (l[v] == ' ' || l[v] == '\t'))
        v++;
    while (e > v && (l[e - 1] == ' ' || l[e - 1] == '\t'))
        e--;
    for (size_t k = v; k < e; k++) {
        unsigned char ch = (unsigned char)l[k];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -1;
    }
    fu_hdrs_add(hs, l, i, l + v, e - v);
    return 0;
}

/* Request line and fields of head[0,n). */
static int parse_head(struct fu_req *r, const char *head, size_t n)
{
    const char *p = head, *end = head + n;
    for (int first = 1; p < end; first = 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = (size_t)(nl - p);
        if (l && p[l - 1] == '\r')
            l--;
        if (memchr(p, '\r', l))
            return -1;
        if (!first && l == 0)
            break;
        if (first) {
            const char *sp1 = memchr(p, ' ', l);
            const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', l - (size_t)(sp1 + 1 - p)) : NULL;
            if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1)
                return -1;
            for (const char *q = p; q < sp1; q++)
                if (!tchar((unsigned char)*q))
                    return -1;
            for (const char *q = sp1 + 1; q < sp2; q++)
                if ((unsigned char)*q <= 0x20 || *q == 0x7f)
                    return -1;
            size_t vl = l - (size_t)(sp2 + 1 - p);
            if (vl == 8 && !memcmp(sp2 + 1, "HTTP/1.1", 8))
                r->version = "HTTP/1.1";
            else if (vl == 8 && !memcmp(sp2 + 1, "HTTP/1.0", 8))
                r->version = "HTTP/1.0";
            else
                return -1;
            r->method = fu_strndup(p, (size_t)(sp1 - p));
            r->target = fu_strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
        } else if (parse_field(&r->hdrs, p, l) < 0) {
            return -1;
        }
        p = nl + 1;
    }
    return 0;
}

/* Decide body framing: *cl = length, or chunked. -1 if inconsistent. */
static int framing(struct fu_req *r, uint64_t *cl)
{
    int nhost = 0, have_cl = 0;
    const char *te = NULL;
    *cl = 0;
    for (size_t i = 0; i < r->hdrs.n; i++) {
        const char *name = r->hdrs.v[i].name, *v = r->hdrs.v[i].value;
        if (!strcasecmp(name, "host")) {
            nhost++;
            free(r->host);
            r->host = strdup(v);
        } else if (!strcasecmp(name, "transfer-encoding")) {
            te = v; /* the last one carries the final coding */
        } else if (!strcasecmp(name, "content-length")) {
            char *e;
            errno = 0;
            unsigned long long x = strtoull(v, &e, 10);
            if (!*v || *v < '0' || *v > '9' || *e || errno || (have_cl && x != *cl))
                return -1;
            *cl = x;
            have_cl = 1;
        }
    }
    if (nhost > 1 || (nhost == 0 && !strcmp(r->version, "HTTP/1.1")))
        return -1;
    if (te) {
        size_t l = strlen(te);
        while (l && (te[l - 1] == ' ' || te[l - 1] == ','))
            l--;
        if (l < 7 || strncasecmp(te + l - 7, "chunked", 7) ||
            (l > 7 && te[l - 8] != ' ' && te[l - 8] != ','))
            return -1;
        r->chunked = 1;
        *cl = 0;
    }
    return 0;
}

static int read_exact(struct h1 *h, struct fu_req *r, uint64_t n)
{
    while (n) {
        if (h->off == h->len && !fill(h))
            return -1;
        size_t take = h->len - h->off;
        if (take > n)
            take = (size_t)n;
        fu_req_body(r, h->buf + h->off, take);
        h->off += take;
        n -= take;
    }
    return 0;
}

/* Next line (without its line end) from the buffer, or NULL. */
static const char *read_line(struct h1 *h, size_t *len)
{
    char *nl;
    while (!(nl = memchr(h->buf + h->off, '\n', h->len - h->off))) {
        if (h->len - h->off > LINE_MAX_ || !fill(h))
            return NULL;
    }
    const char *l = h->buf + h->off;
    *len = (size_t)(nl - l);
    h->off = (size_t)(nl + 1 - h->buf);
    if (*len && l[*len - 1] == '\r')
        (*len)--;
    return l;
}

static int read_chunked(struct h1 *h, struct fu_req *r)
{
    for (;;) {
        size_t l, i = 0;
        const char *line = read_line(h, &l);
        uint64_t size = 0;
        if (!line)
            return -1;
        for (; i < l && strchr("0123456789abcdefABCDEF", line[i]) && line[i]; i++) {
            if (size >> 59)
                return -1;
            char d = line[i];
            size = size * 16 + (uint64_t)(d <= '9' ? d - '0' : (d | 0x20) - 'a' + 10);
        }
        if (i == 0 || (i < l && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
            return -1;
        if (size == 0)
            break;
        if (read_exact(h, r, size) < 0 || !(line = read_line(h, &l)) || l != 0)
            return -1;
    }
    for (;;) { /* trailer section up to the empty line */
        size_t l;
        const char *line = read_line(h, &l);
        if (!line)
            return -1;
        if (l == 0)
            return 0;
        if (parse_field(&r->trailers, line, l) < 0)
            return -1;
    }
}

static int wants_close(const struct fu_req *r)
{
    if (!r->version || strcmp(r->version, "HTTP/1.1"))
        return 1; /* HTTP/1.0: one request per connection */
    for (size_t i = 0; i < r->hdrs.n; i++)
        if (!strcasecmp(r->hdrs.v[i].name, "connection")) {
            const char *v = r->hdrs.v[i].value;
            for (const char *p = v; (p = strcasestr(p, "close")); p += 5)
                if ((p == v || p[-1] == ' ' || p[-1] == ',') && (!p[5] || p[5] == ' ' || p[5] == ','))
                    return 1;
        }
    return 0;
}

static int send_response(struct fu_conn *c, const struct fu_req *r, const struct fu_resp *s,
                         int close_after)
{
    int chunked = s->sse && !s->head_only && r->version && !strcmp(r->version, "HTTP/1.1");
    struct fu_buf b = {0};
    fu_buf_printf(&b, "HTTP/1.1 %d %s\r\nServer: fakeup\r\nContent-Type: %s\r\n"
                  "x-fakeup-request: %lu\r\n", s->status, fu_reason(s->status), s->ctype, s->n);
    if (s->sse)
        fu_buf_puts(&b, chunked ? "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                                : "Cache-Control: no-cache\r\n");
    else
        fu_buf_printf(&b, "Content-Length: %zu\r\n", s->body.len);
    fu_buf_puts(&b, close_after ? "Connection: close\r\n\r\n" : "\r\n");
    if (!s->sse && !s->head_only)
        fu_buf_add(&b, s->body.p, s->body.len);
    int rc = fu_conn_write(c, b.p, b.len);
    fu_buf_free(&b);
    for (int i = 0; rc == 0 && s->sse && !s->head_only && i < s->nev; i++) {
        if (i)
            fu_sleep_ms(fu_sse_delay_ms); /* each event leaves before the next exists */
        struct fu_buf e = {0};
        if (chunked)
            fu_buf_printf(&e, "%zx\r\n", s->ev[i].len);
        fu_buf_add(&e, s->ev[i].p, s->ev[i].len);
        if (chunked)
            fu_buf_puts(&e, i + 1 == s->nev ? "\r\n0\r\n\r\n" : "\r\n");
        rc = fu_conn_write(c, e.p, e.len);
        fu_buf_free(&e);
    }
    return rc;
}

static void bad_request(struct fu_conn *c, struct fu_req *r)
{
    struct fu_resp s = {0};
    fu_gate_bad_request(&s);
    s.n = fu_record(r, s.status);
    send_response(c, r, &s, 1);
    fu_resp_free(&s);
}

/* Serve one request; 1 to continue the connection, 0 to close it. */
static int one_request(struct h1 *h)
{
    size_t end;
    for (;;) { /* skip stray empty lines between requests (RFC 9112 §2.2) */
        while (h->off < h->len && (h->buf[h->off] == '\r' || h->buf[h->off] == '\n'))
            h->off++;
        if (h->off < h->len && (end = head_end(h->buf + h->off, h->len - h->off)))
            break;
        if (h->len - h->off >= HEAD_MAX) {
            struct fu_req r;
            fu_req_init(&r, h->c, NULL);
            r.head = (unsigned char *)fu_strndup(h->buf + h->off, h->len - h->off);
            r.head_len = h->len - h->off;
            bad_request(h->c, &r);
            fu_req_free(&r);
            return 0;
        }
        if (!fill(h))
            return 0;
    }
    /* --close-after N: a server whose keep-alive ran out just as the next
     * request came in (proxies must retry a reused connection). */
    if (fu_close_after && h->served >= fu_close_after)
        return 0;
    struct fu_req r;
    uint64_t cl = 0;
    int keep = 0;
    fu_req_init(&r, h->c, NULL); /* version: null in the record until parsed */
    r.head = (unsigned char *)fu_strndup(h->buf + h->off, end);
    r.head_len = end;
    h->off += end;
    if (parse_head(&r, (const char *)r.head, end) < 0 || framing(&r, &cl) < 0) {
        bad_request(h->c, &r);
        goto out;
    }
    const char *expect = fu_hdrs_get(&r.hdrs, "expect");
    if (expect && !strcasecmp(expect, "100-continue") && (r.chunked || cl) &&
        !strcmp(r.version, "HTTP/1.1") &&
        fu_conn_write(h->c, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
        goto out;
    if ((r.chunked ? read_chunked(h, &r) : read_exact(h, &r, cl)) < 0) {
        if (h->off < h->len || r.chunked) /* bad framing, not just a hang-up */
            bad_request(h->c, &r);
        goto out;
    }
    struct fu_resp s = {0};
    fu_gate(&r, &s);
    s.n = fu_record(&r, s.status);
    /* Transfer-Encoding with Content-Length is a smuggling shape: close. */
    keep = !wants_close(&r) && !(r.chunked && fu_hdrs_get(&r.hdrs, "content-length"));
    if (send_response(h->c, &r, &s, !keep) < 0)
        keep = 0;
    h->served++;
    fu_resp_free(&s);
out:
    fu_req_free(&r);
    return keep;
}

void fu_h1_serve(struct fu_conn *c)
{
    struct h1 h = {c, fu_xmalloc(RBUF), 0, 0, 0};
    while (one_request(&h))
        ;
    free(h.buf);
    fu_conn_linger_close(c);
}
