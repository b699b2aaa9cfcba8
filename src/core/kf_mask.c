/* kf_mask.c - secrets masked and control bytes escaped in text that is
 * logged or shown (kf_mask.h).
 *
 * Why a pattern scan on top of header-name redaction: some text is free
 * form. An upstream's error message ("Incorrect API key provided:
 * sk-kimi-...") is logged by the relay; a key can sit in a query value
 * under an innocent name. So every log line is scanned for what a key
 * looks like (sk-..., Bearer ..., a JWT) and for the keys this process has
 * seen in requests (kf_mask_note_key: a fingerprint, not the key).
 *
 * Why escaping: diagnostics quote user input (rules files, file names,
 * header values). ESC [ ... or OSC sequences in a rules file must not
 * reach the terminal of the user running `kimifix check`, and a CR or LF
 * must not forge a second log line.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "kf_mask.h"

#define NOTED 16    /* distinct keys remembered */
#define FP_BYTES 16 /* bytes of a key the fingerprint covers */
#define MIN_KEY 8   /* shorter "keys" would mask ordinary words */
#define MIN_SK 8    /* characters after "sk-" that make a key */

static const char redacted[] = "[redacted]";

/* ---- noted keys: fingerprint = hash32(first 16 bytes) | len16 | b0 | b1 ---- */

static _Atomic uint64_t noted[NOTED];
static atomic_uint noted_next;

static uint32_t fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}

static uint64_t fingerprint(const char *p, size_t n)
{
    uint64_t len = n > 0xffff ? 0xffff : n;
    return (uint64_t)fnv1a(p, n < FP_BYTES ? n : FP_BYTES) << 32 | len << 16 |
           (uint64_t)(unsigned char)p[0] << 8 | (unsigned char)p[1];
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int prefix_ci(const char *p, size_t n, const char *word)
{
    size_t k = strlen(word);
    if (n < k)
        return 0;
    for (size_t i = 0; i < k; i++)
        if (lower((unsigned char)p[i]) != (unsigned char)word[i])
            return 0;
    return 1;
}

void kf_mask_note_key(kf_str k)
{
    static const char *const schemes[] = { "bearer", "basic", "token" };
    k = kf_str_trim(k);
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t sl = strlen(schemes[i]);
        if (k.n > sl && prefix_ci(k.p, k.n, schemes[i]) && (k.p[sl] == ' ' || k.p[sl] == '\t')) {
            k.p += sl;
            k.n -= sl;
            k = kf_str_trim(k);
            break;
        }
    }
    if (k.n < MIN_KEY || k.n > 4096)
        return;
    uint64_t fp = fingerprint(k.p, k.n);
    for (unsigned i = 0; i < NOTED; i++)
        if (atomic_load_explicit(&noted[i], memory_order_relaxed) == fp)
            return;
    unsigned at = atomic_fetch_add_explicit(&noted_next, 1, memory_order_relaxed) % NOTED;
    atomic_store_explicit(&noted[at], fp, memory_order_relaxed);
}

void kf_mask_forget_keys(void)
{
    for (unsigned i = 0; i < NOTED; i++)
        atomic_store_explicit(&noted[i], 0, memory_order_relaxed);
}

/* ---- output with truncation that never cuts an escape in two ---- */

typedef struct emit {
    char *out;
    size_t cap, w; /* bytes written */
    size_t len;    /* bytes the whole result needs */
    int full;      /* a piece did not fit: write nothing more */
} emit;

static void put(emit *e, const char *s, size_t k)
{
    e->len += k;
    if (e->full || e->cap == 0 || e->w + k > e->cap - 1) {
        e->full = 1;
        return;
    }
    memcpy(e->out + e->w, s, k);
    e->w += k;
}

static void put_hex(emit *e, unsigned char c)
{
    static const char hx[] = "0123456789abcdef";
    char b[4] = { '\\', 'x', hx[c >> 4], hx[c & 15] };
    put(e, b, 4);
}

/* Length of the valid, displayable UTF-8 sequence at p, or 0: overlong
 * forms, surrogates, C1 controls (U+0080-U+009F: 8-bit CSI and friends)
 * and bidirectional overrides (U+202A-U+202E, U+2066-U+2069: text that
 * reads differently than it is) are escaped byte by byte. */
static size_t utf8_ok(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t k = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    if (k == 0 || n < k)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xC2 && p[1] < 0xA0) || (c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) ||
        (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
        return 0;
    if (c == 0xE2 && ((p[1] == 0x80 && p[2] >= 0xAA && p[2] <= 0xAE) ||
                      (p[1] == 0x81 && p[2] >= 0xA6 && p[2] <= 0xA9)))
        return 0;
    return k;
}

/* Emit the character at p (escaped when asked); returns bytes consumed. */
static size_t put_char(emit *e, const char *p, size_t n, int esc)
{
    unsigned char c = (unsigned char)p[0];
    if (!esc || (c >= 0x20 && c < 0x7f)) {
        put(e, p, 1);
        return 1;
    }
    size_t k = c >= 0x80 ? utf8_ok((const unsigned char *)p, n) : 0;
    if (k) {
        put(e, p, k);
        return k;
    }
    put_hex(e, c);
    return 1;
}

/* ---- what a secret looks like ---- */

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_keych(unsigned char c) /* base64url and the usual key alphabets */
{
    return is_alnum(c) || c == '-' || c == '_';
}

static int is_tok68(unsigned char c) /* RFC 9110 token68, '=' handled apart */
{
    return is_alnum(c) || (c && strchr("-._~+/", c));
}

/* "sk-[label-]SECRET" with at least MIN_SK key characters after "sk-", one
 * of them a digit or a capital: keys are random base62, while names built
 * of words ("moonshot-sk-kimi-to-coding-host", a rule) are not. A short
 * lower-case label ("kimi-", "proj-", "ant-") stays visible: it says which
 * kind of key it was and is not secret. */
static size_t match_sk(const char *in, size_t n, size_t i, size_t *keep)
{
    if (n - i < 3 || memcmp(in + i, "sk-", 3) != 0)
        return 0;
    size_t j = i + 3;
    int random = 0;
    while (j < n && is_keych((unsigned char)in[j])) {
        random |= (in[j] >= '0' && in[j] <= '9') || (in[j] >= 'A' && in[j] <= 'Z');
        j++;
    }
    if (j - (i + 3) < MIN_SK || !random)
        return 0;
    size_t l = i + 3;
    while (l < n && l - (i + 3) <= 8 && in[l] >= 'a' && in[l] <= 'z')
        l++;
    *keep = 3;
    if (l - (i + 3) >= 2 && l - (i + 3) <= 8 && l < j && in[l] == '-' && j - (l + 1) >= MIN_SK)
        *keep = l + 1 - i;
    return j - i;
}

/* "Bearer TOKEN": a token68 of 8+ characters that has a digit or a symbol,
 * or 24+ characters (no English word is that long). So "Bearer
 * authentication failed" stays readable. */
static size_t match_bearer(const char *in, size_t n, size_t i, size_t *keep)
{
    if (!prefix_ci(in + i, n - i, "bearer") || n - i < 8 || (in[i + 6] != ' ' && in[i + 6] != '\t'))
        return 0;
    size_t s = i + 6;
    while (s < n && (in[s] == ' ' || in[s] == '\t'))
        s++;
    size_t j = s;
    int strong = 0;
    while (j < n && is_tok68((unsigned char)in[j])) {
        if (!(in[j] >= 'a' && in[j] <= 'z') && !(in[j] >= 'A' && in[j] <= 'Z'))
            strong = 1;
        j++;
    }
    while (j < n && in[j] == '=')
        j++, strong = 1;
    if (j - s < 8 || (!strong && j - s < 24))
        return 0;
    *keep = s - i;
    return j - i;
}

/* A JSON Web Token: "eyJ" base64url "." base64url "." [base64url]. */
static size_t match_jwt(const char *in, size_t n, size_t i, size_t *keep)
{
    if (n - i < 3 || memcmp(in + i, "eyJ", 3) != 0)
        return 0;
    size_t j = i;
    for (int part = 0; part < 3; part++) {
        size_t s = j;
        while (j < n && is_keych((unsigned char)in[j]))
            j++;
        if ((part == 0 && j - s < 10) || (part == 1 && j == s))
            return 0;
        if (part < 2) {
            if (j >= n || in[j] != '.')
                return 0;
            j++;
        }
    }
    *keep = 0;
    return j - i;
}

/* A given key at i (or its beginning, when the text ends inside it). */
static size_t match_key(const char *in, size_t n, size_t i, kf_str k)
{
    size_t room = n - i;
    if (k.n < MIN_KEY || room < MIN_KEY)
        return 0;
    size_t m = room < k.n ? room : k.n;
    return memcmp(in + i, k.p, m) == 0 ? m : 0;
}

static size_t match_noted(const char *in, size_t n, size_t i, const uint64_t *fp, unsigned nfp)
{
    for (unsigned f = 0; f < nfp; f++) {
        size_t len = (size_t)(fp[f] >> 16 & 0xffff);
        size_t k = len < FP_BYTES ? len : FP_BYTES;
        if (n - i < k || (unsigned char)in[i] != (fp[f] >> 8 & 0xff) ||
            (unsigned char)in[i + 1] != (fp[f] & 0xff))
            continue;
        if (fnv1a(in + i, k) == (uint32_t)(fp[f] >> 32))
            return len < n - i ? len : n - i;
    }
    return 0;
}

static size_t secret_at(const char *in, size_t n, size_t i, const kf_str *keys, unsigned nkeys,
                        const uint64_t *fp, unsigned nfp, size_t *keep)
{
    size_t m;
    *keep = 0;
    for (unsigned k = 0; k < nkeys; k++)
        if ((m = match_key(in, n, i, keys[k])) != 0)
            return m;
    if (nfp && n - i >= 2 && (m = match_noted(in, n, i, fp, nfp)) != 0)
        return m;
    if (i > 0 && (is_keych((unsigned char)in[i - 1]) || in[i - 1] == '.'))
        return 0; /* the patterns below start a word ("risk-", "my-sk-", "x.eyJ") */
    if ((m = match_sk(in, n, i, keep)) || (m = match_bearer(in, n, i, keep)) ||
        (m = match_jwt(in, n, i, keep)))
        return m;
    return 0;
}

size_t kf_mask_text(const char *in, size_t n, char *out, size_t cap, const kf_str *keys,
                    unsigned nkeys, unsigned flags)
{
    emit e = { out, cap, 0, 0, 0 };
    int esc = (flags & KF_MASK_ESCAPE) != 0;
    uint64_t fp[NOTED];
    unsigned nfp = 0;
    if (flags & KF_MASK_SECRETS)
        for (unsigned i = 0; i < NOTED; i++)
            if ((fp[nfp] = atomic_load_explicit(&noted[i], memory_order_relaxed)) != 0)
                nfp++;
    size_t i = 0;
    while (i < n) {
        size_t keep, m = 0;
        if (flags & KF_MASK_SECRETS)
            m = secret_at(in, n, i, keys, nkeys, fp, nfp, &keep);
        if (m) {
            for (size_t k = 0; k < keep;)
                k += put_char(&e, in + i + k, keep - k, esc);
            put(&e, redacted, sizeof redacted - 1);
            i += m;
            continue;
        }
        i += put_char(&e, in + i, n - i, esc);
    }
    if (cap)
        out[e.w] = '\0';
    return e.len;
}

size_t kf_escape_text(const char *s, char *out, size_t cap)
{
    return kf_mask_text(s, s ? strlen(s) : 0, out, cap, NULL, 0, KF_MASK_ESCAPE);
}
