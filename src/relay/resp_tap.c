/* resp_tap.c - watch the responses going back to the client, for the log.
 *
 * Observes only: the bytes are forwarded before and regardless of what
 * this parser thinks. It follows HTTP/1 response framing (status line,
 * Content-Length, chunked, 1xx, HEAD/204/304, read-until-close) to pair
 * each response with the request head that caused it, and for 4xx/5xx
 * keeps the first bytes of the body to log the JSON error message: a
 * client that turns a 403 into "429 overloaded" then still shows the real
 * cause in our log. Anything it cannot follow (an upgrade, a giant head)
 * turns it off for the connection.
 *
 * It also says when the upstream connection may serve another request
 * (tap_reusable): every request answered, the last response framed by
 * length or chunks, no `Connection: close`, not HTTP/1.0, no upgrade.
 * Memory: the struct is small; the head and error-body buffers and the
 * request lines exist only while a response needs them.
 */
#include "relay.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kf_log.h"

#define TAP_HEAD_MAX 4096
#define TAP_BODY_KEEP 2048
#define TAP_QUEUE 8
#define TAP_LINE TAP_LINE_MAX

enum { T_HEAD, T_BODY_CL, T_BODY_EOF, T_CH_SIZE, T_CH_DATA, T_CH_CRLF, T_CH_TRAILER, T_DEAD };

struct resp_tap {
    char host[256];
    const relay_ctx *ctx;     /* the client's, for its own log (relay_log) */
    int state;
    unsigned long long remaining;
    int status;
    int encoded;              /* Content-Encoding other than identity */
    int chunk_line_empty;     /* trailer: current line is empty so far */
    int no_reuse;             /* a request or response ends the connection's reuse */
    unsigned long answered;   /* complete responses */
    unsigned qh, qn;
    size_t head_len, body_len;
    int pending_log;          /* a 4xx/5xx whose body we are collecting */
    char *q[TAP_QUEUE];       /* request log lines, oldest at qh */
    unsigned char qflags[TAP_QUEUE];
    char *head;               /* TAP_HEAD_MAX while a head is arriving */
    char *body;               /* TAP_BODY_KEEP while an error body is kept */
};

#define QF_HEAD 1
#define QF_LOG 2

resp_tap *tap_new(const char *host)
{
    resp_tap *t = calloc(1, sizeof *t);
    if (t)
        snprintf(t->host, sizeof t->host, "%s", host);
    return t;
}

void tap_set_ctx(resp_tap *t, const relay_ctx *ctx)
{
    if (t)
        t->ctx = ctx;
}

static void pop(resp_tap *t)
{
    free(t->q[t->qh]);
    t->q[t->qh] = NULL;
    t->qh = (t->qh + 1) % TAP_QUEUE;
    t->qn--;
}

void tap_request(resp_tap *t, const char *line, int is_head, int log_always)
{
    if (!t)
        return;
    if (t->qn == TAP_QUEUE) /* pipelining deeper than we track: forget the oldest */
        pop(t);
    unsigned i = (t->qh + t->qn++) % TAP_QUEUE;
    t->q[i] = strdup(line); /* NULL (no memory): logged as "(request)" */
    t->qflags[i] = (unsigned char)((is_head ? QF_HEAD : 0) | (log_always ? QF_LOG : 0));
}

void tap_request_no_reuse(resp_tap *t)
{
    if (t)
        t->no_reuse = 1;
}

int tap_json_message(const char *body, size_t n, char *out, size_t outn)
{
    const char *end = body + n, *p = NULL;
    const char *err = memmem(body, n, "\"error\"", 7);
    if (err)
        p = memmem(err, (size_t)(end - err), "\"message\"", 9);
    if (!p)
        p = memmem(body, n, "\"message\"", 9);
    if (!p || outn == 0)
        return 0;
    p += 9;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p >= end || *p++ != ':')
        return 0;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p >= end || *p++ != '"')
        return 0;
    size_t o = 0;
    while (p < end && *p != '"' && o + 1 < outn) {
        char ch = *p++;
        if (ch == '\\' && p < end) {
            char e = *p++;
            ch = e == 'n' || e == 't' || e == 'r' ? ' ' : e == 'u' ? '?' : e;
            if (e == 'u')
                p += (end - p) >= 4 ? 4 : end - p;
        }
        out[o++] = (unsigned char)ch < 0x20 ? ' ' : ch;
    }
    out[o] = 0;
    return o > 0;
}

static void log_done(resp_tap *t, const char *line, int log_always, const char *extra)
{
    char msg[400] = "";
    if (t->status >= 400 && t->body_len && !t->encoded &&
        tap_json_message(t->body, t->body_len, msg + 2, sizeof msg - 2))
        memcpy(msg, ": ", 2);
    else if (t->status >= 400 && t->encoded)
        snprintf(msg, sizeof msg, " (body encoded)");
    int level = t->status >= 400 ? KF_LOG_WARN : log_always ? KF_LOG_INFO : KF_LOG_DEBUG;
    if (t->status)
        relay_log(t->ctx, level, "[relay] %s: %s => %d%s%s", t->host, line, t->status, msg, extra);
    else
        relay_log(t->ctx, KF_LOG_WARN, "[relay] %s: %s => no response%s", t->host, line, extra);
}

/* The response (status, maybe body) is complete enough to log. */
static void finish_response(resp_tap *t)
{
    if (!t->pending_log)
        return;
    t->pending_log = 0;
    if (t->qn) {
        log_done(t, t->q[t->qh] ? t->q[t->qh] : "(request)", t->qflags[t->qh] & QF_LOG, "");
        pop(t);
    } else {
        log_done(t, "(response without a request)", 1, "");
    }
    free(t->body);
    t->body = NULL;
    t->body_len = 0;
}

static const char *hdr_value(const char *head, const char *name, char *buf, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = strchr(head, '\n'); p; p = strchr(p, '\n')) {
        p++;
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t l = strcspn(v, "\r\n");
            snprintf(buf, n, "%.*s", (int)(l < n ? l : n - 1), v);
            return buf;
        }
    }
    return NULL;
}

/* A complete response head is in t->head. */
static void on_head(resp_tap *t)
{
    t->head[t->head_len] = 0;
    int st = 0, minor = 1;
    if (sscanf(t->head, "HTTP/1.%d %3d", &minor, &st) != 2 || st < 100) {
        t->state = T_DEAD;
        t->no_reuse = 1;
        return;
    }
    t->status = st;
    t->head_len = 0;
    if (st < 200) {
        if (st == 101) {
            t->state = T_DEAD; /* upgraded: not HTTP any more */
            t->no_reuse = 1;
        }
        return; /* 100/103: the real answer follows */
    }
    int is_head = t->qn ? t->qflags[t->qh] & QF_HEAD : 0;
    char v[128];
    if (minor == 0 || (hdr_value(t->head, "Connection", v, sizeof v) && strcasestr(v, "close")))
        t->no_reuse = 1;
    t->encoded = hdr_value(t->head, "Content-Encoding", v, sizeof v) && strcasecmp(v, "identity");
    t->body_len = 0;
    t->pending_log = 1;
    if (is_head || st == 204 || st == 304) {
        finish_response(t);
        t->state = T_HEAD;
    } else if (hdr_value(t->head, "Transfer-Encoding", v, sizeof v) && strcasestr(v, "chunked")) {
        t->state = T_CH_SIZE;
        t->remaining = 0;
    } else if (hdr_value(t->head, "Content-Length", v, sizeof v)) {
        t->remaining = strtoull(v, NULL, 10);
        t->state = t->remaining ? T_BODY_CL : T_HEAD;
        if (!t->remaining)
            finish_response(t);
    } else {
        t->state = T_BODY_EOF;
        t->no_reuse = 1; /* the body ends when the connection does */
    }
    if (t->state == T_HEAD)
        t->answered++;
    if (t->state != T_HEAD && st < 400)
        finish_response(t); /* nothing to wait for: log now (SSE streams last) */
}

static void keep_body(resp_tap *t, const char *p, size_t n)
{
    if (!t->pending_log)
        return;
    if (!t->body && !(t->body = malloc(TAP_BODY_KEEP))) {
        finish_response(t);
        return;
    }
    size_t room = TAP_BODY_KEEP - t->body_len;
    if (n > room)
        n = room;
    memcpy(t->body + t->body_len, p, n);
    t->body_len += n;
    if (t->body_len == TAP_BODY_KEEP)
        finish_response(t);
}

void tap_feed(resp_tap *t, const char *p, size_t n)
{
    while (t && n && t->state != T_DEAD) {
        switch (t->state) {
        case T_HEAD: {
            if (!t->head && !(t->head = malloc(TAP_HEAD_MAX)))
                t->head_len = TAP_HEAD_MAX - 1; /* no memory: stop following */
            if (t->head_len == TAP_HEAD_MAX - 1) {
                t->state = T_DEAD;
                t->no_reuse = 1;
                break;
            }
            char c = *p++;
            n--;
            t->head[t->head_len++] = c;
            if (c == '\n' && ((t->head_len >= 2 && t->head[t->head_len - 2] == '\n') ||
                              (t->head_len >= 4 && !memcmp(t->head + t->head_len - 4, "\r\n\r\n", 4)))) {
                on_head(t);
                free(t->head);
                t->head = NULL;
            }
            break;
        }
        case T_BODY_EOF:
            keep_body(t, p, n);
            n = 0;
            break;
        case T_BODY_CL:
        case T_CH_DATA: {
            size_t k = n < t->remaining ? n : (size_t)t->remaining;
            keep_body(t, p, k);
            p += k;
            n -= k;
            t->remaining -= k;
            if (!t->remaining) {
                if (t->state == T_BODY_CL) {
                    finish_response(t);
                    t->answered++;
                    t->state = T_HEAD;
                } else {
                    t->state = T_CH_CRLF;
                }
            }
            break;
        }
        case T_CH_SIZE: {
            char c = *p++;
            n--;
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d >= 0 && t->remaining < (1ULL << 56) && !t->chunk_line_empty)
                t->remaining = t->remaining * 16 + (unsigned)d;
            else if (c != '\n' && c != '\r')
                t->chunk_line_empty = 1; /* extension: ignore the rest of the line */
            if (c == '\n') {
                t->chunk_line_empty = 0;
                if (t->remaining) {
                    t->state = T_CH_DATA;
                } else {
                    t->state = T_CH_TRAILER;
                    t->chunk_line_empty = 1;
                }
            }
            break;
        }
        case T_CH_CRLF:
            if (*p == '\n') {
                t->state = T_CH_SIZE;
                t->remaining = 0;
                t->chunk_line_empty = 0;
            }
            p++;
            n--;
            break;
        case T_CH_TRAILER: {
            char c = *p++;
            n--;
            if (c == '\n') {
                if (t->chunk_line_empty) {
                    finish_response(t);
                    t->answered++;
                    t->state = T_HEAD;
                }
                t->chunk_line_empty = 1;
            } else if (c != '\r') {
                t->chunk_line_empty = 0;
            }
            break;
        }
        }
    }
}

int tap_at_boundary(const resp_tap *t)
{
    return !t || t->state == T_DEAD || t->state == T_BODY_EOF ||
           (t->state == T_HEAD && t->head_len == 0);
}

int tap_reusable(const resp_tap *t)
{
    return t && !t->no_reuse && t->answered && t->state == T_HEAD && t->head_len == 0 &&
           t->qn == 0 && !t->pending_log;
}

int tap_waiting(const resp_tap *t)
{
    return t && (t->qn > 0 || t->pending_log || t->head_len > 0);
}

const char *tap_oldest_line(const resp_tap *t)
{
    return t && t->qn ? (t->q[t->qh] ? t->q[t->qh] : "(request)") : NULL;
}

void tap_drop_oldest(resp_tap *t)
{
    if (t && t->qn)
        pop(t);
}

void tap_finish(resp_tap *t)
{
    if (!t)
        return;
    finish_response(t); /* body until close, or cut short: log what we have */
    while (t->qn) {
        t->status = 0;
        log_done(t, t->q[t->qh] ? t->q[t->qh] : "(request)", 1, "");
        pop(t);
    }
}

void tap_free(resp_tap *t)
{
    if (!t)
        return;
    while (t->qn)
        pop(t);
    free(t->head);
    free(t->body);
    free(t);
}
