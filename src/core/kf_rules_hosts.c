/* kf_rules_hosts.c - enumerate explicit rule hosts (kf_rules_hosts.h). */
#include "kf_rules_hosts.h"

#include <string.h>

#include "kf_rules_int.h"

/* Already returned for an earlier (rule, host) position? Keeps the list
 * distinct without allocating; rulesets are small. */
static int seen_before(const kf_ruleset *rs, unsigned ai, unsigned hi)
{
    const kf_hostpat *h = &rs->rules[rs->active[ai]].hosts[hi];
    for (unsigned a = 0; a <= ai; a++) {
        const kf_rule *r = &rs->rules[rs->active[a]];
        unsigned lim = a == ai ? hi : r->nhosts;
        for (unsigned j = 0; j < lim; j++)
            if (r->hosts[j].wild == h->wild && kf_str_eq(r->hosts[j].name, h->name))
                return 1;
    }
    return 0;
}

int kf_rules_host_at(const kf_ruleset *rs, unsigned i, const char **name, int *wild)
{
    if (!rs)
        return 0;
    for (unsigned a = 0; a < rs->nactive; a++) {
        const kf_rule *r = &rs->rules[rs->active[a]];
        for (unsigned j = 0; j < r->nhosts; j++) {
            if (seen_before(rs, a, j))
                continue;
            if (i-- == 0) {
                *name = r->hosts[j].name.p;
                *wild = r->hosts[j].wild;
                return 1;
            }
        }
    }
    return 0;
}

int kf_rules_host_listed(const kf_ruleset *rs, const char *host, unsigned port)
{
    if (!rs || !host)
        return 0;
    kf_str h = kf_str_c(host);
    if (h.n && h.p[h.n - 1] == '.')
        h.n--; /* "api.kimi.com." is the same name */
    for (unsigned a = 0; a < rs->nactive; a++) {
        const kf_rule *r = &rs->rules[rs->active[a]];
        for (unsigned j = 0; j < r->nhosts; j++) {
            kf_hostpat hp = r->hosts[j];
            if (!port)
                hp.port = 0; /* any port */
            if (kf_host_match(&hp, h, port))
                return 1;
        }
    }
    return 0;
}
