/* test_psl.c - host patterns at or above a public suffix are refused when
 * rules load (kf_psl.c; issue 10.6): they would widen the relay CA's name
 * constraints to a whole TLD or registry. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "kf_psl.h"
#include "kf_rules.h"
#include "kf_rules_hosts.h"

static int wide(const char *pat)
{
    int wild = pat[0] == '*' && pat[1] == '.';
    const char *n = pat + (wild ? 2 : 0);
    return kf_psl_too_wide(n, strlen(n), wild) != NULL;
}

Test(psl, too_wide)
{
    static const char *refused[] = { "*.com", "com", "*.net", "*.ai", "*.io", "*.cn", "*.co.uk",
                                     "co.uk", "uk", "*.com.cn", "*.co.jp", "*.github.io",
                                     "github.io", "*.vercel.app", "*.xyzzy", "*.local", "" };
    static const char *fine[] = { "api.kimi.com", "*.kimi.com", "*.moonshot.cn", "api.moonshot.ai",
                                  "*.example.co.uk", "localhost", "intranet", "10.0.0.1", "::1",
                                  "user.github.io", "*.kimi.ai", "comcast.net", "ucom" };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_assert(wide(refused[i]), "%s should be refused", refused[i]);
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
        cr_assert_not(wide(fine[i]), "%s should be fine", fine[i]);
}

static char diag[4096];

static void collect(void *ud, const char *line)
{
    size_t k = strlen(ud);
    snprintf((char *)ud + k, sizeof diag - k, "%s\n", line);
}

Test(psl, refused_at_load_with_file_line)
{
    static const char text[] = "rule ok\n  host api.example.com\n  set-header X 1\n"
                               "rule wide\n  host api.example.org *.com\n  set-header X 1\n"
                               "rule reg\n  host *.CO.UK:443\n  set-header X 1\n";
    int nerr = 0;
    diag[0] = 0;
    kf_ruleset *rs = kf_ruleset_load_text(text, strlen(text), "u.rules", collect, diag, &nerr);
    cr_assert_null(rs, "the file is rejected, as for any error");
    cr_assert_eq(nerr, 2, "%s", diag);
    cr_assert(strstr(diag, "u.rules:5: error: host: '*.com': at or above a public suffix"), "%s",
              diag);
    cr_assert(strstr(diag, "u.rules:8: error: host: '*.co.uk:443': at or above a public suffix"),
              "%s", diag);
}

Test(psl, accepted_hosts_keep_their_ca_names)
{
    static const char text[] = "rule ok\n  host *.kimi.com api.example.co.uk\n  set-header X 1\n";
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load_text(text, strlen(text), "u.rules", NULL, NULL, &nerr);
    cr_assert_not_null(rs);
    int found = 0;
    const char *n;
    int w;
    for (unsigned i = 0; kf_rules_host_at(rs, i, &n, &w); i++)
        found += !strcmp(n, ".kimi.com") || !strcmp(n, "api.example.co.uk");
    cr_assert_eq(found, 2);
    kf_ruleset_free(rs);
}
