/* cli.h - subcommands of the `kimifix` program. */
#ifndef KF_CLI_H
#define KF_CLI_H

#include <stddef.h>

#include "kf_rules.h"

int kf_cli_check(int argc, char **argv);   /* check.c:   kimifix check [FILE] */
int kf_cli_explain(int argc, char **argv); /* explain.c: kimifix explain [-f FILE] METHOD URL [-H ...] */
/* wrap.c: kimifix [OPTIONS] CMD [ARGS...]; argv[0] is "kimifix", options
 * not yet parsed. Returns only on failure (exit status). */
int kf_cli_wrap(int argc, char **argv);
/* carrier.c: pick the carrier for CMD (proxy or shim, kf_envplan.h) and
 * set up its environment; the relay must already run for the proxy
 * carrier. 0 to go on with exec, else an exit status (126: a setuid
 * program, refused). */
int kf_cli_carrier(const char *cmd);

/* cli_common.c: NAME installed with kimifix, beside this executable (build
 * tree) or in ../lib/kimifix/ (installed), as an absolute real path that
 * passes access(mode). 0, or -1 with out holding the executable's dir. */
int kf_cli_find_beside(const char *name, int mode, char *out, size_t n);
/* Load built-ins + *file (NULL: the default lookup, resolved into buf);
 * diagnostics and an error count go to stderr. NULL on any error. */
kf_ruleset *kf_cli_load_rules(const char **file, char *buf, size_t n);
/* s with control bytes escaped as \xHH (kf_mask.h), for quoting user input
 * (a rules file's words, a file name, a URL) on a terminal: escape
 * sequences in it must not reach the terminal. Returns one of 4 static
 * buffers, used in turn (a printf may quote up to 4 strings). */
const char *kf_cli_esc(const char *s);

#endif
