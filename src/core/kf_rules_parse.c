/* kf_rules_parse.c - kimifix.rules(5): text -> compiled ruleset.
 *
 * Parsing happens once, at load; it may allocate. Everything the matcher
 * needs is precomputed (lower-cased hosts, compiled regexes, the literal
 * prefix of anchored regexes, header flags) so that applying the rules to
 * a request needs no allocation and little work.
 *
 * Built-ins are parsed first (origin "builtin"), then the user's file;
 * `defaults off`, `disable NAME` and name clashes with built-ins are
 * resolved once the whole user file is read, so their order in the file
 * does not matter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_rules_parse_int.h"

/* ---- rule blocks ---- */

kf_rule *kf_p_cur_rule(kf_parser *p)
{
    return p->cur >= 0 ? &p->rs->rules[p->cur] : NULL;
}

int kf_p_find_rule(const kf_ruleset *rs, unsigned from, unsigned to, kf_str name)
{
    for (unsigned i = from; i < to; i++)
        if (kf_str_eq(rs->rules[i].name, name))
            return (int)i;
    return -1;
}

/* Copy the open rule's array `n` elements of `size` into the arena. */
static void *keep(kf_parser *p, const void *a, size_t n, size_t size)
{
    if (n == 0)
        return NULL;
    void *k = kf_rs_alloc(p->rs, n * size);
    if (!k) {
        if (!p->oom)
            p->oom = 1, ERR(p, "out of memory");
        return NULL;
    }
    return memcpy(k, a, n * size);
}

/* Is `src` the text of a built-in rule's pattern? Those are the patterns
 * whose sub-matches tests/unit/test_rules_pat.c pins to regexec's. */
static int builtin_pattern(const kf_ruleset *rs, const char *src)
{
    for (unsigned i = 0; i < rs->nbuiltin; i++)
        if (rs->rules[i].path_src && strcmp(rs->rules[i].path_src, src) == 0)
            return 1;
    return 0;
}

/* The path regex of a finished rule: which matcher answers. kf_pat (no
 * glibc) says yes/no for every pattern in its subset, and gives the
 * sub-matches of pinned patterns; anything else compiles with regcomp,
 * now, so that its errors are reported with the rules file's others. */
static void choose_matcher(kf_parser *p, kf_rule *r)
{
    if (r->path_kind != KF_PATH_REGEX || r->re || !r->path_src)
        return;
    /* The literal prefix apply checks first is (at least in part) the
     * pattern's own lead: kf_pat need not compare those bytes again. */
    unsigned k = 0;
    while (r->pat.ops && r->path_prefix.p && k < r->pat.lead && k < r->path_prefix.n && k < 255 &&
           r->pat.ops[k].c == (unsigned char)r->path_prefix.p[k]) /* ops[0..lead) are literals */
        k++;
    r->pat_known = (unsigned char)k;
    r->pat_groups = r->pat.ops && (r->builtin || builtin_pattern(p->rs, r->path_src));
    if (r->pat.ops && (r->uses_groups == 0 || r->pat_groups))
        return;
    regex_t *re = malloc(sizeof *re);
    if (!re) {
        if (!p->oom)
            p->oom = 1, ERR_AT(p, r->path_line, "out of memory");
        return;
    }
    int rc = regcomp(re, r->path_src, REG_EXTENDED);
    if (rc != 0) {
        char eb[256];
        regerror(rc, re, eb, sizeof eb);
        free(re);
        ERR_AT(p, r->path_line, "path: bad regular expression '%s': %s", r->path_src, eb);
        return;
    }
    r->re = re;
    r->re_nsub = (unsigned)re->re_nsub;
}

static void end_rule(kf_parser *p)
{
    kf_rule *r = kf_p_cur_rule(p);
    p->cur = -1;
    if (!r)
        return;
    if (r->nacts == 0)
        ERR_AT(p, r->line, "rule %s has no action", r->name.p);
    /* Group references need a regex with that many groups. */
    for (unsigned i = 0; i < r->nacts; i++) {
        const kf_action *a = &r->acts[i];
        if (a->kind != KF_ACT_REWRITE_PATH)
            continue;
        for (size_t k = 0; k + 1 < a->name.n; k++) {
            if (a->name.p[k] != '\\')
                continue;
            char c = a->name.p[++k];
            if (c < '1' || c > '9')
                continue;
            unsigned g = (unsigned)(c - '0');
            if (r->path_kind != KF_PATH_REGEX)
                ERR_AT(p, a->line, "rewrite-path: \\%u needs a 'path ~ REGEX' condition with groups", g);
            else if (g > r->re_nsub)
                ERR_AT(p, a->line, "rewrite-path: \\%u but the path regex has %u group%s", g,
                       r->re_nsub, r->re_nsub == 1 ? "" : "s");
            else if (g > r->uses_groups)
                r->uses_groups = (unsigned char)g;
        }
    }
    choose_matcher(p, r);
    r->hosts = keep(p, r->hosts, r->nhosts, sizeof *r->hosts);
    r->methods = keep(p, r->methods, r->nmethods, sizeof *r->methods);
    r->hconds = keep(p, r->hconds, r->nhconds, sizeof *r->hconds);
    r->acts = keep(p, r->acts, r->nacts, sizeof *r->acts);
}

static int start_rule(kf_parser *p, kf_tok *t, int nt)
{
    end_rule(p);
    /* A bad `rule` line still opens a block, so that the directives under
     * it do not each report "outside a rule". */
    static char unnamed[] = "(unnamed)";
    if (nt != 2)
        ERR(p, "rule: expected NAME");
    if (nt < 2)
        t[1] = (kf_tok){ unnamed, sizeof unnamed - 1 };
    else if (!kf_p_valid_rule_name(&t[1]))
        ERR(p, "rule: bad name '%s' (use letters, digits, '_', '.', '-')", t[1].s);
    kf_ruleset *rs = p->rs;
    int dup = kf_p_find_rule(rs, p->first, rs->nrules, (kf_str){ t[1].s, t[1].n });
    if (dup >= 0)
        ERR(p, "rule %s already defined at %s", t[1].s, rs->rules[dup].origin);
    if (rs->nrules == rs->cap) {
        unsigned cap = rs->cap ? rs->cap * 2 : 16;
        kf_rule *nr = realloc(rs->rules, cap * sizeof *nr);
        if (!nr)
            return p->oom = 1, ERR(p, "out of memory");
        rs->rules = nr;
        rs->cap = cap;
    }
    kf_rule *r = &rs->rules[rs->nrules];
    memset(r, 0, sizeof *r);
    r->path_kind = KF_PATH_ANY;
    r->path_prefix = (kf_str){ "", 0 };
    char origin[1024];
    snprintf(origin, sizeof origin, "%s:%d", p->file, p->line);
    r->name.p = kf_p_sdup(p, t[1].s, t[1].n);
    r->name.n = t[1].n;
    r->origin = kf_p_sdup(p, origin, strlen(origin));
    r->file = p->file;
    r->line = p->line;
    r->builtin = (unsigned char)p->builtin;
    r->enabled = 1;
    r->hosts = p->hosts;
    r->methods = p->methods;
    r->hconds = p->hconds;
    r->acts = p->acts;
    if (!r->name.p || !r->origin)
        return -1;
    p->cur = (int)rs->nrules++;
    return 0;
}

int kf_p_once(kf_parser *p, kf_rule *r, int *line_slot, const char *what)
{
    if (*line_slot)
        return ERR(p, "rule %s: only one '%s' line per rule (first at line %d); put alternatives on one line",
                   r->name.p, what, *line_slot);
    *line_slot = p->line;
    return 0;
}

static int directive(kf_parser *p, kf_tok *t, int nt)
{
    const char *d = t[0].s;
    if (!strcmp(d, "rule"))
        return start_rule(p, t, nt);
    if (!strcmp(d, "connect-to") || !strcmp(d, "defaults") || !strcmp(d, "disable")) {
        end_rule(p);
        if (d[0] == 'c')
            return kf_p_directive_connect(p, t, nt);
        return d[2] == 'f' ? kf_p_directive_defaults(p, t, nt) : kf_p_directive_disable(p, t, nt);
    }
    static const char *const in_rule[] = { "host",       "path",           "method",
                                           "header",     "key",            "rewrite-path",
                                           "set-header", "add-header",     "remove-header",
                                           "upstream",   "squash-slashes", NULL };
    int known = 0;
    for (int i = 0; in_rule[i]; i++)
        if (!strcmp(d, in_rule[i]))
            known = 1;
    if (!known)
        return ERR(p, "unknown directive '%s'", d);
    kf_rule *r = kf_p_cur_rule(p);
    if (!r)
        return ERR(p, "'%s' outside a rule (start a block with 'rule NAME')", d);
    if (!strcmp(d, "host"))
        return kf_p_cond_host(p, r, t, nt);
    if (!strcmp(d, "path"))
        return kf_p_cond_path(p, r, t, nt);
    if (!strcmp(d, "method"))
        return kf_p_cond_method(p, r, t, nt);
    if (!strcmp(d, "header"))
        return kf_p_cond_header(p, r, t, nt);
    if (!strcmp(d, "key"))
        return kf_p_cond_key(p, r, t, nt);
    if (!strcmp(d, "rewrite-path"))
        return kf_p_act_rewrite(p, r, t, nt);
    if (!strcmp(d, "squash-slashes")) {
        if (nt != 1)
            return ERR(p, "squash-slashes: expected no arguments");
        return kf_p_new_action(p, r, KF_ACT_SQUASH_SLASHES) ? 0 : -1;
    }
    if (!strcmp(d, "set-header"))
        return kf_p_act_header(p, r, t, nt, KF_ACT_SET_HEADER, d);
    if (!strcmp(d, "add-header"))
        return kf_p_act_header(p, r, t, nt, KF_ACT_ADD_HEADER, d);
    if (!strcmp(d, "remove-header"))
        return kf_p_act_header(p, r, t, nt, KF_ACT_REMOVE_HEADER, d);
    return kf_p_act_upstream(p, r, t, nt);
}

static void parse_text(kf_parser *p, const char *text, size_t len)
{
    char *buf = malloc(len + 1);
    if (!buf) {
        p->oom = 1;
        ERR(p, "out of memory");
        return;
    }
    size_t i = 0;
    p->line = 0;
    p->cur = -1;
    p->first = p->rs->nrules;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i), *ln = text + i;
        size_t e = nl ? (size_t)(nl - text) : len;
        p->line++;
        size_t n = e - i;
        if (n && text[i + n - 1] == '\r')
            n--;
        i = e + 1;
        if (memchr(ln, '\0', n)) {
            ERR(p, "NUL byte in the line");
            continue;
        }
        size_t k = 0;
        while (k < n && (ln[k] == ' ' || ln[k] == '\t'))
            k++;
        if (k == n || ln[k] == '#')
            continue; /* blank or comment (most of the built-in text): no words */
        memcpy(buf, ln, n);
        buf[n] = '\0';
        kf_tok t[MAX_TOKENS];
        int nt = kf_p_tokenize(p, buf, t);
        if (nt > 0)
            directive(p, t, nt);
    }
    end_rule(p);
    free(buf);
}

/* ---- the user file against the built-ins ---- */

static void resolve_user(kf_parser *p)
{
    kf_ruleset *rs = p->rs;
    if (rs->defaults_off_at)
        for (unsigned i = 0; i < rs->nbuiltin; i++) {
            rs->rules[i].enabled = 0;
            rs->rules[i].disabled_by = rs->defaults_off_at;
        }
    for (unsigned k = 0; k < p->ndis; k++) {
        if (!p->dis[k].name)
            continue;
        int i = kf_p_find_rule(rs, 0, rs->nbuiltin, kf_str_c(p->dis[k].name));
        if (i < 0) {
            ERR_AT(p, p->dis[k].line, "disable: no built-in rule named '%s' (see 'kimifix check')",
                   p->dis[k].name);
            continue;
        }
        if (!rs->rules[i].disabled_by || rs->rules[i].enabled) {
            char origin[1024];
            snprintf(origin, sizeof origin, "%s:%d", p->file, p->dis[k].line);
            rs->rules[i].disabled_by = kf_p_sdup(p, origin, strlen(origin));
        }
        rs->rules[i].enabled = 0;
    }
    for (unsigned u = rs->nbuiltin; u < rs->nrules; u++) {
        int i = kf_p_find_rule(rs, 0, rs->nbuiltin, rs->rules[u].name);
        if (i >= 0 && rs->rules[i].enabled)
            ERR_AT(p, rs->rules[u].line, "rule %s already defined at %s; disable it first",
                   rs->rules[u].name.p, rs->rules[i].origin);
    }
}

int kf_rules_parse(kf_ruleset *rs, const char *text, size_t len, const char *origin,
                   kf_diag_fn diag, void *ud)
{
    kf_parser p = { .rs = rs, .file = "builtin", .builtin = 1, .diag = diag, .ud = ud, .cur = -1 };
    parse_text(&p, kf_default_rules, kf_default_rules_len);
    rs->nbuiltin = rs->nrules;
    if (text) {
        const char *o = origin ? origin : "rules";
        p.file = rs->user_origin = kf_p_sdup(&p, o, strlen(o));
        if (p.file) {
            p.builtin = 0;
            parse_text(&p, text, len);
            resolve_user(&p);
        }
    }
    free(p.dis);
    return p.nerr;
}
