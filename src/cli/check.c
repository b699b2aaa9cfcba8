/* check.c - `kimifix check [FILE]`: validate a rules file and print the
 * effective rules (built-ins, then the file; disabled ones commented out).
 * Errors and warnings go to stderr; exit 0 when the rules load, 1 if not. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kf_rules.h"

/* The dump quotes the file's words (paths, globs): escaped. */
static void to_stdout(void *ud, const char *line)
{
    (void)ud;
    printf("%s\n", kf_cli_esc(line));
}

int kf_cli_check(int argc, char **argv)
{
    const char *file = NULL;
    char buf[4096];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("usage: kimifix check [FILE]\n"
                 "Without FILE: $KIMIFIX_RULES, ~/.config/kimifix/rules, /etc/kimifix/rules.");
            return 0;
        }
        if (file || (argv[i][0] == '-' && argv[i][1])) {
            fputs("usage: kimifix check [FILE]\n", stderr);
            return 2;
        }
        file = argv[i];
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
