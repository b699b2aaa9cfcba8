/* test_mask.c - secrets masked and control bytes escaped in logged or
 * displayed text (kf_mask.c; issue 10.7), and the request's own keys kept
 * out of its log line (kf_req.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "kf_mask.h"
#include "kf_req.h"
#include "kf_rules.h"

static char out[512];

static const char *mask(const char *in)
{
    kf_mask_text(in, strlen(in), out, sizeof out, NULL, 0, KF_MASK_SECRETS);
    return out;
}

static const char *esc(const char *in)
{
    kf_escape_text(in, out, sizeof out);
    return out;
}

/* input, what a log shows */
static const char *const by_look[][2] = {
    /* sk- keys; a short label stays */
    { "Incorrect API key provided: sk-kimi-AbCdEfGh12345678.",
      "Incorrect API key provided: sk-kimi-[redacted]." },
    { "key sk-0123456789abcdefABCDEF here", "key sk-[redacted] here" },
    { "\"sk-ant-api03-xyzXYZ0123456789\"", "\"sk-ant-[redacted]\"" },
    { "x=sk-kimi-abcdefgh1", "x=sk-kimi-[redacted]" },
    /* not keys: "sk-" inside a word, too short, a rule's glob, rule names */
    { "risk-assessment-framework task-0123456789", NULL },
    { "pip install sk-learn", NULL },
    { "key sk-kimi-*", NULL },
    { "rules moonshot-sk-kimi-to-coding-host, sk-words-only-here", NULL },
    /* Bearer tokens; English stays readable */
    { "Authorization: Bearer abc123def456ghi", "Authorization: Bearer [redacted]" },
    { "bearer   0123456789", "bearer   [redacted]" },
    { "got Bearer dGhpcyBpcyBhIHRva2Vu== ok", "got Bearer [redacted] ok" },
    { "Missing Bearer token", NULL },
    { "Bearer authentication failed", NULL },
    /* JSON Web Tokens */
    { "invalid eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl!", "invalid [redacted]!" },
    { "eyJhbGciOiJub25lIn0.eyJhIjoxfQ.", "[redacted]" },
    { "eyJust a word", NULL },
};

Test(mask, keys_tokens_jwts_by_their_look)
{
    for (size_t i = 0; i < sizeof by_look / sizeof by_look[0]; i++) {
        const char *want = by_look[i][1] ? by_look[i][1] : by_look[i][0];
        cr_assert_str_eq(mask(by_look[i][0]), want, "for %s", by_look[i][0]);
    }
}

Test(mask, explicit_and_noted_keys)
{
    kf_str k = KF_STR("GATEWAY-0123456789-xyz");
    kf_mask_text("denied: GATEWAY-0123456789-xyz (wrong)", 38, out, sizeof out, &k, 1,
                 KF_MASK_SECRETS);
    cr_assert_str_eq(out, "denied: [redacted] (wrong)");
    /* cut short by the upstream's own truncation: still masked */
    kf_mask_text("denied: GATEWAY-0123", 20, out, sizeof out, &k, 1, KF_MASK_SECRETS);
    cr_assert_str_eq(out, "denied: [redacted]");
    kf_str tiny = KF_STR("abc");
    kf_mask_text("abc abc", 7, out, sizeof out, &tiny, 1, KF_MASK_SECRETS);
    cr_assert_str_eq(out, "abc abc", "keys under 8 bytes are ignored");

    kf_mask_forget_keys();
    cr_assert_str_eq(mask("echo MyOwnGatewayKey0123456789"), "echo MyOwnGatewayKey0123456789");
    kf_mask_note_key(KF_STR("Bearer MyOwnGatewayKey0123456789"));
    cr_assert_str_eq(mask("echo MyOwnGatewayKey0123456789 end"), "echo [redacted] end");
    cr_assert_str_eq(mask("xMyOwnGatewayKey0123456789"), "x[redacted]");
    cr_assert_str_eq(mask("MyOwnGatewayKey-other"), "MyOwnGatewayKey-other");
    kf_mask_forget_keys();
    cr_assert_str_eq(mask("MyOwnGatewayKey0123456789"), "MyOwnGatewayKey0123456789");
}

Test(mask, escapes_control_bytes)
{
    cr_assert_str_eq(esc("a\033[31mred\033]0;title\007b"), "a\\x1b[31mred\\x1b]0;title\\x07b");
    cr_assert_str_eq(esc("line\r\nforged\x7f"), "line\\x0d\\x0aforged\\x7f");
    cr_assert_str_eq(esc("tab\there"), "tab\\x09here");
    cr_assert_str_eq(esc("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\x91"),
                     "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\x91", "UTF-8 stays");
    cr_assert_str_eq(esc("c1 \xc2\x9b" "31m"), "c1 \\xc2\\x9b31m", "8-bit CSI, UTF-8 encoded");
    cr_assert_str_eq(esc("raw \x9b" "31m \xff \xc0\xaf"), "raw \\x9b31m \\xff \\xc0\\xaf");
    cr_assert_str_eq(esc("bidi \xe2\x80\xae" "txt"), "bidi \\xe2\\x80\\xaetxt");
    cr_assert_str_eq(esc("cut \xe6\x97"), "cut \\xe6\\x97");
}

Test(mask, truncation_never_cuts_an_escape)
{
    char small[6];
    cr_assert_eq(kf_escape_text("ab\001c", small, sizeof small), 7);
    cr_assert_str_eq(small, "ab", "\\x01 does not fit whole: stop before it");
    cr_assert_eq(kf_escape_text("abc", small, sizeof small), 3);
    cr_assert_str_eq(small, "abc");
    cr_assert_eq(kf_mask_text("x sk-0123456789", 15, small, sizeof small, NULL, 0, KF_MASK_SECRETS),
                 15);
    cr_assert_str_eq(small, "x sk-");
    cr_assert_eq(kf_escape_text("abc", small, 0), 3, "cap 0: nothing written");
}

/* kf_req_summary/kf_req_log_text: the request's own key, wherever it is
 * repeated, and noted for every later log line (relay: upstream echoes). */
void kf_test_parse(kf_req *req, const char *head, int tls);

Test(mask, request_own_key_in_summary)
{
    static const char head[] = "POST /v1/x?note=MyGatewayKey-0123456789&ok=1 HTTP/1.1\r\n"
                               "Host: gw.example.com\r\n"
                               "apikey: MyGatewayKey-0123456789\r\n"
                               "X-Trace: MyGatewayKey-0123456789\r\n\r\n";
    static kf_req req;
    kf_mask_forget_keys();
    kf_req_init(&req);
    kf_test_parse(&req, head, 1);
    req.hdr[2].value = KF_STR("copy:MyGatewayKey-0123456789");
    req.hdr[2].state = KF_HDR_CHANGED;
    char line[1024];
    kf_req_log_text(&req, line, sizeof line);
    cr_assert_null(strstr(line, "0123456789"), "%s", line);
    cr_assert(strstr(line, "note=[redacted]&ok=1"), "%s", line);
    cr_assert(strstr(line, "X-Trace: [redacted] -> copy:[redacted]"), "%s", line);
    /* noted: an upstream echo in a later line is masked too */
    cr_assert_str_eq(mask("Invalid key MyGatewayKey-0123456789"), "Invalid key [redacted]");
    kf_mask_forget_keys();
}
