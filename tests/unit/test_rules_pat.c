/* test_rules_pat.c - the path matcher without glibc regex (kf_rules_pat.c)
 * held to regexec():
 *  - every built-in pattern (read from the built-in rules, so a new one is
 *    covered without touching this file) is in kf_pat's subset, and for
 *    many generated paths gives regexec's answer and every sub-match;
 *  - more patterns in the subset give regexec's yes/no;
 *  - what is outside the subset is refused (and then compiled by glibc);
 *  - which matcher a rule gets: built-ins never regcomp, user patterns
 *    with group references do unless they are a built-in's pattern.
 * KF_PAT_SEED and KF_PAT_N override the seed and paths per pattern.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "kf_rules_int.h"
#include "stream_util.h"

static uint64_t rng;
static unsigned rnd(unsigned n)
{
    return (unsigned)(tu_rand(&rng) % n);
}

static unsigned env_or(const char *name, unsigned dflt)
{
    const char *v = getenv(name);
    return v && *v ? (unsigned)strtoul(v, NULL, 0) : dflt;
}

/* Pieces paths are made of: the words and separators of the built-in
 * patterns, their near misses, and bytes regex engines treat specially. */
static const char *const pieces[] = {
    "/", "//", "/v1", "v1", "/v1/", "v", "1", "/v2", "/coding", "/anthropic", "/chat",
    "/completions", "/chat/completions", "chat/completions", "/messages", "messages",
    "/models", "/usages", "/search", "/fetch", "/x", "x", "?", ".", "*", "(", ")", "|", "\\",
    "%2F", "\x80", "\xc3\xa9", "\xff", " ", "\t", "\n", "/v1/messages", "/v1/v1",
    "/coding/v1", "/coding/v1/v1", "/anthropic/v1/v1", "/coding/v1/messages/",
    "/coding/v1/chat/completions", "/chat/completions/chat/completions", "v1/messages",
    "/COMPLETIONS", "/Messages",
};
#define NPIECES (sizeof pieces / sizeof pieces[0])

/* The literal runs of a pattern ("^/a(/v1)*$" -> "/a", "/v1"): pieces
 * that reach its matches. */
typedef struct words {
    char w[32][64];
    unsigned n;
} words;

static void pattern_words(const char *pat, words *ws)
{
    ws->n = 0;
    char cur[64];
    size_t k = 0;
    for (const char *q = pat;; q++) {
        int lit = *q && !strchr("^$()|?*.+[]{}", *q);
        if (lit && *q == '\\' && q[1])
            q++;
        if (lit && k < sizeof cur - 1) {
            cur[k++] = *q;
            continue;
        }
        if (k && ws->n < 32) {
            memcpy(ws->w[ws->n], cur, k);
            ws->w[ws->n++][k] = '\0';
        }
        k = 0;
        if (!*q)
            return;
    }
}

/* A path: random pieces, mostly the pattern's own words. */
static size_t gen_path(char *s, size_t cap, const words *ws)
{
    size_t n = 0;
    unsigned k = 1 + rnd(6);
    if (ws->n && rnd(2)) /* the pattern's first word: where its matches start */
        memcpy(s, ws->w[0], n = strlen(ws->w[0]));
    for (unsigned j = 0; j < k; j++) {
        const char *p = ws->n && rnd(4) ? ws->w[rnd(ws->n)] : pieces[rnd(NPIECES)];
        size_t l = strlen(p);
        if (n + l < cap)
            memcpy(s + n, p, l), n += l;
    }
    if (rnd(10) == 0 && n > 1)
        n = 1 + rnd((unsigned)n); /* cut short */
    return n;
}

/* Compare kf_pat with regexec on s[0..n) (s NUL-terminated at n) and
 * return 1 when equal; `groups`: compare every sub-match too. */
static int same(const regex_t *re, const kf_pat *p, const char *s, size_t n, int groups,
                char *why, size_t wn)
{
    size_t nm = groups ? re->re_nsub + 1 : 1;
    regmatch_t a[KF_PAT_MAX_GROUPS + 1], b[KF_PAT_MAX_GROUPS + 1];
    int ra = regexec(re, s, nm, a, 0) == 0;
    int rb = kf_pat_match(p, s, n, b, nm);
    if (ra != rb) {
        snprintf(why, wn, "regexec %d, kf_pat %d", ra, rb);
        return 0;
    }
    for (size_t g = 0; ra && groups && g < nm; g++)
        if (a[g].rm_so != b[g].rm_so || a[g].rm_eo != b[g].rm_eo) {
            snprintf(why, wn, "group %zu: regexec %d..%d, kf_pat %d..%d", g, (int)a[g].rm_so,
                     (int)a[g].rm_eo, (int)b[g].rm_so, (int)b[g].rm_eo);
            return 0;
        }
    return 1;
}

/* Run `npaths` generated paths through both matchers. Returns matches seen. */
static unsigned differential(const char *pat, unsigned npaths, int groups)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, pat, REG_EXTENDED), 0, "%s", pat);
    kf_pat_op ops[KF_PAT_MAX_OPS];
    kf_pat p;
    cr_assert_eq(kf_pat_compile(pat, strlen(pat), ops, &p), 0, "not in the subset: %s", pat);
    cr_assert_eq(p.ngroups, re.re_nsub, "%s", pat);
    words ws;
    pattern_words(pat, &ws);
    unsigned hits = 0;
    for (unsigned i = 0; i < npaths; i++) {
        char s[512], why[128];
        size_t n = gen_path(s, sizeof s - 1, &ws);
        s[n] = '\0';
        /* regexec stops at a NUL: compare on the text it sees */
        n = strlen(s);
        if (!same(&re, &p, s, n, groups, why, sizeof why))
            cr_assert_fail("%s on '%s': %s", pat, s, why);
        regmatch_t m[1];
        hits += kf_pat_match(&p, s, n, m, 1);
    }
    regfree(&re);
    return hits;
}

Test(rules_pat, builtin_patterns_match_like_regexec)
{
    rng = env_or("KF_PAT_SEED", 0x5eed1234u);
    unsigned n = env_or("KF_PAT_N", 4000), npat = 0;
    kf_ruleset *rs = kf_ruleset_builtin();
    cr_assert_not_null(rs);
    for (unsigned i = 0; i < rs->nrules; i++) {
        const kf_rule *r = &rs->rules[i];
        if (r->path_kind != KF_PATH_REGEX)
            continue;
        npat++;
        unsigned hits = differential(r->path_src, n, 1);
        /* the generator must reach both answers, or the test shows little */
        cr_expect_gt(hits, n / 50, "%s: %u matches of %u paths", r->path_src, hits, n);
        cr_expect_lt(hits, n, "%s: every path matched", r->path_src);
    }
    cr_expect_geq(npat, 11, "built-in patterns: %u", npat);
    kf_ruleset_free(rs);
}

/* Shapes users may write, inside the subset: yes/no like regexec. */
Test(rules_pat, more_patterns_agree_on_match)
{
    static const char *const pats[] = {
        "^/v1/(chat/completions|messages)$", "^/a.b$", "^/x?/y*$", "^(/v1)?(/v1)?/m$",
        "^/(a|b|c)*/$", "^/\\.\\*\\(\\)$", "^.*$", "^/v1/.*/messages$", "^/(v1/(x|y)?)*z$",
        "^/coding/v1/v1(/v1)*(/.*)?$", "^/chat/completions(/chat/completions)*$",
    };
    rng = env_or("KF_PAT_SEED", 0x5eed1234u) + 7;
    unsigned n = env_or("KF_PAT_N", 4000) / 2;
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
        differential(pats[i], n, 0);
}

/* Long paths: the VM is linear (no backtracking); the answers still agree. */
Test(rules_pat, long_paths)
{
    const char *pat = "^/coding/v1/v1(/v1)*(/.*)?$";
    regex_t re;
    cr_assert_eq(regcomp(&re, pat, REG_EXTENDED), 0);
    kf_pat_op ops[KF_PAT_MAX_OPS];
    kf_pat p;
    cr_assert_eq(kf_pat_compile(pat, strlen(pat), ops, &p), 0);
    static char s[60001];
    size_t n = 0;
    n += (size_t)sprintf(s, "/coding/v1/v1");
    while (n + 3 < sizeof s - 16) /* room for a tail and the NUL */
        memcpy(s + n, "/v1", 3), n += 3;
    for (int tail = 0; tail < 3; tail++) {
        size_t m = n;
        if (tail == 1)
            s[m++] = 'x'; /* "/v1x": the last /v1 must go to group 2 */
        if (tail == 2)
            memcpy(s + m, "/messages", 9), m += 9;
        s[m] = '\0';
        char why[128];
        cr_expect(same(&re, &p, s, m, 1, why, sizeof why), "tail %d: %s", tail, why);
    }
    regfree(&re);
}

/* Short paths go to the bounded backtracker, long ones to the Pike VM:
 * both must report the same match and the same sub-matches for every
 * pattern in the subset (not only those regexec pins), and `known` leading
 * bytes must change nothing. Includes patterns with NUL-free dots, nested
 * stars and 9 groups, and paths around the backtracker's size bounds. */
Test(rules_pat, backtracker_and_vm_agree)
{
    static const char *const pats[] = {
        "^/v1/(chat/completions|messages)$", "^/a.b$", "^/x?/y*$", "^(/v1)?(/v1)?/m$",
        "^/(a|b|c)*/$", "^.*$", "^/v1/.*/messages$", "^/(v1/(x|y)?)*z$", "^(.*)/(.*)$",
        "^(/(a|b)*)*(/(c|a)*)?$", "^(a)(b)?(c)?(d)?(e)?(f)?(g)?(h)?(.*)$", "^(/v1|/v1/v1)*(/.*)?$",
        "^/coding/v1/v1(/v1)*(/.*)?$", "^(/anthropic)?/v1/((chat/completions|messages|models)(/.*)?)$",
        "^/coding/v1/messages/(v1/)?messages(/(v1/)?messages)*$",
    };
    rng = env_or("KF_PAT_SEED", 0x5eed1234u) + 11;
    unsigned n = env_or("KF_PAT_N", 4000) / 2;
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        kf_pat_op ops[KF_PAT_MAX_OPS];
        kf_pat p;
        cr_assert_eq(kf_pat_compile(pats[i], strlen(pats[i]), ops, &p), 0, "%s", pats[i]);
        words ws;
        pattern_words(pats[i], &ws);
        unsigned hits = 0;
        for (unsigned k = 0; k < n; k++) {
            char s[512];
            size_t len = gen_path(s, sizeof s, &ws);
            if (rnd(8) == 0) /* long: past the backtracker's bounds */
                while (len + 3 < sizeof s)
                    memcpy(s + len, "/v1", 3), len += 3;
            regmatch_t a[KF_PAT_MAX_GROUPS + 1], b[KF_PAT_MAX_GROUPS + 1], c[KF_PAT_MAX_GROUPS + 1];
            size_t nm = p.ngroups + 1u, known = rnd(p.lead + 1u);
            int ra = kf_pat_match_pike(&p, s, len, a, nm);
            int rb = kf_pat_match(&p, s, len, b, nm);
            cr_assert_eq(ra, rb, "%s on '%.*s': vm %d, match %d", pats[i], (int)len, s, ra, rb);
            /* s[0..known) equals the lead whenever the lead matched */
            if (ra)
                cr_assert_eq(kf_pat_match_from(&p, s, len, c, nm, known), 1, "%s", pats[i]);
            for (size_t g = 0; ra && g < nm; g++)
                cr_assert(a[g].rm_so == b[g].rm_so && a[g].rm_eo == b[g].rm_eo &&
                              b[g].rm_so == c[g].rm_so && b[g].rm_eo == c[g].rm_eo,
                          "%s on '%.*s': group %zu vm %d..%d, match %d..%d", pats[i], (int)len, s, g,
                          (int)a[g].rm_so, (int)a[g].rm_eo, (int)b[g].rm_so, (int)b[g].rm_eo);
            hits += (unsigned)ra;
        }
        cr_expect_gt(hits, 0u, "%s: no path matched", pats[i]);
    }
}

Test(rules_pat, a_nul_never_matches)
{
    kf_pat_op ops[KF_PAT_MAX_OPS];
    kf_pat p;
    cr_assert_eq(kf_pat_compile("^/v1(/.*)?$", 11, ops, &p), 0);
    regmatch_t m[2];
    cr_expect_eq(kf_pat_match(&p, "/v1/a", 5, m, 2), 1);
    cr_expect_eq(m[1].rm_so, 3);
    cr_expect_eq(kf_pat_match(&p, "/v1/a\0b", 7, m, 2), 0);
}

Test(rules_pat, outside_the_subset_is_refused)
{
    static const char *const no[] = {
        "/v1",         /* not anchored */
        "^/v1",        /* no $ */
        "/v1$",        /* no ^ */
        "^/v1\\$",     /* escaped $: not an anchor */
        "^a|b$",       /* top-level alternation: anchors per branch */
        "^a+$",        "^a{2}$",  "^[ab]$", "^a**$", "^a*?$", "^\\w$", "^\\1$", "^(a)\\1$",
        "^()$",        "^(a|)$",  "^(|a)$", "^(a?)*$", "^(b*)*$", "^a)$", "^(a$", "^a$b$",
        "^^a$",        "^*a$",    "^a]$",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        kf_pat_op ops[KF_PAT_MAX_OPS];
        kf_pat p;
        cr_expect_neq(kf_pat_compile(no[i], strlen(no[i]), ops, &p), 0, "accepted: %s", no[i]);
    }
    /* too long for the program, too many groups: refused, not truncated */
    char big[400] = "^", groups[64] = "^";
    for (int i = 0; i < 70; i++)
        strcat(big, "a?");
    strcat(big, "$");
    for (int i = 0; i < 10; i++)
        strcat(groups, "(a)");
    strcat(groups, "$");
    kf_pat_op ops[KF_PAT_MAX_OPS];
    kf_pat p;
    cr_expect_neq(kf_pat_compile(big, strlen(big), ops, &p), 0);
    cr_expect_neq(kf_pat_compile(groups, strlen(groups), ops, &p), 0);
    groups[strlen(groups) - 4] = '$';
    groups[strlen(groups) - 3] = '\0';
    cr_expect_eq(kf_pat_compile(groups, strlen(groups), ops, &p), 0, "%s", groups);
    cr_expect_eq(p.ngroups, 9);
}

static kf_ruleset *load(const char *text)
{
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load_text(text, strlen(text), "t.rules", NULL, NULL, &nerr);
    cr_assert_not_null(rs, "%s", text);
    return rs;
}

static const kf_rule *rule_named(const kf_ruleset *rs, const char *name)
{
    for (unsigned i = 0; i < rs->nrules; i++)
        if (!strcmp(rs->rules[i].name.p, name))
            return &rs->rules[i];
    cr_assert_fail("no rule %s", name);
    return NULL;
}

Test(rules_pat, which_matcher_a_rule_gets)
{
    kf_ruleset *rs = load("rule plain\n    path ~ ^/a/(b|c)$\n    set-header X y\n"
                          "rule groups\n    path ~ ^/a/(b|c)$\n    rewrite-path /z/\\1\n"
                          "rule pinned\n    path ~ ^/coding/v1/v1(/v1)*(/.*)?$\n"
                          "    rewrite-path /q\\2\n"
                          "rule outside\n    path ~ ^/a+$\n    set-header X y\n");
    for (unsigned i = 0; i < rs->nbuiltin; i++)
        if (rs->rules[i].path_kind == KF_PATH_REGEX)
            cr_expect(rs->rules[i].pat.ops && !rs->rules[i].re && rs->rules[i].pat_groups,
                      "built-in %s: regcomp'd", rs->rules[i].name.p);
    const kf_rule *r = rule_named(rs, "plain");
    cr_expect(r->pat.ops && !r->re, "yes/no from kf_pat, no regcomp");
    r = rule_named(rs, "groups");
    cr_expect(r->pat.ops && r->re && !r->pat_groups, "groups of a user pattern: glibc");
    r = rule_named(rs, "pinned");
    cr_expect(r->pat.ops && !r->re && r->pat_groups, "a built-in's pattern: pinned, kf_pat");
    r = rule_named(rs, "outside");
    cr_expect(!r->pat.ops && r->re, "outside the subset: glibc");
    kf_ruleset_free(rs);
}

/* The rules apply the same whichever matcher answers. */
Test(rules_pat, rewrites_through_either_matcher)
{
    kf_ruleset *rs = load("defaults off\n"
                          "rule groups\n    host h\n    path ~ ^/a/(b|c)(/.*)?$\n"
                          "    rewrite-path /z/\\1\\2\n"
                          "rule outside\n    host h\n    path ~ ^/q+(/.*)?$\n"
                          "    rewrite-path /r\\1\n"
                          "rule pinned\n    host h\n    path ~ ^/coding/v1/v1(/v1)*(/.*)?$\n"
                          "    rewrite-path /coding/v1\\2\n");
    static kf_req req;
    const char *in[] = { "/a/b/x", "/a/c", "/a/d", "/qq/m", "/r/m", "/coding/v1/v1/v1/messages",
                         "/coding/v1/v1/v1x" };
    const char *out[] = { "/z/b/x", "/z/c", "/a/d", "/r/m", "/r/m", "/coding/v1/messages",
                          "/coding/v1/v1x" };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        kf_req_init(&req);
        req.method = KF_STR("GET");
        req.path = kf_str_c(in[i]);
        req.host = KF_STR("h");
        req.port = 443;
        kf_rules_apply(rs, &req, 0);
        cr_expect(kf_str_eq(req.path, kf_str_c(out[i])), "%s -> %.*s, want %s", in[i],
                  (int)req.path.n, req.path.p, out[i]);
    }
    kf_ruleset_free(rs);
}
