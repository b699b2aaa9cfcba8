/* kf_rules_pat.h - `path ~ REGEX` without glibc regex, for a subset of
 * POSIX extended regular expressions (the shapes the built-in rules use).
 *
 * The subset: anchored at both ends (`^...$`), literal bytes (a special
 * character escaped with '\' is a literal), `.`, groups `( | )` with
 * non-empty alternatives, and `?` / `*` after a byte, `.` or a group
 * (a starred group must not match the empty string). Anything else
 * (`+`, `{m,n}`, brackets, back-references, `\w`...) is not in the subset:
 * the caller keeps glibc's regcomp()/regexec() for it.
 *
 * Matching is a Pike VM (Thompson NFA with sub-match tracking), or for the
 * short paths requests carry a bounded backtracker that visits each
 * (instruction, position) pair once (RE2's BitState) and reports the same
 * match: both linear in the path length times the program size, no
 * allocation, no recursion. Which match they report is the leftmost-first
 * (greedy, first alternative first) one; POSIX asks for leftmost-longest
 * sub-matches. Whether a path matches is the same under both (the whole
 * path must match), so every pattern in the subset may use this matcher
 * for a yes/no; sub-match offsets are only taken from it for patterns that
 * tests/unit/test_rules_pat.c pins against regexec (the built-in ones).
 * Bytes are bytes (the C locale): a path with a NUL never matches, as
 * `.` in glibc's EREs never matches NUL.
 */
#ifndef KF_RULES_PAT_H
#define KF_RULES_PAT_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#define KF_PAT_MAX_OPS 128
#define KF_PAT_MAX_GROUPS 9

typedef struct kf_pat_op {
    uint8_t op;
    uint8_t c;
    uint16_t x, y;
} kf_pat_op;

typedef struct kf_pat {
    const kf_pat_op *ops;
    uint16_t nops;
    uint16_t lead;    /* leading literal bytes (ops[0..lead) are CHAR): no thread needed */
    uint16_t nfork;   /* SPLIT and SAVE ops: what bounds the backtracker's job stack */
    uint8_t ngroups;  /* as regcomp's re_nsub */
} kf_pat;

/* Compile re[0..n) into ops[] (room for KF_PAT_MAX_OPS) and *p (p->ops =
 * ops). Returns 0 when the pattern is in the subset, -1 when it is not
 * (nothing is reported: the caller then uses regcomp, which also reports
 * syntax errors). */
int kf_pat_compile(const char *re, size_t n, kf_pat_op *ops, kf_pat *p);

/* Match the whole of s[0..n). On a match fills m[0..nm) as regexec would
 * (m[0] = the whole path, unset groups -1) and returns 1; else 0. nm <=
 * KF_PAT_MAX_GROUPS + 1. */
int kf_pat_match(const kf_pat *p, const char *s, size_t n, regmatch_t *m, size_t nm);

/* The same, when the caller already knows that s[0..known) equals the
 * pattern's first `known` literal bytes (known <= lead). Short paths are
 * matched by bounded backtracking, long ones by the Pike VM: same answers. */
int kf_pat_match_from(const kf_pat *p, const char *s, size_t n, regmatch_t *m, size_t nm,
                      size_t known);

/* The Pike VM alone, whatever the path's length (tests hold the two to
 * each other). */
int kf_pat_match_pike(const kf_pat *p, const char *s, size_t n, regmatch_t *m, size_t nm);

#endif
