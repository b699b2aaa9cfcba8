/* shell.c - kimifix for a whole shell session (shell.h), like
 * `torsocks on` / `. torsocks off`:
 *
 *   eval "$(kimifix shell [OPTIONS] [bash|zsh|fish])"   on
 *   kimifix off                                          off (the function)
 *   eval "$(kimifix off)"                                off (anywhere)
 *
 * `kimifix shell` computes the same plan as `kimifix CMD` (plan.c: the
 * relay started, the carrier's variables, LD_PRELOAD) for the shell's
 * later commands and prints it as shell code; nothing is printed unless
 * all of it was computed (a half-on shell would be worse than an error).
 * Run again in a shell that is on, it prints `off` and then `on` afresh
 * (a relay restarted on another port is picked up). The prompt is never
 * touched.
 */
#include "shell.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define KF_SHELL_MAXREC 64

extern char **environ;

/* The shell our parent runs (`$(kimifix shell)` is a child of the shell,
 * or of its subshell; fish runs it directly), from /proc/PPID/comm. */
static int parent_shell(char *comm, size_t n)
{
    char p[64];
    comm[0] = 0;
    snprintf(p, sizeof p, "/proc/%ld/comm", (long)getppid());
    FILE *f = fopen(p, "re");
    if (f) {
        if (fgets(comm, (int)n, f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
    }
    return kf_shell_from_name(comm);
}

/* The shell to print for: the argument, else the parent's, else `known`
 * (the shell that turned kimifix on), else $SHELL (the login shell). */
static int pick_shell(const char *arg, int known, const char *who)
{
    if (arg) {
        int sh = kf_shell_from_name(arg);
        if (!sh)
            fprintf(stderr, "%s: %s: not a shell kimifix knows (bash, zsh, fish)\n", who, arg);
        return sh;
    }
    char comm[64];
    int sh = parent_shell(comm, sizeof comm);
    if (!sh)
        sh = known;
    if (!sh)
        sh = kf_shell_from_name(getenv("SHELL"));
    if (!sh)
        fprintf(stderr, "%s: cannot tell which shell this is (parent %s, SHELL=%s): name it: "
                        "%s bash|zsh|fish\n", who, comm[0] ? comm : "?",
                getenv("SHELL") ? getenv("SHELL") : "", who);
    return sh;
}

/* A private copy of the environment as it is now. */
static char **env_snapshot(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **s = calloc(n + 1, sizeof *s);
    for (size_t i = 0; s && i < n; i++)
        if (!(s[i] = strdup(environ[i]))) {
            for (size_t j = 0; j < i; j++)
                free(s[j]);
            free(s);
            return NULL;
        }
    return s;
}

static const char *snap_get(char **snap, const char *name)
{
    size_t l = strlen(name);
    for (char **e = snap; *e; e++)
        if (!strncmp(*e, name, l) && (*e)[l] == '=')
            return *e + l + 1;
    return NULL;
}

static void snap_free(char **snap)
{
    for (char **e = snap; e && *e; e++)
        free(*e);
    free(snap);
}

/* LD_PRELOAD without libkimifix.so (any directory); NULL when nothing is
 * left. malloc'ed. */
static char *strip_preload(const char *cur)
{
    char *copy = strdup(cur), *out = calloc(1, strlen(cur) + 1), *save = NULL;
    if (!copy || !out) {
        free(copy);
        free(out);
        return NULL;
    }
    for (char *t = strtok_r(copy, ": ", &save); t; t = strtok_r(NULL, ": ", &save)) {
        const char *b = strrchr(t, '/');
        if (!strcmp(b ? b + 1 : t, "libkimifix.so"))
            continue;
        if (*out)
            strcat(out, ":");
        strcat(out, t);
    }
    free(copy);
    if (!*out) {
        free(out);
        return NULL;
    }
    return out;
}

/* One variable back: its value before `kimifix shell` if it still holds
 * kimifix's, else (LD_PRELOAD) the user's value without libkimifix.so,
 * else left alone. here=1: also in this process (shell refresh). */
static void undo_one(FILE *out, int sh, const kf_shell_rec *r, int here)
{
    const char *cur = getenv(r->name);
    int ours = r->set ? cur && kf_shell_hash(cur) == r->hash : !cur;
    char *val = NULL;
    const char *to = r->prev;
    if (!ours) {
        if (strcmp(r->name, "LD_PRELOAD") || !cur) {
            fprintf(stderr, "kimifix off: %s was changed after `kimifix shell`: left as it is\n",
                    r->name);
            return;
        }
        to = val = strip_preload(cur);
    }
    kf_shell_assign(out, sh, r->name, to);
    if (here && (to ? setenv(r->name, to, 1) : unsetenv(r->name)) != 0)
        fprintf(stderr, "kimifix: %s: %s\n", r->name, strerror(errno));
    free(val);
}

/* Print what turns this shell off (and with here=1 do it in this process
 * too). 0, or -1 when the shell is not on. */
static int off_code(FILE *out, int sh, int here)
{
    const char *on = getenv("KIMIFIX_SHELL"), *rec = getenv("KIMIFIX_SHELL_UNDO");
    if (!on)
        return -1;
    char *copy = strdup(rec ? rec : "");
    kf_shell_rec r[KF_SHELL_MAXREC];
    int n = copy ? kf_shell_undo_parse(copy, r, KF_SHELL_MAXREC) : -1;
    if (n < 0) {
        /* Damaged (edited by hand?): take kimifix's library out of
         * LD_PRELOAD, the one thing that surely was ours. */
        fprintf(stderr, "kimifix off: KIMIFIX_SHELL_UNDO is damaged: only LD_PRELOAD is put "
                        "back (without libkimifix.so)\n");
        kf_shell_rec pre = {.name = "LD_PRELOAD", .set = 1, .hash = 0, .prev = NULL};
        undo_one(out, sh, &pre, here);
        n = 0;
    }
    for (int i = n - 1; i >= 0; i--)
        undo_one(out, sh, &r[i], here);
    kf_shell_assign(out, sh, "KIMIFIX_SHELL", NULL);
    kf_shell_assign(out, sh, "KIMIFIX_SHELL_UNDO", NULL);
    if (here) {
        unsetenv("KIMIFIX_SHELL");
        unsetenv("KIMIFIX_SHELL_UNDO");
    }
    free(copy);
    return 0;
}

/* The plan's variables, each once (its final value, in first-set order),
 * and the record that undoes them against snap. */
static int on_code(FILE *out, int sh, const kf_envplan *plan, char **snap,
                   const kf_carrier_choice *c)
{
    kf_shell_undo u[KF_ENVPLAN_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < plan->n; i++) {
        unsigned k = 0;
        while (k < n && strcmp(u[k].name, plan->v[i].name))
            k++;
        if (k == n)
            u[n++] = (kf_shell_undo){plan->v[i].name, snap_get(snap, plan->v[i].name), NULL};
        u[k].now = plan->v[i].value;
    }
    char *rec = kf_shell_undo_encode(u, n), tag[64];
    if (!rec)
        return -1;
    fprintf(out, "# kimifix shell (%s): carrier %s; `kimifix off` undoes it\n", kf_shell_name(sh),
            kf_carrier_name(c->carrier));
    for (unsigned i = 0; i < n; i++)
        kf_shell_assign(out, sh, u[i].name, u[i].now);
    snprintf(tag, sizeof tag, "%s %s", kf_shell_name(sh), kf_carrier_name(c->carrier));
    kf_shell_assign(out, sh, "KIMIFIX_SHELL", tag);
    kf_shell_assign(out, sh, "KIMIFIX_SHELL_UNDO", rec);
    char self[4096];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    if (l <= 0)
        l = snprintf(self, sizeof self, "kimifix"); /* no /proc: the one on PATH */
    self[l] = 0;
    kf_shell_function(out, sh, 1, self);
    free(rec);
    return 0;
}

static int shell_usage(FILE *f)
{
    fputs("usage: eval \"$(kimifix shell [-f RULES] [-v] [-q] [--mode MODE] [bash|zsh|fish])\"\n"
          "       kimifix off      (or: eval \"$(kimifix off)\")\n"
          "Turns kimifix on for every later command of this shell: the variables `kimifix CMD`\n"
          "sets, and a `kimifix` function for `kimifix off`. fish: kimifix shell fish | source\n",
          f);
    return f == stdout ? 0 : 2;
}

/* Make the code for shell sh with make() into memory; print it only when
 * make() returned 0 (a half-on shell would be worse than an error), and
 * then, on a terminal, the hint how to run it. */
static int print_code(int sh, int (*make)(FILE *, int, void *), void *ud, const char *hint)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = sh ? open_memstream(&buf, &len) : NULL;
    if (!out)
        return sh ? 1 : 2;
    int rc = make(out, sh, ud);
    fclose(out);
    if (rc == 0 && (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0))
        rc = 1;
    free(buf);
    if (rc == 0 && isatty(1))
        fprintf(stderr, "%s\n", hint);
    return rc;
}

static int make_on(FILE *out, int sh, void *ud)
{
    /* On already: off first (here too, so the new plan starts from the
     * user's own environment). */
    off_code(out, sh, 1);
    char **snap = env_snapshot();
    /* 24 KiB: static, this runs once. */
    static kf_envplan plan;
    kf_carrier_choice c;
    int rc = snap ? kf_cli_env_plan(ud, NULL, &plan, &c) : 1;
    if (rc == 0 && on_code(out, sh, &plan, snap, &c) < 0)
        rc = 1;
    snap_free(snap);
    return rc;
}

static int make_off(FILE *out, int sh, void *ud)
{
    (void)ud;
    if (off_code(out, sh, 0) < 0) {
        fprintf(stderr, "kimifix off: kimifix is not on in this shell (no KIMIFIX_SHELL)\n");
        return 1;
    }
    kf_shell_function(out, sh, 0, NULL);
    return 0;
}

int kf_cli_shell(int argc, char **argv)
{
    kf_cli_opts o = {0};
    int i = 1;
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
        return shell_usage(stdout);
    if (kf_cli_opts_parse(argc, argv, &i, &o, "kimifix shell") || argc - i > 1)
        return shell_usage(stderr);
    int sh = pick_shell(i < argc ? argv[i] : NULL, 0, "kimifix shell");
    return print_code(sh, make_on, &o, sh == KF_SH_FISH
                      ? "kimifix shell: this is shell code: run kimifix shell fish | source"
                      : "kimifix shell: this is shell code: run eval \"$(kimifix shell)\"");
}

int kf_cli_off(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
        return shell_usage(stdout);
    if (argc > 2)
        return shell_usage(stderr);
    const char *on = getenv("KIMIFIX_SHELL");
    char first[16] = "";
    if (on)
        snprintf(first, sizeof first, "%.*s", (int)strcspn(on, " "), on);
    int sh = pick_shell(argc > 1 ? argv[1] : NULL, kf_shell_from_name(first), "kimifix off");
    return print_code(sh, make_off, NULL, "kimifix off: this is shell code: run eval "
                      "\"$(kimifix off)\", or `kimifix off` in the shell `kimifix shell` defined it in");
}
