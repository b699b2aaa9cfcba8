/* engine.c - figure 2 and 7a: the rewrite engine alone (libkfcore.a), heads
 * per second on one core in the steady state: one kf_stream reused, each
 * request = a head written in one kf_stream_write() plus its small body,
 * into a memory sink.
 *
 *   engine MODE N [HEADSIZE]   (HEADSIZE: not for h2load, whose head is fixed)
 *     MODE: path        doubled /v1 (one path rewrite, no header change)
 *           platform    X-Msh-Platform kimi_code_cli -> kimi_cli (path right)
 *           none        already right: rules run, nothing changes
 *           h2load      figure 11's request as h2load --h1 sends it: a
 *                       smaller head (546 bytes, doubled /v1 and the
 *                       platform header both rewritten) and its 232-byte
 *                       body in ONE write, as one SSL_write carries them
 *           httpparser  the reference arm: the `path` head and body parsed
 *                       (parse only, no rewrite) by Debian's libhttp-parser
 *                       (Node's classic http_parser), one parser reused as
 *                       on a keep-alive connection
 *   prints: ns_per_head=X heads_per_s=Y head_bytes=Z out_bytes_per_head=W
 * Under callgrind, --toggle-collect='bench_loop*' counts only the loop (gcc
 * names the loops bench_loop.constprop.0 and so on: the bare name counts 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "common.h"
#include "kf_rules.h"
#include "kf_stream.h"

struct msink {
    size_t total;
    char *cap; /* when set: copy output here (the check before timing) */
    size_t caplen;
};

static ssize_t msink_send(void *io, const void *buf, size_t len)
{
    struct msink *m = io;
    if (m->cap) {
        memcpy(m->cap + m->caplen, buf, len);
        m->caplen += len;
    }
    m->total += len;
    return (ssize_t)len;
}

static const char body[] = "{\"model\":\"kimi-for-coding\",\"max_tokens\":16,\"messages\":[]}";

/* Figure 11's request (bench/figs/fig_11_onewrite.py) byte for byte as
 * h2load 1.52 --h1 writes it: Host first, the -H headers in order, its own
 * Content-Length last, then the body. */
static const char h2load_req[] =
    "POST /coding/v1/v1/messages HTTP/1.1\r\n"
    "Host: api.kimi.com\r\n"
    "user-agent: kimi-code-cli/0.14.0\r\n"
    "content-type: application/json\r\n"
    "x-msh-platform: kimi_code_cli\r\n"
    "anthropic-version: 2023-06-01\r\n"
    "x-api-key: sk-kimi-0123456789abcdef0123456789abcdef0123456789abcdef\r\n"
    "x-stainless-lang: js\r\n"
    "x-stainless-package-version: 0.39.0\r\n"
    "x-stainless-os: Linux\r\n"
    "x-stainless-arch: x64\r\n"
    "x-stainless-runtime: node\r\n"
    "x-stainless-runtime-version: v22.12.0\r\n"
    "x-stainless-retry-count: 0\r\n"
    "anthropic-beta: prompt-caching-2024-07-31\r\n"
    "accept: application/json\r\n"
    "Content-Length: 232\r\n"
    "\r\n"
    "{\"model\": \"kimi-for-coding\", \"max_tokens\": 1024, \"stream\": false, \"messages\": [{\"role\": "
    "\"user\", \"content\": \"Write a haiku about a fixed request line, and nothing else. Write a "
    "haiku about a fixed request line, and nothing else. \"}]}";

/* h2load mode: head and body in one write (len = the whole request). */
__attribute__((noinline)) static void bench_loop_one(kf_stream *s, const kf_ctx *ctx,
                                                     const char *req, size_t len, long n,
                                                     struct msink *m)
{
    for (long i = 0; i < n; i++) {
        if (kf_stream_write(s, ctx, req, len, KF_WR_PARTIAL, msink_send, m) != (ssize_t)len) {
            fprintf(stderr, "engine: short write\n");
            exit(1);
        }
    }
}

__attribute__((noinline)) static void bench_loop(kf_stream *s, const kf_ctx *ctx, const char *head,
                                                 size_t hlen, long n, struct msink *m)
{
    for (long i = 0; i < n; i++) {
        if (kf_stream_write(s, ctx, head, hlen, KF_WR_PARTIAL, msink_send, m) != (ssize_t)hlen ||
            kf_stream_write(s, ctx, body, sizeof body - 1, KF_WR_PARTIAL, msink_send, m) !=
                (ssize_t)(sizeof body - 1)) {
            fprintf(stderr, "engine: short write\n");
            exit(1);
        }
    }
}

/* ---- the reference arm: libhttp-parser, parse only ---- */

static long hp_messages;

static int hp_complete(http_parser *p)
{
    (void)p;
    hp_messages++;
    return 0;
}

__attribute__((noinline)) static void bench_loop_hp(http_parser *p, const http_parser_settings *st,
                                                    const char *head, size_t hlen, long n)
{
    for (long i = 0; i < n; i++) {
        if (http_parser_execute(p, st, head, hlen) != hlen ||
            http_parser_execute(p, st, body, sizeof body - 1) != sizeof body - 1) {
            fprintf(stderr, "engine: http_parser: %s\n", http_errno_name(HTTP_PARSER_ERRNO(p)));
            exit(1);
        }
    }
}

static int run_h2load(const kf_ctx *ctx, long n)
{
    const size_t len = sizeof h2load_req - 1, blen = 232;
    kf_stream s;
    kf_stream_init(&s);
    static char out[4096];
    struct msink m = {0, out, 0};
    bench_loop_one(&s, ctx, h2load_req, len, 1, &m);
    out[m.caplen] = 0;
    if (strncmp(out, "POST /coding/v1/messages HTTP/1.1\r\n", 35) ||
        !strstr(out, "\r\nx-msh-platform: kimi_cli\r\n") ||
        strcmp(out + m.caplen - blen, h2load_req + len - blen)) {
        fprintf(stderr, "engine: unexpected output: %.80s\n", out);
        return 1;
    }
    size_t per = m.caplen - blen;
    m.cap = NULL;
    bench_loop_one(&s, ctx, h2load_req, len, 1000, &m);
    uint64_t t0 = bench_now_ns();
    bench_loop_one(&s, ctx, h2load_req, len, n, &m);
    uint64_t t1 = bench_now_ns();
    double ns = (double)(t1 - t0) / (double)n;
    printf("ns_per_head=%.1f heads_per_s=%.0f head_bytes=%zu out_bytes_per_head=%zu\n", ns,
           1e9 / ns, len - blen, per);
    kf_stream_reset(&s);
    return 0;
}

static int run_http_parser(const char *head, size_t hlen, long n)
{
    http_parser p;
    http_parser_settings st;
    http_parser_settings_init(&st);
    st.on_message_complete = hp_complete; /* counts messages: the check */
    http_parser_init(&p, HTTP_REQUEST);
    bench_loop_hp(&p, &st, head, hlen, 1001);
    if (hp_messages != 1001 || p.content_length != 0 || p.method != HTTP_POST)
        return fprintf(stderr, "engine: http_parser saw %ld messages\n", hp_messages), 1;
    uint64_t t0 = bench_now_ns();
    bench_loop_hp(&p, &st, head, hlen, n);
    uint64_t t1 = bench_now_ns();
    double ns = (double)(t1 - t0) / (double)n;
    printf("ns_per_head=%.1f heads_per_s=%.0f head_bytes=%zu out_bytes_per_head=0\n", ns, 1e9 / ns,
           hlen);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: engine path|platform|none|h2load|httpparser N [HEADSIZE]\n");
        return 2;
    }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    size_t size = argc > 3 ? (size_t)atol(argv[3]) : 700;
    const char *target = "/coding/v1/messages?beta=true", *platform = NULL, *expect = target;
    if (!strcmp(mode, "path") || !strcmp(mode, "httpparser"))
        target = "/coding/v1/v1/messages?beta=true";
    else if (!strcmp(mode, "platform"))
        platform = "kimi_code_cli";
    else if (strcmp(mode, "none") && strcmp(mode, "h2load"))
        return fprintf(stderr, "engine: bad mode %s\n", mode), 2;

    static char head[70 * 1024];
    size_t hlen = bench_head(head, sizeof head, target, platform, sizeof body - 1, size);
    if (!strcmp(mode, "httpparser"))
        return run_http_parser(head, hlen, n);
    kf_ruleset *rs = kf_ruleset_builtin();
    if (!rs)
        return fprintf(stderr, "engine: no rules\n"), 1;
    kf_ctx ctx = {.rs = rs, .host = "api.kimi.com", .port = 443, .tls = 1};
    if (!strcmp(mode, "h2load")) {
        int rc = run_h2load(&ctx, n);
        kf_ruleset_free(rs);
        return rc;
    }
    kf_stream s;
    kf_stream_init(&s);

    /* Check one request, then warm up. */
    static char out[140 * 1024];
    struct msink m = {0, out, 0};
    bench_loop(&s, &ctx, head, hlen, 1, &m);
    out[m.caplen] = 0;
    size_t per = m.caplen - (sizeof body - 1);
    char want[64];
    snprintf(want, sizeof want, "POST %s HTTP/1.1\r\n", expect);
    if (strncmp(out, want, strlen(want)) || strstr(out, "kimi_code_cli") ||
        (platform && !strstr(out, "X-Msh-Platform: kimi_cli\r\n"))) {
        fprintf(stderr, "engine: unexpected output: %.80s\n", out);
        return 1;
    }
    m.cap = NULL;
    bench_loop(&s, &ctx, head, hlen, 1000, &m);

    uint64_t t0 = bench_now_ns();
    bench_loop(&s, &ctx, head, hlen, n, &m);
    uint64_t t1 = bench_now_ns();
    double ns = (double)(t1 - t0) / (double)n;
    printf("ns_per_head=%.1f heads_per_s=%.0f head_bytes=%zu out_bytes_per_head=%zu\n", ns,
           1e9 / ns, hlen, per);
    kf_stream_reset(&s);
    kf_ruleset_free(rs);
    return 0;
}
