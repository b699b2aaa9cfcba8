/* test_rules_policy.c - one behaviour when the user's rules file is broken
 * (kf_rules_policy.h): the built-ins stay in effect, the whole file is
 * ignored (its `disable` too), the first error is kept for the one line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_rules_policy.h"

static char path[64];
static int ndiag, nerr_diag;

static void count(void *ud, const char *line)
{
    (void)ud;
    ndiag++;
    nerr_diag += strstr(line, ": error: ") != NULL;
}

static const char *write_rules(const char *text)
{
    snprintf(path, sizeof path, "/tmp/kf-policy-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ndiag = nerr_diag = 0;
    return path;
}

static void done(void)
{
    if (path[0])
        unlink(path);
}

static const kf_rule *find(const kf_ruleset *rs, const char *name)
{
    for (unsigned i = 0; i < kf_ruleset_count(rs); i++)
        if (!strcmp(kf_rule_name(kf_ruleset_rule(rs, i)), name))
            return kf_ruleset_rule(rs, i);
    return NULL;
}

static unsigned builtin_count(void)
{
    kf_ruleset *b = kf_ruleset_builtin();
    unsigned n = kf_ruleset_count(b);
    kf_ruleset_free(b);
    return n;
}

Test(policy, no_file_is_builtins_and_no_fallback)
{
    kf_rules_src src;
    kf_ruleset *rs = kf_rules_load_policy(NULL, NULL, NULL, &src);
    cr_assert_not_null(rs);
    cr_assert_eq(src.fallback, 0);
    cr_assert_eq(src.nerr, 0);
    cr_assert_str_empty(src.path);
    cr_assert_eq(kf_ruleset_count(rs), builtin_count());
    char line[600];
    cr_assert_str_empty(kf_rules_policy_line(&src, line, sizeof line));
    kf_ruleset_free(rs);
}

Test(policy, good_file_loads_with_its_disable, .fini = done)
{
    const char *p = write_rules("disable kimi-squash-slashes\n"
                                "rule mine\n  host api.kimi.com\n  add-header X-A 1\n");
    kf_rules_src src;
    kf_ruleset *rs = kf_rules_load_policy(p, count, NULL, &src);
    cr_assert_not_null(rs);
    cr_assert_eq(src.fallback, 0);
    cr_assert_eq(src.nerr, 0);
    cr_assert_str_eq(src.path, p);
    cr_assert_not_null(find(rs, "mine"));
    cr_assert_eq(kf_rule_enabled(find(rs, "kimi-squash-slashes")), 0);
    kf_ruleset_free(rs);
}

Test(policy, broken_file_gives_builtins_and_the_first_error, .fini = done)
{
    /* A good `disable` and a good rule before the error: the file is
     * ignored as a whole, not up to its first error. */
    const char *p = write_rules("disable kimi-squash-slashes\n"
                                "rule mine\n  host api.kimi.com\n  add-header X-A 1\n"
                                "rule broken\n  bogus\n"
                                "rule other\n  bogus2\n");
    kf_rules_src src;
    kf_ruleset *rs = kf_rules_load_policy(p, count, NULL, &src);
    cr_assert_not_null(rs);
    cr_assert_eq(src.fallback, 1);
    cr_assert_eq(src.nerr, nerr_diag, "every error reaches diag: %d vs %d", src.nerr, nerr_diag);
    cr_assert_geq(src.nerr, 2);
    cr_assert_eq(kf_ruleset_count(rs), builtin_count());
    cr_assert_null(find(rs, "mine"));
    cr_assert_eq(kf_rule_enabled(find(rs, "kimi-squash-slashes")), 1, "the file's disable is ignored");
    char want[128];
    snprintf(want, sizeof want, "%s:6: error: unknown directive", p);
    cr_assert(!strncmp(src.first, want, strlen(want)), "first: %s", src.first);
    char line[6000];
    kf_rules_policy_line(&src, line, sizeof line);
    cr_assert(!strncmp(line, src.first, strlen(src.first)), "%s", line);
    char tail[200];
    snprintf(tail, sizeof tail, " (%d errors in %s): the file is ignored, the built-in rules are in effect",
             src.nerr, p);
    cr_assert_str_eq(line + strlen(src.first), tail);
    kf_ruleset_free(rs);
}

Test(policy, missing_file_is_an_error_too)
{
    kf_rules_src src;
    ndiag = nerr_diag = 0;
    kf_ruleset *rs = kf_rules_load_policy("/nonexistent/kimifix.rules", count, NULL, &src);
    cr_assert_not_null(rs);
    cr_assert_eq(src.fallback, 1);
    cr_assert_eq(src.nerr, 1);
    cr_assert_eq(nerr_diag, 1);
    cr_assert(!strncmp(src.first, "/nonexistent/kimifix.rules:0: error: cannot open", 48), "%s",
              src.first);
    cr_assert_eq(kf_ruleset_count(rs), builtin_count());
    char line[6000];
    cr_assert(strstr(kf_rules_policy_line(&src, line, sizeof line), "(1 error in /nonexistent"));
    kf_ruleset_free(rs);
}

Test(policy, warnings_pass_through_and_do_not_fall_back, .fini = done)
{
    /* A rule touching User-Agent loads with a warning. */
    const char *p = write_rules("rule ua\n  host api.kimi.com\n  set-header User-Agent x\n");
    kf_rules_src src;
    kf_ruleset *rs = kf_rules_load_policy(p, count, NULL, &src);
    cr_assert_not_null(rs);
    cr_assert_eq(src.fallback, 0);
    cr_assert_geq(ndiag, 1, "the warning reached diag");
    cr_assert_eq(nerr_diag, 0);
    cr_assert_str_empty(src.first);
    cr_assert_not_null(find(rs, "ua"));
    kf_ruleset_free(rs);
}

Test(policy, the_line_fits_any_buffer)
{
    kf_rules_src src;
    kf_ruleset *rs = kf_rules_load_policy("/nonexistent/x", NULL, NULL, &src);
    char small[16];
    kf_rules_policy_line(&src, small, sizeof small);
    cr_assert_eq(strlen(small), sizeof small - 1);
    kf_ruleset_free(rs);
}
