/* test_chain.c - CONNECT through the user's proxy (src/relay/chain.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "chain.h"
#include "httpproxy.h"

static kf_purl proxy(const char *url)
{
    kf_purl u;
    cr_assert_eq(kf_purl_parse(url, &u), 0, "%s", url);
    return u;
}

static void no_secret(const kf_chain *c)
{
    cr_expect_null(strstr(c->err, "s3cret"), "%s", c->err);
    cr_expect_null(strstr(c->err, "alice"), "%s", c->err);
}

Test(chain, request_with_credentials)
{
    kf_purl p = proxy("http://alice:s3cret%21@proxy.corp:3128");
    kf_chain c;
    cr_assert_eq(kf_chain_begin(&c, &p, "api.kimi.com", 443), 0);
    char b[100];
    hp_b64_encode("alice:s3cret!", 13, b, sizeof b);
    char want[400];
    snprintf(want, sizeof want,
             "CONNECT api.kimi.com:443 HTTP/1.1\r\nHost: api.kimi.com:443\r\n"
             "Proxy-Authorization: Basic %s\r\n\r\n", b);
    cr_expect_eq(c.req_len, strlen(want));
    cr_expect_str_eq(c.req, want);
    cr_expect_str_eq(c.shown, "proxy.corp:3128");
}

Test(chain, request_without_credentials_ipv6_target)
{
    kf_purl p = proxy("http://[fd00::3]:8080");
    kf_chain c;
    cr_assert_eq(kf_chain_begin(&c, &p, "2001:db8::1", 443), 0);
    cr_expect_str_eq(c.req, "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n");
    cr_expect_str_eq(c.shown, "[fd00::3]:8080");
}

Test(chain, ok_in_pieces_keeps_tunnel_bytes)
{
    kf_purl p = proxy("http://proxy.corp:3128");
    kf_chain c;
    kf_chain_begin(&c, &p, "api.example.com", 443);
    const char *resp = "HTTP/1.1 200 Connection established\r\nVia: corp\r\n\r\nSERVERHELLO";
    size_t end = strlen(resp) - strlen("SERVERHELLO"), used = 0;
    int r = CH_MORE;
    size_t i;
    for (i = 0; i < strlen(resp) && r == CH_MORE; i++)
        r = kf_chain_feed(&c, resp + i, 1, &used);
    cr_expect_eq(r, CH_OK);
    cr_expect_eq(i, end, "OK when the head's last byte came");
    kf_chain d;
    kf_chain_begin(&d, &p, "api.example.com", 443);
    cr_expect_eq(kf_chain_feed(&d, resp, strlen(resp), &used), CH_OK);
    cr_expect_eq(used, end);
    cr_expect_eq(kf_chain_feed(&d, "more", 4, &used), CH_OK); /* already done */
    cr_expect_eq(used, 0);
}

Test(chain, http10_and_bare_lf_answers)
{
    kf_purl p = proxy("http://proxy.corp:3128");
    kf_chain c;
    size_t used;
    kf_chain_begin(&c, &p, "a.org", 443);
    cr_expect_eq(kf_chain_feed(&c, "HTTP/1.0 200\n\n", 14, &used), CH_OK);
    cr_expect_eq(used, 14);
}

Test(chain, proxy_407_is_502_naming_proxy_only)
{
    kf_purl p = proxy("http://alice:s3cret@proxy.corp:3128");
    kf_chain c;
    size_t used;
    kf_chain_begin(&c, &p, "api.kimi.com", 443);
    const char *resp = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n";
    cr_expect_eq(kf_chain_feed(&c, resp, strlen(resp), &used), CH_FAIL);
    cr_expect_eq(c.reply, 502);
    cr_expect(strstr(c.err, "proxy.corp:3128"), "%s", c.err);
    cr_expect(strstr(c.err, "407 Proxy Authentication Required"), "%s", c.err);
    no_secret(&c);
    /* the status line is enough: no waiting for the body */
    cr_expect_lt(used, strlen(resp));
}

Test(chain, proxy_refusals)
{
    kf_purl p = proxy("http://alice:s3cret@proxy.corp:3128");
    struct { const char *resp, *want; } t[] = {
        {"HTTP/1.1 403 Forbidden\r\n\r\n", "refused CONNECT api.kimi.com:443: 403 Forbidden"},
        {"HTTP/1.1 503 \x01" "Down\r\n\r\n", "refused CONNECT api.kimi.com:443: 503 Down"},
        {"SSH-2.0-OpenSSH\r\n", "not an HTTP answer"},
        {"HTTP/1.1 2000 OK\r\n", "not an HTTP answer"},
        {"HTTP/2 200\r\n", "not an HTTP answer"},
        {"HTTP/1.1 099 x\r\n", "not an HTTP answer"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        kf_chain c;
        size_t used;
        kf_chain_begin(&c, &p, "api.kimi.com", 443);
        cr_expect_eq(kf_chain_feed(&c, t[i].resp, strlen(t[i].resp), &used), CH_FAIL, "%s", t[i].resp);
        cr_expect(strstr(c.err, t[i].want), "%s: %s", t[i].resp, c.err);
        cr_expect_eq(c.reply, 502);
        no_secret(&c);
    }
}

Test(chain, answer_head_over_16k)
{
    kf_purl p = proxy("http://proxy.corp:3128");
    kf_chain c;
    size_t used;
    kf_chain_begin(&c, &p, "a.org", 443);
    cr_assert_eq(kf_chain_feed(&c, "HTTP/1.1 200 OK\r\n", 17, &used), CH_MORE);
    static char pad[CH_HEAD_MAX];
    memset(pad, 'x', sizeof pad);
    cr_expect_eq(kf_chain_feed(&c, pad, sizeof pad, &used), CH_FAIL);
    cr_expect(strstr(c.err, "over 16 KiB"), "%s", c.err);
}

Test(chain, io_failures)
{
    kf_purl p = proxy("http://alice:s3cret@proxy.corp:3128");
    struct { int what, err, reply; const char *want; } t[] = {
        {CH_IO_RESOLVE, 0, 502, "cannot resolve your proxy proxy.corp:3128"},
        {CH_IO_REFUSED, ECONNREFUSED, 502, "cannot connect to your proxy proxy.corp:3128 (Connection refused)"},
        {CH_IO_RESET, ECONNRESET, 502, "your proxy proxy.corp:3128 reset the connection during CONNECT a.org:443"},
        {CH_IO_CLOSED, 0, 502, "your proxy proxy.corp:3128 closed the connection before answering CONNECT a.org:443"},
        {CH_IO_TIMEOUT, 0, 504, "your proxy proxy.corp:3128 did not answer CONNECT a.org:443 in time"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        kf_chain c;
        kf_chain_begin(&c, &p, "a.org", 443);
        kf_chain_io_failed(&c, t[i].what, t[i].err);
        cr_expect_str_eq(c.err, t[i].want);
        cr_expect_eq(c.reply, t[i].reply);
        no_secret(&c);
        char out[1400];
        cr_assert_gt(hp_reply(c.reply, c.err, out, sizeof out), 0);
        cr_expect(strstr(out, "proxy.corp:3128"));
    }
}

Test(chain, wanted)
{
    cr_expect(kf_chain_wanted(NULL, "api.kimi.com", 443));
    cr_expect(!kf_chain_wanted(NULL, "localhost", 443));
    cr_expect(!kf_chain_wanted(NULL, "127.0.0.5", 443));
    cr_expect(!kf_chain_wanted(NULL, "::1", 443));
    cr_expect(!kf_chain_wanted("kimi.com", "api.kimi.com", 443));
    cr_expect(kf_chain_wanted("kimi.com", "api.moonshot.ai", 443));
}

Test(chain, absolute_head_for_plain_http)
{
    kf_purl p = proxy("http://alice:s3cret@proxy.corp:3128");
    const char *h = "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\nConnection: close\r\n\r\n";
    char out[2000];
    ssize_t n = kf_chain_absolute_head(h, strlen(h), &p, "api.kimi.com", 80, out, sizeof out);
    cr_assert_gt(n, 0);
    out[n] = 0;
    char b[100], want[600];
    hp_b64_encode("alice:s3cret", 12, b, sizeof b);
    snprintf(want, sizeof want,
             "POST http://api.kimi.com/coding/v1/messages HTTP/1.1\r\nProxy-Authorization: Basic %s\r\n"
             "Host: api.kimi.com\r\nConnection: close\r\n\r\n", b);
    cr_expect_str_eq(out, want);
    kf_purl q = proxy("http://proxy.corp:3128");
    n = kf_chain_absolute_head(h, strlen(h), &q, "::1", 8080, out, sizeof out);
    cr_assert_gt(n, 0);
    out[n] = 0;
    cr_expect(!strncmp(out, "POST http://[::1]:8080/coding/v1/messages HTTP/1.1\r\nHost:", 57), "%s", out);
    cr_expect_eq(kf_chain_absolute_head(h, strlen(h), &q, "a.org", 80, out, 20), -1);
    cr_expect_eq(kf_chain_absolute_head("GET http://x/ HTTP/1.1\r\n\r\n", 26, &q, "a", 80, out,
                                        sizeof out), -1);
}
