/* shell.h - `kimifix shell`, `kimifix off`, `kimifix status` (shell.c) and
 * the shell code they print (shell_code.c).
 *
 * `eval "$(kimifix shell)"` sets in the current shell what `kimifix CMD`
 * sets for CMD (plan.c), plus:
 *   KIMIFIX_SHELL       "SHELL CARRIER" ("bash shim"): this shell is on;
 *   KIMIFIX_SHELL_UNDO  the undo record: for each variable set or unset,
 *                       NAME=HASH:PREV, HASH the FNV-1a hash (16 hex) of
 *                       the value kimifix gave it ("-": unset it), PREV
 *                       ":-" (it was unset) or ":=" and the previous value
 *                       percent-encoded; entries separated by one space;
 * and a shell function `kimifix` through which `kimifix off` evaluates
 * its own output. `kimifix off` puts back every variable that still holds
 * kimifix's value (by the hash), LD_PRELOAD without libkimifix.so when
 * the user changed it since, and leaves any other variable the user
 * changed as it is (saying so on stderr).
 */
#ifndef KF_CLI_SHELL_H
#define KF_CLI_SHELL_H

#include <stdio.h>

enum { KF_SH_NONE = 0, KF_SH_BASH, KF_SH_ZSH, KF_SH_FISH };

/* "bash", "/bin/zsh", "-fish" -> KF_SH_*; KF_SH_NONE otherwise. */
int kf_shell_from_name(const char *name);
const char *kf_shell_name(int sh);

/* One line: NAME=value (value NULL: unset NAME) in sh's syntax, value
 * single-quoted. -1 (nothing written) when NAME is not a plain name. */
int kf_shell_assign(FILE *out, int sh, const char *name, const char *value);
/* Define (define=1) the `kimifix` function, calling prog (an absolute
 * path), or remove it. */
void kf_shell_function(FILE *out, int sh, int define, const char *prog);

unsigned long long kf_shell_hash(const char *v);

/* One variable for the record: its value before (NULL: unset) and now. */
typedef struct kf_shell_undo {
    const char *name;
    const char *prev;
    const char *now;
} kf_shell_undo;
/* The record's text (malloc'ed), or NULL when out of memory. */
char *kf_shell_undo_encode(const kf_shell_undo *u, unsigned n);

/* A parsed entry (pointers into the parsed text). */
typedef struct kf_shell_rec {
    const char *name;
    int set;                /* kimifix set it (else unset it) */
    unsigned long long hash; /* of the value kimifix set */
    const char *prev;       /* NULL: it was unset */
} kf_shell_rec;
/* Parse rec (modified in place) into out[0..max). Count, or -1 when
 * malformed or longer than max. */
int kf_shell_undo_parse(char *rec, kf_shell_rec *out, unsigned max);

int kf_cli_shell(int argc, char **argv);  /* kimifix shell [OPTIONS] [bash|zsh|fish] */
int kf_cli_off(int argc, char **argv);    /* kimifix off [bash|zsh|fish] */
int kf_cli_status(int argc, char **argv); /* kimifix status */

#endif
