/* cli.h - subcommands of the `kimifix` program. */
#ifndef KF_CLI_H
#define KF_CLI_H

#include <stddef.h>

#include "kf_envplan.h"
#include "kf_rules.h"

int kf_cli_check(int argc, char **argv);   /* check.c:   kimifix check [FILE] */
int kf_cli_explain(int argc, char **argv); /* explain.c: kimifix explain [-f FILE] METHOD URL [-H ...] */
/* wrap.c: kimifix [OPTIONS] CMD [ARGS...]; argv[0] is "kimifix", options
 * not yet parsed. Returns only on failure (exit status). */
int kf_cli_wrap(int argc, char **argv);
/* carrier.c: pick the carrier for CMD (proxy or shim, kf_envplan.h; CMD
 * NULL: the later commands of a shell) and add its variables to plan; the
 * relay must already run for the proxy carrier. 0, else an exit status
 * (126: a setuid program, refused). */
int kf_cli_carrier(const char *cmd, kf_envplan *plan, kf_carrier_choice *c);

/* check_rule.c: the effective rules' names, one per line; one rule as
 * `kimifix check` prints it (1 when there is none of that name). */
void kf_cli_rule_names(const kf_ruleset *rs);
int kf_cli_rule_show(const kf_ruleset *rs, const char *name);

/* log_cmd.c: kimifix log [-f] [-n N] */
int kf_cli_log(int argc, char **argv);

/* plan.c: the options `kimifix CMD` and `kimifix shell` share. */
typedef struct kf_cli_opts {
    const char *rules; /* -f FILE */
    const char *log;   /* -v: "stderr", -q: "off" */
    const char *mode;  /* --mode MODE */
} kf_cli_opts;
/* Parse options from argv[*i] on (stops at "--", consumed, or at the first
 * word that is not an option). 0, or an exit status (2: usage error,
 * already said on stderr as "WHO: ..."). */
int kf_cli_opts_parse(int argc, char **argv, int *i, kf_cli_opts *o, const char *who);
/* Everything `kimifix CMD` sets for CMD (NULL: for a shell's later
 * commands), in order: the options' KIMIFIX_* variables, the carrier's
 * variables, LD_PRELOAD. Starts the relay first (auto, relay, proxy mode).
 * The options' variables are also set in this process (the carrier choice
 * and the relay read them). 0, or an exit status (message on stderr). */
int kf_cli_env_plan(const kf_cli_opts *o, const char *cmd, kf_envplan *plan, kf_carrier_choice *c);

/* cli_common.c: NAME installed with kimifix, beside this executable (build
 * tree) or in ../lib/, ../lib/MULTIARCH/ or their kimifix/ subdirectory
 * (installed), as an absolute real path that passes access(mode). 0, or -1
 * with out holding the executable's dir. */
int kf_cli_find_beside(const char *name, int mode, char *out, size_t n);
/* Load built-ins + *file (NULL: the default lookup, resolved into buf);
 * diagnostics and an error count go to stderr. NULL on any error. */
kf_ruleset *kf_cli_load_rules(const char **file, char *buf, size_t n);
/* s with control bytes escaped as \xHH (kf_mask.h), for quoting user input
 * (a rules file's words, a file name, a URL) on a terminal: escape
 * sequences in it must not reach the terminal. Returns one of 4 static
 * buffers, used in turn (a printf may quote up to 4 strings). */
const char *kf_cli_esc(const char *s);
/* A kf_diag_fn: the line on stderr. */
void kf_cli_diag_stderr(void *ud, const char *line);

#endif
