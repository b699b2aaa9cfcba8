/* kf_rules_directives.c - one function per directive of a rule block
 * (conditions and actions) and the global ones (connect-to, disable,
 * defaults). Each checks its words, reports errors with file:line, and
 * stores the precompiled form the matcher needs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_psl.h"
#include "kf_rules_parse_int.h"

int kf_p_cond_host(kf_parser *p, kf_rule *r, kf_tok *t, int nt)
{
    if (nt < 2)
        return ERR(p, "host: expected HOST [HOST...]");
    if (kf_p_once(p, r, &r->host_line, "host"))
        return -1;
    if (nt - 1 > KF_RULE_MAX_HOSTS)
        return ERR(p, "host: too many hosts (at most %d)", KF_RULE_MAX_HOSTS);
    for (int i = 1; i < nt; i++) {
        kf_hostpat *hp = &r->hosts[r->nhosts];
        kf_str h;
        int wild;
        if (kf_p_parse_hostport(p, "host", t[i].s, t[i].n, 1, &h, &hp->port, &wild))
            continue;
        const char *wide = kf_psl_too_wide(h.p + wild, h.n - (size_t)wild, wild); /* kf_psl.h */
        if (wide) {
            ERR(p, "host: '%s': %s", t[i].s, wide);
            continue;
        }
        hp->wild = (unsigned char)wild;
        hp->name.p = kf_p_sdup(p, h.p, h.n);
        hp->name.n = h.n;
        r->nhosts++;
    }
    return 0;
}

/* Why a cost check before regcomp(): glibc compiles a regex into an
 * automaton whose size can explode (stacked repetitions like "a++++...",
 * large {m,n} counts); the rules load in every process under the shim, so
 * a pathological pattern must be an error, not gigabytes of memory (found
 * by fuzz_rules). Returns the reason, or NULL when the pattern is fine. */
static const char *regex_too_costly(const char *re, size_t n)
{
    if (n > 512)
        return "longer than 512 bytes";
    unsigned quantifiers = 0;
    int prev_quant = 0;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            i++;
            prev_quant = 0;
            continue;
        }
        int quant = c == '*' || c == '+' || c == '?' || c == '{';
        if (quant && prev_quant)
            return "stacked repetition operators";
        if (c == '{') {
            unsigned long v = 0;
            for (i++; i < n && re[i] != '}'; i++)
                if (re[i] >= '0' && re[i] <= '9' && (v = v * 10 + (unsigned long)(re[i] - '0')) > 64)
                    return "a repetition count above 64";
        }
        if (quant && ++quantifiers > 32)
            return "more than 32 repetition operators";
        prev_quant = quant;
    }
    return NULL;
}

int kf_p_cond_path(kf_parser *p, kf_rule *r, kf_tok *t, int nt)
{
    int re = nt == 3 && strcmp(t[1].s, "~") == 0;
    if (!(nt == 2 && strcmp(t[1].s, "~") != 0) && !re)
        return ERR(p, "path: expected /PREFIX or ~ REGEX");
    if (kf_p_once(p, r, &r->path_line, "path"))
        return -1;
    if (!re) {
        if (t[1].s[0] != '/')
            return ERR(p, "path: prefix must start with '/': '%s'", t[1].s);
        r->path_kind = KF_PATH_PREFIX;
        r->path_prefix = (kf_str){ kf_p_sdup(p, t[1].s, t[1].n), t[1].n };
        return 0;
    }
    if (t[2].n == 0)
        return ERR(p, "path: empty regular expression");
    const char *cost = regex_too_costly(t[2].s, t[2].n);
    if (cost)
        return ERR(p, "path: regular expression too costly to compile (%s)", cost);
    kf_pat_op ops[KF_PAT_MAX_OPS];
    kf_pat pat;
    if (kf_pat_compile(t[2].s, t[2].n, ops, &pat) == 0) {
        /* In kf_pat's subset: no regcomp (end_rule may still need one for
         * a user pattern's sub-matches). */
        kf_pat_op *keep = kf_rs_alloc(p->rs, pat.nops * sizeof *ops);
        if (!keep)
            return p->oom = 1, ERR(p, "out of memory");
        pat.ops = memcpy(keep, ops, pat.nops * sizeof *ops);
        r->pat = pat;
        r->re_nsub = pat.ngroups;
    } else {
        regex_t *rx = malloc(sizeof *rx);
        if (!rx)
            return p->oom = 1, ERR(p, "out of memory");
        int rc = regcomp(rx, t[2].s, REG_EXTENDED);
        if (rc != 0) {
            char eb[256];
            regerror(rc, rx, eb, sizeof eb);
            free(rx);
            return ERR(p, "path: bad regular expression '%s': %s", t[2].s, eb);
        }
        r->re = rx;
        r->re_nsub = (unsigned)rx->re_nsub;
    }
    r->path_kind = KF_PATH_REGEX;
    r->path_src = kf_p_sdup(p, t[2].s, t[2].n);
    char pre[256];
    size_t pn = kf_p_regex_literal_prefix(t[2].s, pre, sizeof pre);
    r->path_prefix = (kf_str){ kf_p_sdup(p, pre, pn), pn };
    return 0;
}

int kf_p_cond_method(kf_parser *p, kf_rule *r, kf_tok *t, int nt)
{
    if (nt < 2)
        return ERR(p, "method: expected METHOD [METHOD...]");
    if (kf_p_once(p, r, &r->method_line, "method"))
        return -1;
    if (nt - 1 > KF_RULE_MAX_METHODS)
        return ERR(p, "method: too many methods (at most %d)", KF_RULE_MAX_METHODS);
    for (int i = 1; i < nt; i++) {
        int upper = kf_p_is_token(&t[i]);
        for (size_t k = 0; upper && k < t[i].n; k++)
            if (t[i].s[k] >= 'a' && t[i].s[k] <= 'z')
                upper = 0;
        if (!upper) {
            ERR(p, "method: bad method '%s' (methods are case-sensitive: write GET, POST, ...)", t[i].s);
            continue;
        }
        r->methods[r->nmethods++] = (kf_str){ kf_p_sdup(p, t[i].s, t[i].n), t[i].n };
    }
    return 0;
}

int kf_p_cond_header(kf_parser *p, kf_rule *r, kf_tok *t, int nt)
{
    if (nt != 3)
        return ERR(p, "header: expected NAME GLOB (quote a GLOB with spaces)");
    if (!kf_p_is_token(&t[1]))
        return ERR(p, "header: bad header name '%s'", t[1].s);
    if (r->nhconds == KF_RULE_MAX_HCONDS)
        return ERR(p, "header: too many header conditions in rule %s (at most %d)", r->name.p,
                   KF_RULE_MAX_HCONDS);
    kf_hcond *h = &r->hconds[r->nhconds++];
    h->name = (kf_str){ kf_p_sdup(p, t[1].s, t[1].n), t[1].n };
    h->glob = kf_p_sdup(p, t[2].s, t[2].n);
    if (h->glob)
        kf_hcond_prepare(h);
    return 0;
}

/* Precomputed at load time, so that a request pays no strlen and no glob
 * walk for the common exact value (X-Msh-Platform kimi_code_cli). */
void kf_hcond_prepare(kf_hcond *c)
{
    c->glob_n = strlen(c->glob);
    c->exact = !strpbrk(c->glob, "*?");
}

int kf_p_cond_key(kf_parser *p, kf_rule *r, kf_tok *t, int nt)
{
    if (nt != 2)
        return ERR(p, "key: expected GLOB");
    if (kf_p_once(p, r, &r->key_line, "key"))
        return -1;
    r->key_glob = kf_p_sdup(p, t[1].s, t[1].n);
    return 0;
}

kf_action *kf_p_new_action(kf_parser *p, kf_rule *r, int kind)
{
    if (r->nacts == KF_RULE_MAX_ACTIONS) {
        ERR(p, "rule %s: too many actions (at most %d)", r->name.p, KF_RULE_MAX_ACTIONS);
        return NULL;
    }
    kf_action *a = &r->acts[r->nacts++];
    memset(a, 0, sizeof *a);
    a->kind = (unsigned char)kind;
    a->line = p->line;
    return a;
}

/* Header name checks shared by the header actions. */
static int check_header_name(kf_parser *p, const char *what, const kf_tok *name)
{
    if (!kf_p_is_token(name))
        return ERR(p, "%s: bad header name '%s'", what, name->s);
    if (kf_str_ieq_c((kf_str){ name->s, name->n }, "content-length") ||
        kf_str_ieq_c((kf_str){ name->s, name->n }, "transfer-encoding"))
        return ERR(p, "%s: %s frames the body; kimifix never changes framing", what, name->s);
    if (kf_str_ieq_c((kf_str){ name->s, name->n }, "user-agent"))
        WARN(p, "%s %s: Moonshot's Kimi Code guidelines forbid falsifying client identity; "
                "accounts that sent a fake User-Agent were terminated", what, name->s);
    return 0;
}

int kf_p_act_header(kf_parser *p, kf_rule *r, kf_tok *t, int nt, int kind, const char *what)
{
    int want = kind == KF_ACT_REMOVE_HEADER ? 2 : 3;
    if (nt != want)
        return ERR(p, "%s: expected %s", what,
                   want == 2 ? "NAME" : "NAME VALUE (quote a value with spaces)");
    if (check_header_name(p, what, &t[1]))
        return -1;
    int is_host = kf_str_ieq_c((kf_str){ t[1].s, t[1].n }, "host");
    if (is_host && kind == KF_ACT_ADD_HEADER)
        return ERR(p, "add-header: a request has one Host header; use set-header or upstream");
    if (is_host && kind == KF_ACT_REMOVE_HEADER)
        return ERR(p, "remove-header: HTTP/1.1 requires a Host header");
    if (want == 3 && kf_p_bad_value(&t[2]))
        return ERR(p, "%s: header values must not contain CR, LF, NUL or other control characters", what);
    kf_action *a = kf_p_new_action(p, r, kind);
    if (!a)
        return -1;
    a->is_host = (unsigned char)is_host;
    a->name = (kf_str){ kf_p_sdup(p, t[1].s, t[1].n), t[1].n };
    if (want == 3)
        a->value = (kf_str){ kf_p_sdup(p, t[2].s, t[2].n), t[2].n };
    return 0;
}

int kf_p_act_rewrite(kf_parser *p, kf_rule *r, kf_tok *t, int nt)
{
    if (nt != 2)
        return ERR(p, "rewrite-path: expected TEMPLATE");
    const char *s = t[1].s;
    if (s[0] != '/')
        return ERR(p, "rewrite-path: template must start with '/': '%s'", s);
    for (size_t i = 0; i < t[1].n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            char e = s[i + 1];
            if (!(e >= '0' && e <= '9') && e != '\\')
                return ERR(p, "rewrite-path: bad escape '\\%c' (use \\0-\\9 or \\\\)", e ? e : ' ');
            i++;
        } else if (c <= 0x20 || c == 0x7f) {
            return ERR(p, "rewrite-path: template must not contain spaces or control characters");
        } else if (c == '?' || c == '#') {
            return ERR(p, "rewrite-path: '%c' not allowed in the template (the query is always kept)", c);
        }
    }
    kf_action *a = kf_p_new_action(p, r, KF_ACT_REWRITE_PATH);
    if (!a)
        return -1;
    a->name = (kf_str){ kf_p_sdup(p, s, t[1].n), t[1].n };
    return 0;
}

int kf_p_act_upstream(kf_parser *p, kf_rule *r, kf_tok *t, int nt)
{
    if (nt != 2)
        return ERR(p, "upstream: expected HOST[:PORT]");
    kf_str h;
    unsigned port;
    if (kf_p_parse_hostport(p, "upstream", t[1].s, t[1].n, 0, &h, &port, NULL))
        return -1;
    kf_action *a = kf_p_new_action(p, r, KF_ACT_UPSTREAM);
    if (!a)
        return -1;
    a->host = (kf_str){ kf_p_sdup(p, h.p, h.n), h.n };
    a->port = port;
    a->is_host = 1;
    a->name = KF_STR("Host");
    a->value = (kf_str){ kf_p_sdup(p, t[1].s, t[1].n), t[1].n }; /* lower-cased text, brackets kept */
    r->needs_upstream = 1;
    return 0;
}

int kf_p_directive_connect(kf_parser *p, kf_tok *t, int nt)
{
    if (nt != 3)
        return ERR(p, "connect-to: expected HOST[:PORT] ADDR:PORT");
    kf_str h, addr;
    unsigned port, aport;
    if (kf_p_parse_hostport(p, "connect-to", t[1].s, t[1].n, 0, &h, &port, NULL))
        return -1;
    if (kf_p_parse_hostport(p, "connect-to", t[2].s, t[2].n, 0, &addr, &aport, NULL))
        return -1;
    if (aport == 0)
        return ERR(p, "connect-to: '%s' needs a port (ADDR:PORT)", t[2].s);
    kf_ruleset *rs = p->rs;
    if (rs->nconn == rs->conncap) {
        unsigned cap = rs->conncap ? rs->conncap * 2 : 4;
        kf_connect *nc = realloc(rs->conn, cap * sizeof *nc);
        if (!nc)
            return p->oom = 1, ERR(p, "out of memory");
        rs->conn = nc;
        rs->conncap = cap;
    }
    char origin[1024];
    snprintf(origin, sizeof origin, "%s:%d", p->file, p->line);
    kf_connect *c = &rs->conn[rs->nconn++];
    c->host = kf_p_sdup(p, h.p, h.n);
    c->port = port;
    c->addr = kf_p_sdup(p, addr.p, addr.n);
    c->addr_port = aport;
    c->origin = kf_p_sdup(p, origin, strlen(origin));
    return 0;
}

int kf_p_directive_disable(kf_parser *p, kf_tok *t, int nt)
{
    if (p->builtin)
        return ERR(p, "disable: only allowed in the user's rules file");
    if (nt != 2)
        return ERR(p, "disable: expected NAME");
    void *nd = realloc(p->dis, (p->ndis + 1) * sizeof *p->dis);
    if (!nd)
        return p->oom = 1, ERR(p, "out of memory");
    p->dis = nd;
    p->dis[p->ndis].name = kf_p_sdup(p, t[1].s, t[1].n);
    p->dis[p->ndis].line = p->line;
    p->ndis++;
    return 0;
}

int kf_p_directive_defaults(kf_parser *p, kf_tok *t, int nt)
{
    if (p->builtin)
        return ERR(p, "defaults: only allowed in the user's rules file");
    if (nt != 2 || (strcmp(t[1].s, "off") != 0 && strcmp(t[1].s, "on") != 0))
        return ERR(p, "defaults: expected 'on' or 'off'");
    if (strcmp(t[1].s, "off") == 0) {
        char origin[1024];
        snprintf(origin, sizeof origin, "%s:%d", p->file, p->line);
        p->rs->defaults_off_at = kf_p_sdup(p, origin, strlen(origin));
    } else {
        p->rs->defaults_off_at = NULL;
    }
    return 0;
}
