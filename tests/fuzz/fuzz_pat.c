/* fuzz_pat.c - libFuzzer target: kf_pat (src/core/kf_rules_pat.c) against
 * glibc's regexec.
 *
 * Input: a pattern, a newline, then paths separated by newlines. For every
 * pattern kf_pat accepts, regcomp must accept it too (the subset is valid
 * ERE) with the same number of groups, and every path must get the same
 * yes/no from both (what user patterns rely on); for the built-in rules'
 * patterns, every sub-match too (what the rewrite templates rely on).
 *
 *   make fuzz && build/fuzz/fuzz_pat -dict=tests/fuzz/pat.dict tests/fuzz/corpus/pat
 */
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kf_rules_int.h"

static int builtin_pattern(const char *pat)
{
    static kf_ruleset *rs;
    if (!rs && !(rs = kf_ruleset_builtin()))
        abort();
    for (unsigned i = 0; i < rs->nrules; i++)
        if (rs->rules[i].path_src && strcmp(rs->rules[i].path_src, pat) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    char *nl = strchr(text, '\n');
    size_t plen = nl ? (size_t)(nl - text) : strlen(text);
    text[plen] = '\0';
    kf_pat_op ops[KF_PAT_MAX_OPS];
    kf_pat p;
    if (plen == 0 || plen > 256 || kf_pat_compile(text, plen, ops, &p) != 0) {
        free(text);
        return 0;
    }
    regex_t re;
    if (regcomp(&re, text, REG_EXTENDED) != 0 || re.re_nsub != p.ngroups)
        abort(); /* kf_pat took what glibc calls invalid, or counts groups differently */
    int groups = builtin_pattern(text);
    size_t nm = groups ? re.re_nsub + 1 : 1;
    char *path = nl ? text + plen + 1 : NULL;
    while (path) {
        char *next = strchr(path, '\n');
        if (next)
            *next = '\0';
        size_t n = strlen(path); /* regexec sees up to a NUL: compare on that */
        regmatch_t a[KF_PAT_MAX_GROUPS + 1], b[KF_PAT_MAX_GROUPS + 1];
        int ra = regexec(&re, path, nm, a, 0) == 0;
        int rb = kf_pat_match(&p, path, n, b, nm);
        if (ra != rb)
            abort();
        for (size_t g = 0; ra && g < nm; g++)
            if (a[g].rm_so != b[g].rm_so || a[g].rm_eo != b[g].rm_eo)
                abort();
        path = next ? next + 1 : NULL;
    }
    regfree(&re);
    free(text);
    return 0;
}
