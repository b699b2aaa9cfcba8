/* kf_rules_policy.c - built-ins when the user's rules file is broken
 * (kf_rules_policy.h). */
#include "kf_rules_policy.h"

#include <stdio.h>
#include <string.h>

typedef struct fwd {
    kf_diag_fn diag;
    void *ud;
    kf_rules_src *src;
} fwd;

static void keep_first(void *ud, const char *line)
{
    fwd *f = ud;
    if (!f->src->first[0] && strstr(line, ": error: "))
        snprintf(f->src->first, sizeof f->src->first, "%s", line);
    if (f->diag)
        f->diag(f->ud, line);
}

kf_ruleset *kf_rules_load_policy(const char *path, kf_diag_fn diag, void *ud, kf_rules_src *src)
{
    memset(src, 0, sizeof *src);
    if (path)
        snprintf(src->path, sizeof src->path, "%s", path);
    fwd f = {diag, ud, src};
    kf_ruleset *rs = kf_ruleset_load(path, keep_first, &f, &src->nerr);
    if (rs || !path)
        return rs;
    src->fallback = 1;
    if (src->nerr < 1)
        src->nerr = 1; /* out of memory while reading the file counts as one */
    if (!src->first[0])
        snprintf(src->first, sizeof src->first, "%s:0: error: cannot load", path);
    return kf_ruleset_builtin();
}

const char *kf_rules_policy_line(const kf_rules_src *src, char *out, size_t n)
{
    if (!src->fallback) {
        if (n)
            out[0] = 0;
        return out;
    }
    snprintf(out, n, "%s (%d error%s in %s): the file is ignored, the built-in rules are in effect",
             src->first, src->nerr, src->nerr == 1 ? "" : "s", src->path);
    return out;
}
