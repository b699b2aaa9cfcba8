/* doctor_target.c - which ELF program really runs when the user types CMD.
 *
 * Follows what execvp and the kernel do: PATH search, symlinks, "#!"
 * interpreters (one optional argument; /usr/bin/env NAME searched on
 * PATH), and files without "#!" that execvp hands to /bin/sh. Two kinds of
 * wrappers are looked through because their own interpreter says nothing:
 * pyenv shims (bash scripts that pick a Python version) and shell scripts
 * whose last `exec` starts a named program (npm/pnpm shims: exec node ...).
 * At most DR_MAX_HOPS steps. Reads at most 64 KiB of any script.
 */
#include "doctor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCRIPT_MAX (64u << 10)

static int is_exec_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

int dr_path_search(const char *name, const char *skip_dir, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin"; /* glibc's execvp default */
    size_t nl = strlen(name);
    for (const char *p = path;; p++) {
        size_t l = strcspn(p, ":");
        char dir[PATH_MAX], cand[PATH_MAX];
        if (l >= sizeof dir)
            l = 0;
        memcpy(dir, p, l);
        dir[l] = 0;
        if (!l)
            strcpy(dir, "."); /* empty entry: current directory */
        if ((!skip_dir || strcmp(dir, skip_dir) != 0) && strlen(dir) + nl + 2 <= sizeof cand) {
            dr_fmt(cand, sizeof cand, "%s/%s", dir, name);
            if (is_exec_file(cand) && strlen(cand) < n) {
                strcpy(out, cand);
                return 0;
            }
        }
        p += l;
        if (!*p)
            break;
    }
    return -1;
}

/* Read up to SCRIPT_MAX bytes; returns the length or -1. buf gets a NUL. */
static ssize_t read_head(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    ssize_t got = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        got = 0;
        while ((size_t)got < n - 1) {
            ssize_t r = read(fd, buf + got, n - 1 - (size_t)got);
            if (r <= 0)
                break;
            got += r;
        }
        buf[got] = 0;
    }
    close(fd);
    return got;
}

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int is_shell(const char *interp)
{
    static const char *const sh[] = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"};
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++)
        if (!strcmp(base(interp), sh[i]))
            return 1;
    return 0;
}

/* ---- pyenv ---- */

/* Newest installed version starting with "want." (pyenv accepts "3.11"). */
static int pyenv_prefix(const char *root, const char *want, char *out, size_t n)
{
    char vdir[PATH_MAX];
    dr_fmt(vdir, sizeof vdir, "%s/versions", root);
    DIR *d = opendir(vdir);
    if (!d)
        return -1;
    size_t wl = strlen(want);
    out[0] = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, want, wl) && de->d_name[wl] == '.' &&
            (!out[0] || strverscmp(de->d_name, out) > 0) && strlen(de->d_name) < n)
            strcpy(out, de->d_name);
    closedir(d);
    return out[0] ? 0 : -1;
}

/* The version list pyenv would use, as text (whitespace separated). */
static void pyenv_versions(const char *root, char *out, size_t n, char *src, size_t sn)
{
    const char *env = getenv("PYENV_VERSION");
    out[0] = 0;
    if (env && *env) {
        dr_fmt(out, n, "%s", env);
        dr_fmt(src, sn, "PYENV_VERSION");
        return;
    }
    char dir[PATH_MAX], f[PATH_MAX + 32];
    if (getcwd(dir, sizeof dir)) {
        for (int depth = 0; depth < 64; depth++) {
            dr_fmt(f, sizeof f, "%s/.python-version", strcmp(dir, "/") ? dir : "");
            if (read_head(f, out, n) > 0) {
                dr_fmt(src, sn, "%s", f);
                return;
            }
            char *s = strrchr(dir, '/');
            if (!s || s == dir)
                break;
            *s = 0;
        }
    }
    dr_fmt(f, sizeof f, "%s/version", root);
    if (read_head(f, out, n) > 0)
        dr_fmt(src, sn, "%s", f);
    else {
        dr_fmt(out, n, "system");
        dr_fmt(src, sn, "default");
    }
}

/* A pyenv shim: exec "$PYENV_ROOT/libexec/pyenv" exec "$program". */
static int follow_pyenv(dr_report *r, const char *shim, const char *text, char *next, size_t n)
{
    const char *m = strstr(text, "/libexec/pyenv\" exec");
    if (!m)
        return 0;
    char root[PATH_MAX], vers[1024], src[PATH_MAX + 32];
    const char *q = m;
    while (q > text && q[-1] != '"' && q[-1] != '\n')
        q--;
    if ((size_t)(m - q) >= sizeof root)
        return 0;
    memcpy(root, q, (size_t)(m - q));
    root[m - q] = 0;
    char shimdir[PATH_MAX];
    dr_fmt(shimdir, sizeof shimdir, "%s", shim);
    *strrchr(shimdir, '/') = 0;
    pyenv_versions(root, vers, sizeof vers, src, sizeof src);
    char *save = NULL;
    for (char *v = strtok_r(vers, " \t\r\n:", &save); v; v = strtok_r(NULL, " \t\r\n:", &save)) {
        char cand[PATH_MAX * 2], pfx[256];
        if (v[0] == '#')
            continue;
        if (!strcmp(v, "system")) {
            if (dr_path_search(base(shim), shimdir, next, n) == 0) {
                dr_hop_add(r, "pyenv shim: version \"system\" (%s) -> %s", src, next);
                return 1;
            }
            continue;
        }
        dr_fmt(cand, sizeof cand, "%s/versions/%s/bin/%s", root, v, base(shim));
        if (!is_exec_file(cand) && pyenv_prefix(root, v, pfx, sizeof pfx) == 0)
            dr_fmt(cand, sizeof cand, "%s/versions/%s/bin/%s", root, pfx, base(shim));
        if (is_exec_file(cand) && strlen(cand) < n) {
            strcpy(next, cand);
            dr_hop_add(r, "pyenv shim: version %s (from %s) -> %s", v, src, next);
            return 1;
        }
    }
    dr_hop_add(r, "pyenv shim: no installed version provides %s (versions from %s)", base(shim),
               src);
    return -1;
}

/* ---- shell wrappers ---- */

/* The program named by the last `exec WORD` line of a shell script, when
 * WORD is a plain name or path (npm/pnpm shims write exec node "$basedir/..."
 * or exec "$basedir/node" ...). 1 found (name in out), 0 not. */
static int last_exec(const char *text, char *out, size_t n)
{
    const char *best = NULL;
    for (const char *line = text; line && *line;) {
        const char *p = line + strspn(line, " \t");
        if (!strncmp(p, "exec ", 5) || !strncmp(p, "exec\t", 5))
            best = p + 5;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    if (!best)
        return 0;
    best += strspn(best, " \t");
    char word[PATH_MAX];
    size_t l = 0;
    int quoted = *best == '"';
    for (const char *p = best + quoted;
         *p && *p != '\n' && l + 1 < sizeof word && !(quoted ? *p == '"' : (*p == ' ' || *p == '\t'));
         p++)
        word[l++] = *p;
    word[l] = 0;
    /* "$basedir/node": pnpm/cmd-shim prefer a node next to the shim, else PATH. */
    const char *w = word;
    if (!strncmp(w, "$basedir/", 9))
        w += 9;
    if (!*w || strchr(w, '$') || strchr(w, '`') || w[0] == '-' || strchr(w, '='))
        return 0;
    static const char *const builtins[] = {"true", "false", ":", "cd", "echo", "printf", "test"};
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (!strcmp(w, builtins[i]))
            return 0;
    dr_fmt(out, n, "%s", w);
    return 1;
}

/* ---- #! ---- */

/* Parse "#!interp [arg]" from the first line (at most 255 bytes, like
 * Linux). 0 or -1. */
static int shebang(const char *text, char *interp, size_t in, char *arg, size_t an)
{
    char line[256];
    size_t l = strcspn(text + 2, "\n");
    if (l >= sizeof line)
        l = sizeof line - 1;
    memcpy(line, text + 2, l);
    line[l] = 0;
    char *p = line + strspn(line, " \t");
    size_t il = strcspn(p, " \t\r");
    if (!il || il >= in)
        return -1;
    memcpy(interp, p, il);
    interp[il] = 0;
    p += il;
    p += strspn(p, " \t");
    size_t al = strlen(p);
    while (al && (p[al - 1] == ' ' || p[al - 1] == '\t' || p[al - 1] == '\r'))
        al--;
    if (al >= an)
        al = an - 1;
    memcpy(arg, p, al);
    arg[al] = 0;
    return 0;
}

/* The program `env ARG` runs: skip options (-S splits, -i, -u NAME) and
 * NAME=VALUE; the first remaining word. */
static int env_target(const char *arg, char *out, size_t n)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    char *save = NULL;
    int skip_next = 0;
    for (char *w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (skip_next) {
            skip_next = 0;
            continue;
        }
        if (!strcmp(w, "-u") || !strcmp(w, "-C") || !strcmp(w, "--unset") ||
            !strcmp(w, "--chdir")) {
            skip_next = 1;
            continue;
        }
        if (w[0] == '-' || strchr(w, '='))
            continue;
        dr_fmt(out, n, "%s", w);
        return 0;
    }
    return -1;
}

/* One step from `path` (an existing file). Returns 1 with next filled when
 * there is another program to look at, 0 when path is the final program
 * (ELF, or a shell with nothing to follow), -1 on failure. */
static int step(dr_report *r, const char *path, char *next, size_t n)
{
    static char text[SCRIPT_MAX];
    ssize_t len = read_head(path, text, sizeof text);
    if (len < 0) {
        dr_why(r, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (len >= 4 && !memcmp(text, "\177ELF", 4))
        return 0;
    char interp[PATH_MAX], arg[256];
    if (len >= 2 && text[0] == '#' && text[1] == '!') {
        if (shebang(text, interp, sizeof interp, arg, sizeof arg) != 0) {
            dr_why(r, "%s: empty or overlong #! line", path);
            return -1;
        }
        int pf = follow_pyenv(r, path, text, next, n);
        if (pf)
            return pf;
        char prog[PATH_MAX], name[256];
        if (!strcmp(base(interp), "env")) {
            if (env_target(arg, name, sizeof name) != 0) {
                dr_why(r, "%s: #!%s %s names no program", path, interp,
                         arg);
                return -1;
            }
            if (strchr(name, '/'))
                dr_fmt(prog, sizeof prog, "%s", name);
            else if (dr_path_search(name, NULL, prog, sizeof prog) != 0) {
                dr_why(r, "%s: #!%s %s: %s not found on PATH", path,
                         interp, arg, name);
                return -1;
            }
        } else {
            dr_fmt(prog, sizeof prog, "%s", interp);
        }
        if (is_shell(prog)) {
            char wrapped[PATH_MAX];
            if (last_exec(text, wrapped, sizeof wrapped)) {
                int ok = strchr(wrapped, '/') ? is_exec_file(wrapped)
                                              : dr_path_search(wrapped, NULL, next, n) == 0;
                if (ok) {
                    if (strchr(wrapped, '/'))
                        dr_fmt(next, n, "%s", wrapped);
                    dr_hop_add(r, "#!%s%s%s wrapper script: its last exec runs %s", interp,
                               arg[0] ? " " : "", arg, next);
                    return 1;
                }
            }
            dr_fmt(r->script_shell, sizeof r->script_shell, "%s", base(prog));
        }
        dr_fmt(next, n, "%s", prog);
        dr_hop_add(r, "#!%s%s%s: script run by %s", interp, arg[0] ? " " : "", arg, prog);
        return 1;
    }
    if (memchr(text, 0, (size_t)len)) {
        dr_why(r, "%s: neither ELF nor a script: a format kimifix does not know", path);
        return -1;
    }
    /* execvp runs a file without #! as a /bin/sh script (ENOEXEC). */
    dr_fmt(r->script_shell, sizeof r->script_shell, "sh");
    dr_fmt(next, n, "/bin/sh");
    dr_hop_add(r, "no #! line: execvp runs it with /bin/sh");
    return 1;
}

int dr_resolve(dr_report *r, const char *cmd)
{
    char cur[PATH_MAX], next[PATH_MAX], real[PATH_MAX];
    if (strchr(cmd, '/')) {
        dr_fmt(cur, sizeof cur, "%s", cmd);
    } else if (dr_path_search(cmd, NULL, cur, sizeof cur) == 0) {
        dr_hop_add(r, "%s: found on PATH: %s", cmd, cur);
    } else {
        dr_why(r, "%s: not found on PATH", cmd);
        return -1;
    }
    for (unsigned hops = 0; hops < DR_MAX_HOPS; hops++) {
        struct stat st;
        if (stat(cur, &st) != 0) {
            dr_why(r, "%s: %s", cur, strerror(errno));
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            dr_why(r, "%s: not a regular file", cur);
            return -1;
        }
        struct stat lst;
        if (lstat(cur, &lst) == 0 && S_ISLNK(lst.st_mode) && realpath(cur, real))
            dr_hop_add(r, "%s is a link to %s", cur, real);
        if (access(cur, X_OK) != 0)
            dr_hop_add(r, "%s is not executable by you (execvp would fail)", cur);
        int s = step(r, cur, next, sizeof next);
        if (s < 0)
            return -1;
        if (s == 0) {
            dr_fmt(r->exe, sizeof r->exe, "%s", realpath(cur, real) ? real : cur);
            return 0;
        }
        dr_fmt(cur, sizeof cur, "%s", next);
    }
    dr_why(r, "more than %d levels of scripts and wrappers",
             DR_MAX_HOPS);
    return -1;
}
