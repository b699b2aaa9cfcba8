/* test_rules_cost.c - patterns whose compiled automaton would explode are
 * rejected at parse time with file:line (fuzz_rules found "a+++...+":
 * gigabytes in regcomp, in every process under the shim). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "kf_rules.h"

static char diag[512];
static void grab(void *ud, const char *line)
{
    (void)ud;
    if (!diag[0])
        strncpy(diag, line, sizeof diag - 1);
}

static void expect_error(const char *pattern, const char *why)
{
    char text[1024];
    snprintf(text, sizeof text, "rule x\n    path ~ %s\n    squash-slashes\n", pattern);
    diag[0] = 0;
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load_text(text, strlen(text), "t.rules", grab, NULL, &nerr);
    cr_assert_null(rs, "%s accepted", pattern);
    cr_assert_eq(nerr, 1);
    cr_assert(strstr(diag, "t.rules:2: error: path: regular expression too costly") && strstr(diag, why),
              "%s", diag);
}

Test(rules_cost, stacked_repetitions_and_big_counts_are_errors)
{
    expect_error("^/a+++++++++b$", "stacked repetition");
    expect_error("^/a*?$", "stacked repetition");
    expect_error("^/a{1000}$", "above 64");
    expect_error("^/(a|b){2,100}$", "above 64");
}

Test(rules_cost, the_builtin_shapes_still_compile)
{
    const char *text = "rule x\n    path ~ ^/coding/v1/v1(/v1)*(/.*)?$\n    rewrite-path /coding/v1\\2\n"
                       "rule y\n    path ~ ^/a\\+\\+\\+b{2}$\n    squash-slashes\n";
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load_text(text, strlen(text), "t.rules", NULL, NULL, &nerr);
    cr_assert_not_null(rs, "%d errors", nerr);
    kf_ruleset_free(rs);
}
