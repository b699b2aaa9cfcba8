/* kf_rules_hosts.h - the host names the enabled rules name explicitly.
 *
 * The relay mints certificates and name-constrains its CA with these; the
 * shim should steer only connections to them. A rule without a `host`
 * condition matches every host for rewriting, but never makes a name
 * "listed": the relay must not impersonate arbitrary sites.
 */
#ifndef KF_RULES_HOSTS_H
#define KF_RULES_HOSTS_H

#include <stddef.h>

#include "kf_rules.h"

/* The i-th (from 0) distinct host pattern of the enabled rules, in rule
 * order, port ignored. *name is lower case and NUL-terminated; for a
 * wildcard `*.suffix` it is ".suffix" and *wild is 1 (subdomains only).
 * Returns 0 past the end. */
int kf_rules_host_at(const kf_ruleset *rs, unsigned i, const char **name, int *wild);

/* Does an explicit host pattern of an enabled rule match host (and port;
 * 0 = any)? Case-insensitive. */
int kf_rules_host_listed(const kf_ruleset *rs, const char *host, unsigned port);

#endif
