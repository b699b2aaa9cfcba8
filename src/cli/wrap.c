/* wrap.c - `kimifix [-f RULES] [-v] [-q] [--mode MODE] [--] CMD [ARGS...]`
 *
 * Like proxychains4/torsocks: put the absolute path of libkimifix.so first
 * in LD_PRELOAD (keeping what was there, without duplicates), export the
 * options as KIMIFIX_* variables, exec CMD. What to set is computed by
 * plan.c (the same plan `kimifix shell` prints as shell code): in auto,
 * relay and proxy mode the user's relay is started first (idempotent; it
 * inherits KIMIFIX_RULES, KIMIFIX_UPSTREAM_CA, ...), so the kimifix CA
 * exists when CMD's constructor sets the trust variables (docs/relay.md);
 * then the carrier is chosen (carrier.c): for a program no preload
 * reaches, or behind the user's own proxy, the relay becomes CMD's HTTP
 * proxy (the proxy carrier); LD_PRELOAD is set either way.
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

int kf_cli_wrap(int argc, char **argv)
{
    kf_cli_opts o = {0};
    int i = 1, rc = kf_cli_opts_parse(argc, argv, &i, &o, "kimifix");
    if (rc || i >= argc) {
        wrap_usage();
        return 2;
    }
    /* 24 KiB: static, this runs once before exec. */
    static kf_envplan plan;
    kf_carrier_choice c;
    if ((rc = kf_cli_env_plan(&o, argv[i], &plan, &c)) != 0)
        return rc;
    if (kf_envplan_apply(&plan, setenv, unsetenv) < 0) {
        fprintf(stderr, "kimifix: cannot set the environment: %s\n", strerror(errno));
        return 1;
    }
    execvp(argv[i], argv + i);
    fprintf(stderr, "kimifix: %s: %s\n", argv[i], strerror(errno));
    return 127;
}
