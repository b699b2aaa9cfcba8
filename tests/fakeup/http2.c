/* http2.c: HTTP/2 over TLS (ALPN h2) with libnghttp2's server session.
 * One loop per connection: send what nghttp2 has, release due SSE events
 * (deferred data providers resumed on a timer), poll, feed what arrives. */
#include "fakeup.h"

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_MS (300 * 1000)

struct h2s {
    int32_t id;
    struct fu_req req;
    struct fu_resp resp;
    struct fu_buf out; /* response bytes not yet handed to nghttp2 */
    size_t out_off;
    int ev_next;       /* next SSE event to release */
    int64_t due;       /* when to release it */
    struct h2s *next;
};

struct h2c {
    struct fu_conn *c;
    nghttp2_session *s;
    struct h2s *streams;
};

static ssize_t data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    (void)ud;
    struct h2s *st = src->ptr;
    size_t avail = st->out.len - st->out_off;
    int more = st->resp.sse && st->ev_next < st->resp.nev;
    if (!avail && more)
        return NGHTTP2_ERR_DEFERRED;
    size_t n = avail < len ? avail : len;
    if (n)
        memcpy(buf, st->out.p + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out.len && !more)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static nghttp2_nv nv(const char *name, const char *value)
{
    nghttp2_nv v = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                    NGHTTP2_NV_FLAG_NONE};
    return v;
}

static int respond(struct h2c *h, struct h2s *st)
{
    struct fu_req *r = &st->req;
    struct fu_resp *s = &st->resp;
    if (!r->host) {
        const char *host = fu_hdrs_get(&r->hdrs, "host");
        r->host = host ? strdup(host) : NULL;
    }
    if (r->method && r->target)
        fu_gate(r, s);
    else
        fu_gate_bad_request(s);
    s->n = fu_record(r, s->status);

    char status[8], n[24], len[24];
    snprintf(status, sizeof status, "%d", s->status);
    snprintf(n, sizeof n, "%lu", s->n);
    snprintf(len, sizeof len, "%zu", s->body.len);
    nghttp2_nv hdrs[6];
    size_t nh = 0;
    hdrs[nh++] = nv(":status", status);
    hdrs[nh++] = nv("server", "fakeup");
    hdrs[nh++] = nv("content-type", s->ctype);
    hdrs[nh++] = nv("x-fakeup-request", n);
    hdrs[nh++] = s->sse ? nv("cache-control", "no-cache") : nv("content-length", len);
    if (s->head_only || (!s->sse && !s->body.len))
        return nghttp2_submit_response(h->s, st->id, hdrs, nh, NULL);
    if (s->sse) {
        fu_buf_add(&st->out, s->ev[0].p, s->ev[0].len);
        st->ev_next = 1;
        st->due = fu_now_ms() + fu_sse_delay_ms;
    } else {
        fu_buf_add(&st->out, s->body.p, s->body.len);
    }
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    return nghttp2_submit_response(h->s, st->id, hdrs, nh, &prd);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2c *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2s *st = calloc(1, sizeof *st);
    if (!st)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    st->id = f->hd.stream_id;
    fu_req_init(&st->req, h->c, "HTTP/2");
    st->next = h->streams;
    h->streams = st;
    nghttp2_session_set_stream_user_data(s, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct fu_req *r = &st->req;
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        fu_hdrs_add(&r->trailers, (const char *)name, nlen, (const char *)value, vlen);
        return 0;
    }
    /* Pseudo-headers are recorded too: "headers as received". */
    fu_hdrs_add(&r->hdrs, (const char *)name, nlen, (const char *)value, vlen);
    char **slot = NULL;
    if (nlen == 7 && !memcmp(name, ":method", 7))
        slot = &r->method;
    else if (nlen == 5 && !memcmp(name, ":path", 5))
        slot = &r->target;
    else if (nlen == 10 && !memcmp(name, ":authority", 10))
        slot = &r->host;
    if (slot) {
        free(*slot);
        *slot = fu_strndup((const char *)value, vlen);
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d,
                   size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, id);
    if (st)
        fu_req_body(&st->req, d, len);
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st && respond(ud, st) != 0)
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
    (void)s;
    (void)err;
    struct h2c *h = ud;
    for (struct h2s **pp = &h->streams; *pp; pp = &(*pp)->next) {
        struct h2s *st = *pp;
        if (st->id != id)
            continue;
        *pp = st->next;
        fu_req_free(&st->req);
        fu_resp_free(&st->resp);
        fu_buf_free(&st->out);
        free(st);
        break;
    }
    return 0;
}

/* Release SSE events that are due; returns ms until the next one, or -1. */
static int release_due(struct h2c *h, int *released)
{
    int64_t now = fu_now_ms(), wait = -1;
    for (struct h2s *st = h->streams; st; st = st->next) {
        if (!st->resp.sse || st->ev_next >= st->resp.nev)
            continue;
        if (st->due <= now) {
            struct fu_buf *e = &st->resp.ev[st->ev_next++];
            fu_buf_add(&st->out, e->p, e->len);
            st->due = now + fu_sse_delay_ms;
            nghttp2_session_resume_data(h->s, st->id);
            *released = 1;
            if (st->ev_next >= st->resp.nev)
                continue;
        }
        if (wait < 0 || st->due - now < wait)
            wait = st->due - now;
    }
    return (int)wait;
}

static int flush(struct h2c *h)
{
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(h->s, &d);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (fu_conn_write(h->c, d, (size_t)n) < 0)
            return -1;
    }
}

static void loop(struct h2c *h)
{
    uint8_t buf[16384];
    for (;;) {
        if (flush(h) < 0)
            return;
        if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s))
            return;
        int released = 0, wait = release_due(h, &released);
        if (released)
            continue; /* send it now */
        if (!fu_conn_pending(h->c)) {
            struct pollfd p = {h->c->fd, POLLIN, 0};
            int r = poll(&p, 1, wait < 0 ? IDLE_MS : wait);
            if (r < 0)
                continue;
            if (r == 0 && wait < 0)
                return; /* idle */
            if (r == 0)
                continue;
        }
        ssize_t n = fu_conn_read(h->c, buf, sizeof buf);
        if (n <= 0 || nghttp2_session_mem_recv(h->s, buf, (size_t)n) < 0)
            return;
    }
}

void fu_h2_serve(struct fu_conn *c)
{
    struct h2c h = {c, NULL, NULL};
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    int rc = nghttp2_session_server_new(&h.s, cb, &h);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0)
        return;
    /* Large windows: 64 MiB uploads should not crawl. */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 256},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    nghttp2_submit_settings(h.s, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(h.s, NGHTTP2_FLAG_NONE, 0, 1 << 26);
    loop(&h);
    nghttp2_session_del(h.s); /* closes the remaining streams via on_close */
    while (h.streams) /* in case nghttp2 did not */
        on_close(NULL, h.streams->id, 0, &h);
    if (c->ssl)
        SSL_shutdown(c->ssl);
}
