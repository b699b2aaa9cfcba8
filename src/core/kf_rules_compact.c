/* kf_rules_compact.c - copy a parsed ruleset into one allocation.
 *
 * Why: the parser builds a ruleset in pieces (arena chunks, arrays that
 * grow by doubling, one 4 KiB rule struct per rule in its first version);
 * the matcher then walked a dozen rules spread over as many pages. One
 * exact-size block is one malloc, few pages touched, and the conditions
 * of all rules close together in the cache.
 *
 * The same walk runs twice: first with no memory to measure, then to copy.
 */
#include <stdlib.h>
#include <string.h>

#include "kf_rules_int.h"

typedef struct bump {
    char *base; /* NULL: measuring */
    size_t used;
} bump;

static void *take(bump *b, size_t n, size_t align)
{
    size_t at = (b->used + align - 1) & ~(align - 1);
    b->used = at + n;
    return b->base && n ? b->base + at : NULL;
}

#define TAKE(b, n, type) ((type *)take((b), (n) * sizeof(type), _Alignof(type)))

static kf_str kstr(bump *b, kf_str s)
{
    if (!s.p)
        return s;
    char *d = take(b, s.n + 1, 1);
    if (d) {
        memcpy(d, s.p, s.n);
        d[s.n] = '\0';
    }
    return (kf_str){ d, s.n };
}

static const char *cstr(bump *b, const char *s)
{
    return s ? kstr(b, kf_str_c(s)).p : NULL;
}

static void copy_conds(bump *b, kf_rule *r, const kf_rule *s)
{
    r->hosts = TAKE(b, s->nhosts, kf_hostpat);
    for (unsigned i = 0; i < s->nhosts; i++) {
        kf_str name = kstr(b, s->hosts[i].name);
        if (r->hosts) {
            r->hosts[i] = s->hosts[i];
            r->hosts[i].name = name;
        }
    }
    r->methods = TAKE(b, s->nmethods, kf_str);
    for (unsigned i = 0; i < s->nmethods; i++) {
        kf_str m = kstr(b, s->methods[i]);
        if (r->methods)
            r->methods[i] = m;
    }
    r->hconds = TAKE(b, s->nhconds, kf_hcond);
    for (unsigned i = 0; i < s->nhconds; i++) {
        kf_str name = kstr(b, s->hconds[i].name);
        const char *glob = cstr(b, s->hconds[i].glob);
        if (r->hconds) {
            r->hconds[i] = (kf_hcond){ name, glob, 0, 0 };
            if (glob)
                kf_hcond_prepare(&r->hconds[i]);
        }
    }
    kf_pat_op *ops = TAKE(b, s->pat.ops ? s->pat.nops : 0, kf_pat_op);
    if (ops)
        memcpy(ops, s->pat.ops, s->pat.nops * sizeof *ops);
    r->pat.ops = s->pat.ops ? ops : NULL;
}

static void copy_rule(bump *b, kf_rule *d, const kf_rule *s)
{
    kf_rule r = *s; /* built here, stored only when copying */
    copy_conds(b, &r, s);
    r.acts = TAKE(b, s->nacts, kf_action);
    for (unsigned i = 0; i < s->nacts; i++) {
        kf_action a = s->acts[i];
        a.name = kstr(b, a.name);
        a.value = kstr(b, a.value);
        a.host = kstr(b, a.host);
        if (r.acts)
            r.acts[i] = a;
    }
    r.path_prefix = kstr(b, s->path_prefix);
    r.key_glob = cstr(b, s->key_glob);
    r.name = kstr(b, s->name);
    r.origin = cstr(b, s->origin);
    r.file = cstr(b, s->file);
    r.disabled_by = cstr(b, s->disabled_by);
    r.path_src = cstr(b, s->path_src);
    if (d)
        *d = r;
}

static kf_ruleset *copy(bump *b, const kf_ruleset *s)
{
    kf_ruleset *d = TAKE(b, 1, kf_ruleset);
    kf_rule *rules = TAKE(b, s->nrules, kf_rule);
    unsigned *active = TAKE(b, s->nactive, unsigned);
    kf_connect *conn = TAKE(b, s->nconn, kf_connect);
    for (unsigned i = 0; i < s->nrules; i++)
        copy_rule(b, rules ? &rules[i] : NULL, &s->rules[i]);
    for (unsigned i = 0; i < s->nconn; i++) {
        kf_connect c = s->conn[i];
        c.host = cstr(b, c.host);
        c.addr = cstr(b, c.addr);
        c.origin = cstr(b, c.origin);
        if (conn)
            conn[i] = c;
    }
    const char *user_origin = cstr(b, s->user_origin);
    const char *off_at = cstr(b, s->defaults_off_at);
    if (!d)
        return NULL;
    *d = *s;
    d->rules = rules;
    d->cap = s->nrules;
    d->active = active;
    if (active)
        memcpy(active, s->active, s->nactive * sizeof *active);
    d->conn = conn;
    d->conncap = s->nconn;
    d->user_origin = user_origin;
    d->defaults_off_at = off_at;
    d->arena = NULL;
    return d;
}

kf_ruleset *kf_rs_compact(kf_ruleset *rs)
{
    bump b = { NULL, 0 };
    copy(&b, rs);
    char *mem = malloc(b.used);
    if (!mem)
        return NULL;
    b = (bump){ mem, 0 };
    kf_ruleset *d = copy(&b, rs);
    for (unsigned i = 0; i < rs->nrules; i++)
        rs->rules[i].re = NULL; /* moved */
    return d;
}

void kf_rs_free_regexes(kf_ruleset *rs)
{
    for (unsigned i = 0; i < rs->nrules; i++)
        if (rs->rules[i].re) {
            regfree(rs->rules[i].re);
            free(rs->rules[i].re);
            rs->rules[i].re = NULL;
        }
}

void kf_rs_free_parsed(kf_ruleset *rs)
{
    if (!rs)
        return;
    kf_rs_free_regexes(rs);
    free(rs->rules);
    free(rs->conn);
    free(rs->active);
    kf_rs_free_arena(rs);
    free(rs);
}
