/* kf_rules_query.c - what carriers and tools ask a ruleset besides
 * "apply": is a host relevant, does it need an upstream, connect-to
 * entries, and rule introspection. */
#include <string.h>

#include "kf_rules_int.h"

/* ---- host-level questions for carriers ---- */

static int host_relevant(const kf_ruleset *rs, const char *host, unsigned port, int need_upstream)
{
    if (!rs || !host)
        return 0;
    kf_str h = kf_str_c(host);
    for (unsigned k = 0; k < rs->nactive; k++) {
        const kf_rule *r = &rs->rules[rs->active[k]];
        if (need_upstream && !r->needs_upstream)
            continue;
        if (r->nhosts == 0)
            return 1;
        for (unsigned i = 0; i < r->nhosts; i++) {
            kf_hostpat hp = r->hosts[i];
            if (port == 0)
                hp.port = 0; /* any port */
            if (kf_host_match(&hp, h, port))
                return 1;
        }
    }
    return 0;
}

int kf_rules_host_relevant(const kf_ruleset *rs, const char *host, unsigned port)
{
    return host_relevant(rs, host, port, 0);
}

int kf_rules_host_needs_upstream(const kf_ruleset *rs, const char *host, unsigned port)
{
    return host_relevant(rs, host, port, 1);
}

int kf_rules_connect_to(const kf_ruleset *rs, const char *host, unsigned port, const char **addr,
                        unsigned *addr_port)
{
    if (!rs || !host)
        return 0;
    kf_str h = kf_str_c(host);
    for (unsigned i = 0; i < rs->nconn; i++) {
        const kf_connect *c = &rs->conn[i];
        if (kf_str_ieq_c(h, c->host) && (c->port == 0 || c->port == port)) {
            if (addr)
                *addr = c->addr;
            if (addr_port)
                *addr_port = c->addr_port;
            return 1;
        }
    }
    return 0;
}

int kf_rules_connect_to_at(const kf_ruleset *rs, unsigned i, const char **host, unsigned *port,
                           const char **addr, unsigned *addr_port)
{
    if (!rs || i >= rs->nconn)
        return 0;
    const kf_connect *c = &rs->conn[i];
    if (host)
        *host = c->host;
    if (port)
        *port = c->port;
    if (addr)
        *addr = c->addr;
    if (addr_port)
        *addr_port = c->addr_port;
    return 1;
}

/* ---- introspection ---- */

const char *kf_rule_name(const kf_rule *r) { return r ? r->name.p : ""; }
const char *kf_rule_origin(const kf_rule *r) { return r ? r->origin : ""; }
int kf_rule_enabled(const kf_rule *r) { return r && r->enabled; }
unsigned kf_ruleset_count(const kf_ruleset *rs) { return rs ? rs->nrules : 0; }

const kf_rule *kf_ruleset_rule(const kf_ruleset *rs, unsigned i)
{
    return rs && i < rs->nrules ? &rs->rules[i] : NULL;
}
