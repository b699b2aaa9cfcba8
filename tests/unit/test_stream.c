/* test_stream.c - the HTTP/1 stream rewriter and its pump. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "kf_rules.h"
#include "kf_stream.h"
#include "stream_util.h"

static kf_ruleset *builtin;
static kf_ruleset *custom;
static char notices[4096];

static void on_notice(void *ud, const char *msg)
{
    (void)ud;
    strncat(notices, msg, sizeof(notices) - strlen(notices) - 2);
    strcat(notices, "\n");
}

static const char custom_rules[] =
    "defaults off\n"
    "rule t-edit\n"
    "    host example.test\n"
    "    add-header X-Added yes\n"
    "    remove-header X-Drop\n"
    "    set-header X-Set new\n";

static void setup(void)
{
    notices[0] = 0;
    builtin = kf_ruleset_builtin();
    int nerr = 0;
    custom = kf_ruleset_load_text(custom_rules, sizeof(custom_rules) - 1, "test", NULL, NULL, &nerr);
    cr_assert_not_null(builtin);
    cr_assert_not_null(custom, "custom rules: %d errors", nerr);
}

static void teardown(void)
{
    kf_ruleset_free(builtin);
    kf_ruleset_free(custom);
}

static kf_ctx ctx_for(const kf_ruleset *rs)
{
    kf_ctx c = { .rs = rs, .host = NULL, .port = 0, .tls = 1, .caps = 0,
                 .on_head = NULL, .notice = on_notice, .ud = NULL };
    return c;
}

/* Feed `in` in one write through an ideal sink; return the output (static). */
static const char *rewrite_once(const kf_ruleset *rs, const char *in, size_t n, size_t *outn)
{
    static char out[256 * 1024];
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = ctx_for(rs);
    sink k = { 0 };
    cr_assert_eq(caller_write(&s, &c, &k, in, n, KF_WR_PARTIAL), 0);
    cr_assert_lt(k.len, sizeof(out));
    memcpy(out, k.buf, k.len);
    out[k.len] = 0;
    *outn = k.len;
    sink_reset(&k);
    kf_stream_reset(&s);
    return out;
}

static void expect_rewrite(const kf_ruleset *rs, const char *in, const char *want)
{
    size_t n;
    const char *out = rewrite_once(rs, in, strlen(in), &n);
    cr_assert_eq(n, strlen(want), "length %zu, want %zu\n--- got:\n%s\n--- want:\n%s", n,
                 strlen(want), out, want);
    cr_assert(memcmp(out, want, n) == 0, "--- got:\n%s\n--- want:\n%s", out, want);
}

TestSuite(stream, .init = setup, .fini = teardown);

Test(stream, idle_state_is_small)
{
    cr_assert_leq(sizeof(kf_stream), 128);
}

Test(stream, rewrites_doubled_v1_and_keeps_body)
{
    expect_rewrite(builtin,
                   "POST /coding/v1/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\n"
                   "Content-Length: 5\r\n\r\nhello",
                   "POST /coding/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\n"
                   "Content-Length: 5\r\n\r\nhello");
}

Test(stream, platform_header_value_changes_in_place_with_original_case)
{
    expect_rewrite(builtin,
                   "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n"
                   "X-Msh-Platform: kimi_code_cli\r\nContent-Length: 2\r\n\r\n{}",
                   "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n"
                   "X-Msh-Platform: kimi_cli\r\nContent-Length: 2\r\n\r\n{}");
}

Test(stream, unrelated_host_is_byte_identical)
{
    const char *in = "POST /v1/v1/messages HTTP/1.1\r\nHost: api.example.com\r\n"
                     "x-msh-platform: kimi_code_cli\r\nContent-Length: 0\r\n\r\n";
    expect_rewrite(builtin, in, in);
}

Test(stream, lf_only_head_keeps_its_line_endings)
{
    expect_rewrite(builtin,
                   "GET /coding/v1/v1/models HTTP/1.1\nHost: api.kimi.com\nX-A: b\n\n",
                   "GET /coding/v1/models HTTP/1.1\nHost: api.kimi.com\nX-A: b\n\n");
}

Test(stream, header_add_remove_set)
{
    expect_rewrite(custom,
                   "GET /x HTTP/1.1\r\nHost: example.test\r\nX-Drop: 1\r\nx-set: old\r\n"
                   "X-Keep:  spaced  \r\nX-Set: dup\r\n\r\n",
                   "GET /x HTTP/1.1\r\nHost: example.test\r\nx-set: new\r\n"
                   "X-Keep:  spaced  \r\nX-Added: yes\r\n\r\n");
}

/* The writer copies unchanged stretches of the original head at once: the
 * request line around a new path (absolute-form prefix, query, version),
 * runs of original lines between changed, removed and added ones, and the
 * final empty line, each with its own line ending. */
Test(stream, writer_splices_changes_into_original_runs)
{
    static const char rules[] = "defaults off\n"
                                "rule t-path\n"
                                "    host example.test\n"
                                "    path ~ ^/a//b(/.*)?$\n"
                                "    rewrite-path /a\\1\n"
                                "rule t-edit\n"
                                "    host example.test\n"
                                "    add-header X-Added yes\n"
                                "    remove-header X-Drop\n"
                                "    set-header X-Set new\n";
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load_text(rules, sizeof(rules) - 1, "test", NULL, NULL, &nerr);
    cr_assert_not_null(rs, "%d errors", nerr);
    expect_rewrite(rs,
                   "GET http://example.test:80/a//b/c?q=/a//b HTTP/1.1\r\nHost: example.test\n"
                   "X-Drop: 1\r\nX-Drop: 2\r\nA: 1\nx-set: old\nB: 2\r\nX-Set: dup\r\nC: 3\r\n\n",
                   "GET http://example.test:80/a/c?q=/a//b HTTP/1.1\r\nHost: example.test\n"
                   "A: 1\nx-set: new\nB: 2\r\nC: 3\r\nX-Added: yes\r\n\n");
    /* the path alone: every header line is one copy */
    expect_rewrite(rs, "GET /a//b HTTP/1.1\nHost: example.test\nX-Set: new\n\n",
                   "GET /a HTTP/1.1\nHost: example.test\nX-Set: new\nX-Added: yes\n\n");
    kf_ruleset_free(rs);
}

Test(stream, keepalive_and_pipelining)
{
    expect_rewrite(builtin,
                   "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                   "Content-Length: 3\r\n\r\nabc"
                   "GET /coding/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
                   "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                   "Content-Length: 3\r\n\r\nabc"
                   "GET /coding/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n");
}

Test(stream, body_that_looks_like_a_head_is_never_rewritten)
{
    const char *fake = "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n";
    char in[512], want[512];
    snprintf(in, sizeof in,
             "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(fake), fake);
    snprintf(want, sizeof want,
             "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(fake), fake);
    expect_rewrite(builtin, in, want);
}

Test(stream, chunked_body_with_trailers_then_next_head)
{
    /* "0\r\n\r\n" inside chunk data must not end the body. */
    expect_rewrite(builtin,
                   "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                   "Transfer-Encoding: gzip, chunked\r\n\r\n"
                   "7;ext=1\r\n0\r\n\r\nxx\r\n0\r\nX-Trailer: 1\r\n\r\n"
                   "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
                   "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                   "Transfer-Encoding: gzip, chunked\r\n\r\n"
                   "7;ext=1\r\n0\r\n\r\nxx\r\n0\r\nX-Trailer: 1\r\n\r\n"
                   "GET /coding/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n");
}

Test(stream, tls_and_binary_pass_through)
{
    const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03GET / HTTP/1.1\r\n\r\n";
    size_t n;
    const char *out = rewrite_once(builtin, tls, sizeof tls - 1, &n);
    cr_assert_eq(n, sizeof tls - 1);
    cr_assert(memcmp(out, tls, n) == 0);
}

Test(stream, http2_preface_passes_with_a_notice)
{
    const char *in = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nPOST /coding/v1/v1/messages HTTP/1.1\r\n\r\n";
    expect_rewrite(builtin, in, in);
    cr_assert(strstr(notices, "HTTP/2") != NULL, "notices: %s", notices);
}

Test(stream, obs_fold_is_malformed_and_connection_passes)
{
    const char *in = "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\nX-A: a\r\n b\r\n\r\n"
                     "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n";
    expect_rewrite(builtin, in, in);
    cr_assert(strstr(notices, "malformed") != NULL);
}

Test(stream, nul_and_bare_cr_are_malformed)
{
    const char in1[] = "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\nX: a\0b\r\n\r\n";
    size_t n;
    const char *out = rewrite_once(builtin, in1, sizeof in1 - 1, &n);
    cr_assert_eq(n, sizeof in1 - 1);
    cr_assert(memcmp(out, in1, n) == 0);
    const char *in2 = "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\nX: a\rb\r\n\r\n";
    expect_rewrite(builtin, in2, in2);
}

Test(stream, conflicting_content_length_is_malformed)
{
    const char *in = "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                     "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    expect_rewrite(builtin, in, in);
}

Test(stream, oversized_head_passes_unchanged)
{
    size_t big = KF_HEAD_MAX + 100;
    char *in = malloc(big + 200);
    int k = sprintf(in, "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\nX-Big: ");
    memset(in + k, 'a', big);
    strcpy(in + k + big, "\r\n\r\n");
    size_t n;
    const char *out = rewrite_once(builtin, in, strlen(in), &n);
    cr_assert_eq(n, strlen(in));
    cr_assert(memcmp(out, in, n) == 0);
    cr_assert(strstr(notices, "64 KiB") != NULL);
    free(in);
}

Test(stream, upgrade_and_connect_pass_the_rest)
{
    const char *in = "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n"
                     "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                     "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n";
    const char *want = "GET /coding/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n"
                       "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                       "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n";
    /* The upgrade request itself is rewritten; what follows it is a tunnel. */
    expect_rewrite(builtin, in, want);
    const char *c = "CONNECT api.kimi.com:443 HTTP/1.1\r\nHost: api.kimi.com:443\r\n\r\n"
                    "GET /coding/v1/v1/models HTTP/1.1\r\n\r\n";
    expect_rewrite(builtin, c, c);
}

/* The parser notes Host and Connection while it reads the lines and looks
 * at their values after the last one: any Connection header (before or
 * after Upgrade, among several) with an "upgrade" token makes a tunnel, one
 * without does not; a second Host is still malformed. */
Test(stream, upgrade_tokens_and_host_are_read_after_the_lines)
{
    const char *next = "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n";
    const char *heads[] = {
        "GET /coding/v1/v1/x HTTP/1.1\r\nUpgrade: h2c\r\nhost: api.kimi.com\r\n"
        "Connection: keep-alive\r\nCONNECTION: x, UPGRADE \r\n\r\n",
        "GET /coding/v1/v1/x HTTP/1.1\r\nconnection: upgrade\r\nHost: api.kimi.com\r\nupgrade: h2c\r\n\r\n",
        "GET /coding/v1/v1/x HTTP/1.1\r\nConnection: keep-alive, upgrades\r\nHost: api.kimi.com\r\n"
        "Upgrade: h2c\r\n\r\n",
    };
    for (int i = 0; i < 3; i++) {
        char in[512], want[512];
        snprintf(in, sizeof in, "%s%s", heads[i], next);
        /* the head itself is rewritten; after a tunnel's head nothing is */
        snprintf(want, sizeof want, "GET /coding/v1/x%s%s", strstr(heads[i], " HTTP/1.1"),
                 i < 2 ? next : "GET /coding/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n");
        expect_rewrite(builtin, in, want);
    }
    const char *dup = "GET /coding/v1/v1/x HTTP/1.1\r\nHost: api.kimi.com\r\nX: 1\r\nHost: api.kimi.com\r\n\r\n";
    expect_rewrite(builtin, dup, dup);
}

Test(stream, host_from_carrier_when_head_has_none)
{
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = ctx_for(builtin);
    c.host = "api.kimi.com";
    sink k = { 0 };
    const char *in = "GET /coding/v1/v1/models HTTP/1.0\r\n\r\n";
    cr_assert_eq(caller_write(&s, &c, &k, in, strlen(in), KF_WR_PARTIAL), 0);
    cr_assert_eq(k.len, strlen("GET /coding/v1/models HTTP/1.0\r\n\r\n"));
    cr_assert(memcmp(k.buf, "GET /coding/v1/models HTTP/1.0\r\n\r\n", k.len) == 0);
    sink_reset(&k);
    kf_stream_reset(&s);
}

/* Feed `in` split at `cut`, through a sink with the given misbehaviour. */
static void split_case(size_t cut, size_t max_per_send, unsigned fail_every, int mode)
{
    const char *in = "POST /coding/v1/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                     "x-msh-platform: kimi_code_cli\r\nContent-Length: 4\r\n\r\nbody"
                     "GET /coding/chat/completions HTTP/1.1\r\nHost: api.kimi.ai\r\n\r\n";
    const char *want = "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                       "x-msh-platform: kimi_cli\r\nContent-Length: 4\r\n\r\nbody"
                       "GET /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.ai\r\n\r\n";
    size_t n = strlen(in);
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = ctx_for(builtin);
    sink k = { .max_per_send = max_per_send, .fail_every = fail_every, .rng = cut + 1 };
    cr_assert_eq(caller_write(&s, &c, &k, in, cut, mode), 0, "cut %zu", cut);
    cr_assert_eq(caller_write(&s, &c, &k, in + cut, n - cut, mode), 0, "cut %zu", cut);
    cr_assert_eq(k.len, strlen(want), "cut %zu: got %zu bytes", cut, k.len);
    cr_assert(memcmp(k.buf, want, k.len) == 0, "cut %zu", cut);
    sink_reset(&k);
    kf_stream_reset(&s);
}

Test(stream, split_at_every_byte)
{
    for (size_t cut = 0; cut < 140; cut++)
        split_case(cut, 0, 0, KF_WR_PARTIAL);
}

Test(stream, split_at_every_byte_with_short_sends_and_eagain)
{
    for (size_t cut = 0; cut < 140; cut++) {
        split_case(cut, 3, 2, KF_WR_PARTIAL);
        split_case(cut, 1, 3, KF_WR_PARTIAL);
    }
}

Test(stream, all_or_nothing_retry_with_same_arguments)
{
    for (size_t cut = 0; cut < 140; cut++) {
        split_case(cut, 0, 2, KF_WR_ALL_OR_NOTHING);
        split_case(cut, 5, 3, KF_WR_ALL_OR_NOTHING);
    }
}

Test(stream, partial_mode_never_reports_all_taken_while_output_is_pending)
{
    /* The sink refuses everything: the caller must not be told that its
     * buffer was taken, or it would wait for a response forever. */
    const char *in = "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n";
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = ctx_for(builtin);
    sink k = { .fail_every = 1 };
    ssize_t r = kf_stream_write(&s, &c, in, strlen(in), KF_WR_PARTIAL, sink_send, &k);
    cr_assert_lt(r, (ssize_t)strlen(in));
    cr_assert_eq(k.len, 0);
    /* Resume as a caller would, with a sink that works again. */
    size_t off = r > 0 ? (size_t)r : 0;
    k.fail_every = 0;
    cr_assert_eq(caller_write(&s, &c, &k, in + off, strlen(in) - off, KF_WR_PARTIAL), 0);
    cr_assert_eq(k.len, strlen("GET /coding/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n"));
    sink_reset(&k);
    kf_stream_reset(&s);
}

Test(stream, writev_head_across_iovecs_like_node)
{
    const char *head = "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                       "Content-Length: 6\r\n\r\n";
    char buf[256];
    snprintf(buf, sizeof buf, "%sabcdef", head);
    struct iovec iov[3] = { { buf, 20 }, { buf + 20, 6 }, { buf + 26, strlen(buf) - 26 } };
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = ctx_for(builtin);
    sink k = { 0 };
    size_t total = strlen(buf), done = 0;
    while (done < total) {
        /* rebuild the iovec array past `done`, as a caller would */
        struct iovec v[3];
        int cnt = 0;
        size_t skip = done;
        for (int i = 0; i < 3; i++) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            v[cnt].iov_base = (char *)iov[i].iov_base + skip;
            v[cnt++].iov_len = iov[i].iov_len - skip;
            skip = 0;
        }
        ssize_t r = kf_stream_writev(&s, &c, v, cnt, sink_send, sink_sendv, &k);
        cr_assert_gt(r, 0);
        done += (size_t)r;
    }
    const char *want = "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                       "Content-Length: 6\r\n\r\nabcdef";
    cr_assert_eq(k.len, strlen(want));
    cr_assert(memcmp(k.buf, want, k.len) == 0);
    sink_reset(&k);
    kf_stream_reset(&s);
}

Test(stream, external_body_bytes_keep_framing)
{
    const char *head = "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                       "Content-Length: 10\r\n\r\n";
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = ctx_for(builtin);
    sink k = { 0 };
    cr_assert_eq(caller_write(&s, &c, &k, head, strlen(head), KF_WR_PARTIAL), 0);
    cr_assert_eq(kf_stream_flush(&s, &c, sink_send, &k), 1);
    kf_stream_external(&s, &c, 10); /* as if sendfile() sent the body */
    const char *next = "GET /coding/v1/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n";
    size_t before = k.len;
    cr_assert_eq(caller_write(&s, &c, &k, next, strlen(next), KF_WR_PARTIAL), 0);
    cr_assert_eq(k.len - before, strlen(next) - 3);
    cr_assert(!kf_stream_is_passthrough(&s));
    sink_reset(&k);
    kf_stream_reset(&s);
}

Test(stream, no_rules_means_passthrough)
{
    const char *in = "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n";
    expect_rewrite(NULL, in, in);
}

static char last_log[1024];
static void capture_head(void *ud, const kf_req *req)
{
    (void)ud;
    kf_req_log_text(req, last_log, sizeof last_log);
}

Test(stream, log_text_names_the_rules_that_fired)
{
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = ctx_for(builtin);
    c.on_head = capture_head;
    sink k = { 0 };
    const char *in = "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n"
                     "x-msh-platform: kimi_code_cli\r\nx-api-key: sk-kimi-secret\r\n\r\n";
    cr_assert_eq(caller_write(&s, &c, &k, in, strlen(in), KF_WR_PARTIAL), 0);
    cr_assert_str_eq(last_log, "rules kimi-coding-double-v1, kimi-platform-kimi-code-cli: "
                               "POST /coding/v1/v1/messages -> /coding/v1/messages; "
                               "x-msh-platform: kimi_code_cli -> kimi_cli");
    cr_assert_null(strstr(last_log, "secret"));
    sink_reset(&k);
    kf_stream_reset(&s);
}

/* Body bytes within the Content-Length go out in one send without the
 * pump's batch; its accounting must stay the pump's: a partial send then a
 * failure in all-or-nothing mode (SSL_write) leaves the progress in carry,
 * and the retry with the same arguments sends only the rest. */
#define AON_HEAD 54 /* strlen of the head below */
static char aon_out[128];
static size_t aon_len;
static int aon_script; /* 1: take 3 bytes, then fail; 0: take all */
static ssize_t aon_send(void *io, const void *b, size_t n)
{
    (void)io;
    if (aon_script == 1 && aon_len >= 3 + AON_HEAD) { /* the head went; 3 body bytes too */
        errno = EAGAIN;
        return -1;
    }
    if (aon_script == 1 && n > 3 && aon_len >= AON_HEAD)
        n = 3;
    memcpy(aon_out + aon_len, b, n);
    aon_len += n;
    return (ssize_t)n;
}

Test(stream, body_pass_keeps_all_or_nothing_accounting)
{
    static const char head[] = "POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n";
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = ctx_for(builtin);
    aon_len = 0;
    aon_script = 0;
    cr_assert_eq(sizeof head - 1, AON_HEAD);
    cr_assert_eq(kf_stream_write(&s, &c, head, AON_HEAD, KF_WR_ALL_OR_NOTHING, aon_send, NULL), AON_HEAD);
    aon_script = 1;
    cr_assert_eq(kf_stream_write(&s, &c, "0123456789", 10, KF_WR_ALL_OR_NOTHING, aon_send, NULL), -1);
    cr_assert_eq(s.carry, 3);
    aon_script = 0;
    cr_assert_eq(kf_stream_write(&s, &c, "0123456789", 10, KF_WR_ALL_OR_NOTHING, aon_send, NULL), 10);
    cr_assert_eq(aon_len, AON_HEAD + 10);
    cr_assert(memcmp(aon_out + AON_HEAD, "0123456789", 10) == 0);
    cr_assert(kf_stream_at_boundary(&s));
    /* partial mode: a short send is the answer */
    aon_len = 0;
    cr_assert_eq(kf_stream_write(&s, &c, head, AON_HEAD, KF_WR_PARTIAL, aon_send, NULL), AON_HEAD);
    aon_script = 1;
    cr_assert_eq(kf_stream_write(&s, &c, "0123456789", 10, KF_WR_PARTIAL, aon_send, NULL), 3);
    kf_stream_reset(&s);
}
