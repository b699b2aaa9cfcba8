/* util.c: buffers, time, connection I/O, request/response bookkeeping. */
#include "fakeup.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void *fu_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        /* A test tool: running out of memory is a harness bug, say so. */
        fprintf(stderr, "fakeup: out of memory\n");
        abort();
    }
    return p;
}

char *fu_strndup(const char *s, size_t n)
{
    char *p = fu_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static void buf_reserve(struct fu_buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "fakeup: out of memory\n");
        abort();
    }
    b->p = p;
    b->cap = cap;
}

void fu_buf_add(struct fu_buf *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;
}

void fu_buf_puts(struct fu_buf *b, const char *s)
{
    fu_buf_add(b, s, strlen(s));
}

void fu_buf_printf(struct fu_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void fu_buf_free(struct fu_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int64_t fu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

ssize_t fu_conn_read(struct fu_conn *c, void *buf, size_t n)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
        if (r > 0)
            return r;
        return SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    for (;;) {
        ssize_t r = read(c->fd, buf, n);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -1;
    }
}

int fu_conn_write(struct fu_conn *c, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t w;
        if (c->ssl) {
            int r = SSL_write(c->ssl, p, (int)chunk);
            if (r <= 0)
                return -1;
            w = r;
        } else {
            w = send(c->fd, p, chunk, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fu_conn_pending(struct fu_conn *c)
{
    return c->ssl && (SSL_pending(c->ssl) > 0 || SSL_has_pending(c->ssl));
}

/* Closing right after the last response would make the kernel answer
 * unread client bytes (pipelined requests) with RST, which can destroy the
 * response in flight: half-close, then drain for a moment. */
void fu_conn_linger_close(struct fu_conn *c)
{
    if (c->ssl)
        SSL_shutdown(c->ssl);
    shutdown(c->fd, SHUT_WR);
    char sink[4096];
    int64_t end = fu_now_ms() + 1000;
    for (;;) {
        int64_t left = end - fu_now_ms();
        struct pollfd pfd = {c->fd, POLLIN, 0};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        if (read(c->fd, sink, sizeof sink) <= 0)
            break;
    }
}

void fu_hdrs_add(struct fu_hdrs *h, const char *name, size_t nlen,
                 const char *value, size_t vlen)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct fu_hdr *v = realloc(h->v, cap * sizeof *v);
        if (!v) {
            fprintf(stderr, "fakeup: out of memory\n");
            abort();
        }
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n].name = fu_strndup(name, nlen);
    h->v[h->n].value = fu_strndup(value, vlen);
    h->n++;
}

void fu_hdrs_free(struct fu_hdrs *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    free(h->v);
    memset(h, 0, sizeof *h);
}

const char *fu_hdrs_get(const struct fu_hdrs *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcasecmp(h->v[i].name, name))
            return h->v[i].value;
    return NULL;
}

void fu_req_init(struct fu_req *r, const struct fu_conn *c, const char *version)
{
    memset(r, 0, sizeof *r);
    r->conn = c;
    r->version = version;
    r->sha = EVP_MD_CTX_new();
    if (!r->sha || !EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL)) {
        fprintf(stderr, "fakeup: cannot initialise SHA-256\n");
        abort();
    }
}

void fu_req_body(struct fu_req *r, const void *d, size_t n)
{
    EVP_DigestUpdate(r->sha, d, n);
    r->body_len += n;
    if (r->keep.len < FU_KEEP_MAX) {
        size_t room = FU_KEEP_MAX - r->keep.len;
        fu_buf_add(&r->keep, d, n < room ? n : room);
    }
}

void fu_req_free(struct fu_req *r)
{
    free(r->method);
    free(r->target);
    free(r->host);
    free(r->head);
    fu_hdrs_free(&r->hdrs);
    fu_hdrs_free(&r->trailers);
    EVP_MD_CTX_free(r->sha);
    fu_buf_free(&r->keep);
    memset(r, 0, sizeof *r);
}

void fu_resp_free(struct fu_resp *r)
{
    fu_buf_free(&r->body);
    for (int i = 0; i < FU_MAX_EVENTS; i++)
        fu_buf_free(&r->ev[i]);
    memset(r, 0, sizeof *r);
}

const char *fu_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    default: return "Unknown";
    }
}
