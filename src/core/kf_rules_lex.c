/* kf_rules_lex.c - the rules parser's low level: the string arena,
 * diagnostics, splitting a line into words, and value validators. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_rules_parse_int.h"

/* ---- arena: every string of a ruleset, freed at once ---- */

struct kf_chunk {
    kf_chunk *next;
    size_t used, size;
    _Alignas(max_align_t) char data[];
};

/* n bytes aligned for any of the ruleset's structs. */
void *kf_rs_alloc(kf_ruleset *rs, size_t n)
{
    const size_t al = _Alignof(max_align_t);
    kf_chunk *c = rs->arena;
    size_t at = c ? (c->used + al - 1) & ~(al - 1) : 0;
    if (!c || at > c->size || c->size - at < n) {
        size_t size = n > 4000 ? n : 4000;
        c = malloc(sizeof *c + size);
        if (!c)
            return NULL;
        c->next = rs->arena;
        c->used = 0;
        c->size = size;
        rs->arena = c;
        at = 0;
    }
    c->used = at + n;
    return c->data + at;
}

char *kf_rs_strdup(kf_ruleset *rs, const char *s, size_t n)
{
    char *p = kf_rs_alloc(rs, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void kf_rs_free_arena(kf_ruleset *rs)
{
    while (rs->arena) {
        kf_chunk *c = rs->arena;
        rs->arena = c->next;
        free(c);
    }
}

/* ---- diagnostics ---- */

static void vsay(kf_parser *p, int line, const char *kind, const char *fmt, va_list ap)
{
    char msg[768], out[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    snprintf(out, sizeof out, "%s:%d: %s: %s", p->file, line, kind, msg);
    if (p->diag)
        p->diag(p->ud, out);
}

/* Report an error at `line`; returns -1 so callers can `return kf_p_err(...)`. */
int kf_p_err(kf_parser *p, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(p, line, "error", fmt, ap);
    va_end(ap);
    p->nerr++;
    return -1;
}

void kf_p_warn(kf_parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(p, p->line, "warning", fmt, ap);
    va_end(ap);
}

char *kf_p_sdup(kf_parser *p, const char *s, size_t n)
{
    char *r = kf_rs_strdup(p->rs, s, n);
    if (!r && !p->oom) {
        p->oom = 1;
        ERR(p, "out of memory");
    }
    return r;
}

/* ---- words ---- */


/* Split `line` (modified in place) into tokens. Whitespace separates;
 * "..." groups (with \" and \\ inside); '#' outside quotes ends the line.
 * Returns the count, or -1 after reporting an error. */
int kf_p_tokenize(kf_parser *p, char *line, kf_tok *t)
{
    int nt = 0;
    char *r = line, *w;
    for (;;) {
        while (*r == ' ' || *r == '\t')
            r++;
        if (*r == '\0' || *r == '#')
            return nt;
        if (nt == MAX_TOKENS)
            return ERR(p, "too many words on one line (at most %d)", MAX_TOKENS);
        w = r;
        t[nt].s = w;
        int inq = 0;
        for (;;) {
            char c = *r;
            if (c == '\0') {
                if (inq)
                    return ERR(p, "unterminated quote");
                break;
            }
            if (!inq && (c == ' ' || c == '\t' || c == '#'))
                break;
            r++;
            if (c == '"') {
                inq = !inq;
                continue;
            }
            if (inq && c == '\\' && (*r == '"' || *r == '\\'))
                c = *r++;
            *w++ = c;
        }
        t[nt].n = (size_t)(w - t[nt].s);
        char stop = *r;
        *w = '\0';
        nt++;
        if (stop == '\0' || stop == '#')
            return nt;
        r++;
    }
}

/* ---- small validators ---- */

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

int kf_p_is_token(const kf_tok *t)
{
    if (t->n == 0)
        return 0;
    for (size_t i = 0; i < t->n; i++)
        if (!is_tchar((unsigned char)t->s[i]))
            return 0;
    return 1;
}

int kf_p_parse_port(const char *s, size_t n, unsigned *port)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

static int is_host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* "name", "name:port", "[v6]", "[v6]:port"; lower-cased in place. Sets
 * *h (inside s, no brackets) and *port (0 when absent). `what` names the
 * directive in errors. */
int kf_p_parse_hostport(kf_parser *p, const char *what, char *s, size_t n, int allow_wild,
                          kf_str *h, unsigned *port, int *wild)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] + 32);
    *port = 0;
    if (wild)
        *wild = 0;
    char *hs = s;
    size_t hn = n;
    const char *ps = NULL;
    size_t pn = 0;
    if (n && s[0] == '[') {
        char *close = memchr(s, ']', n);
        if (!close || close == s + 1)
            return ERR(p, "%s: bad address '%s'", what, s);
        for (char *q = s + 1; q < close; q++)
            if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') || *q == ':' || *q == '.'))
                return ERR(p, "%s: bad IPv6 address '%s'", what, s);
        hs = s + 1;
        hn = (size_t)(close - hs);
        size_t rest = n - (size_t)(close - s) - 1;
        if (rest) {
            if (close[1] != ':')
                return ERR(p, "%s: bad address '%s'", what, s);
            ps = close + 2;
            pn = rest - 1;
        }
    } else {
        char *colon = memchr(s, ':', n);
        if (colon) {
            hn = (size_t)(colon - s);
            ps = colon + 1;
            pn = n - hn - 1;
        }
        if (allow_wild && hn > 2 && s[0] == '*' && s[1] == '.') {
            if (wild)
                *wild = 1;
            hs = s + 1; /* keep the dot: ".suffix" */
            hn--;
        }
        if (hn > 1 && hs[hn - 1] == '.')
            hn--; /* "api.kimi.com." is "api.kimi.com", as in requests */
        int ok = hn > 0;
        for (size_t i = (wild && *wild) ? 1 : 0; ok && i < hn; i++)
            if (!is_host_char((unsigned char)hs[i]))
                ok = 0;
        if (!ok)
            return ERR(p, "%s: bad host '%s'%s", what, s,
                       allow_wild ? " (use a name, *.suffix, or [IPv6], with an optional :port)" : "");
    }
    if (ps && kf_p_parse_port(ps, pn, port) != 0)
        return ERR(p, "%s: bad port '%.*s' in '%s' (1-65535)", what, (int)pn, ps, s);
    *h = (kf_str){ hs, hn };
    return 0;
}

int kf_p_bad_value(const kf_tok *t)
{
    for (size_t i = 0; i < t->n; i++) {
        unsigned char c = (unsigned char)t->s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 1;
    }
    return 0;
}

int kf_p_valid_rule_name(const kf_tok *t)
{
    if (t->n == 0)
        return 0;
    for (size_t i = 0; i < t->n; i++) {
        unsigned char c = (unsigned char)t->s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* The literal text every match of an anchored ERE must start with:
 * "^/coding/v1/v1(/v1)*" -> "/coding/v1/v1". Empty when the ERE is not
 * anchored or has a top-level alternation. Conservative by design: any
 * construct it does not understand ends the prefix. */
size_t kf_p_regex_literal_prefix(const char *re, char *out, size_t cap)
{
    if (re[0] != '^')
        return 0;
    /* top-level '|' anywhere makes the anchor apply to one branch only */
    int depth = 0;
    for (const char *q = re; *q; q++) {
        if (*q == '\\' && q[1]) {
            q++;
        } else if (*q == '[') {
            q++;
            if (*q == '^')
                q++;
            if (*q == ']')
                q++;
            while (*q && *q != ']') {
                if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
                    char endc = q[1];
                    q += 2;
                    while (*q && !(*q == endc && q[1] == ']'))
                        q++;
                    if (*q)
                        q++;
                }
                if (*q)
                    q++;
            }
            if (!*q)
                return 0;
        } else if (*q == '(') {
            depth++;
        } else if (*q == ')') {
            depth--;
        } else if (*q == '|' && depth == 0) {
            return 0;
        }
    }
    size_t n = 0;
    const char *q = re + 1;
    while (*q && n < cap) {
        char c;
        const char *next;
        if (*q == '\\') {
            if (!q[1] || !strchr(".[]()*+?{}|^$\\/", q[1]))
                break;
            c = q[1];
            next = q + 2;
        } else if (strchr(".[]()*+?{}|^$", *q)) {
            break;
        } else {
            c = *q;
            next = q + 1;
        }
        if (*next == '*' || *next == '?' || *next == '{')
            break; /* this char is optional or repeated: not part of the prefix */
        out[n++] = c;
        q = next;
    }
    return n;
}
