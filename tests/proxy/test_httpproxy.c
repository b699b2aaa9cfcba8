/* test_httpproxy.c - the relay's HTTP proxy front end, pure parts
 * (src/relay/httpproxy*.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "httpproxy.h"
#include "kf_rules.h"

static const unsigned char TOKEN[KF_PROXY_TOKEN_LEN] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
                                                        5, 6, 7, 8, 9, 10, 11, 0xff};
#define TOKHEX "deadbeef0102030405060708090a0bff"
#define CTX "0123456789abcdef0123456789abcdef"
static const hp_cfg CFG = {TOKEN, 4567};

/* "Proxy-Authorization: Basic base64(user:pass)\r\n" */
static const char *auth(const char *user, const char *pass)
{
    static char line[400];
    char cred[200], b[300];
    snprintf(cred, sizeof cred, "%s:%s", user, pass);
    cr_assert_geq(hp_b64_encode(cred, strlen(cred), b, sizeof b), 0);
    snprintf(line, sizeof line, "Proxy-Authorization: Basic %s\r\n", b);
    return line;
}

static int parse(const char *head, hp_req *r)
{
    hp_scan s = {0};
    ssize_t n = hp_scan_head(&s, head, strlen(head));
    cr_assert_eq(n, (ssize_t)strlen(head), "scan: %zd for %s", n, head);
    return hp_parse(head, (size_t)n, &CFG, r);
}

static int connect_to(const char *target, hp_req *r)
{
    char head[1000];
    snprintf(head, sizeof head, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, target,
             auth("kimifix", TOKHEX));
    return parse(head, r);
}

/* ---- scanning ---- */

Test(scan, byte_by_byte_equals_whole)
{
    char head[600];
    snprintf(head, sizeof head, "CONNECT api.kimi.com:443 HTTP/1.1\r\nHost: x\r\n%s\r\ntunnel bytes",
             auth("kimifix", TOKHEX));
    size_t end = (size_t)(strstr(head, "tunnel") - head);
    hp_scan s = {0};
    ssize_t r = 0;
    size_t i;
    for (i = 1; i <= strlen(head) && (r = hp_scan_head(&s, head, i)) == HP_SCAN_MORE; i++)
        ;
    cr_expect_eq(r, (ssize_t)end);
    cr_expect_eq(i, end, "found only when its last byte arrived");
    hp_scan t = {0};
    cr_expect_eq(hp_scan_head(&t, head, strlen(head)), (ssize_t)end);
}

Test(scan, bare_lf_heads)
{
    const char *h = "GET http://a.org/ HTTP/1.0\nHost: a.org\n\n";
    hp_scan s = {0};
    cr_expect_eq(hp_scan_head(&s, h, strlen(h)), (ssize_t)strlen(h));
}

Test(scan, bad_request_line_said_at_first_wrong_byte)
{
    const char *bad[] = {"\x16\x03\x01", " GET", "GET  /", "GET /\x01", "GET / HTTP/2", "GET / HTTX",
                         "GET / HTTP/1.1x", "CONNECT a:1 HTTP/1.1\r\r", NULL};
    for (int i = 0; bad[i]; i++) {
        hp_scan s = {0};
        cr_expect_eq(hp_scan_head(&s, bad[i], strlen(bad[i])), HP_SCAN_BAD, "%s", bad[i]);
    }
    char method[40];
    memset(method, 'A', 30);
    strcpy(method + 30, " x");
    hp_scan s = {0};
    cr_expect_eq(hp_scan_head(&s, method, strlen(method)), HP_SCAN_BAD);
}

Test(scan, over_16k_without_end)
{
    static char big[HP_HEAD_MAX + 100];
    size_t n = (size_t)snprintf(big, sizeof big, "CONNECT a.org:443 HTTP/1.1\r\n");
    while (n < sizeof big - 20)
        n += (size_t)snprintf(big + n, sizeof big - n, "X-Pad: 0123456789\r\n");
    hp_scan s = {0};
    cr_expect_eq(hp_scan_head(&s, big, HP_HEAD_MAX - 1), HP_SCAN_MORE);
    cr_expect_eq(hp_scan_head(&s, big, n), HP_SCAN_TOO_BIG);
}

/* ---- credentials ---- */

Test(auth, missing_or_wrong_is_407)
{
    hp_req r;
    cr_expect_eq(parse("CONNECT api.kimi.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", &r), HP_407);
    cr_expect_str_eq(r.why, "no proxy credentials");
    char head[1000];
    const char *wrong[][2] = {{"kimifix", "deadbeef0102030405060708090a0bfe"},
                              {"kimifix", "deadbeef0102030405060708090a0bf"},
                              {"kimifix", ""},
                              {"alice", TOKHEX},
                              {"kimifix-xyz", TOKHEX},
                              {"kimifix-" CTX "0", TOKHEX},
                              {"kimifix-" "0123456789abcdef0123456789abcdeg", TOKHEX}};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        snprintf(head, sizeof head, "CONNECT api.kimi.com:443 HTTP/1.1\r\n%s\r\n",
                 auth(wrong[i][0], wrong[i][1]));
        cr_expect_eq(parse(head, &r), HP_407, "%s:%s", wrong[i][0], wrong[i][1]);
        cr_expect_str_eq(r.why, "wrong proxy credentials");
    }
    /* two credentials: refused, whichever is right */
    snprintf(head, sizeof head, "CONNECT a:1 HTTP/1.1\r\n%s", auth("kimifix", TOKHEX));
    strcat(head, auth("kimifix", TOKHEX));
    strcat(head, "\r\n");
    cr_expect_eq(parse(head, &r), HP_407);
    /* not Basic, not base64 */
    cr_expect_eq(parse("CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Bearer " TOKHEX "\r\n\r\n", &r),
                 HP_407);
    cr_expect_eq(parse("CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic !!!!\r\n\r\n", &r), HP_407);
}

Test(auth, right_token_any_hex_case_and_context)
{
    char ctx[HP_CTXID_LEN + 1];
    char v[300], b[200];
    hp_b64_encode("kimifix:DEADBEEF0102030405060708090A0BFF", 40, b, sizeof b);
    snprintf(v, sizeof v, "  basic   %s ", b);
    cr_expect(hp_auth_ok(v, strlen(v), TOKEN, ctx));
    cr_expect_str_eq(ctx, "");
    hp_req r;
    char head[1000];
    snprintf(head, sizeof head, "CONNECT api.kimi.com:443 HTTP/1.1\r\n%s\r\n",
             auth("kimifix-0123456789ABCDEF0123456789abcdef", TOKHEX));
    cr_expect_eq(parse(head, &r), HP_OK);
    cr_expect_str_eq(r.ctxid, CTX);
}

/* The check must not stop at the first differing byte: a token differing
 * only in its last byte and one differing in its first are both refused
 * (timing is not measured here: see the loop in hp_auth_ok). */
Test(auth, every_position_matters)
{
    char ctx[HP_CTXID_LEN + 1], pass[40], cred[80], b[200], v[220];
    for (int i = 0; i < 32; i++) {
        strcpy(pass, TOKHEX);
        pass[i] = pass[i] == '0' ? '1' : '0';
        snprintf(cred, sizeof cred, "kimifix:%s", pass);
        hp_b64_encode(cred, strlen(cred), b, sizeof b);
        snprintf(v, sizeof v, "Basic %s", b);
        cr_expect(!hp_auth_ok(v, strlen(v), TOKEN, ctx), "position %d", i);
    }
}

/* ---- CONNECT targets ---- */

Test(target, connect_forms)
{
    hp_req r;
    cr_assert_eq(connect_to("API.Kimi.com:443", &r), HP_OK);
    cr_expect_eq(r.kind, HP_CONNECT);
    cr_expect_str_eq(r.host, "api.kimi.com");
    cr_expect_eq(r.port, 443);
    cr_expect_eq(r.host_ip, 0);
    cr_assert_eq(connect_to("[::1]:443", &r), HP_OK);
    cr_expect_str_eq(r.host, "::1");
    cr_expect_eq(r.host_ip, 6);
    cr_assert_eq(connect_to("[2001:db8::5]:8443", &r), HP_OK);
    cr_expect_eq(r.port, 8443);
    cr_assert_eq(connect_to("10.0.0.1:1", &r), HP_OK);
    cr_expect_eq(r.host_ip, 4);
    cr_assert_eq(connect_to("a.org:65535", &r), HP_OK);
}

Test(target, connect_bad_targets_are_400)
{
    const char *bad[][2] = {{"api.kimi.com", "CONNECT target without a port"},
                            {"api.kimi.com:0", "port outside 1-65535"},
                            {"api.kimi.com:65536", "port outside 1-65535"},
                            {"api.kimi.com:99999999999999999999", "port outside 1-65535"},
                            {"api.kimi.com:44x", "bad port in the target"},
                            {"api.kimi.com:", "bad port in the target"},
                            {"[::1:443", "bad IPv6 literal in the target"},
                            {"[zz]:443", "bad IPv6 literal in the target"},
                            {"::1:443", "bad host name in the target"},
                            {"bad%host:443", "bad host name in the target"},
                            {":443", "bad host name in the target"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hp_req r;
        cr_expect_eq(connect_to(bad[i][0], &r), HP_400, "%s", bad[i][0]);
        cr_expect_str_eq(r.why, bad[i][1], "%s", bad[i][0]);
    }
}

Test(target, relay_own_port_is_403)
{
    const char *own[] = {"127.0.0.1:4567", "127.1.2.3:4567", "localhost:4567", "[::1]:4567",
                         "0.0.0.0:4567", "[::ffff:127.0.0.1]:4567", "foo.localhost:4567", NULL};
    for (int i = 0; own[i]; i++) {
        hp_req r;
        cr_expect_eq(connect_to(own[i], &r), HP_403, "%s", own[i]);
    }
    hp_req r;
    cr_expect_eq(connect_to("127.0.0.1:4568", &r), HP_OK);
    cr_expect_eq(connect_to("api.kimi.com:4567", &r), HP_OK);
}

Test(target, malformed_before_auth_auth_before_target)
{
    hp_req r;
    cr_expect_eq(hp_parse("CONNECT a:1 HTTP/1.1 x\r\n\r\n", 26, &CFG, &r), HP_400);
    cr_expect_eq(hp_parse("CONNECT a:1 HTTP/1.1\r\nBad Header\r\n\r\n", 36, &CFG, &r), HP_400);
    cr_expect_str_eq(r.why, "malformed header line");
    /* an unauthenticated client learns nothing about its target */
    cr_expect_eq(parse("CONNECT a.org:0 HTTP/1.1\r\n\r\n", &r), HP_407);
    cr_expect_eq(parse("CONNECT 127.0.0.1:4567 HTTP/1.1\r\n\r\n", &r), HP_407);
}

/* ---- absolute form ---- */

Test(absolute, parsed_and_sent_upstream_in_origin_form)
{
    char head[1200], out[1500];
    snprintf(head, sizeof head,
             "POST http://API.kimi.com:8080/coding/v1/v1/messages?beta=true HTTP/1.1\r\n"
             "Host: api.kimi.com:8080\r\n%sProxy-Connection: Keep-Alive\r\n"
             "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"
             "Content-Length: 2\r\nx-api-key: k\r\n\r\n",
             auth("kimifix", TOKHEX));
    hp_req r;
    cr_assert_eq(parse(head, &r), HP_OK);
    cr_expect_eq(r.kind, HP_ABSOLUTE);
    cr_expect_str_eq(r.method, "POST");
    cr_expect_str_eq(r.host, "api.kimi.com");
    cr_expect_eq(r.port, 8080);
    ssize_t n = hp_upstream_head(head, strlen(head), &r, out, sizeof out);
    cr_assert_gt(n, 0);
    out[n] = 0;
    cr_expect_str_eq(out, "POST /coding/v1/v1/messages?beta=true HTTP/1.1\r\n"
                          "Host: api.kimi.com:8080\r\n"
                          "Content-Length: 2\r\nx-api-key: k\r\n"
                          "Connection: close\r\n\r\n");
    cr_expect_eq(hp_upstream_head(head, strlen(head), &r, out, (size_t)n - 1), -1);
}

Test(absolute, host_from_the_url_and_empty_paths)
{
    const char *h = "GET http://a.org HTTP/1.0\nHost: evil.org\nProxy-Authorization: Basic "
                    "a2ltaWZpeDpkZWFkYmVlZjAxMDIwMzA0MDUwNjA3MDgwOTBhMGJmZg==\n\n";
    hp_req r;
    char out[600];
    cr_assert_eq(hp_parse(h, strlen(h), &CFG, &r), HP_OK);
    cr_expect_eq(r.port, 80);
    ssize_t n = hp_upstream_head(h, strlen(h), &r, out, sizeof out);
    cr_assert_gt(n, 0);
    out[n] = 0;
    cr_expect_str_eq(out, "GET / HTTP/1.0\nHost: a.org\nConnection: close\n\n");
    const char *q = "GET http://[::1]:81?x=1 HTTP/1.1\r\nProxy-Authorization: Basic "
                    "a2ltaWZpeDpkZWFkYmVlZjAxMDIwMzA0MDUwNjA3MDgwOTBhMGJmZg==\r\n\r\n";
    cr_assert_eq(hp_parse(q, strlen(q), &CFG, &r), HP_OK);
    n = hp_upstream_head(q, strlen(q), &r, out, sizeof out);
    cr_assert_gt(n, 0);
    out[n] = 0;
    cr_expect_str_eq(out, "GET /?x=1 HTTP/1.1\r\nHost: [::1]:81\r\nConnection: close\r\n\r\n");
}

Test(absolute, not_proxy_requests_are_400)
{
    char head[800];
    const char *t[][2] = {{"GET / HTTP/1.1", "not a proxy request (CONNECT host:port or an http:// URL)"},
                          {"GET https://a.org/ HTTP/1.1", "an https:// URL must be reached with CONNECT"},
                          {"GET ftp://a.org/ HTTP/1.1", "not a proxy request (CONNECT host:port or an http:// URL)"},
                          {"GET http://u:p@a.org/ HTTP/1.1", "user name in the URL"},
                          {"GET http://a.org:0/ HTTP/1.1", "port outside 1-65535"},
                          {"GET http:///x HTTP/1.1", "bad host name in the target"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        hp_req r;
        snprintf(head, sizeof head, "%s\r\n%s\r\n", t[i][0], auth("kimifix", TOKHEX));
        cr_expect_eq(parse(head, &r), HP_400, "%s", t[i][0]);
        cr_expect_str_eq(r.why, t[i][1]);
    }
}

Test(route, rule_hosts_terminate_others_tunnel)
{
    kf_ruleset *rs = kf_ruleset_builtin();
    cr_assert_not_null(rs);
    hp_req r;
    cr_assert_eq(connect_to("api.kimi.com:443", &r), HP_OK);
    cr_expect(hp_rule_host(rs, &r));
    cr_assert_eq(connect_to("api.moonshot.ai:443", &r), HP_OK);
    cr_expect(hp_rule_host(rs, &r));
    cr_assert_eq(connect_to("api.example.com:443", &r), HP_OK);
    cr_expect(!hp_rule_host(rs, &r));
    cr_assert_eq(connect_to("[::1]:443", &r), HP_OK);
    cr_expect(!hp_rule_host(rs, &r));
    cr_expect(!hp_rule_host(NULL, &r));
}

/* ---- base64 ---- */

Test(b64, round_trip_and_strictness)
{
    char enc[64];
    unsigned char dec[64];
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        cr_expect_eq(hp_b64_encode(in[i], strlen(in[i]), enc, sizeof enc), (ssize_t)strlen(want[i]));
        cr_expect_str_eq(enc, want[i]);
        cr_expect_eq(hp_b64_decode(want[i], strlen(want[i]), dec, sizeof dec), (ssize_t)strlen(in[i]));
        cr_expect_str_eq((char *)dec, in[i]);
    }
    const char *bad[] = {"Zg=", "Zg", "Z===", "Zg==Zg==", "Zm9v!A==", "Z=9v", NULL};
    for (int i = 0; bad[i]; i++)
        cr_expect_eq(hp_b64_decode(bad[i], strlen(bad[i]), dec, sizeof dec), -1, "%s", bad[i]);
    cr_expect_eq(hp_b64_decode("Zm9vYmFy", 8, dec, 6), -1);
    cr_expect_eq(hp_b64_encode("foobar", 6, enc, 8), -1);
}

/* ---- answers ---- */

Test(reply, statuses)
{
    char out[1400];
    cr_expect_str_eq(hp_established, "HTTP/1.1 200 Connection established\r\n\r\n");
    ssize_t n = hp_reply(HP_407, "wrong proxy credentials", out, sizeof out);
    cr_assert_gt(n, 0);
    const char *st407 = "HTTP/1.1 407 Proxy Authentication Required\r\n";
    cr_expect(!strncmp(out, st407, strlen(st407)));
    cr_expect(strstr(out, "\r\nProxy-Authenticate: Basic realm=\"kimifix\"\r\n"));
    cr_expect(strstr(out, "\r\nConnection: close\r\n"));
    const char *body = strstr(out, "\r\n\r\n") + 4;
    char cl[40];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(body));
    cr_expect(strstr(out, cl), "%s", out);
    n = hp_reply(HP_502, "your proxy \"p\":3128 said\nno", out, sizeof out);
    cr_assert_gt(n, 0);
    cr_expect(!strncmp(out, "HTTP/1.1 502 Bad Gateway\r\n", 26), "%s", out);
    cr_expect(strstr(out, "Content-Type: application/json\r\n"));
    cr_expect(strstr(out, "{\"error\":{\"type\":\"kimifix_relay_error\",\"message\":\"kimifix relay: "
                          "your proxy \\\"p\\\":3128 saidno\"}}"), "%s", out);
    cr_expect(!strstr(out, "Proxy-Authenticate"));
    const int st[] = {HP_400, HP_403, HP_408, HP_431, HP_504};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_gt(hp_reply(st[i], "x", out, sizeof out), 0);
        char want[20];
        snprintf(want, sizeof want, "HTTP/1.1 %d ", st[i]);
        cr_expect(!strncmp(out, want, strlen(want)), "%s", out);
    }
    cr_expect_eq(hp_reply(HP_400, "x", out, 30), -1);
}

Test(reply, rate_limit)
{
    hp_limit l = {0, 0};
    unsigned d = 99;
    cr_expect(hp_limit_allow(&l, 1000, &d));
    cr_expect_eq(d, 0);
    for (int i = 0; i < 50; i++)
        cr_expect(!hp_limit_allow(&l, 1000 + i * 100, &d));
    cr_expect(!hp_limit_allow(&l, 1000 + HP_LOG_EVERY_MS - 1, &d));
    cr_expect(hp_limit_allow(&l, 1000 + HP_LOG_EVERY_MS, &d));
    cr_expect_eq(d, 51);
    cr_expect(!hp_limit_allow(&l, 1000 + HP_LOG_EVERY_MS, &d));
}
