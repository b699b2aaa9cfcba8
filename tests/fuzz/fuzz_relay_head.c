/* fuzz_relay_head.c - libFuzzer target for the relay's request path.
 *
 * The relay (src/relay/conn.c) runs the client's bytes, after the PROXY
 * preamble and TLS, through a kf_stream with KF_CAP_UPSTREAM, collecting
 * them in an "early" buffer until the first head has chosen the upstream,
 * and logs one summary line per head (kf_req_summary). This target drives
 * exactly that as a pure function of the input:
 *
 *   byte 0: carrier: bit 0 TLS, bits 1-3 the SNI/authority host, bit 4 the
 *           ruleset (built-ins, or built-ins + a user file using every
 *           action), bits 5-7 the destination port;
 *   bytes 1-2: seed for the second run's splits and socket misbehaviour;
 *   the rest: what the client writes.
 *
 * Run A writes everything at once (KF_WR_PARTIAL into a memory buffer, as
 * conn.c's early_send). Run B writes the same bytes as random iovec arrays
 * through kf_stream_writev into a sink that takes short counts and fails
 * with EAGAIN (the shim's writev/sendmsg path). Findings:
 *  - any sanitizer report, a broken caller contract, no progress;
 *  - different output bytes, or different per-head summaries;
 *  - a summary line (what the relay logs) that depends on the value of a
 *    secret header (Authorization, x-api-key, cookies...): a leak;
 *  - an `upstream` chosen that is not a valid host name.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_log.h"
#include "kf_proxy.h"
#include "kf_rules.h"
#include "kf_stream.h"
#include "../unit/stream_util.h"

#define LINES_MAX 64
#define LINE_LEN 640

typedef struct rec {
    char lines[LINES_MAX][LINE_LEN];
    unsigned n;
} rec;

static kf_ruleset *rs_builtin, *rs_user;

static const char user_rules[] =
    "rule fz-add\n  host api.kimi.com example.org\n  add-header X-Fuzz-Tenant \"acme corp\"\n"
    "rule fz-set\n  host *.kimi.ai\n  header user-agent *\n  set-header X-Msh-Platform kimi_cli\n"
    "rule fz-rm\n  method POST PUT\n  remove-header Cookie\n"
    "rule fz-up\n  host example.org:8443\n  key sk-*\n  rewrite-path /r\\0\n  upstream [::1]:9443\n"
    "rule fz-re\n  path ~ ^/a(/b)*(/.*)?$\n  rewrite-path /a\\2\n  squash-slashes\n"
    "connect-to api.kimi.com:443 127.0.0.1:8443\n";

static const char *const hosts[8] = { NULL, "api.kimi.com", "api.moonshot.ai", "api.kimi.ai",
                                      "example.org", "auth.kimi.com", "API.KIMI.COM", "" };
static const unsigned ports[8] = { 0, 443, 80, 8443, 1, 65535, 444, 8080 };

/* The summary (the relay's log line) must not depend on secret values:
 * the same request with every secret header's value replaced must give
 * the same line. A dependence means a secret (or a part of it) reaches
 * the log. */
static void check_secrets(const kf_req *req, const char *line)
{
    static kf_req alt;
    static char line2[LINE_LEN];
    int any = 0;
    memcpy(&alt, req, sizeof alt);
    for (unsigned i = 0; i < alt.nhdr; i++) {
        kf_hdr *h = &alt.hdr[i];
        if (!kf_is_secret_header(h->name))
            continue;
        any = 1;
        h->value = KF_STR("Bearer sk-kimi-REPLACED-VALUE-0000");
        h->orig_value = KF_STR("sk-REPLACED-ORIGINAL");
    }
    if (!any)
        return;
    kf_req_summary(&alt, line2, sizeof line2);
    if (strcmp(line, line2)) {
        fprintf(stderr, "a secret header's value changes the log line:\n  %s\n  %s\n", line, line2);
        abort();
    }
}

static void on_head(void *ud, const kf_req *req)
{
    rec *r = ud;
    char sum[LINE_LEN];
    kf_req_summary(req, sum, sizeof sum);
    check_secrets(req, sum);
    if (req->upstream_host.n) {
        /* conn.c copies it into a 256-byte buffer and connects to it. */
        if (req->upstream_host.n > 255 || memchr(req->upstream_host.p, 0, req->upstream_host.n))
            abort();
    }
    if (r->n < LINES_MAX)
        snprintf(r->lines[r->n], LINE_LEN, "%s|%u|%.*s", sum, req->nfired,
                 (int)req->upstream_host.n, req->upstream_host.p);
    r->n++;
}

static void on_notice(void *ud, const char *msg)
{
    (void)ud;
    /* Notices are fixed texts: they must not carry request bytes. */
    if (strlen(msg) > 200)
        abort();
}

static ssize_t vsend(void *io, const struct iovec *iov, int cnt)
{
    return sink_sendv(io, iov, cnt);
}

/* Write p[0..n) as iovec arrays of up to 4 pieces, as writev callers do:
 * resend from where a short count stopped. */
static void writev_all(kf_stream *s, const kf_ctx *c, sink *k, const char *p, size_t n,
                       uint64_t *rng)
{
    size_t off = 0;
    unsigned stuck = 0;
    while (off < n) {
        struct iovec iov[4];
        int cnt = 1 + (int)(tu_rand(rng) % 4);
        size_t at = off;
        int used = 0;
        for (int i = 0; i < cnt && at < n; i++) {
            size_t piece = (size_t)(tu_rand(rng) % 48); /* empty iovecs too */
            if (piece > n - at)
                piece = n - at;
            iov[used].iov_base = (void *)(p + at);
            iov[used++].iov_len = piece;
            at += piece;
        }
        if (at == off) { /* all empty: make sure something is asked */
            iov[0].iov_base = (void *)(p + off);
            iov[0].iov_len = 1;
            used = used ? used : 1;
            at = off + 1;
        }
        ssize_t w = kf_stream_writev(s, c, iov, used, sink_send, vsend, k);
        if (w > (ssize_t)(at - off))
            abort(); /* more than asked */
        if (w > 0) {
            off += (size_t)w;
            stuck = 0;
        } else if (++stuck > 100000) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rec ra, rb;
    if (!rs_builtin) {
        rs_builtin = kf_ruleset_builtin();
        rs_user = kf_ruleset_load_text(user_rules, sizeof user_rules - 1, "fuzz.rules", NULL, NULL, NULL);
        if (!rs_builtin || !rs_user)
            abort();
    }
    if (size < 3)
        return 0;
    unsigned c0 = data[0], seed = (unsigned)data[1] << 8 | data[2];
    const char *in = (const char *)data + 3;
    size_t n = size - 3;
    kf_ctx ctx = { .rs = (c0 & 16) ? rs_user : rs_builtin, .host = hosts[(c0 >> 1) & 7],
                   .port = ports[(c0 >> 5) & 7], .tls = c0 & 1, .caps = KF_CAP_UPSTREAM,
                   .on_head = on_head, .notice = on_notice };

    /* Run A: one write, as conn.c's first_head() gets it from one read. */
    kf_stream s;
    sink a = { 0 };
    ra.n = 0;
    ctx.ud = &ra;
    kf_stream_init(&s);
    if (n && caller_write(&s, &ctx, &a, in, n, KF_WR_PARTIAL) != 0)
        abort();
    kf_stream_reset(&s);

    /* Run B: iovec arrays, short counts, EAGAIN. */
    sink b = { .max_per_send = 1 + seed % 13, .fail_every = seed % 5 == 1 ? 2 : seed % 5,
               .rng = seed + 7 };
    uint64_t rng = seed * 2654435761u + 1;
    rb.n = 0;
    ctx.ud = &rb;
    kf_stream_init(&s);
    writev_all(&s, &ctx, &b, in, n, &rng);
    kf_stream_reset(&s);

    if (a.len != b.len || (a.len && memcmp(a.buf, b.buf, a.len)))
        abort();
    if (ra.n != rb.n)
        abort();
    for (unsigned i = 0; i < ra.n && i < LINES_MAX; i++)
        if (strcmp(ra.lines[i], rb.lines[i]))
            abort();
    free(a.buf);
    free(b.buf);
    return 0;
}
