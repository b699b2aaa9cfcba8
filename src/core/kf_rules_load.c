/* kf_rules_load.c - build and free rulesets; find the user's rules file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_rules_int.h"

void kf_ruleset_free(kf_ruleset *rs)
{
    if (!rs)
        return;
    for (unsigned i = 0; i < rs->nrules; i++)
        if (rs->rules[i].re_ok)
            regfree(&rs->rules[i].re);
    free(rs->rules);
    free(rs->conn);
    free(rs->active);
    kf_rs_free_arena(rs);
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

static kf_ruleset *load(const char *text, size_t len, const char *origin, kf_diag_fn diag,
                        void *ud, int *nerrors)
{
    kf_ruleset *rs = calloc(1, sizeof *rs);
    if (!rs) {
        if (nerrors)
            *nerrors = 1;
        return NULL;
    }
    int nerr = kf_rules_parse(rs, text, len, origin, diag, ud);
    rs->active = malloc((rs->nrules ? rs->nrules : 1) * sizeof *rs->active);
    if (!rs->active && !nerr)
        nerr = 1;
    for (unsigned i = 0; rs->active && i < rs->nrules; i++) {
        kf_rule *r = &rs->rules[i];
        r->host_group = i;
        for (unsigned j = 0; j < i; j++)
            if (same_hosts(r, &rs->rules[j])) {
                r->host_group = rs->rules[j].host_group;
                break;
            }
        if (r->enabled)
            rs->active[rs->nactive++] = i;
    }
    if (nerrors)
        *nerrors = nerr;
    if (nerr) {
        kf_ruleset_free(rs);
        return NULL;
    }
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
        if (strlen(env) >= n)
            return NULL;
        memcpy(buf, env, strlen(env) + 1);
        return buf;
    }
    const char *home = secure_getenv("HOME");
    if (home && *home) {
        int k = snprintf(buf, n, "%s/.config/kimifix/rules", home);
        if (k > 0 && (size_t)k < n && access(buf, R_OK) == 0)
            return buf;
    }
    if (access("/etc/kimifix/rules", R_OK) == 0 && n > sizeof "/etc/kimifix/rules") {
        memcpy(buf, "/etc/kimifix/rules", sizeof "/etc/kimifix/rules");
        return buf;
    }
    return NULL;
}
