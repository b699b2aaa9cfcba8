/* kf_rules.h - the rules language (kimifix.rules(5)): parse, match, apply.
 *
 * A ruleset is built once (built-in defaults, then the user's file) and is
 * immutable afterwards, so carriers on any thread may read it without locks.
 */
#ifndef KF_RULES_H
#define KF_RULES_H

#include "kf_req.h"

typedef struct kf_ruleset kf_ruleset;
typedef struct kf_rule kf_rule;

/* Diagnostics: one complete line per call, without trailing newline,
 * "FILE:LINE: error: ..." or "FILE:LINE: warning: ...". */
typedef void (*kf_diag_fn)(void *ud, const char *line);

/* The built-in rules text (rules/default.rules compiled in), and what
 * scripts/embed-rules.sh worked out about it at build time: 1 when a rule
 * names a host (`host` line), so relay steering is possible without
 * parsing them (tests/unit/test_rules_lazy.c holds it to the parser). */
extern const char kf_default_rules[];
extern const size_t kf_default_rules_len;
extern const int kf_default_rules_name_hosts;

/* Build a ruleset: the built-in defaults, then `user_path` (NULL: none).
 * `defaults off` / `disable NAME` in the user's file act on the built-ins.
 * Returns NULL on any error (every error is reported through `diag`, which
 * may be NULL); warnings do not fail. `*nerrors` (may be NULL) gets the
 * count of errors. */
kf_ruleset *kf_ruleset_load(const char *user_path, kf_diag_fn diag, void *ud, int *nerrors);

/* Same, from text in memory (`origin` names it in diagnostics). */
kf_ruleset *kf_ruleset_load_text(const char *text, size_t len, const char *origin,
                                 kf_diag_fn diag, void *ud, int *nerrors);

/* The user's rules file when none is given: $KIMIFIX_RULES if set and
 * non-empty (returned even if missing, so a typo is reported), else
 * ~/.config/kimifix/rules, else /etc/kimifix/rules, if readable.
 * Uses secure_getenv. Writes into buf; returns buf or NULL: none, or
 * (errno ENAMETOOLONG) the path it would name does not fit in n bytes. */
const char *kf_rules_default_path(char *buf, size_t n);

/* Does the file at `path` hold no directive at all (only blank lines and
 * comments, no NUL byte)? Then it changes nothing about the built-ins.
 * 0 when it has one, or cannot be read (loading it reports why). */
int kf_rules_file_is_blank(const char *path);

/* The process's ruleset, built on first need: the first caller runs
 * load(ud) (under a lock; other threads wait for it), everyone gets its
 * result, NULL when it failed. A call from inside load() on the same
 * thread (a signal handler) gets NULL. Forks are handled by
 * kf_rules_fork_*. */
const kf_ruleset *kf_rules_lazy(kf_ruleset *(*load)(void *ud), void *ud);
/* Has the build run (successfully or not)? */
int kf_rules_lazy_tried(void);

/* Only the built-ins (never fails unless out of memory). */
kf_ruleset *kf_ruleset_builtin(void);

void kf_ruleset_free(kf_ruleset *rs);

/* Apply every enabled rule, in order, each seeing the previous result.
 * `caps` is KF_CAP_* of the carrier. Returns the number of rules that
 * changed something (also in req->nfired). */
int kf_rules_apply(const kf_ruleset *rs, kf_req *req, unsigned caps);

/* Carriers that may fork call these from pthread_atfork (prepare, parent,
 * child): no rule match is in flight across fork(). */
void kf_rules_fork_prepare(void);
void kf_rules_fork_parent(void);
void kf_rules_fork_child(void);

/* Could any enabled rule match a request to this host (ignoring path,
 * method, headers)? Rules without a host condition match every host.
 * `port` 0 = any. Used to decide ALPN and relay steering. */
int kf_rules_host_relevant(const kf_ruleset *rs, const char *host, unsigned port);

/* Does a rule that could match this host carry an `upstream` action? */
int kf_rules_host_needs_upstream(const kf_ruleset *rs, const char *host, unsigned port);

/* connect-to entries: for host (and port, 0 = the request's port) return
 * the replacement address text and port. Returns 1 when found. */
int kf_rules_connect_to(const kf_ruleset *rs, const char *host, unsigned port,
                        const char **addr, unsigned *addr_port);

/* Enumerate connect-to entries (index from 0); returns 0 past the end. */
int kf_rules_connect_to_at(const kf_ruleset *rs, unsigned i, const char **host,
                           unsigned *port, const char **addr, unsigned *addr_port);

/* Introspection for logs, `kimifix check` and `explain`. */
const char *kf_rule_name(const kf_rule *r);
const char *kf_rule_origin(const kf_rule *r); /* "builtin:12" or "FILE:12" */
unsigned kf_ruleset_count(const kf_ruleset *rs);
const kf_rule *kf_ruleset_rule(const kf_ruleset *rs, unsigned i);
int kf_rule_enabled(const kf_rule *r);

/* Print the effective rules in the rules language (what `kimifix check`
 * shows), one directive per line, through `out`. */
void kf_ruleset_dump(const kf_ruleset *rs, kf_diag_fn out, void *ud);

#endif
