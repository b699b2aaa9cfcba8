/* shell_code.c - what `kimifix shell` and `kimifix off` print: variable
 * assignments quoted for bash, zsh or fish, the `kimifix` shell function,
 * and the undo record (shell.h).
 *
 * Quoting: every value goes inside single quotes, where neither shell
 * expands anything. bash and zsh: a ' ends the quote, so it is written
 * '\'' (close, escaped quote, reopen). fish: inside single quotes only \\
 * and \' are escapes. Any other byte (newline, control bytes, UTF-8) is
 * literal in both; NUL cannot occur in the environment.
 */
#include "shell.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kf_shell_from_name(const char *name)
{
    const char *b = name ? strrchr(name, '/') : NULL;
    b = b ? b + 1 : name;
    if (!b)
        return KF_SH_NONE;
    if (*b == '-') /* a login shell's argv[0] */
        b++;
    if (!strcmp(b, "bash"))
        return KF_SH_BASH;
    if (!strcmp(b, "zsh"))
        return KF_SH_ZSH;
    if (!strcmp(b, "fish"))
        return KF_SH_FISH;
    return KF_SH_NONE;
}

const char *kf_shell_name(int sh)
{
    return sh == KF_SH_BASH ? "bash" : sh == KF_SH_ZSH ? "zsh" : sh == KF_SH_FISH ? "fish" : "?";
}

static void put_quoted(FILE *out, int sh, const char *v)
{
    fputc('\'', out);
    for (const char *p = v; *p; p++) {
        if (*p == '\'')
            fputs(sh == KF_SH_FISH ? "\\'" : "'\\''", out);
        else if (*p == '\\' && sh == KF_SH_FISH)
            fputs("\\\\", out);
        else
            fputc(*p, out);
    }
    fputc('\'', out);
}

/* Names come from kimifix's own lists and the undo record (checked when
 * parsed): letters, digits, '_'. Anything else is refused, not quoted. */
static int valid_name(const char *n)
{
    if (!*n || isdigit((unsigned char)*n))
        return 0;
    for (const char *p = n; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return 0;
    return 1;
}

int kf_shell_assign(FILE *out, int sh, const char *name, const char *value)
{
    if (!valid_name(name))
        return -1;
    if (value) {
        fprintf(out, sh == KF_SH_FISH ? "set -gx %s " : "export %s=", name);
        put_quoted(out, sh, value);
        fputc('\n', out);
    } else {
        /* fish -g: the global kimifix set (a universal one shows again). */
        fprintf(out, sh == KF_SH_FISH ? "set -e -g %s\n" : "unset %s\n", name);
    }
    return 0;
}

void kf_shell_function(FILE *out, int sh, int define, const char *prog)
{
    /* `kimifix off` must change this shell, which a child cannot: the
     * function evaluates what `kimifix off` prints. Everything else goes to
     * the program unchanged. The program is named by the absolute path of
     * the one that printed this (the shell's PATH may change). */
    if (sh == KF_SH_FISH) {
        if (!define) {
            fputs("functions -e kimifix\n", out);
            return;
        }
        fputs("function kimifix --description 'kimifix (kimifix shell is on: kimifix off ends it)'\n"
              "    if test \"$argv[1]\" = off\n        command ", out);
        put_quoted(out, sh, prog);
        fputs(" $argv | source\n    else\n        command ", out);
        put_quoted(out, sh, prog);
        fputs(" $argv\n    end\nend\n", out);
        return;
    }
    if (!define) {
        fputs("unset -f kimifix\n", out);
        return;
    }
    fputs("kimifix() { if [ \"${1-}\" = off ]; then eval \"$(command ", out);
    put_quoted(out, sh, prog);
    fputs(" \"$@\")\"; else command ", out);
    put_quoted(out, sh, prog);
    fputs(" \"$@\"; fi; }\n", out);
}

/* ---- the undo record ---- */

unsigned long long kf_shell_hash(const char *v)
{
    unsigned long long h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static int plain(unsigned char c)
{
    return isalnum(c) || strchr("_./,@+-", c);
}

/* Append to a growing string; -1 when out of memory. */
static int grow(char **s, size_t *len, size_t *cap, const char *add, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256) + n;
        char *ns = realloc(*s, nc);
        if (!ns)
            return -1;
        *s = ns;
        *cap = nc;
    }
    memcpy(*s + *len, add, n);
    *len += n;
    (*s)[*len] = 0;
    return 0;
}

char *kf_shell_undo_encode(const kf_shell_undo *u, unsigned n)
{
    char *s = NULL, tmp[64];
    size_t len = 0, cap = 0;
    if (grow(&s, &len, &cap, "", 0) < 0)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        int w = u[i].now ? snprintf(tmp, sizeof tmp, "%016llx", kf_shell_hash(u[i].now))
                         : snprintf(tmp, sizeof tmp, "-");
        if ((i && grow(&s, &len, &cap, " ", 1) < 0) ||
            grow(&s, &len, &cap, u[i].name, strlen(u[i].name)) < 0 ||
            grow(&s, &len, &cap, "=", 1) < 0 || grow(&s, &len, &cap, tmp, (size_t)w) < 0 ||
            grow(&s, &len, &cap, u[i].prev ? ":=" : ":-", 2) < 0)
            goto oom;
        for (const unsigned char *p = (const unsigned char *)u[i].prev; p && *p; p++) {
            w = plain(*p) ? snprintf(tmp, sizeof tmp, "%c", *p) : snprintf(tmp, sizeof tmp, "%%%02X", *p);
            if (grow(&s, &len, &cap, tmp, (size_t)w) < 0)
                goto oom;
        }
    }
    return s;
oom:
    free(s);
    return NULL;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decode one entry "NAME=HASH:-" or "NAME=HASH:=PCT" (HASH: 16 hex or -)
 * in place. 0, or -1 when malformed. */
static int parse_entry(char *e, kf_shell_rec *r)
{
    char *eq = strchr(e, '=');
    if (!eq)
        return -1;
    *eq = 0;
    r->name = e;
    char *h = eq + 1, *colon = strchr(h, ':');
    if (!valid_name(e) || !colon || (colon - h != 16 && !(colon - h == 1 && *h == '-')))
        return -1;
    r->set = *h != '-';
    r->hash = r->set ? strtoull(h, NULL, 16) : 0;
    if (colon[1] == '-' && !colon[2]) {
        r->prev = NULL;
        return 0;
    }
    if (colon[1] != '=')
        return -1;
    char *in = colon + 2, *o = in;
    r->prev = o;
    while (*in) {
        if (*in == '%') {
            int a = hexval(in[1]), b = a < 0 ? -1 : hexval(in[2]);
            if (b < 0 || (a | b) == 0) /* %00: no NUL in the environment */
                return -1;
            *o++ = (char)(a * 16 + b);
            in += 3;
        } else {
            *o++ = *in++;
        }
    }
    *o = 0;
    return 0;
}

int kf_shell_undo_parse(char *rec, kf_shell_rec *out, unsigned max)
{
    unsigned n = 0;
    char *save = NULL;
    for (char *e = strtok_r(rec, " ", &save); e; e = strtok_r(NULL, " ", &save)) {
        if (n == max || parse_entry(e, &out[n]) < 0)
            return -1;
        n++;
    }
    return (int)n;
}
