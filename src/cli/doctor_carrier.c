/* doctor_carrier.c - the carrier `kimifix CMD` would choose for the
 * program (the same kf_carrier_choose the wrapper and the shim call), and
 * the rule hosts the user's NO_PROXY sends past the relay. */
#include "doctor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_noproxy.h"
#include "kf_rules_hosts.h"
#include "kf_rules_policy.h"

/* Would the hooks see the program's TLS when its constructor runs (what
 * the shim's own choice looks at)? A shared libssl, GnuTLS or libcurl in
 * DT_NEEDED, and no TLS compiled into the program. Python's _ssl is
 * loaded later: it does not count, as in the shim. */
static int tls_at_start(const dr_prog *p)
{
    const kf_ldtree *t = p->tree;
    if (!t || p->ssl_write == 1 || p->ssl_write_ex == 1)
        return 0;
    return kf_ld_find(t, "libssl.so") || kf_ld_find(t, "libgnutls") || kf_ld_find(t, "libcurl");
}

/* Rule hosts NO_PROXY names, as "a, b" (empty when none). */
static void bypassed(const char *np, char *out, size_t n)
{
    char buf[4096];
    kf_rules_src src;
    out[0] = 0;
    /* The rules in effect: a broken file counts as absent (kf_rules_policy.h). */
    kf_ruleset *rs = kf_rules_load_policy(kf_rules_default_path(buf, sizeof buf), NULL, NULL, &src);
    if (!rs)
        return;
    const char *name;
    int wild;
    size_t used = 0;
    for (unsigned i = 0; kf_rules_host_at(rs, i, &name, &wild); i++) {
        const char *h = wild ? name + 1 : name; /* ".suffix": the domain itself */
        if (!kf_noproxy_match(np, h, 443) && !kf_noproxy_match(np, h, 80))
            continue;
        int w = snprintf(out + used, n - used, "%s%s%s", used ? ", " : "", wild ? "*." : "", h);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    kf_ruleset_free(rs);
}

void dr_carrier(dr_report *r, const dr_prog *p, int no_shim, kf_carrier_choice *out)
{
    kf_carrier_in in = {.get = getenv, .no_preload = no_shim,
                        .tls_inprocess = !no_shim && tls_at_start(p)};
    kf_carrier_choice c;
    kf_carrier_choose(&in, &c);
    dr_fact_add(r, 0, "carrier", "%s -- %s",
                c.carrier == KF_CARRIER_PROXY ? "proxy (the relay as the program's HTTP proxy)"
                : c.carrier == KF_CARRIER_SHIM ? "shim (LD_PRELOAD: in-process hooks, relay steering)"
                                               : "none",
                c.why);
    const char *np = kf_noproxy_env(getenv);
    char hosts[DR_VAL_MAX / 2];
    if (c.carrier == KF_CARRIER_PROXY && np && *np && (bypassed(np, hosts, sizeof hosts), hosts[0])) {
        if (no_shim)
            dr_fact_add(r, 1, "no_proxy", "NO_PROXY names %s: the program connects there directly, "
                                          "past the relay, so requests to it go unfixed", hosts);
        else
            dr_fact_add(r, 0, "no_proxy", "NO_PROXY names %s: the program connects there directly, "
                                          "past the relay's proxy; connect() steering still "
                                          "carries those connections", hosts);
    }
    if (out)
        *out = c;
}
