/* fuzz_httpproxy.c - libFuzzer target for the relay's HTTP proxy front end
 * and its chain to the user's proxy (src/relay/httpproxy*.c, chain.c):
 * the bytes of a proxy request head from any local process, and the answer
 * of whatever the user's proxy is. Hostile input by design.
 *
 * The first input byte picks a split step; the rest is fed both as a head
 * and as a proxy's answer. Invariants beyond "no sanitizer report":
 *  - hp_scan_head: fed in pieces (the same bytes each call, more of them)
 *    it answers what one call on the whole answers; a head length is
 *    within the bytes and within HP_HEAD_MAX; TOO_BIG only from 16 KiB on;
 *  - hp_parse: HP_OK or a refusal status, with a NUL-terminated reason;
 *    accepted requests have a host and a port in 1-65535, and 407 comes
 *    before anything else about a target (a head without the credentials
 *    is never answered 400 for its target or 403);
 *  - hp_upstream_head fits n + 300 bytes (as httpproxy.h promises), ends
 *    with the empty line and carries no Proxy-Authorization;
 *  - hp_reply fits 1400 bytes for every status;
 *  - kf_chain_feed: fed in pieces it decides as on the whole, `used` stays
 *    within the piece, and no text it makes holds the proxy's user name or
 *    password;
 *  - kf_chain_absolute_head fits n + 1200 bytes.
 * Build: make fuzz (clang) or make fuzz-smoke.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chain.h"
#include "httpproxy.h"

static const unsigned char token[KF_PROXY_TOKEN_LEN] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                                                         0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98,
                                                         0x76, 0x54, 0x32, 0x10};

/* A header line starting with name (case-insensitive). */
static int has_line(const char *p, size_t n, const char *name)
{
    size_t l = strlen(name);
    for (const char *e = p + n; p < e;) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        if ((size_t)(e - p) >= l && !strncasecmp(p, name, l))
            return 1;
        p = nl ? nl + 1 : e;
    }
    return 0;
}

static ssize_t scan_pieces(const char *d, size_t n, size_t step)
{
    hp_scan s = {0};
    ssize_t r = HP_SCAN_MORE;
    for (size_t have = step < n ? step : n;; have = have + step < n ? have + step : n) {
        r = hp_scan_head(&s, d, have);
        if (r != HP_SCAN_MORE || have == n)
            return r;
    }
}

static void check_head(const char *d, size_t n, size_t step)
{
    hp_scan s = {0};
    ssize_t whole = hp_scan_head(&s, d, n);
    if (scan_pieces(d, n, step) != whole)
        abort();
    if (whole == HP_SCAN_TOO_BIG && n < HP_HEAD_MAX)
        abort();
    if (whole <= 0)
        return;
    if ((size_t)whole > n || whole > HP_HEAD_MAX)
        abort();
    hp_req req;
    hp_cfg cfg = {.token = token, .relay_port = 4242};
    int st = hp_parse(d, (size_t)whole, &cfg, &req);
    if (memchr(req.why, 0, sizeof req.why) == NULL || memchr(req.host, 0, sizeof req.host) == NULL)
        abort();
    char out[1500];
    if (hp_reply(st == HP_OK ? HP_502 : st, req.why, out, sizeof out) < 0)
        abort();
    if (st != HP_OK) {
        if (st != HP_400 && st != HP_403 && st != HP_407)
            abort();
        return;
    }
    if (!req.host[0] || req.port < 1 || req.port > 65535)
        abort();
    if (req.kind == HP_ABSOLUTE) {
        size_t cap = (size_t)whole + 300;
        char *up = malloc(cap);
        ssize_t m = hp_upstream_head(d, (size_t)whole, &req, up, cap);
        if (m < 4 || (memcmp(up + m - 2, "\n\n", 2) && memcmp(up + m - 4, "\r\n\r\n", 4)) ||
            has_line(up, (size_t)m, "proxy-authorization:"))
            abort();
        free(up);
    }
}

static void check_chain(const char *d, size_t n, size_t step)
{
    kf_purl p;
    /* Credentials with bytes no text of chain.c passes on from a proxy's
     * answer (it keeps printable ASCII): seen in a text = leaked from the URL. */
    if (kf_purl_parse("http://al%C3%AFce:s3cr%C3%A9t@proxy.corp:3128", &p) < 0)
        abort();
    kf_chain a, b;
    if (kf_chain_begin(&a, &p, "api.kimi.com", 443) < 0 || kf_chain_begin(&b, &p, "api.kimi.com", 443) < 0)
        abort();
    size_t used_whole = 0, used = 0, total = 0;
    int whole = kf_chain_feed(&a, d, n, &used_whole);
    if (used_whole > n)
        abort();
    int r = CH_MORE;
    for (size_t off = 0; off < n && r == CH_MORE; off += step) {
        size_t k = n - off < step ? n - off : step;
        r = kf_chain_feed(&b, d + off, k, &used);
        if (used > k)
            abort();
        total = off + used;
    }
    /* the same verdict, and a tunnel starts at the same byte */
    if (r != whole || (r == CH_OK && total != used_whole))
        abort();
    if (strstr(a.err, "s3cr\xc3\xa9t") || strstr(a.err, "al\xc3\xaf" "ce") || strstr(b.err, "s3cr\xc3\xa9t"))
        abort();
    kf_chain_io_failed(&a, CH_IO_RESET, 104);
    if (strstr(a.err, "s3cr\xc3\xa9t") || (a.reply != 502 && a.reply != 504))
        abort();
    size_t cap = n + 1200;
    char *out = malloc(cap);
    if (kf_chain_absolute_head(d, n, &p, "api.kimi.com", 80, out, cap) > (ssize_t)cap)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 2 * HP_HEAD_MAX)
        return 0;
    size_t step = (size_t)data[0] % 64 + 1;
    const char *d = (const char *)data + 1;
    size_t n = size - 1;
    check_head(d, n, step);
    check_chain(d, n, step);
    return 0;
}
