/* cli_common.c - what several kimifix subcommands need alike. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kf_mask.h"

/* Debian's multiarch directory (mk/cli.mk passes the compiler's). */
#ifndef KF_MULTIARCH
#define KF_MULTIARCH "x86_64-linux-gnu"
#endif

int kf_cli_find_beside(const char *name, int mode, char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l <= 0)
        return -1;
    exe[l] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = 0;
    /* Build tree; `make install` (PREFIX/lib/libkimifix.so, the relay in
     * PREFIX/lib/kimifix/); the .deb (/usr/lib/MULTIARCH/libkimifix.so, the
     * relay in /usr/lib/MULTIARCH/kimifix/). The new layout before the old
     * one (everything in PREFIX/lib/kimifix/), so that a library left over
     * from an older install is not preferred. */
    static const char *const rel[] = {
        "/", "/../lib/", "/../lib/" KF_MULTIARCH "/", "/../lib/kimifix/",
        "/../lib/" KF_MULTIARCH "/kimifix/",
    };
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char cand[PATH_MAX + 256];
        snprintf(cand, sizeof cand, "%s%s%s", exe, rel[i], name);
        char real[PATH_MAX];
        if (access(cand, mode) == 0 && realpath(cand, real) && strlen(real) < n) {
            memcpy(out, real, strlen(real) + 1);
            return 0;
        }
    }
    snprintf(out, n, "%s", exe);
    return -1;
}

const char *kf_cli_esc(const char *s)
{
    static char buf[4][16384];
    static unsigned next;
    char *b = buf[next++ % 4];
    kf_escape_text(s, b, sizeof buf[0]);
    return b;
}

/* A diagnostic quotes the rules file's words: escape them. */
void kf_cli_diag_stderr(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "%s\n", kf_cli_esc(line));
}

kf_ruleset *kf_cli_load_rules(const char **file, char *buf, size_t n)
{
    if (!*file)
        *file = kf_rules_default_path(buf, n);
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load(*file, kf_cli_diag_stderr, NULL, &nerr);
    if (!rs && *file)
        fprintf(stderr, "kimifix: %s: %d error%s: until it is fixed, kimifix ignores this file and "
                        "runs with the built-in rules\n", kf_cli_esc(*file), nerr, nerr == 1 ? "" : "s");
    else if (!rs)
        fprintf(stderr, "kimifix: built-in rules: %d error%s\n", nerr, nerr == 1 ? "" : "s");
    return rs;
}
