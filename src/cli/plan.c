/* plan.c - the environment `kimifix CMD` gives CMD, computed once
 * (kf_envplan.h) and used twice: applied before exec (wrap.c), printed as
 * shell code by `kimifix shell` (shell.c) for a whole shell session.
 *
 *   1. the options: KIMIFIX_RULES (checked, made absolute), KIMIFIX_LOG,
 *      KIMIFIX_MODE;
 *   2. the relay started (auto, relay and proxy mode), so that the kimifix
 *      CA exists when the trust variables are computed (docs/relay.md);
 *   3. the carrier (carrier.c): the proxy carrier's proxy and trust
 *      variables (KIMIFIX_ORIG_* saved), or the user's proxy given back;
 *   4. LD_PRELOAD: the absolute path of libkimifix.so first, every other
 *      entry kept (without duplicates of ours). The library is found
 *      relative to this executable only (kf_cli_find_beside), never in the
 *      current directory.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_relay.h"
#include "kf_mode.h"
#include "kf_rules.h"

static int valid_mode(const char *m)
{
    return *m && kf_mode_parse(m) >= 0;
}

int kf_cli_opts_parse(int argc, char **argv, int *i, kf_cli_opts *o, const char *who)
{
    for (; *i < argc; ++*i) {
        const char *a = argv[*i];
        if (!strcmp(a, "--")) {
            ++*i;
            break;
        }
        if (a[0] != '-' || !a[1])
            break;
        if (!strcmp(a, "-f") || !strcmp(a, "--rules")) {
            if (++*i >= argc) {
                fprintf(stderr, "%s: %s needs a file\n", who, a);
                return 2;
            }
            o->rules = argv[*i];
        } else if (!strncmp(a, "--rules=", 8)) {
            o->rules = a + 8;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->log = "stderr";
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->log = "off";
        } else if (!strcmp(a, "--mode") || !strncmp(a, "--mode=", 7)) {
            if (a[6] == '=') {
                o->mode = a + 7;
            } else if (++*i < argc) {
                o->mode = argv[*i];
            } else {
                fprintf(stderr, "%s: --mode needs a value\n", who);
                return 2;
            }
            if (!valid_mode(o->mode)) {
                fprintf(stderr, "%s: --mode %s: expected one of " KF_MODE_NAMES "\n", who, o->mode);
                return 2;
            }
        } else {
            fprintf(stderr, "%s: unknown option %s\n", who, a);
            return 2;
        }
    }
    return 0;
}

/* A rules file given on the command line is checked now (a typo should
 * stop here, not inside CMD) and exported by its absolute path. */
static int plan_rules(kf_envplan *plan, const char *file)
{
    char abs[PATH_MAX];
    if (!realpath(file, abs)) {
        fprintf(stderr, "kimifix: %s: %s\n", file, strerror(errno));
        return -1;
    }
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load(abs, kf_cli_diag_stderr, NULL, &nerr);
    if (!rs) {
        fprintf(stderr, "kimifix: %s: rules not loaded\n", file);
        return -1;
    }
    kf_ruleset_free(rs);
    kf_envplan_put(plan, "KIMIFIX_RULES", abs);
    return setenv("KIMIFIX_RULES", abs, 1);
}

/* LD_PRELOAD = lib, then every earlier entry except lib itself. */
static int plan_preload(kf_envplan *plan, const char *lib)
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
    if (!old || strcmp(old, v))
        kf_envplan_put(plan, "LD_PRELOAD", v);
    free(v);
    free(copy);
    return 0;
}

int kf_cli_env_plan(const kf_cli_opts *o, const char *cmd, kf_envplan *plan, kf_carrier_choice *c)
{
    char lib[PATH_MAX];
    kf_envplan_init(plan);
    if (kf_cli_find_beside("libkimifix.so", R_OK, lib, sizeof lib) != 0) {
        fprintf(stderr, "kimifix: cannot find libkimifix.so beside %s or in its ../lib "
                        "directories\n", lib);
        return 1;
    }
    if (strpbrk(lib, ": ")) { /* LD_PRELOAD separators: ld.so would split it */
        fprintf(stderr, "kimifix: %s: a library path with ':' or ' ' cannot be preloaded\n", lib);
        return 1;
    }
    if (o->rules && plan_rules(plan, o->rules) != 0)
        return 1;
    if (o->log)
        kf_envplan_put(plan, "KIMIFIX_LOG", o->log);
    if (o->mode)
        kf_envplan_put(plan, "KIMIFIX_MODE", o->mode);
    if ((o->log && setenv("KIMIFIX_LOG", o->log, 1) != 0) ||
        (o->mode && setenv("KIMIFIX_MODE", o->mode, 1) != 0)) {
        fprintf(stderr, "kimifix: %s\n", strerror(errno));
        return 1;
    }
    /* Before LD_PRELOAD is set: the relay must not run under the shim. */
    int eff = kf_mode_parse(getenv("KIMIFIX_MODE"));
    if ((eff == KF_MODE_AUTO || eff == KF_MODE_RELAY || eff == KF_MODE_PROXY) && kf_relay_ensure() != 0)
        fprintf(stderr, "kimifix: the relay is not running: clients with compiled-in TLS go "
                        "direct, unfixed\n");
    int crc = kf_cli_carrier(cmd, plan, c);
    if (crc)
        return crc;
    if (plan_preload(plan, lib) != 0 || plan->full) {
        fprintf(stderr, "kimifix: %s\n", strerror(plan->full ? E2BIG : errno));
        return 1;
    }
    return 0;
}
