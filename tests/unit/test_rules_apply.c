/* test_rules_apply.c - matching and actions: each condition and action,
 * ordering, "fired" only on change, idempotence, skip on a missing
 * capability. Heads go through kf_test_rewrite (test_req.c), which
 * serializes by header state exactly as the stream rewriter does. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "kf_rules.h"

void kf_test_parse(kf_req *req, const char *head, int tls);
size_t kf_test_serialize(const kf_req *req, const char *head, char *out, size_t n);
int kf_test_rewrite(const kf_ruleset *rs, const char *head, unsigned caps, kf_req *req, char *out,
                    size_t n);

static kf_req req;
static char out[8192];

static kf_ruleset *rules(const char *text)
{
    char full[4096];
    snprintf(full, sizeof full, "defaults off\n%s", text);
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load_text(full, strlen(full), "t.rules", NULL, NULL, &nerr);
    cr_assert_not_null(rs, "rules rejected:\n%s", text);
    return rs;
}

/* Rewrite `in` and expect `want` and `nfired` rules fired; then check that
 * a second pass over the output changes nothing. */
static void expect(const kf_ruleset *rs, unsigned caps, const char *in, const char *want, int nfired)
{
    int n = kf_test_rewrite(rs, in, caps, &req, out, sizeof out);
    cr_assert_str_eq(out, want, "input:\n%s", in);
    cr_assert_eq(n, nfired, "fired %d, want %d, for:\n%s", n, nfired, in);
    cr_assert_eq(req.nfired, (unsigned)n);
}

static void expect_same(const kf_ruleset *rs, const char *in)
{
    expect(rs, KF_CAP_UPSTREAM, in, in, 0);
}

#define GET(path, host) "GET " path " HTTP/1.1\r\nHost: " host "\r\nAccept: */*\r\n\r\n"

Test(rules_apply, host_conditions)
{
    kf_ruleset *rs = rules("rule a\n host api.kimi.com *.example.org h:8080 [::1]\n rewrite-path /x\n");
    expect(rs, 0, GET("/", "API.Kimi.COM"), "GET /x HTTP/1.1\r\nHost: API.Kimi.COM\r\nAccept: */*\r\n\r\n", 1);
    expect(rs, 0, GET("/", "api.kimi.com:8443"), "GET /x HTTP/1.1\r\nHost: api.kimi.com:8443\r\nAccept: */*\r\n\r\n", 1);
    expect(rs, 0, GET("/", "a.b.example.org"), "GET /x HTTP/1.1\r\nHost: a.b.example.org\r\nAccept: */*\r\n\r\n", 1);
    expect_same(rs, GET("/", "example.org"));
    expect_same(rs, GET("/", "xexample.org"));
    expect_same(rs, GET("/", "auth.kimi.com"));
    expect_same(rs, GET("/", "api.kimi.com.evil.net"));
    expect(rs, 0, GET("/", "h:8080"), "GET /x HTTP/1.1\r\nHost: h:8080\r\nAccept: */*\r\n\r\n", 1);
    expect_same(rs, GET("/", "h"));      /* 443 by default */
    expect_same(rs, GET("/", "h:8081"));
    expect(rs, 0, GET("/", "[::1]:9"), "GET /x HTTP/1.1\r\nHost: [::1]:9\r\nAccept: */*\r\n\r\n", 1);
    kf_ruleset_free(rs);
    /* a trailing dot (fully qualified name) on either side is ignored */
    rs = rules("rule a\n host api.kimi.com.\n rewrite-path /x\n");
    expect(rs, 0, GET("/", "api.kimi.com"), "GET /x HTTP/1.1\r\nHost: api.kimi.com\r\nAccept: */*\r\n\r\n", 1);
    expect(rs, 0, GET("/", "api.kimi.com."), "GET /x HTTP/1.1\r\nHost: api.kimi.com.\r\nAccept: */*\r\n\r\n", 1);
    kf_ruleset_free(rs);
}

Test(rules_apply, path_prefix_regex_and_groups)
{
    kf_ruleset *rs = rules("rule pre\n path /old/\n rewrite-path /new\\0\n"
                           "rule re\n path ~ ^/v([0-9]+)/(.*)$\n rewrite-path /api/\\2/v\\1\n");
    expect(rs, 0, GET("/old/x?a=1", "h"), "GET /new/old/x?a=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", 1);
    expect_same(rs, GET("/old", "h"));
    expect_same(rs, GET("/Old/x", "h"));
    expect(rs, 0, GET("/v2/chat?stream=1", "h"),
           "GET /api/chat/v2?stream=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", 1);
    /* the regex sees the path only, never the query */
    expect_same(rs, GET("/x?/v2/chat", "h"));
    kf_ruleset_free(rs);
    /* an unmatched optional group expands to nothing; \\ is a backslash */
    rs = rules("rule o\n path ~ ^/a(/b)?(/c)?$\n rewrite-path /z\\2\\1\\\\\n");
    expect(rs, 0, GET("/a/c", "h"), "GET /z/c\\ HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", 1);
    kf_ruleset_free(rs);
}

Test(rules_apply, method_condition)
{
    kf_ruleset *rs = rules("rule m\n method POST PUT\n set-header X-M 1\n");
    expect(rs, 0, "POST / HTTP/1.1\r\nHost: h\r\n\r\n", "POST / HTTP/1.1\r\nHost: h\r\nX-M: 1\r\n\r\n", 1);
    expect(rs, 0, "PUT / HTTP/1.1\r\nHost: h\r\n\r\n", "PUT / HTTP/1.1\r\nHost: h\r\nX-M: 1\r\n\r\n", 1);
    expect_same(rs, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_same(rs, "post / HTTP/1.1\r\nHost: h\r\n\r\n");
    kf_ruleset_free(rs);
}

Test(rules_apply, header_conditions_and)
{
    kf_ruleset *rs = rules("rule h\n header x-a \"v *\"\n header X-B ?\n set-header X-Hit 1\n");
    expect(rs, 0, "GET / HTTP/1.1\r\nX-A: v 1\r\nx-b: 2\r\n\r\n",
           "GET / HTTP/1.1\r\nX-A: v 1\r\nx-b: 2\r\nX-Hit: 1\r\n\r\n", 1);
    /* any header of that name may match */
    expect(rs, 0, "GET / HTTP/1.1\r\nX-A: no\r\nX-A: v 2\r\nX-B: 3\r\n\r\n",
           "GET / HTTP/1.1\r\nX-A: no\r\nX-A: v 2\r\nX-B: 3\r\nX-Hit: 1\r\n\r\n", 1);
    expect_same(rs, "GET / HTTP/1.1\r\nX-A: v 1\r\n\r\n");            /* X-B missing */
    expect_same(rs, "GET / HTTP/1.1\r\nX-A: V 1\r\nX-B: 2\r\n\r\n");  /* values are case-sensitive */
    expect_same(rs, "GET / HTTP/1.1\r\nX-A: v 1\r\nX-B: 22\r\n\r\n");
    kf_ruleset_free(rs);
}

/* A header condition and a set-header on the same name (the platform fix):
 * the set starts from the first live header of that name, whichever one the
 * condition's value matched, and later ones go; an exact value (no '*' or
 * '?') compares whole and case-sensitively, as the glob would. */
Test(rules_apply, condition_then_set_on_the_same_name)
{
    kf_ruleset *rs = rules("rule p\n header X-Msh-Platform kimi_code_cli\n set-header x-msh-platform kimi_cli\n"
                           "rule q\n header X-Q \"a?c\"\n remove-header X-Q\n set-header X-Q abc\n");
    expect(rs, 0, "GET / HTTP/1.1\r\nX-MSH-Platform: other\r\nA: 1\r\nx-msh-platform: kimi_code_cli\r\n\r\n",
           "GET / HTTP/1.1\r\nX-MSH-Platform: kimi_cli\r\nA: 1\r\n\r\n", 1);
    expect(rs, 0, "GET / HTTP/1.1\r\nx-msh-platform: kimi_code_cli\r\nX-Msh-Platform: kimi_code_cli\r\n\r\n",
           "GET / HTTP/1.1\r\nx-msh-platform: kimi_cli\r\n\r\n", 1);
    expect_same(rs, "GET / HTTP/1.1\r\nX-Msh-Platform: kimi_code_clI\r\n\r\n");
    expect_same(rs, "GET / HTTP/1.1\r\nX-Msh-Platform: kimi_code_cli2\r\n\r\n");
    expect_same(rs, "GET / HTTP/1.1\r\nX-Msh-Platform: kimi_code_cl\r\n\r\n");
    /* the X-Q the condition found was removed by the first action: the
     * set finds none and appends */
    expect(rs, 0, "GET / HTTP/1.1\r\nX-Q: abd\r\nx-q: axc\r\nB: 2\r\n\r\n",
           "GET / HTTP/1.1\r\nB: 2\r\nX-Q: abc\r\n\r\n", 1);
    kf_ruleset_free(rs);
}

Test(rules_apply, key_condition)
{
    kf_ruleset *rs = rules("rule k\n key sk-kimi-*\n set-header X-K 1\n");
    expect(rs, 0, "GET / HTTP/1.1\r\nAuthorization: Bearer sk-kimi-1\r\n\r\n",
           "GET / HTTP/1.1\r\nAuthorization: Bearer sk-kimi-1\r\nX-K: 1\r\n\r\n", 1);
    expect(rs, 0, "GET / HTTP/1.1\r\nx-api-key: sk-kimi-1\r\n\r\n",
           "GET / HTTP/1.1\r\nx-api-key: sk-kimi-1\r\nX-K: 1\r\n\r\n", 1);
    expect_same(rs, "GET / HTTP/1.1\r\nAuthorization: Bearer sk-abc\r\n\r\n");
    expect_same(rs, "GET / HTTP/1.1\r\nAuthorization: Basic sk-kimi-1\r\n\r\n");
    expect_same(rs, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    kf_ruleset_free(rs);
}

Test(rules_apply, rewrite_keeps_query_and_unchanged_is_not_fired)
{
    kf_ruleset *rs = rules("rule r\n path ~ ^/a$\n rewrite-path /a\n"
                           "rule s\n path /b\n rewrite-path /c\n");
    expect_same(rs, GET("/a?x=1", "h"));
    expect(rs, 0, GET("/b?beta=true", "h"), "GET /c?beta=true HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", 1);
    cr_assert_str_eq(kf_rule_name(req.fired[0]), "s");
    cr_assert_eq(req.orig_path.n, 2);
    cr_assert_eq(memcmp(req.orig_path.p, "/b", 2), 0);
    cr_assert(req.changed & KF_CHG_PATH);
    kf_ruleset_free(rs);
}

Test(rules_apply, path_changed_back_is_not_a_change)
{
    kf_ruleset *rs = rules("rule a\n path /a\n rewrite-path /b\nrule b\n path /b\n rewrite-path /a\n");
    kf_test_rewrite(rs, GET("/a", "h"), 0, &req, out, sizeof out);
    cr_assert_eq(req.nfired, 2);
    cr_assert_not(req.changed & KF_CHG_PATH, "same bytes as before: request line untouched");
    cr_assert_str_eq(out, GET("/a", "h"));
    kf_ruleset_free(rs);
}

Test(rules_apply, squash_slashes)
{
    kf_ruleset *rs = rules("rule s\n squash-slashes\n");
    expect(rs, 0, GET("//a///b//?x=//y", "h"), "GET /a/b/?x=//y HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", 1);
    expect_same(rs, GET("/a/b/", "h"));
    expect_same(rs, GET("/", "h"));
    kf_ruleset_free(rs);
}

Test(rules_apply, set_header_in_place)
{
    kf_ruleset *rs = rules("rule s\n set-header x-msh-platform kimi_cli\n");
    /* first keeps its spelling and place, later duplicates go, line ending kept */
    expect(rs, 0, "POST / HTTP/1.1\r\nX-Msh-Platform: kimi_code_cli\r\nA: 1\nx-msh-platform: b\r\nB: 2\r\n\r\n",
           "POST / HTTP/1.1\r\nX-Msh-Platform: kimi_cli\r\nA: 1\nB: 2\r\n\r\n", 1);
    cr_assert_eq(req.hdr[0].state, KF_HDR_CHANGED);
    cr_assert_eq(req.hdr[2].state, KF_HDR_REMOVED);
    cr_assert(req.changed & KF_CHG_HEADERS);
    /* absent: appended with the rule's spelling */
    expect(rs, 0, "POST / HTTP/1.1\r\nA: 1\r\n\r\n", "POST / HTTP/1.1\r\nA: 1\r\nx-msh-platform: kimi_cli\r\n\r\n", 1);
    cr_assert_eq(req.hdr[1].state, KF_HDR_ADDED);
    cr_assert_eq(req.hdr[1].orig_value.n, 0);
    /* already right: nothing fired, line untouched (even its odd spacing) */
    expect_same(rs, "POST / HTTP/1.1\r\nX-MSH-PLATFORM:kimi_cli  \r\n\r\n");
    kf_ruleset_free(rs);
}

Test(rules_apply, add_and_remove_header)
{
    kf_ruleset *rs = rules("rule a\n remove-header X-Drop\n add-header X-Add \"a b\"\n");
    expect(rs, 0, "GET / HTTP/1.1\nx-drop: 1\nK: v\nX-DROP: 2\n\n", "GET / HTTP/1.1\nK: v\nX-Add: a b\n\n", 1);
    kf_ruleset_free(rs);
    rs = rules("rule r\n remove-header X-None\n");
    expect_same(rs, "GET / HTTP/1.1\r\nK: v\r\n\r\n");
    kf_ruleset_free(rs);
}

Test(rules_apply, upstream_with_capability)
{
    kf_ruleset *rs = rules("rule up\n host api.moonshot.ai\n rewrite-path /coding\\0\n upstream api.kimi.com\n"
                           "rule after\n host api.kimi.com\n set-header X-Seen 1\n");
    expect(rs, KF_CAP_UPSTREAM, "POST /v1/x HTTP/1.1\r\nhost: api.moonshot.ai\r\nA: 1\r\n\r\n",
           "POST /coding/v1/x HTTP/1.1\r\nhost: api.kimi.com\r\nA: 1\r\nX-Seen: 1\r\n\r\n", 2);
    cr_assert_eq(req.upstream_host.n, strlen("api.kimi.com"));
    cr_assert_eq(memcmp(req.upstream_host.p, "api.kimi.com", 12), 0);
    cr_assert_eq(req.upstream_port, 0);
    cr_assert_eq(req.port, 443);
    cr_assert(req.changed & KF_CHG_UPSTREAM);
    cr_assert_eq(memcmp(req.orig_host.p, "api.moonshot.ai", 15), 0);
    cr_assert_eq(req.nskipped, 0);
    kf_ruleset_free(rs);
}

Test(rules_apply, upstream_with_port_and_no_host_header)
{
    kf_ruleset *rs = rules("rule up\n host old\n upstream New:8443\n");
    kf_test_parse(&req, "GET / HTTP/1.0\r\n\r\n", 1);
    req.host = KF_STR("old"); /* from the carrier (SNI) */
    req.port = 443;
    cr_assert_eq(kf_rules_apply(rs, &req, KF_CAP_UPSTREAM), 1);
    kf_test_serialize(&req, "GET / HTTP/1.0\r\n\r\n", out, sizeof out);
    cr_assert_str_eq(out, "GET / HTTP/1.0\r\nHost: new:8443\r\n\r\n");
    cr_assert_eq(req.upstream_port, 8443);
    cr_assert_eq(req.port, 8443);
    char sum[256];
    kf_req_summary(&req, sum, sizeof sum);
    cr_assert_str_eq(sum, "GET /; +Host: new:8443; upstream new:8443");
    kf_ruleset_free(rs);
}

Test(rules_apply, upstream_to_same_host_is_no_change)
{
    kf_ruleset *rs = rules("rule up\n upstream api.kimi.com\n");
    expect_same(rs, "GET / HTTP/1.1\r\nHost: API.KIMI.COM\r\n\r\n");
    cr_assert_eq(req.upstream_host.n, 0);
    kf_ruleset_free(rs);
}

Test(rules_apply, skip_whole_rule_without_capability)
{
    kf_ruleset *rs = rules("rule up\n host api.moonshot.ai\n rewrite-path /coding\\0\n set-header X-A 1\n"
                           " upstream api.kimi.com\n"
                           "rule other\n set-header X-B 2\n");
    const char *in = "POST /v1/x HTTP/1.1\r\nHost: api.moonshot.ai\r\n\r\n";
    expect(rs, 0, in, "POST /v1/x HTTP/1.1\r\nHost: api.moonshot.ai\r\nX-B: 2\r\n\r\n", 1);
    cr_assert_eq(req.nskipped, 1);
    cr_assert_str_eq(kf_rule_name(req.skipped[0]), "up");
    cr_assert_str_eq(kf_rule_name(req.fired[0]), "other");
    cr_assert_eq(req.upstream_host.n, 0);
    cr_assert_not(req.changed & (KF_CHG_PATH | KF_CHG_UPSTREAM));
    /* a rule that does not match is not "skipped" */
    expect_same(rs, "POST /v1/x HTTP/1.1\r\nHost: other\r\nX-B: 2\r\n\r\n");
    cr_assert_eq(req.nskipped, 0);
    kf_ruleset_free(rs);
}

Test(rules_apply, ordering_each_rule_sees_the_previous_result)
{
    kf_ruleset *rs = rules("rule one\n path /a\n rewrite-path /b\\0\n"
                           "rule two\n path /b/a\n rewrite-path /c\n set-header X-Two y\n"
                           "rule three\n header X-Two y\n set-header X-Three z\n"
                           "rule four\n path /a\n set-header X-Four never\n");
    expect(rs, 0, GET("/a", "h"), "GET /c HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Two: y\r\nX-Three: z\r\n\r\n", 3);
    cr_assert_str_eq(kf_rule_name(req.fired[0]), "one");
    cr_assert_str_eq(kf_rule_name(req.fired[1]), "two");
    cr_assert_str_eq(kf_rule_name(req.fired[2]), "three");
    kf_ruleset_free(rs);
}

Test(rules_apply, set_header_host_moves_matching_host)
{
    kf_ruleset *rs = rules("rule h\n host a\n set-header Host b:81\nrule after\n host b:81\n set-header X 1\n");
    expect(rs, 0, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: b:81\r\nX: 1\r\n\r\n", 2);
    cr_assert_eq(req.port, 81);
    kf_ruleset_free(rs);
}

Test(rules_apply, user_rules_run_after_builtins)
{
    int nerr;
    const char *text = "rule mine\n host api.kimi.com\n path /coding/v1/messages\n set-header X-After yes\n";
    kf_ruleset *rs = kf_ruleset_load_text(text, strlen(text), "t.rules", NULL, NULL, &nerr);
    cr_assert_not_null(rs);
    /* the built-in double-v1 fix runs first, so the user's rule sees the fixed path */
    expect(rs, 0, "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
           "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\nX-After: yes\r\n\r\n", 2);
    cr_assert_str_eq(kf_rule_name(req.fired[1]), "mine");
    kf_ruleset_free(rs);
}

Test(rules_apply, scratch_exhaustion_leaves_request_alone)
{
    kf_ruleset *rs = rules("rule big\n path ~ ^/(.*)$\n rewrite-path /\\1\\1\\1\n");
    static char head[KF_SCRATCH + 200];
    strcpy(head, "GET /");
    memset(head + 5, 'a', KF_SCRATCH / 2);
    strcpy(head + 5 + KF_SCRATCH / 2, " HTTP/1.1\r\nHost: h\r\n\r\n");
    kf_test_parse(&req, head, 0);
    cr_assert_eq(kf_rules_apply(rs, &req, 0), 0);
    cr_assert_eq(req.changed, 0);
    cr_assert_eq(req.scratch_used, 0);
    kf_ruleset_free(rs);
}

Test(rules_apply, null_ruleset_and_limits)
{
    kf_test_parse(&req, GET("/a", "h"), 0);
    cr_assert_eq(kf_rules_apply(NULL, &req, 0), 0);
    cr_assert_eq(req.orig_path.n, 2);
    /* more than KF_MAX_FIRED rules firing: the first ones are recorded */
    char text[4096] = "";
    for (int i = 0; i < KF_MAX_FIRED + 4; i++) {
        char r[64];
        snprintf(r, sizeof r, "rule r%d\n add-header X-%d 1\n", i, i);
        strcat(text, r);
    }
    kf_ruleset *rs = rules(text);
    kf_test_parse(&req, GET("/a", "h"), 0);
    cr_assert_eq(kf_rules_apply(rs, &req, 0), KF_MAX_FIRED);
    cr_assert_eq(req.nhdr, 2 + KF_MAX_FIRED + 4);
    cr_assert_str_eq(kf_rule_name(req.fired[KF_MAX_FIRED - 1]), "r15");
    kf_ruleset_free(rs);
}

Test(rules_apply, user_set_is_idempotent)
{
    kf_ruleset *rs = rules("rule s\n squash-slashes\n"
                           "rule v\n path ~ ^/api(/v1)+(/.*)$\n rewrite-path /api/v1\\2\n"
                           "rule h\n header X-P old\n set-header X-P new\n");
    static const char *in[] = {
        "GET //api/v1/v1//x HTTP/1.1\r\nX-P: old\r\n\r\n",
        "GET /api/x HTTP/1.1\r\nX-P: a\r\nX-P: old\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        char once[1024];
        kf_test_rewrite(rs, in[i], 0, &req, once, sizeof once);
        kf_test_rewrite(rs, once, 0, &req, out, sizeof out);
        cr_assert_str_eq(out, once);
        cr_assert_eq(req.nfired, 0, "second pass fired for %s", in[i]);
    }
    kf_ruleset_free(rs);
}

Test(rules_apply, path_actions_need_an_origin_form_target)
{
    kf_ruleset *rs = rules("rule r\n rewrite-path /x\n squash-slashes\n");
    expect_same(rs, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_same(rs, "GET http://h//a HTTP/1.1\r\nHost: h\r\n\r\n");
    expect(rs, 0, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", 1);
    kf_ruleset_free(rs);
}
