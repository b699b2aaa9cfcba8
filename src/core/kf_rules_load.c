/* kf_rules_load.c - build and free rulesets; find the user's rules file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_rules_int.h"
#include "kf_str.h"

/* A ruleset callers get is compact (kf_rules_compact.c): one block, plus
 * the glibc regexes of patterns outside kf_pat's subset. */
void kf_ruleset_free(kf_ruleset *rs)
{
    if (!rs)
        return;
    kf_rs_free_regexes(rs);
    free(rs);
}

static int same_hosts(const kf_rule *a, const kf_rule *b)
{
    if (a->nhosts != b->nhosts)
        return 0;
    for (unsigned i = 0; i < a->nhosts; i++)
        if (a->hosts[i].port != b->hosts[i].port || a->hosts[i].wild != b->hosts[i].wild ||
            !kf_str_eq(a->hosts[i].name, b->hosts[i].name))
            return 0;
    return 1;
}

/* Host groups and the enabled list, then the one-block copy. */
static kf_ruleset *finish(kf_ruleset *tmp)
{
    tmp->active = malloc((tmp->nrules ? tmp->nrules : 1) * sizeof *tmp->active);
    if (!tmp->active)
        return NULL;
    for (unsigned i = 0; i < tmp->nrules; i++) {
        kf_rule *r = &tmp->rules[i];
        r->host_group = i;
        for (unsigned j = 0; j < i; j++)
            if (same_hosts(r, &tmp->rules[j])) {
                r->host_group = tmp->rules[j].host_group;
                break;
            }
        if (r->enabled)
            tmp->active[tmp->nactive++] = i;
    }
    return kf_rs_compact(tmp);
}

static kf_ruleset *load(const char *text, size_t len, const char *origin, kf_diag_fn diag,
                        void *ud, int *nerrors)
{
    kf_ruleset *tmp = calloc(1, sizeof *tmp), *rs = NULL;
    int nerr = 0;
    if (tmp) {
        nerr = kf_rules_parse(tmp, text, len, origin, diag, ud);
        if (!nerr && !(rs = finish(tmp)))
            nerr = -1;
        kf_rs_free_parsed(tmp);
    } else {
        nerr = -1;
    }
    if (nerr < 0) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%s:0: error: out of memory", origin ? origin : "builtin");
        if (diag)
            diag(ud, msg);
        nerr = 1;
    }
    if (nerrors)
        *nerrors = nerr;
    return rs;
}

kf_ruleset *kf_ruleset_load_text(const char *text, size_t len, const char *origin, kf_diag_fn diag,
                                 void *ud, int *nerrors)
{
    return load(text ? text : "", text ? len : 0, origin, diag, ud, nerrors);
}

kf_ruleset *kf_ruleset_builtin(void)
{
    return load(NULL, 0, NULL, NULL, NULL, NULL);
}

kf_ruleset *kf_ruleset_load(const char *user_path, kf_diag_fn diag, void *ud, int *nerrors)
{
    if (!user_path)
        return load(NULL, 0, NULL, diag, ud, nerrors);
    char msg[1200];
    FILE *f = fopen(user_path, "re");
    if (!f) {
        snprintf(msg, sizeof msg, "%s:0: error: cannot open: %s", user_path, strerror(errno));
        goto fail;
    }
    size_t cap = 8192, len = 0;
    char *text = malloc(cap);
    while (text) {
        if (len == cap) {
            if (cap >= (16u << 20)) {
                fclose(f);
                free(text);
                snprintf(msg, sizeof msg, "%s:0: error: file too large", user_path);
                goto fail;
            }
            char *nt = realloc(text, cap * 2);
            if (!nt) {
                free(text);
                text = NULL;
                break;
            }
            text = nt;
            cap *= 2;
        }
        size_t k = fread(text + len, 1, cap - len, f);
        len += k;
        if (k == 0)
            break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (!text || rerr) {
        free(text);
        snprintf(msg, sizeof msg, "%s:0: error: cannot read: %s", user_path,
                 text ? "read error" : "out of memory");
        goto fail;
    }
    kf_ruleset *rs = load(text, len, user_path, diag, ud, nerrors);
    free(text);
    return rs;
fail:
    if (diag)
        diag(ud, msg);
    if (nerrors)
        *nerrors = 1;
    return NULL;
}

/* ---- the file the shim and the tools read when none is given ---- */

const char *kf_rules_default_path(char *buf, size_t n)
{
    const char *env = secure_getenv("KIMIFIX_RULES");
    if (env && *env) {
        if (strlen(env) >= n) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        memcpy(buf, env, strlen(env) + 1);
        return buf;
    }
    const char *home = secure_getenv("HOME");
    if (home && *home) {
        if (kf_cat3(buf, n, home, "/.config/kimifix/rules", NULL) <= 0) {
            errno = ENAMETOOLONG; /* not /etc's file: the user's may exist */
            return NULL;
        }
        if (access(buf, R_OK) == 0)
            return buf;
    }
    if (access("/etc/kimifix/rules", R_OK) == 0 && n > sizeof "/etc/kimifix/rules") {
        memcpy(buf, "/etc/kimifix/rules", sizeof "/etc/kimifix/rules");
        return buf;
    }
    return NULL;
}

/* ---- a user file that changes nothing ---- */

/* Mirrors what parse_text and kf_p_tokenize make of a line: one trailing
 * CR is dropped, blanks are skipped, '#' ends the line, a NUL anywhere is
 * an error; anything else is a word. */
int kf_rules_file_is_blank(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0 && access(path, R_OK) == 0)
        return 1; /* the common case, an empty file: no FILE, no buffer, no read */
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    setvbuf(f, NULL, _IONBF, 0); /* read into buf below: no stdio buffer to allocate */
    char buf[4096];
    int comment = 0, cr = 0, blank = 1;
    size_t k, total = 0;
    while (blank && (k = fread(buf, 1, sizeof buf, f)) > 0) {
        total += k;
        if (total >= (16u << 20))
            blank = 0; /* "file too large" is the loader's to say */
        for (size_t i = 0; i < k && blank; i++) {
            char c = buf[i];
            if (c == '\0' || (cr && c != '\n')) {
                blank = 0; /* NUL: an error; a CR that does not end its line: a word */
                break;
            }
            cr = 0;
            if (c == '\n')
                comment = 0;
            else if (comment)
                continue;
            else if (c == '#')
                comment = 1;
            else if (c == '\r')
                cr = 1;
            else if (c != ' ' && c != '\t')
                blank = 0;
        }
    }
    if (ferror(f))
        blank = 0;
    fclose(f);
    return blank;
}
