/* common.h - helpers shared by the bench programs (not part of kimifix). */
#ifndef KF_BENCH_COMMON_H
#define KF_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A typical Anthropic-wire request head as Claude Code / the Anthropic SDK
 * send it (~700 bytes). `target` and `platform` vary by scenario; `pad`
 * extra bytes of headers (x-bench-pad-N) grow it for the scaling figure.
 * Returns the length written into buf (cap must be large enough). */
static inline size_t bench_head(char *buf, size_t cap, const char *target, const char *platform,
                                size_t body_len, size_t total)
{
    size_t n = (size_t)snprintf(
        buf, cap,
        "POST %s HTTP/1.1\r\n"
        "host: api.kimi.com\r\n"
        "connection: keep-alive\r\n"
        "Accept: application/json\r\n"
        "X-Stainless-Retry-Count: 0\r\n"
        "X-Stainless-Timeout: 600\r\n"
        "X-Stainless-Lang: js\r\n"
        "X-Stainless-Package-Version: 0.60.0\r\n"
        "X-Stainless-OS: Linux\r\n"
        "X-Stainless-Arch: x64\r\n"
        "X-Stainless-Runtime: node\r\n"
        "X-Stainless-Runtime-Version: v24.3.0\r\n"
        "anthropic-version: 2023-06-01\r\n"
        "x-api-key: sk-kimi-0123456789abcdef0123456789abcdef0123456789abcdef\r\n"
        "x-app: cli\r\n"
        "User-Agent: claude-cli/2.1.113 (external, cli)\r\n"
        "%s%s%s"
        "content-type: application/json\r\n"
        "anthropic-beta: claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14\r\n"
        "x-stainless-helper-method: stream\r\n"
        "accept-encoding: gzip, deflate\r\n"
        "content-length: %zu\r\n",
        target, platform ? "X-Msh-Platform: " : "", platform ? platform : "",
        platform ? "\r\n" : "", body_len);
    /* Pad with x-bench-pad headers up to total - 2 (the final CRLF); at
     * most ~64 of them (the engine takes up to 128 header fields). */
    size_t piece = total / 64 > 120 ? total / 64 : 120;
    for (unsigned i = 0; total > n + 2 + 20; i++) {
        size_t want = total - n - 2;
        if (want > piece)
            want = piece;
        int k = snprintf(buf + n, cap - n, "x-bench-pad-%u: ", i);
        n += (size_t)k;
        size_t v = want > (size_t)k + 2 ? want - (size_t)k - 2 : 1;
        memset(buf + n, 'a' + (char)(i % 26), v);
        n += v;
        memcpy(buf + n, "\r\n", 2);
        n += 2;
    }
    memcpy(buf + n, "\r\n", 2);
    return n + 2;
}

#endif
