/* check.c - `kimifix check [--names | --rule NAME] [FILE]`: validate a
 * rules file and print the effective rules (built-ins, then the file;
 * disabled ones commented out), their names, or one rule (check_rule.c).
 * Errors and warnings go to stderr; exit 0 when the rules load, 1 if not. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kf_rules.h"
#include "kf_rules_policy.h"

/* The dump quotes the file's words (paths, globs): escaped. */
static void to_stdout(void *ud, const char *line)
{
    (void)ud;
    printf("%s\n", kf_cli_esc(line));
}

int kf_cli_check(int argc, char **argv)
{
    const char *file = NULL, *rule = NULL;
    int names = 0;
    char buf[4096];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("usage: kimifix check [--names | --rule NAME] [FILE]\n"
                 "Without FILE: $KIMIFIX_RULES, ~/.config/kimifix/rules, /etc/kimifix/rules.");
            return 0;
        }
        if (!strcmp(argv[i], "--names") && !rule) {
            names = 1;
            continue;
        }
        if (!strcmp(argv[i], "--rule") && i + 1 < argc && !names && !rule) {
            rule = argv[++i];
            continue;
        }
        if (file || (argv[i][0] == '-' && argv[i][1])) {
            fputs("usage: kimifix check [--names | --rule NAME] [FILE]\n", stderr);
            return 2;
        }
        file = argv[i];
    }
    if (names || rule) {
        /* The rules in effect: built-ins alone when the file is broken
         * (kf_rules_policy.h); its errors on stderr, and exit 1. */
        kf_rules_src src;
        kf_ruleset *rs = kf_rules_load_policy(file ? file : kf_rules_default_path(buf, sizeof buf),
                                              kf_cli_diag_stderr, NULL, &src);
        if (!rs)
            return 1;
        int rc = names ? (kf_cli_rule_names(rs), 0) : kf_cli_rule_show(rs, rule);
        kf_ruleset_free(rs);
        return rc ? rc : src.fallback;
    }
    kf_ruleset *rs = kf_cli_load_rules(&file, buf, sizeof buf);
    if (!rs)
        return 1;
    if (!file)
        puts("# no rules file ($KIMIFIX_RULES, ~/.config/kimifix/rules, /etc/kimifix/rules)");
    kf_ruleset_dump(rs, to_stdout, NULL);
    kf_ruleset_free(rs);
    return 0;
}
