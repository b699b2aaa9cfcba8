/* test_stream_prop.c - differential property tests of the stream rewriter.
 *
 * For many generated request streams (keep-alive, pipelined, chunked with
 * extensions and trailers, large heads, odd case, LF-only, garbage, HTTP/2,
 * malformed heads) and random split points and socket misbehaviour:
 *  1. feeding in pieces gives byte-for-byte the output of feeding at once;
 *  2. for well-formed streams, the output is the concatenation of each
 *     request rewritten on its own (bodies are untouched, framing followed);
 *  3. rewriting the output again changes nothing (the defaults are
 *     idempotent and the output is well-formed).
 * KF_PROP_SEED and KF_PROP_N override the seed and the number of streams.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "kf_head.h"
#include "kf_rules.h"
#include "kf_stream.h"
#include "stream_util.h"

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static uint64_t rng;
static unsigned rnd(unsigned n)
{
    return (unsigned)(tu_rand(&rng) % n);
}
#define PICK(arr) (arr[rnd(sizeof(arr) / sizeof(arr[0]))])

static const char *methods[] = { "GET", "POST", "POST", "PUT", "HEAD", "DELETE", "PATCH" };
static const char *hosts[] = { "api.kimi.com", "api.kimi.ai", "api.moonshot.ai", "api.moonshot.cn",
                               "auth.kimi.com", "api.example.com", "API.Kimi.COM",
                               "api.kimi.com:443" };
static const char *paths[] = {
    "/coding/v1/v1/messages", "/coding/v1/messages", "/coding/chat/completions",
    "/coding/v1/chat/completions/chat/completions", "/coding/v1/v1/v1/models",
    "/coding//v1/messages", "/anthropic/v1/v1/messages", "/v1/chat/completions", "/v1/v1/x",
    "/api/oauth/token", "/coding/messages/v1/messages", "/", "/coding/v1",
};
static const char *queries[] = { "", "", "?beta=true", "?a=1&b=%20", "?" };
static const char *headers[] = {
    "x-msh-platform: kimi_code_cli", "X-Msh-Platform: kimi_code_cli", "X-MSH-PLATFORM: kimi_cli",
    "Authorization: Bearer sk-kimi-abcdef", "authorization: Bearer sk-plat-123",
    "x-api-key: sk-kimi-zzz", "User-Agent: KimiCLI/1.49.0", "Accept: */*",
    "anthropic-version: 2023-06-01", "Content-Type: application/json", "X-Empty:",
    "x-odd:   spaced value  ", "Connection: keep-alive", "Expect: 100-continue",
};

static void gen_body_bytes(buf *b, size_t n)
{
    static const char *tricky[] = { "\r\n\r\n", "0\r\n\r\n", "GET / HTTP/1.1\r\n", "\n\n", "\0" };
    size_t end = b->n + n;
    while (b->n < end) {
        if (rnd(8) == 0) {
            const char *t = PICK(tricky);
            size_t k = strlen(t) ? strlen(t) : 1;
            put(b, t, k < end - b->n ? k : end - b->n);
        } else {
            char c = (char)rnd(256);
            put(b, &c, 1);
        }
    }
}

/* One well-formed request. */
static void gen_request(buf *b)
{
    const char *eol = rnd(10) == 0 ? "\n" : "\r\n";
    char line[512];
    snprintf(line, sizeof line, "%s %s%s%s HTTP/1.%d%s", PICK(methods), PICK(paths), PICK(queries),
             rnd(4) == 0 ? "/extra" : "", rnd(5) ? 1 : 0, eol);
    puts_(b, line);
    if (rnd(12))
        snprintf(line, sizeof line, "%s: %s%s", rnd(3) ? "Host" : "host", PICK(hosts), eol),
            puts_(b, line);
    unsigned nh = rnd(10);
    for (unsigned i = 0; i < nh; i++) {
        puts_(b, PICK(headers));
        puts_(b, eol);
    }
    if (rnd(40) == 0) { /* a large header */
        puts_(b, "X-Large: ");
        size_t n = 1000 + rnd(9000);
        for (size_t i = 0; i < n; i++)
            put(b, &"abcdefgh"[i % 8], 1);
        puts_(b, eol);
    }
    unsigned body = rnd(4);
    if (body == 1) {
        size_t n = rnd(3) ? rnd(200) : rnd(5000);
        snprintf(line, sizeof line, "Content-Length: %zu%s%s", n, eol, eol);
        puts_(b, line);
        gen_body_bytes(b, n);
    } else if (body == 2) {
        snprintf(line, sizeof line, "Transfer-Encoding: chunked%s%s", eol, eol);
        puts_(b, line);
        unsigned nc = rnd(5);
        for (unsigned i = 0; i < nc; i++) {
            size_t n = 1 + rnd(rnd(3) ? 50 : 3000);
            snprintf(line, sizeof line, "%zx%s%s", n, rnd(4) ? "" : ";name=val", "\r\n");
            puts_(b, line);
            gen_body_bytes(b, n);
            puts_(b, "\r\n");
        }
        puts_(b, "0\r\n");
        if (rnd(3) == 0)
            puts_(b, "X-Checksum: abc\r\n");
        puts_(b, "\r\n");
    } else {
        puts_(b, eol);
    }
}

/* A stream and whether it is well-formed (for property 2). Request
 * boundaries of well-formed streams go into `cuts`. */
static int gen_stream(buf *b, size_t *cuts, unsigned *ncuts)
{
    *ncuts = 0;
    unsigned kind = rnd(100);
    if (kind < 5) { /* garbage / TLS / HTTP/2 */
        static const char *starts[] = { "\x16\x03\x01", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                                        "get / http/1.1\r\n", "GET\t/ HTTP/1.1\r\n", "" };
        puts_(b, PICK(starts));
        gen_body_bytes(b, rnd(300));
        gen_request(b);
        return 0;
    }
    if (kind < 9) { /* a malformed head after a good request */
        gen_request(b);
        static const char *bad[] = { "GET /coding/v1/v1/x HTTP/1.1\r\nHost: api.kimi.com\r\nA: b\r\n c\r\n\r\n",
                                     "GET /coding/v1/v1/x HTTP/1.1\r\nHost: api.kimi.com\r\nBad Name: x\r\n\r\n",
                                     "GET /coding/v1/v1/x HTTP/2.0\r\n\r\n" };
        puts_(b, PICK(bad));
        gen_request(b);
        return 0;
    }
    if (kind < 10) { /* oversized head */
        puts_(b, "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\nX-Huge: ");
        for (size_t i = 0; i < KF_HEAD_MAX; i++)
            put(b, "x", 1);
        puts_(b, "\r\n\r\n");
        gen_request(b);
        return 0;
    }
    unsigned nreq = 1 + rnd(6);
    for (unsigned i = 0; i < nreq; i++) {
        gen_request(b);
        cuts[(*ncuts)++] = b->n;
    }
    return 1;
}

static kf_ruleset *rs;

static void run(const char *p, size_t n, const size_t *splits, unsigned nsplits, size_t max_per_send,
                unsigned fail_every, int mode, buf *out)
{
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = { .rs = rs, .tls = 1 };
    sink k = { .max_per_send = max_per_send, .fail_every = fail_every, .rng = n + 7 };
    size_t prev = 0;
    for (unsigned i = 0; i <= nsplits; i++) {
        size_t at = i < nsplits ? splits[i] : n;
        if (at < prev)
            at = prev;
        cr_assert_eq(caller_write(&s, &c, &k, p + prev, at - prev, mode), 0,
                     "pump broke the caller contract");
        prev = at;
    }
    out->n = 0;
    put(out, k.buf ? k.buf : "", k.len);
    sink_reset(&k);
    kf_stream_reset(&s);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

Test(stream_prop, split_equals_oneshot_equals_per_request)
{
    const char *env = getenv("KF_PROP_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 0x5eedf00dull;
    env = getenv("KF_PROP_N");
    unsigned nstreams = env ? (unsigned)atoi(env) : 10000;
    rs = kf_ruleset_builtin();
    cr_assert_not_null(rs);
    buf in = { 0 }, one = { 0 }, split = { 0 }, per = { 0 }, again = { 0 }, base = { 0 };
    size_t cuts[16];
    unsigned ncuts, wellformed = 0, rewritten = 0;
    for (unsigned t = 0; t < nstreams; t++) {
        rng = seed + t * 0x9e3779b97f4a7c15ull;
        in.n = 0;
        int ok = gen_stream(&in, cuts, &ncuts);
        run(in.p, in.n, NULL, 0, 0, 0, KF_WR_PARTIAL, &one);
        /* the parser's baseline copy (SSE2) gives what the AVX2 one gives */
        kf_head_force_base(1);
        run(in.p, in.n, NULL, 0, 0, 0, KF_WR_PARTIAL, &base);
        kf_head_force_base(0);
        cr_assert(base.n == one.n && memcmp(base.p, one.p, one.n) == 0,
                  "seed %#llx stream %u: the two parser copies differ", (unsigned long long)seed, t);

        size_t splits[8];
        unsigned ns = 1 + rnd(8);
        for (unsigned i = 0; i < ns; i++)
            splits[i] = in.n ? rnd((unsigned)in.n + 1) : 0;
        qsort(splits, ns, sizeof splits[0], cmp_size);
        static const size_t maxes[] = { 0, 1, 7, 100 };
        static const unsigned fails[] = { 0, 2, 3, 5 };
        int mode = t % 2 ? KF_WR_ALL_OR_NOTHING : KF_WR_PARTIAL;
        run(in.p, in.n, splits, ns, maxes[rnd(4)], fails[rnd(4)], mode, &split);
        cr_assert_eq(split.n, one.n, "seed %#llx stream %u: split output length %zu != %zu",
                     (unsigned long long)seed, t, split.n, one.n);
        cr_assert(memcmp(split.p, one.p, one.n) == 0, "seed %#llx stream %u: split output differs",
                  (unsigned long long)seed, t);
        if (one.n != in.n || memcmp(one.p, in.p, in.n) != 0)
            rewritten++;

        if (ok) {
            wellformed++;
            per.n = 0;
            size_t prev = 0;
            for (unsigned i = 0; i < ncuts; i++) {
                run(in.p + prev, cuts[i] - prev, NULL, 0, 0, 0, KF_WR_PARTIAL, &again);
                put(&per, again.p, again.n);
                prev = cuts[i];
            }
            cr_assert_eq(per.n, one.n, "stream %u: per-request length differs", t);
            cr_assert(memcmp(per.p, one.p, one.n) == 0, "stream %u: per-request output differs", t);
        }
        run(one.p, one.n, NULL, 0, 0, 0, KF_WR_PARTIAL, &again);
        cr_assert_eq(again.n, one.n, "stream %u: not idempotent (length)", t);
        cr_assert(memcmp(again.p, one.p, one.n) == 0, "stream %u: not idempotent", t);
    }
    cr_log_info("%u streams, %u well-formed, %u rewritten", nstreams, wellformed, rewritten);
    cr_assert_gt(wellformed, nstreams / 2);
    cr_assert_gt(rewritten, nstreams / 10, "the generator must exercise rewrites");
    free(in.p);
    free(one.p);
    free(split.p);
    free(per.p);
    free(again.p);
    free(base.p);
    kf_ruleset_free(rs);
}
