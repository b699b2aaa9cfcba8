/* kf_redact.c - which header values and query parameters are secrets, and
 * their redacted copies for logs and `kimifix explain` (kf_log.h).
 *
 * Header names (docs/RELIABILITY.md, finding 7): the known ones
 * (Authorization, Proxy-Authorization, Cookie, Set-Cookie, x-api-key, Kong's
 * "apikey"), and any name that contains "token", "secret", "password",
 * "passwd", "credential", "cookie", "authoriz" or "authentic", has a word
 * "auth" (X-Auth, X-Foo-Auth-Bar), or has a word containing "key"
 * (apikey, x-goog-api-key, accesskey). False positives we avoid on
 * purpose, because they are common and never secret: words that merely
 * contain "key" (monkey, turkey, donkey, hockey, jockey, whiskey, lackey,
 * keyboard, keyword, keynote, keystroke), Idempotency-Key (a retry id the
 * SDKs send), Sec-WebSocket-Key (a public nonce), and the rate-limit
 * headers that count "tokens" (x-ratelimit-*, anthropic-ratelimit-*,
 * ratelimit-*). "keep-alive" contains none of the words. When in doubt a
 * name is secret: a redacted value costs a debugging detail, a logged one
 * costs a key.
 */
#include <string.h>

#include "kf_log.h"
#include "kf_mask.h"

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Does `word` occur in s, case-insensitively? */
static int contains_ci(kf_str s, const char *word)
{
    size_t wn = strlen(word);
    for (size_t i = 0; i + wn <= s.n; i++) {
        size_t j = 0;
        while (j < wn && lower((unsigned char)s.p[i + j]) == (unsigned char)word[j])
            j++;
        if (j == wn)
            return 1;
    }
    return 0;
}

static int starts_ci(kf_str s, const char *word)
{
    size_t wn = strlen(word);
    return s.n >= wn && kf_str_ieq_c((kf_str){ s.p, wn }, word);
}

static int is_sep(char c)
{
    return c == '-' || c == '_' || c == '.';
}

/* Is one word of name (split at '-', '_', '.') judged secret by judge()? */
static int any_word(kf_str name, int (*judge)(kf_str w))
{
    size_t i = 0;
    while (i < name.n) {
        size_t j = i;
        while (j < name.n && !is_sep(name.p[j]))
            j++;
        if (j > i && judge((kf_str){ name.p + i, j - i }))
            return 1;
        i = j + 1;
    }
    return 0;
}

static int key_word(kf_str w)
{
    static const char *const english[] = { "monkey", "monkeys", "turkey", "donkey", "hockey",
                                           "jockey", "whiskey", "lackey", "keyboard",
                                           "keyword", "keywords", "keynote", "keystroke" };
    if (!contains_ci(w, "key"))
        return 0;
    for (size_t i = 0; i < sizeof english / sizeof english[0]; i++)
        if (kf_str_ieq_c(w, english[i]))
            return 0;
    return 1;
}

static int auth_word(kf_str w)
{
    return kf_str_ieq_c(w, "auth");
}

int kf_is_secret_header(kf_str name)
{
    static const char *const plain[] = { "idempotency-key", "x-idempotency-key", "sec-websocket-key" };
    static const char *const plain_prefix[] = { "x-ratelimit-", "anthropic-ratelimit-", "ratelimit-" };
    static const char *const words[] = { "token",      "secret",   "password", "passwd",
                                         "credential", "cookie",   "authoriz", "authentic" };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (kf_str_ieq_c(name, plain[i]))
            return 0;
    for (size_t i = 0; i < sizeof plain_prefix / sizeof plain_prefix[0]; i++)
        if (starts_ci(name, plain_prefix[i]))
            return 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (contains_ci(name, words[i]))
            return 1;
    return any_word(name, key_word) || any_word(name, auth_word);
}

static size_t copy_out(char *buf, size_t n, size_t at, const char *s, size_t k)
{
    if (n == 0 || at >= n - 1)
        return at;
    if (k > n - 1 - at)
        k = n - 1 - at;
    memcpy(buf + at, s, k);
    buf[at + k] = '\0';
    return at + k;
}

/* Text that is not secret by its name, with what looks like a key inside
 * it masked (a Bearer token in an innocent header, sk-... in a path). */
static size_t copy_masked(char *buf, size_t n, size_t at, const char *s, size_t k)
{
    if (n == 0 || at >= n - 1)
        return at;
    size_t need = kf_mask_text(s, k, buf + at, n - at, NULL, 0, KF_MASK_SECRETS);
    return at + (need < n - at ? need : strlen(buf + at));
}

static const char redacted[] = "[redacted]";

size_t kf_redact_value(kf_str name, kf_str value, char *buf, size_t n)
{
    if (n)
        buf[0] = '\0';
    if (kf_is_secret_header(name))
        return copy_out(buf, n, 0, redacted, sizeof redacted - 1);
    return copy_masked(buf, n, 0, value.p, value.n);
}

/* Percent-decode s into out (at most cap bytes); servers decode names
 * before they look at them, so "%6Bey" is "key". Returns the length, or
 * cap + 1 when s does not fit. */
static size_t pct_decode(kf_str s, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        int hi, lo;
        if (c == '%' && i + 2 < s.n && (hi = kf_hexval(s.p[i + 1])) >= 0 &&
            (lo = kf_hexval(s.p[i + 2])) >= 0) {
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o == cap)
            return cap + 1;
        out[o++] = c;
    }
    return o;
}

static int secret_param(kf_str name, kf_str value)
{
    static const char *const words[] = { "key",  "token", "secret", "password", "passwd",
                                         "sig",  "auth",  "code",   "credential" };
    char dn[256], dv[3];
    size_t nn = pct_decode(name, dn, sizeof dn);
    size_t vn = pct_decode((kf_str){ value.p, value.n < 9 ? value.n : 9 }, dv, sizeof dv);
    if (nn > sizeof dn)
        return 1; /* a name this long is odd: keep its value out of the log */
    if (vn >= 3 && memcmp(dv, "sk-", 3) == 0)
        return 1;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (contains_ci((kf_str){ dn, nn }, words[i]))
            return 1;
    return 0;
}

static int sk_value(kf_str v)
{
    char dv[3];
    return pct_decode((kf_str){ v.p, v.n < 9 ? v.n : 9 }, dv, sizeof dv) >= 3 &&
           memcmp(dv, "sk-", 3) == 0;
}

static size_t redact_path(kf_str path, char *buf, size_t n)
{
    size_t at = 0;
    /* Path segments that are keys ("/sk-...") are redacted too. */
    size_t i = 0;
    while (i < path.n) {
        size_t j = i;
        while (j < path.n && path.p[j] != '/')
            j++;
        kf_str seg = { path.p + i, j - i };
        if (sk_value(seg))
            at = copy_out(buf, n, at, redacted, sizeof redacted - 1);
        else
            at = copy_masked(buf, n, at, seg.p, seg.n);
        if (j < path.n)
            at = copy_out(buf, n, at, "/", 1);
        i = j + 1;
    }
    return at;
}

size_t kf_redact_target(kf_str path, kf_str query, char *buf, size_t n)
{
    if (n)
        buf[0] = '\0';
    size_t at = redact_path(path, buf, n);
    if (query.n == 0)
        return at;
    /* query: "?a=b&c=d;e=f" - both separators, as many servers split on
     * ';' too (W3C form rules, Python before 3.9.2, Rack). */
    size_t q = 0;
    if (query.p[0] == '?') {
        at = copy_out(buf, n, at, "?", 1);
        q = 1;
    }
    while (q <= query.n) {
        size_t e = q;
        while (e < query.n && query.p[e] != '&' && query.p[e] != ';')
            e++;
        kf_str param = { query.p + q, e - q };
        const char *eq = memchr(param.p, '=', param.n);
        if (eq) {
            kf_str pname = { param.p, (size_t)(eq - param.p) };
            kf_str pval = { eq + 1, param.n - pname.n - 1 };
            at = copy_masked(buf, n, at, pname.p, pname.n);
            at = copy_out(buf, n, at, "=", 1);
            if (pval.n && secret_param(pname, pval))
                at = copy_out(buf, n, at, redacted, sizeof redacted - 1);
            else
                at = copy_masked(buf, n, at, pval.p, pval.n);
        } else if (sk_value(param)) {
            at = copy_out(buf, n, at, redacted, sizeof redacted - 1);
        } else {
            at = copy_masked(buf, n, at, param.p, param.n);
        }
        if (e >= query.n)
            break;
        at = copy_out(buf, n, at, query.p + e, 1);
        q = e + 1;
    }
    return at;
}
