/* harness.h - requests shared by the shim test client (kfclient.c) and the
 * Criterion tests (test_shim.c): what a client sends and what the server
 * must receive once kimifix rewrote it under tests' rules (TEST_RULES). */
#ifndef KF_SHIM_HARNESS_H
#define KF_SHIM_HARNESS_H

#include <stdio.h>
#include <string.h>

/* The rules every test uses (plus a connect-to line with the server port):
 * built-in defaults fix the doubled /v1; test-grow makes the head longer,
 * so a rewritten head never fits where the original did. */
#define TEST_GROW_HDR "X-Kimifix-Test: grown-by-kimifix-0123456789-0123456789\r\n"
/* The same header as Python's repr() prints it. */
#define TEST_GROW_HDR_PY "X-Kimifix-Test: grown-by-kimifix-0123456789-0123456789\\r\\n"
#define TEST_RULES                                                      \
    "rule test-grow\n"                                                  \
    "    host api.kimi.com\n"                                           \
    "    path /coding/\n"                                               \
    "    add-header X-Kimifix-Test grown-by-kimifix-0123456789-0123456789\n"

/* A request head as a client sends it (fixed = 0) or as it must arrive
 * (fixed = 1). `pad` > 0 adds an X-Pad header so the head has exactly that
 * many bytes before rewriting (for the [260, 6, 20] iovec pattern).
 * Content-Length is `body`; chunked when body < 0. Returns the length. */
static inline size_t kf_t_head(char *out, size_t n, long body, size_t pad, int fixed)
{
    char len[64];
    if (body >= 0)
        snprintf(len, sizeof len, "Content-Length: %ld\r\n", body);
    else
        snprintf(len, sizeof len, "Transfer-Encoding: chunked\r\n");
    const char *path = fixed ? "/coding/v1/messages" : "/coding/v1/v1/messages";
    char padhdr[4096] = "";
    if (pad) {
        /* the unfixed head without padding, to size X-Pad */
        size_t base = (size_t)snprintf(NULL, 0, "POST %s HTTP/1.1\r\nHost: api.kimi.com\r\n"
                                       "Content-Type: application/json\r\n%s\r\n",
                                       "/coding/v1/v1/messages", len);
        size_t want = pad - base - 9; /* "X-Pad: " + CRLF */
        memcpy(padhdr, "X-Pad: ", 7);
        memset(padhdr + 7, 'p', want);
        memcpy(padhdr + 7 + want, "\r\n", 3);
    }
    return (size_t)snprintf(out, n, "POST %s HTTP/1.1\r\nHost: api.kimi.com\r\n"
                            "Content-Type: application/json\r\n%s%s%s\r\n",
                            path, padhdr, len, fixed ? TEST_GROW_HDR : "");
}

/* Deterministic body bytes. */
static inline void kf_t_body(char *out, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('a' + (i * 7 + seed) % 26);
}

/* The non-blocking test's stream: 8 keep-alive requests, big bodies
 * alternating with big (padded) heads, so rewritten heads meet a full
 * socket buffer. Returns the length written to out (NULL: just count). */
#define KF_T_NB_REQS 8
static inline size_t kf_t_nb_stream(char *out, int fixed)
{
    size_t n = 0;
    char h[8192];
    for (int i = 0; i < KF_T_NB_REQS; i++) {
        long body = (i & 1) ? 5 : 65536;
        size_t hl = kf_t_head(h, sizeof h, body, (i & 1) ? 3000 : 0, fixed);
        if (out) {
            memcpy(out + n, h, hl);
            kf_t_body(out + n + hl, (size_t)body, (unsigned)i);
        }
        n += hl + (size_t)body;
    }
    return n;
}

#endif
