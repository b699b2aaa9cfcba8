/* record.c: one JSON line per request, appended to --record FILE.
 * Tests assert on these lines, so they must be complete before the answer
 * leaves: fu_record() writes the whole line with one write() under a lock
 * (line order == n order) and returns before the response is sent. */
#include "fakeup.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int rec_fd = -1;
static unsigned long rec_n;
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;

int fu_record_open(const char *path)
{
    rec_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return rec_fd < 0 ? -1 : 0;
}

/* Length of a valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) { len = 2; cp = p[0] & 0x1f; min = 0x80; }
    else if ((p[0] & 0xf0) == 0xe0) { len = 3; cp = p[0] & 0x0f; min = 0x800; }
    else if ((p[0] & 0xf8) == 0xf0) { len = 4; cp = p[0] & 0x07; min = 0x10000; }
    else return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* JSON string; bytes that are not valid UTF-8 become \u00XX (lossy: the
 * exact bytes of an HTTP/1 head are in head_b64). */
static void json_str(struct fu_buf *b, const char *s)
{
    if (!s) {
        fu_buf_puts(b, "null");
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    fu_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            fu_buf_add(b, esc, 2);
            i++;
        } else if (ch < 0x20 || ch == 0x7f) {
            fu_buf_printf(b, "\\u%04x", ch);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (!l) {
                fu_buf_printf(b, "\\u%04x", ch);
                i++;
            } else {
                fu_buf_add(b, p + i, l);
                i += l;
            }
        }
    }
    fu_buf_add(b, "\"", 1);
}

static void json_hdrs(struct fu_buf *b, const struct fu_hdrs *h)
{
    fu_buf_puts(b, "[");
    for (size_t i = 0; i < h->n; i++) {
        fu_buf_puts(b, i ? ",[" : "[");
        json_str(b, h->v[i].name);
        fu_buf_puts(b, ",");
        json_str(b, h->v[i].value);
        fu_buf_puts(b, "]");
    }
    fu_buf_puts(b, "]");
}

static void json_b64(struct fu_buf *b, const unsigned char *d, size_t n)
{
    if (!d) {
        fu_buf_puts(b, "null");
        return;
    }
    char *out = fu_xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, d, (int)n);
    fu_buf_add(b, "\"", 1);
    fu_buf_puts(b, out);
    fu_buf_add(b, "\"", 1);
    free(out);
}

static void json_sha(struct fu_buf *b, const struct fu_req *r)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    /* Finalise a copy so the request's context stays usable. */
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_MD_CTX_copy_ex(c, r->sha))
        EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
    fu_buf_puts(b, "\"");
    for (unsigned i = 0; i < mdlen; i++)
        fu_buf_printf(b, "%02x", md[i]);
    fu_buf_puts(b, "\"");
}

unsigned long fu_record(const struct fu_req *r, int status)
{
    const struct fu_conn *c = r->conn;
    struct fu_buf rest = {0};
    fu_buf_printf(&rest, ",\"conn\":%lu,\"listener\":", c->id);
    json_str(&rest, c->listener);
    fu_buf_puts(&rest, ",\"sni\":");
    json_str(&rest, c->sni);
    fu_buf_puts(&rest, ",\"alpn\":");
    json_str(&rest, c->alpn);
    fu_buf_puts(&rest, ",\"version\":");
    json_str(&rest, r->version);
    fu_buf_puts(&rest, ",\"method\":");
    json_str(&rest, r->method);
    fu_buf_puts(&rest, ",\"target\":");
    json_str(&rest, r->target);
    fu_buf_puts(&rest, ",\"host\":");
    json_str(&rest, r->host);
    fu_buf_puts(&rest, ",\"headers\":");
    json_hdrs(&rest, &r->hdrs);
    fu_buf_puts(&rest, ",\"trailers\":");
    json_hdrs(&rest, &r->trailers);
    fu_buf_puts(&rest, ",\"head_b64\":");
    json_b64(&rest, r->head, r->head_len);
    fu_buf_printf(&rest, ",\"body_len\":%llu,\"body_sha256\":",
                  (unsigned long long)r->body_len);
    json_sha(&rest, r);
    fu_buf_printf(&rest, ",\"chunked\":%s,\"status\":%d}\n",
                  r->chunked ? "true" : "false", status);

    pthread_mutex_lock(&rec_mu);
    unsigned long n = ++rec_n;
    struct fu_buf line = {0};
    fu_buf_printf(&line, "{\"n\":%lu", n);
    fu_buf_add(&line, rest.p, rest.len);
    size_t off = 0;
    while (rec_fd >= 0 && off < line.len) {
        ssize_t w = write(rec_fd, line.p + off, line.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "fakeup: record write failed: %s\n", strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    pthread_mutex_unlock(&rec_mu);
    fu_buf_free(&line);
    fu_buf_free(&rest);
    return n;
}
