/* doctor.c - `kimifix doctor [--json] [-f RULES] [CMD [ARGS...]]`.
 *
 * Without CMD: the state of kimifix (shim, rules, relay, CA, environment).
 * With CMD: resolve it like execvp (scripts, env, pyenv and npm shims), read
 * the final ELF (doctor_prog.c) and say which carrier will fix it and
 * whether it trusts the relay, or loudly why nothing can. The last line is
 * always `kimifix doctor: VERDICT ...`. Exit: 0 fixable/healthy,
 * 1 unreachable/problems, 2 usage error or CMD not found.
 */
#include "cli_doctor.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"

static int usage(FILE *f)
{
    fputs("usage: kimifix doctor [--json] [-f RULES]             the state of kimifix\n"
          "       kimifix doctor [--json] [-f RULES] CMD [ARGS...]  can kimifix fix CMD, and how\n"
          "The last line is `kimifix doctor: VERDICT`: libcurl, openssl, gnutls (in-process),\n"
          "libc (plain HTTP only), relay (connect() steered to it), proxy (the relay as the\n"
          "program's HTTP proxy), or unreachable. Exit 0: fixable; 1: unreachable or a\n"
          "problem; 2: usage error or CMD not found.\n",
          f);
    return f == stdout ? 0 : 2;
}

int kf_cli_doctor(int argc, char **argv)
{
    int json = 0, i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1])
            break;
        if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return usage(stdout);
        } else if (!strcmp(a, "-f") || !strcmp(a, "--rules")) {
            char abs[PATH_MAX];
            if (++i >= argc)
                return usage(stderr);
            if (!realpath(argv[i], abs)) {
                fprintf(stderr, "kimifix doctor: %s: no such rules file\n", argv[i]);
                return 2;
            }
            setenv("KIMIFIX_RULES", abs, 1);
        } else {
            fprintf(stderr, "kimifix doctor: unknown option %s\n", a);
            return usage(stderr);
        }
    }
    dr_report *r = calloc(1, sizeof *r);
    if (!r) {
        fputs("kimifix doctor: out of memory\n", stderr);
        return 2;
    }
    const char *cmd = i < argc ? argv[i] : NULL;
    if (!cmd) {
        unsigned n = dr_self(r, 0);
        dr_trust_learned(r); /* trust-ctx */
        if (n)
            dr_set_verdict(r, DR_PROBLEMS, 1, "%u problem%s (lines marked !)", n, n == 1 ? "" : "s");
        else
            dr_set_verdict(r, DR_OK, 0, "kimifix is ready");
    } else if (!*cmd || dr_resolve(r, cmd) != 0) {
        if (!*cmd)
            dr_why(r, "empty command");
        char why[sizeof r->reason];
        memcpy(why, r->reason, sizeof why);
        dr_set_verdict(r, "not-found", 2, "%s", why);
    } else {
        dr_analyze(r);
        dr_trust(r); /* trust-ctx */
        unsigned before = r->nproblems;
        dr_self(r, 1);
        if (r->nproblems > before && r->exit_code == 0)
            dr_fact_add(r, 0, "note", "kimifix itself has problems (marked !): see kimifix doctor");
    }
    dr_report_print(r, cmd, json);
    fflush(stdout);
    int rc = r->exit_code;
    free(r);
    return rc;
}
