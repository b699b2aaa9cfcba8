/* kfpat.h - the write patterns of real clients, shared by wpat_client
 * (which writes them) and the tests (which know what must arrive).
 *
 *   one       head + body in one write
 *   split     the head, then the body (two writes)
 *   node      head over three iovecs and the body in a fourth, one writev
 *             (Node's plain-HTTP writev; libc only)
 *   undici    the head without its final CRLF, then CRLF + body (undici)
 *   chunked   the head, then a chunked body in 1-2 byte writes as python
 *             requests sends it, then the last chunk
 *   pipeline  three requests in one write
 *   big       head + a 40000-byte body in one write (TLS records of 16 KiB)
 *
 * `fixed` builds what the built-in rules must make of it on api.kimi.com:
 * the doubled /v1 and the platform header fixed in every head, bodies
 * untouched (they look like request lines on purpose).
 */
#ifndef KFPAT_H
#define KFPAT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KFPAT_MAXW 64

struct kfpat {
    char *buf; /* everything written, in order */
    size_t len, cap;
    size_t w[KFPAT_MAXW + 1]; /* write i is buf[w[i] .. w[i+1]) */
    int nw;                   /* writes (for `node`: iovecs of one writev) */
    int nreq;                 /* requests, hence answers */
    int vec;                  /* 1: all pieces go in one vector call */
};

static inline void kfpat_put(struct kfpat *p, const char *s, size_t n)
{
    if (p->len + n + 1 > p->cap) {
        p->cap = (p->len + n) * 2 + 1024;
        p->buf = realloc(p->buf, p->cap);
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = 0;
}

/* End the current write here. */
static inline void kfpat_cut(struct kfpat *p)
{
    if (p->nw < KFPAT_MAXW && p->len > p->w[p->nw])
        p->w[++p->nw] = p->len;
}

static inline void kfpat_head(struct kfpat *p, const char *host, int fixed, const char *framing)
{
    char h[512];
    int n = snprintf(h, sizeof h,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kftest/1\r\nX-Msh-Platform: %s\r\n"
                     "Content-Type: application/json\r\n%s\r\n",
                     fixed ? "/coding/v1/messages" : "/coding/v1/v1/messages", host,
                     fixed ? "kimi_cli" : "kimi_code_cli", framing);
    kfpat_put(p, h, (size_t)n);
    p->nreq++;
}

static inline void kfpat_body(struct kfpat *p, size_t n)
{
    static const char fake[] = "POST /coding/v1/v1/messages HTTP/1.1\r\n";
    for (size_t i = 0; i < n; i++)
        kfpat_put(p, &fake[i % (sizeof fake - 1)], 1);
}

static inline void kfpat_request(struct kfpat *p, const char *host, int fixed, size_t body)
{
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", body);
    kfpat_head(p, host, fixed, cl);
    kfpat_body(p, body);
}

/* 0 on success, -1 for an unknown pattern. */
static inline int kfpat_build(struct kfpat *p, const char *name, const char *host, int fixed)
{
    memset(p, 0, sizeof *p);
    if (!strcmp(name, "one")) {
        kfpat_request(p, host, fixed, 13);
    } else if (!strcmp(name, "split")) {
        kfpat_head(p, host, fixed, "Content-Length: 13\r\n");
        kfpat_cut(p);
        kfpat_body(p, 13);
    } else if (!strcmp(name, "node")) {
        kfpat_request(p, host, fixed, 13);
        size_t h = (size_t)(strstr(p->buf, "\r\n\r\n") + 4 - p->buf);
        p->w[1] = 100;
        p->w[2] = 106;
        p->w[3] = h;
        p->nw = 3;
        p->vec = 1;
    } else if (!strcmp(name, "undici")) {
        kfpat_request(p, host, fixed, 13);
        size_t h = (size_t)(strstr(p->buf, "\r\n\r\n") + 4 - p->buf);
        p->w[1] = h - 2;
        p->nw = 1;
    } else if (!strcmp(name, "chunked")) {
        kfpat_head(p, host, fixed, "Transfer-Encoding: chunked\r\n");
        static const char *const pieces[] = { "2", "\r\n", "ab", "\r\n", "1", "\r\n", "c", "\r\n",
                                              "2", "\r\n", "de", "\r\n", "0\r\n\r\n" };
        for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
            kfpat_cut(p);
            kfpat_put(p, pieces[i], strlen(pieces[i]));
        }
    } else if (!strcmp(name, "pipeline")) {
        for (int i = 0; i < 3; i++)
            kfpat_request(p, host, fixed, 13);
    } else if (!strcmp(name, "big")) {
        kfpat_request(p, host, fixed, 40000);
    } else {
        return -1;
    }
    kfpat_cut(p);
    return 0;
}

#endif
