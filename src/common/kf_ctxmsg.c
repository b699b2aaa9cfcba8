/* kf_ctxmsg.c - context registration: format and parse (see kf_ctxmsg.h).
 * The client side (sockets) is in kf_ctxcall.c. */
#include "kf_ctxmsg.h"

#include <string.h>

#include "kf_paths.h"

static const struct {
    const char *line;
    size_t n;
    int kind;
} first_lines[] = {
    {"kfctx 1", 7, KF_CTXMSG_CTX},
    {"kfjava 1", 8, KF_CTXMSG_JAVA},
};

int kf_ctxmsg_value_ok(const char *v, size_t n)
{
    if (n > KF_CTXMSG_VALUE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int key_is(kf_str k, const char *lit)
{
    size_t n = strlen(lit);
    return k.n == n && !memcmp(k.p, lit, n);
}

/* The singular keys and where they go. */
static kf_str *slot(kf_ctxmsg *m, kf_str key)
{
    static const char *const names[] = {"rules", "log", "level", "exe", "buildid",
                                        "proxy", "noproxy", "cacerts", "storepass"};
    kf_str *const slots[] = {&m->rules, &m->log, &m->level, &m->exe, &m->buildid,
                             &m->proxy, &m->noproxy, &m->cacerts, &m->storepass};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (key_is(key, names[i]))
            return slots[i];
    return NULL;
}

static int first_line(const char *p, size_t n, int complete)
{
    for (unsigned i = 0; i < sizeof first_lines / sizeof first_lines[0]; i++) {
        size_t k = n < first_lines[i].n ? n : first_lines[i].n;
        if (!memcmp(p, first_lines[i].line, k) && (!complete || n == first_lines[i].n))
            return complete ? first_lines[i].kind : 1;
    }
    return 0;
}

/* One "key value" line (without its newline). 0 or -1 with why. */
static int one_line(const char *p, size_t n, kf_ctxmsg *out, const char **why)
{
    size_t k = 0;
    while (k < n && p[k] != ' ')
        k++;
    if (k == 0 || k > KF_CTXMSG_KEY_MAX) {
        *why = "bad key";
        return -1;
    }
    for (size_t i = 0; i < k; i++)
        if (!key_char((unsigned char)p[i])) {
            *why = "bad key";
            return -1;
        }
    kf_str key = {p, k};
    kf_str val = {p + (k < n ? k + 1 : k), k < n ? n - k - 1 : 0};
    if (!kf_ctxmsg_value_ok(val.p, val.n)) {
        *why = "bad value (too long or control bytes)";
        return -1;
    }
    if (key_is(key, "trust")) {
        if (out->ntrust >= KF_CTXMSG_TRUST_MAX) {
            *why = "too many trust lines";
            return -1;
        }
        if (val.n == 0 || val.p[0] != '/') {
            *why = "trust path not absolute";
            return -1;
        }
        out->trust[out->ntrust++] = val;
        return 0;
    }
    kf_str *s = slot(out, key);
    if (!s)
        return 0; /* unknown key: ignored */
    if (s->p) {
        *why = "repeated key";
        return -1;
    }
    *s = val;
    return 0;
}

ssize_t kf_ctxmsg_parse(const char *buf, size_t len, kf_ctxmsg *out, const char **why)
{
    memset(out, 0, sizeof *out);
    *why = "";
    size_t lim = len < KF_CTXMSG_MAX ? len : KF_CTXMSG_MAX;
    size_t pos = 0;
    for (unsigned line = 0;; line++) {
        const char *nl = memchr(buf + pos, '\n', lim - pos);
        if (!nl) {
            /* Incomplete: reject what can already be seen to be wrong. */
            if (line == 0 && !first_line(buf, lim, 0)) {
                *why = "not a kimifix context request";
                return -1;
            }
            if (lim == KF_CTXMSG_MAX || lim - pos > KF_CTXMSG_KEY_MAX + 1 + KF_CTXMSG_VALUE_MAX) {
                *why = "request too long";
                return -1;
            }
            return 0;
        }
        size_t n = (size_t)(nl - (buf + pos));
        if (line == 0) {
            out->kind = first_line(buf, n, 1);
            if (!out->kind) {
                *why = "not a kimifix context request";
                return -1;
            }
        } else if (n == 0) {
            return (ssize_t)(pos + 1);
        } else if (one_line(buf + pos, n, out, why) < 0) {
            return -1;
        }
        pos += n + 1;
    }
}

/* ---- building ---- */

static void put(kf_ctxmsg_buf *b, const char *s, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void kf_ctxmsg_begin(kf_ctxmsg_buf *b, char *p, size_t cap, int kind)
{
    b->p = p;
    b->cap = cap < KF_CTXMSG_MAX ? cap : KF_CTXMSG_MAX;
    b->len = 0;
    b->overflow = 0;
    b->ntrust = 0;
    const char *l = kind == KF_CTXMSG_JAVA ? "kfjava 1\n" : "kfctx 1\n";
    put(b, l, strlen(l));
}

int kf_ctxmsg_add(kf_ctxmsg_buf *b, const char *key, const char *value)
{
    size_t kn = strlen(key), vn = strlen(value);
    if (kn == 0 || kn > KF_CTXMSG_KEY_MAX || !kf_ctxmsg_value_ok(value, vn))
        return -1;
    if (!strcmp(key, "trust")) {
        if (value[0] != '/' || b->ntrust >= KF_CTXMSG_TRUST_MAX)
            return -1;
        b->ntrust++;
    }
    put(b, key, kn);
    put(b, " ", 1);
    put(b, value, vn);
    put(b, "\n", 1);
    return b->overflow ? -1 : 0;
}

ssize_t kf_ctxmsg_end(kf_ctxmsg_buf *b)
{
    put(b, "\n", 1);
    return b->overflow ? -1 : (ssize_t)b->len;
}

/* ---- replies and ids ---- */

size_t kf_ctxmsg_reply(char *buf, size_t cap, int ok, const char *text)
{
    const char *w = ok ? "ok " : "err ";
    size_t o = 0, wn = strlen(w), max = KF_CTXMSG_REPLY_MAX - 6;
    if (cap < wn + 2)
        return 0;
    memcpy(buf, w, wn);
    o = wn;
    for (size_t i = 0; text[i] && i < max && o + 2 <= cap - 1; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[o++] = (char)(c < 0x20 || c == 0x7f ? '?' : c);
    }
    buf[o++] = '\n';
    return o;
}

int kf_ctxmsg_parse_reply(const char *buf, size_t len, kf_str *val)
{
    *val = (kf_str){"", 0};
    const char *nl = memchr(buf, '\n', len);
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - buf);
    if (n >= 3 && !memcmp(buf, "ok ", 3)) {
        *val = (kf_str){buf + 3, n - 3};
        return 1;
    }
    if (n >= 4 && !memcmp(buf, "err ", 4))
        *val = (kf_str){buf + 4, n - 4};
    return -1;
}

void kf_ctx_id_hex(const unsigned char id[KF_CTX_ID_LEN], char out[2 * KF_CTX_ID_LEN + 1])
{
    kf_hex_encode(id, KF_CTX_ID_LEN, out);
}

int kf_ctx_id_parse(kf_str hex, unsigned char id[KF_CTX_ID_LEN])
{
    return kf_hex_decode(hex.p, hex.n, id, KF_CTX_ID_LEN);
}
