/* kf_noproxy.h - NO_PROXY: which destinations bypass a proxy.
 *
 * Shared by the shim (which carrier a connection gets), `kimifix doctor`
 * (does a rule host go unfixed?) and the relay (its own upstream
 * connections honour the user's NO_PROXY too). The list is what curl,
 * Python and Go accept: entries separated by commas (or blanks),
 *
 *   *                 every host
 *   example.com       example.com and every subdomain of it
 *   .example.com      the same (curl, Python; Go: subdomains only)
 *   *.example.com     the same (Go's spelling of a leading dot)
 *   host:443          that host on that port only (Go); [::1]:443 too
 *   10.1.2.3, ::1     that IP address (a literal host only: no resolving)
 *   10.0.0.0/8, fe80::/10   an IP range (Go; curl >= 7.86)
 *
 * ASCII case-insensitive, a trailing dot on either side ignored. Names
 * are never resolved: an IP entry matches only a host given as a literal.
 * libc only, no allocation: callable from the shim's constructor.
 */
#ifndef KF_NOPROXY_H
#define KF_NOPROXY_H

/* getenv or secure_getenv (or a test's own): how the environment is read. */
typedef char *(*kf_getenv_fn)(const char *name);

/* NAME's value as the user had it: KIMIFIX_ORIG_NAME when kimifix changed
 * NAME in a parent ("" = it was unset), else NAME; NULL when unset
 * (kf_envplan_url.c). */
const char *kf_user_env(kf_getenv_fn get, const char *name);

/* 1 when host (a name, or an IP literal with or without [brackets]) on
 * port (0 = unknown: entries with a port never match) is in list; 0 when
 * not, or when list is NULL or empty. */
int kf_noproxy_match(const char *list, const char *host, unsigned port);

/* The list the environment gives: no_proxy when set and not empty, else
 * NO_PROXY (the order of curl and Python); NULL when neither is set. */
const char *kf_noproxy_env(kf_getenv_fn get);

#endif
