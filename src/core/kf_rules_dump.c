/* kf_rules_dump.c - print a ruleset back in the rules language
 * (what `kimifix check` shows). Disabled rules are printed commented out,
 * with the line that disabled them. */
#include <stdio.h>
#include <string.h>

#include "kf_rules_int.h"

typedef struct line {
    char buf[2048];
    size_t n;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (n > sizeof l->buf - 1 - l->n)
        n = sizeof l->buf - 1 - l->n;
    memcpy(l->buf + l->n, s, n);
    l->n += n;
    l->buf[l->n] = '\0';
}

static void puts_(line *l, const char *s) { put(l, s, strlen(s)); }

/* A word as the tokenizer reads it back: quoted when it has spaces, '#',
 * quotes or is empty (and then '"' and '\' are escaped). */
static void word(line *l, const char *s, size_t n)
{
    int q = n == 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '#' || s[i] == '"')
            q = 1;
    put(l, " ", 1);
    if (!q) {
        put(l, s, n);
        return;
    }
    put(l, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            put(l, "\\", 1);
        put(l, &s[i], 1);
    }
    put(l, "\"", 1);
}

static void hostport(line *l, const char *h, size_t hn, unsigned port, int wild)
{
    char t[300];
    int v6 = memchr(h, ':', hn) != NULL;
    int k;
    if (port)
        k = snprintf(t, sizeof t, "%s%s%.*s%s:%u", wild ? "*" : "", v6 ? "[" : "", (int)hn, h,
                     v6 ? "]" : "", port);
    else
        k = snprintf(t, sizeof t, "%s%s%.*s%s", wild ? "*" : "", v6 ? "[" : "", (int)hn, h,
                     v6 ? "]" : "");
    word(l, t, k > 0 ? ((size_t)k < sizeof t ? (size_t)k : sizeof t - 1) : 0);
}

static void emit(line *l, const char *prefix, kf_diag_fn out, void *ud)
{
    char t[sizeof l->buf + 8];
    snprintf(t, sizeof t, "%s%s", prefix, l->buf);
    out(ud, t);
    l->n = 0;
    l->buf[0] = '\0';
}

static void dump_rule(const kf_rule *r, kf_diag_fn out, void *ud)
{
    const char *c = r->enabled ? "" : "# ";
    line l = { .n = 0 };
    l.buf[0] = '\0';
    if (!r->enabled) {
        puts_(&l, "disabled by ");
        puts_(&l, r->disabled_by ? r->disabled_by : "?");
        emit(&l, "# ", out, ud);
    }
    puts_(&l, "rule");
    word(&l, r->name.p, r->name.n);
    puts_(&l, "    # ");
    puts_(&l, r->origin);
    emit(&l, c, out, ud);
    const char *ind = r->enabled ? "    " : "#     ";
    if (r->nhosts) {
        puts_(&l, "host");
        for (unsigned i = 0; i < r->nhosts; i++) {
            const kf_hostpat *h = &r->hosts[i];
            hostport(&l, h->name.p, h->name.n, h->port, h->wild);
        }
        emit(&l, ind, out, ud);
    }
    if (r->path_kind == KF_PATH_PREFIX) {
        puts_(&l, "path");
        word(&l, r->path_prefix.p, r->path_prefix.n);
        emit(&l, ind, out, ud);
    } else if (r->path_kind == KF_PATH_REGEX) {
        puts_(&l, "path ~");
        word(&l, r->path_src, strlen(r->path_src));
        emit(&l, ind, out, ud);
    }
    if (r->nmethods) {
        puts_(&l, "method");
        for (unsigned i = 0; i < r->nmethods; i++)
            word(&l, r->methods[i].p, r->methods[i].n);
        emit(&l, ind, out, ud);
    }
    for (unsigned i = 0; i < r->nhconds; i++) {
        puts_(&l, "header");
        word(&l, r->hconds[i].name.p, r->hconds[i].name.n);
        word(&l, r->hconds[i].glob, strlen(r->hconds[i].glob));
        emit(&l, ind, out, ud);
    }
    if (r->key_glob) {
        puts_(&l, "key");
        word(&l, r->key_glob, strlen(r->key_glob));
        emit(&l, ind, out, ud);
    }
    for (unsigned i = 0; i < r->nacts; i++) {
        const kf_action *a = &r->acts[i];
        switch (a->kind) {
        case KF_ACT_REWRITE_PATH:
            puts_(&l, "rewrite-path");
            word(&l, a->name.p, a->name.n);
            break;
        case KF_ACT_SQUASH_SLASHES:
            puts_(&l, "squash-slashes");
            break;
        case KF_ACT_SET_HEADER:
        case KF_ACT_ADD_HEADER:
            puts_(&l, a->kind == KF_ACT_SET_HEADER ? "set-header" : "add-header");
            word(&l, a->name.p, a->name.n);
            word(&l, a->value.p, a->value.n);
            break;
        case KF_ACT_REMOVE_HEADER:
            puts_(&l, "remove-header");
            word(&l, a->name.p, a->name.n);
            break;
        case KF_ACT_UPSTREAM:
            puts_(&l, "upstream");
            hostport(&l, a->host.p, a->host.n, a->port, 0);
            break;
        }
        emit(&l, ind, out, ud);
    }
}

void kf_ruleset_dump(const kf_ruleset *rs, kf_diag_fn out, void *ud)
{
    if (!rs || !out)
        return;
    char t[1200];
    snprintf(t, sizeof t, "# built-in rules (%u)%s%s", rs->nbuiltin,
             rs->defaults_off_at ? ": off, by 'defaults off' at " : "",
             rs->defaults_off_at ? rs->defaults_off_at : "");
    out(ud, t);
    for (unsigned i = 0; i < rs->nrules; i++) {
        if (i == rs->nbuiltin) {
            out(ud, "");
            snprintf(t, sizeof t, "# rules from %s (%u)", rs->user_origin ? rs->user_origin : "?",
                     rs->nrules - rs->nbuiltin);
            out(ud, t);
        }
        out(ud, "");
        dump_rule(&rs->rules[i], out, ud);
    }
    if (rs->nbuiltin == rs->nrules && rs->user_origin) {
        out(ud, "");
        snprintf(t, sizeof t, "# rules from %s (0)", rs->user_origin);
        out(ud, t);
    }
    if (rs->nconn)
        out(ud, "");
    for (unsigned i = 0; i < rs->nconn; i++) {
        const kf_connect *c = &rs->conn[i];
        line l = { .n = 0 };
        l.buf[0] = '\0';
        puts_(&l, "connect-to");
        hostport(&l, c->host, strlen(c->host), c->port, 0);
        hostport(&l, c->addr, strlen(c->addr), c->addr_port, 0);
        puts_(&l, "    # ");
        puts_(&l, c->origin);
        emit(&l, "", out, ud);
    }
}
