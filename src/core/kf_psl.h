/* kf_psl.h - host patterns too wide for the kimifix CA: at or above a
 * public suffix.
 *
 * The relay's CA is name-constrained to the hosts the rules list (ca.c).
 * A rule `host *.com` (or `host com`: a dNSName subtree "com" covers every
 * name under it, RFC 5280 4.2.1.10) would let that CA sign for every .com
 * site. Such patterns are refused when rules load (`kimifix check`, the
 * shim, the relay) with a file:line: error. The list is short and built in
 * (no network, no data file): the common generic and country TLDs, the
 * usual second-level registries (co.uk, com.cn, co.jp...) and the shared
 * hosting suffixes a coding agent may meet (github.io, vercel.app...).
 */
#ifndef KF_PSL_H
#define KF_PSL_H

#include <stddef.h>

/* Is name (lower case, no leading or trailing dot) a public suffix of the
 * built-in list, or above one (a parent of an entry: "uk" for "co.uk")? */
int kf_psl_is_public(const char *name, size_t n);

/* Why a rule host is too wide for the CA, or NULL when it is fine. name is
 * the host without "*." (lower case); wild says whether it had "*.": every
 * wildcard over a single label is refused (every top-level domain is a
 * public suffix, listed or not). */
const char *kf_psl_too_wide(const char *name, size_t n, int wild);

#endif
