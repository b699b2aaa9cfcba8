/* stream_util.h - drive a kf_stream through a memory "socket" in tests.
 *
 * The sink can misbehave like a real socket: accept at most `max_per_send`
 * bytes per call, or fail with EAGAIN every `fail_every`-th call. The
 * writer honours the caller contract of each mode: in PARTIAL mode it
 * resends what was not taken; in ALL_OR_NOTHING mode it retries with the
 * same arguments until the call succeeds.
 */
#ifndef KF_TEST_STREAM_UTIL_H
#define KF_TEST_STREAM_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kf_stream.h"

typedef struct sink {
    char *buf;
    size_t len, cap;
    size_t max_per_send; /* 0 = unlimited */
    unsigned fail_every; /* 0 = never */
    unsigned calls;
    uint64_t rng;
} sink;

static inline uint64_t tu_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static inline ssize_t sink_send(void *io, const void *b, size_t n)
{
    sink *k = io;
    k->calls++;
    if (k->fail_every && k->calls % k->fail_every == 0) {
        errno = EAGAIN;
        return -1;
    }
    if (k->max_per_send && n > k->max_per_send)
        n = 1 + (size_t)(tu_rand(&k->rng) % k->max_per_send);
    if (k->len + n > k->cap) {
        k->cap = (k->len + n) * 2 + 64;
        k->buf = realloc(k->buf, k->cap);
    }
    memcpy(k->buf + k->len, b, n);
    k->len += n;
    return (ssize_t)n;
}

static inline ssize_t sink_sendv(void *io, const struct iovec *iov, int cnt)
{
    ssize_t total = 0;
    for (int i = 0; i < cnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        ssize_t r = sink_send(io, iov[i].iov_base, iov[i].iov_len);
        if (r <= 0)
            return total ? total : r;
        total += r;
        if ((size_t)r < iov[i].iov_len)
            break;
    }
    return total;
}

/* Write all of p[0..n) as a well-behaved caller would. Returns 0, or -1 if
 * the pump broke the contract (returned more than asked, or no progress
 * for too long). */
static inline int caller_write(kf_stream *s, const kf_ctx *ctx, sink *k, const char *p, size_t n,
                               int mode)
{
    size_t off = 0;
    unsigned stuck = 0;
    while (off < n) {
        ssize_t r = kf_stream_write(s, ctx, p + off, n - off, mode, sink_send, k);
        if (r > 0) {
            if ((size_t)r > n - off || (mode == KF_WR_ALL_OR_NOTHING && (size_t)r != n - off)) {
                fprintf(stderr, "caller_write: returned %zd for %zu bytes (mode %d)\n", r, n - off, mode);
                return -1;
            }
            off += (size_t)r;
            stuck = 0;
        } else if (++stuck > 1000000) {
            fprintf(stderr, "caller_write: no progress at %zu of %zu (mode %d)\n", off, n, mode);
            return -1;
        }
    }
    return 0;
}

/* Flush whatever the stream still holds (a test-only helper: real callers
 * never need it because the pump never reports a buffer fully taken while
 * output is pending). */
static inline void sink_reset(sink *k)
{
    free(k->buf);
    memset(k, 0, sizeof(*k));
}

#endif
