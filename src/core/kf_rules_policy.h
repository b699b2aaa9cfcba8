/* kf_rules_policy.h - one behaviour when the user's rules file is broken
 * (docs/rules.md, "When the rules file is broken"), the same in every
 * carrier and in doctor and explain:
 *
 *   the built-in rules stay in effect, the user's file is ignored as a
 *   whole (its `disable` and `defaults off` too), and each process says so
 *   in one line: the file's first error as FILE:LINE: error: ..., the
 *   count, and what is in effect. `kimifix check` lists every error and
 *   exits non-zero.
 *
 * A missing file named by KIMIFIX_RULES is an error like any other (a typo
 * is reported, not silently skipped). libc + the engine only: the shim
 * calls this from its constructor, the relay per rules source.
 */
#ifndef KF_RULES_POLICY_H
#define KF_RULES_POLICY_H

#include <stddef.h>

#include "kf_rules.h"

typedef struct kf_rules_src {
    char path[4096];  /* the user's file ("": none) */
    int nerr;         /* errors in it (0: it loaded) */
    int fallback;     /* the file is ignored: built-ins only */
    char first[512];  /* its first error line ("" when none) */
} kf_rules_src;

/* Built-ins + path (NULL: built-ins only), or the built-ins alone when
 * path has errors. Every diagnostic (warnings and errors) is passed to
 * diag (may be NULL) as kf_ruleset_load passes them; the first error is
 * kept in src->first. NULL only when out of memory. */
kf_ruleset *kf_rules_load_policy(const char *path, kf_diag_fn diag, void *ud, kf_rules_src *src);

/* The one line a process logs when src->fallback:
 *   "FILE:LINE: error: ... (N errors in FILE): the file is ignored, the
 *    built-in rules are in effect"
 * Returns out ("" when no fallback). */
const char *kf_rules_policy_line(const kf_rules_src *src, char *out, size_t n);

#endif
