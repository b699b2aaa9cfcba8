/* fuzz_relay_resp.c - libFuzzer target for the relay's response tap
 * (src/relay/resp_tap.c): it parses every byte an upstream sends back, to
 * log each request's status and the JSON error message of 4xx/5xx. The
 * upstream is on the network: its bytes are untrusted.
 *
 *   byte 0: how many request heads were sent (0..7) and which were HEAD;
 *   bytes 1-2: seed for the second run's split points;
 *   the rest: the upstream's bytes.
 *
 * The tap is fed once whole and once in random pieces (1..64 bytes, as
 * reads arrive); both must produce the same log lines and the same
 * boundary answers at the end. Each log write must be one line (one LF,
 * at the end, no CR). tap_json_message is also run on the raw input.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_log.h"
/* The tap itself, compiled in: the generic `make fuzz` rule links only
 * the engine. Its "relay.h" is found next to it. */
#include "../../src/relay/resp_tap.c"
#include "../unit/stream_util.h"

/* The tap logs through relay_log (src/relay/ctx.c: the relay's log and the
 * client's); here, the relay's log alone, which this target captures. */
void relay_log(const relay_ctx *ctx, int level, const char *fmt, ...)
{
    (void)ctx;
    va_list ap;
    va_start(ap, fmt);
    kf_vlog(level, fmt, ap);
    va_end(ap);
}

typedef struct cap {
    char *p;
    size_t n, cap;
} cap;
static cap *cur;

static ssize_t capture(int fd, const void *buf, size_t n)
{
    (void)fd;
    const char *s = buf;
    if (n == 0 || s[n - 1] != '\n' || memchr(s, '\n', n - 1) || memchr(s, '\r', n))
        abort(); /* a forged or broken log line */
    if (cur->n + n > cur->cap) {
        cur->cap = (cur->n + n) * 2;
        cur->p = realloc(cur->p, cur->cap);
        if (!cur->p)
            abort();
    }
    memcpy(cur->p + cur->n, buf, n);
    cur->n += n;
    return (ssize_t)n;
}

static int run(const char *p, size_t n, unsigned c0, unsigned seed, cap *out)
{
    cur = out;
    resp_tap *t = tap_new("api.kimi.com");
    if (!t)
        abort();
    for (unsigned i = 0; i < (c0 & 7); i++)
        tap_request(t, i & 1 ? "rules r: POST /a -> /b" : "GET /x", (c0 >> (3 + i % 5)) & 1, i & 1);
    uint64_t r = seed;
    for (size_t off = 0; off < n;) {
        size_t piece = seed ? 1 + (size_t)(tu_rand(&r) % 64) : n - off;
        if (piece > n - off)
            piece = n - off;
        tap_feed(t, p + off, piece);
        off += piece;
    }
    int b = tap_at_boundary(t);
    tap_finish(t);
    tap_free(t);
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        init = 1;
        kf_log_set_writer(capture);
        kf_log_open("stderr"); /* fd 2, but every line goes to capture() */
        kf_log_set_level(KF_LOG_DEBUG);
    }
    if (size < 3)
        return 0;
    unsigned c0 = data[0], seed = ((unsigned)data[1] << 8 | data[2]) | 1;
    /* Exact-size copy so ASan sees over-reads. */
    size_t n = size - 3;
    char *in = malloc(n ? n : 1);
    if (!in)
        abort();
    memcpy(in, data + 3, n);

    char msg[400];
    if (tap_json_message(in, n, msg, sizeof msg) && (strlen(msg) >= sizeof msg || strchr(msg, '\n')))
        abort();
    tap_json_message(in, n, msg, 1); /* smallest output buffer */

    cap a = { 0 }, b = { 0 };
    int ba = run(in, n, c0, 0, &a);
    int bb = run(in, n, c0, seed, &b);
    if (ba != bb || a.n != b.n || (a.n && memcmp(a.p, b.p, a.n))) {
        fprintf(stderr, "split-dependent tap:\n%.*s---\n%.*s", (int)a.n, a.p, (int)b.n, b.p);
        abort();
    }
    free(a.p);
    free(b.p);
    free(in);
    return 0;
}
