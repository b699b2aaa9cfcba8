/* wrap.c - `kimifix [-f RULES] [-v] [-q] [--mode MODE] [--] CMD [ARGS...]`
 *
 * Like proxychains4/torsocks: put the absolute path of libkimifix.so first
 * in LD_PRELOAD (keeping what was there, without duplicates), export the
 * options as KIMIFIX_* variables, exec CMD. The library is found relative
 * to this executable only (/proc/self/exe): beside it in a build tree, or
 * ../lib/kimifix/ when installed; never in the current directory.
 *
 * In auto, relay and proxy mode the user's relay is started first
 * (idempotent; it inherits KIMIFIX_RULES, KIMIFIX_UPSTREAM_CA, ...), so the
 * kimifix CA exists when CMD's constructor sets the trust variables
 * (docs/relay.md). Then the carrier is chosen (carrier.c): for a program no
 * preload reaches, or behind the user's own proxy, the relay becomes CMD's
 * HTTP proxy (the proxy carrier); LD_PRELOAD is set either way.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_relay.h"
#include "kf_rules.h"

static void wrap_usage(void)
{
    fputs("usage: kimifix [-f RULES] [-v] [-q] [--mode auto|inprocess|relay|proxy|off] [--] CMD [ARGS...]\n",
          stderr);
}

/* Absolute path of libkimifix.so, relative to our own executable. */
static int find_library(char *out, size_t n)
{
    if (kf_cli_find_beside("libkimifix.so", R_OK, out, n) == 0)
        return 0;
    fprintf(stderr, "kimifix: cannot find libkimifix.so beside %s or in %s/../lib/kimifix\n", out,
            out);
    return -1;
}

/* LD_PRELOAD = lib, then every earlier entry except lib itself. */
static int set_preload(const char *lib)
{
    const char *old = getenv("LD_PRELOAD");
    size_t n = strlen(lib) + (old ? strlen(old) : 0) + 2;
    char *v = malloc(n), *copy = old ? strdup(old) : NULL;
    if (!v || (old && !copy)) {
        free(v);
        free(copy);
        return -1;
    }
    strcpy(v, lib);
    if (copy) {
        char *save = NULL;
        for (char *t = strtok_r(copy, ": ", &save); t; t = strtok_r(NULL, ": ", &save)) {
            if (strcmp(t, lib) == 0)
                continue;
            strcat(v, ":");
            strcat(v, t);
        }
    }
    int r = setenv("LD_PRELOAD", v, 1);
    free(v);
    free(copy);
    return r;
}

static void print_diag(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "%s\n", line);
}

/* Check the rules file now (a typo should stop here, not inside CMD), and
 * export its absolute path. */
static int set_rules(const char *file)
{
    char abs[PATH_MAX];
    if (!realpath(file, abs)) {
        fprintf(stderr, "kimifix: %s: %s\n", file, strerror(errno));
        return -1;
    }
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load(abs, print_diag, NULL, &nerr);
    if (!rs) {
        fprintf(stderr, "kimifix: %s: rules not loaded\n", file);
        return -1;
    }
    kf_ruleset_free(rs);
    return setenv("KIMIFIX_RULES", abs, 1);
}

static int valid_mode(const char *m)
{
    return !strcmp(m, "auto") || !strcmp(m, "inprocess") || !strcmp(m, "relay") ||
           !strcmp(m, "proxy") || !strcmp(m, "off");
}

int kf_cli_wrap(int argc, char **argv)
{
    const char *rules = NULL, *log = NULL, *mode = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1])
            break;
        if (!strcmp(a, "-f") || !strcmp(a, "--rules")) {
            if (++i >= argc) {
                fprintf(stderr, "kimifix: %s needs a file\n", a);
                return 2;
            }
            rules = argv[i];
        } else if (!strncmp(a, "--rules=", 8)) {
            rules = a + 8;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            log = "stderr";
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            log = "off";
        } else if (!strcmp(a, "--mode") || !strncmp(a, "--mode=", 7)) {
            if (a[6] == '=') {
                mode = a + 7;
            } else if (++i < argc) {
                mode = argv[i];
            } else {
                fprintf(stderr, "kimifix: --mode needs a value\n");
                return 2;
            }
            if (!valid_mode(mode)) {
                fprintf(stderr, "kimifix: --mode %s: expected auto, inprocess, relay, proxy or off\n",
                        mode);
                return 2;
            }
        } else {
            fprintf(stderr, "kimifix: unknown option %s\n", a);
            wrap_usage();
            return 2;
        }
    }
    if (i >= argc) {
        wrap_usage();
        return 2;
    }

    char lib[PATH_MAX];
    if (find_library(lib, sizeof lib) != 0)
        return 1;
    if (strpbrk(lib, ": ")) { /* LD_PRELOAD separators: ld.so would split it */
        fprintf(stderr, "kimifix: %s: a library path with ':' or ' ' cannot be preloaded\n", lib);
        return 1;
    }
    if (rules && set_rules(rules) != 0)
        return 1;
    if ((log && setenv("KIMIFIX_LOG", log, 1) != 0) ||
        (mode && setenv("KIMIFIX_MODE", mode, 1) != 0)) {
        fprintf(stderr, "kimifix: %s\n", strerror(errno));
        return 1;
    }
    /* Before LD_PRELOAD is set: the relay must not run under the shim. */
    const char *eff = getenv("KIMIFIX_MODE");
    if ((!eff || !*eff || !strcmp(eff, "auto") || !strcmp(eff, "relay") || !strcmp(eff, "proxy")) &&
        kf_relay_ensure() != 0)
        fprintf(stderr, "kimifix: the relay is not running: clients with compiled-in TLS go "
                        "direct, unfixed\n");
    int crc = kf_cli_carrier(argv[i]);
    if (crc)
        return crc;
    if (set_preload(lib) != 0) {
        fprintf(stderr, "kimifix: %s\n", strerror(errno));
        return 1;
    }
    execvp(argv[i], argv + i);
    fprintf(stderr, "kimifix: %s: %s\n", argv[i], strerror(errno));
    return 127;
}
