/* kf_rules_int.h - private: the compiled form of a ruleset.
 *
 * Shared by kf_rules_parse.c (builds it), kf_rules_apply.c (matches and
 * applies it) and kf_rules_dump.c (prints it). Every string is
 * NUL-terminated and lives in the ruleset's memory, so views handed to a
 * kf_req stay valid for the ruleset's lifetime.
 *
 * Two lives: the parser builds a ruleset in pieces (an arena of chunks,
 * arrays that grow); kf_rs_compact() then copies it into one allocation
 * (the ruleset a caller gets), and the pieces are freed.
 */
#ifndef KF_RULES_INT_H
#define KF_RULES_INT_H

#include <regex.h>

#include "kf_rules.h"
#include "kf_rules_pat.h"

#define KF_RULE_MAX_HOSTS 32
#define KF_RULE_MAX_METHODS 16
#define KF_RULE_MAX_HCONDS 8
#define KF_RULE_MAX_ACTIONS 32

typedef struct kf_hostpat {
    kf_str name;    /* lower case; for "*.suffix" it is ".suffix" */
    unsigned port;  /* 0 = any */
    unsigned char wild;
} kf_hostpat;

typedef struct kf_hcond {
    kf_str name;
    const char *glob;
    size_t glob_n;        /* strlen(glob) */
    unsigned char exact;  /* glob has no '*' or '?': a plain string compare */
} kf_hcond;

/* Fill c->glob_n and c->exact from c->glob (kf_rules_directives.c). */
void kf_hcond_prepare(kf_hcond *c);

enum kf_act_kind {
    KF_ACT_REWRITE_PATH = 1,
    KF_ACT_SQUASH_SLASHES,
    KF_ACT_SET_HEADER,
    KF_ACT_ADD_HEADER,
    KF_ACT_REMOVE_HEADER,
    KF_ACT_UPSTREAM
};

typedef struct kf_action {
    unsigned char kind;
    unsigned char is_host; /* header action on "Host" */
    kf_str name;  /* header name; rewrite-path: the template */
    kf_str value; /* header value; upstream: the Host header text */
    kf_str host;  /* upstream: host without brackets */
    unsigned port;
    int line;
} kf_action;

enum kf_path_kind { KF_PATH_ANY = 0, KF_PATH_PREFIX, KF_PATH_REGEX };

/* Fields in the order kf_rules_apply() reads them: the conditions of the
 * ~13 enabled rules a request goes through fit in a few cache lines. The
 * variable parts (hosts, methods, header conditions, actions, the matcher
 * program) are arrays in the ruleset's single allocation. */
struct kf_rule {
    unsigned host_group;     /* first rule with the same host list (apply caches the answer) */
    unsigned char enabled;
    unsigned char path_kind;
    unsigned char needs_upstream;
    unsigned char uses_groups;  /* highest \N a template refers to (0: none) */
    unsigned char pat_groups;   /* sub-matches may come from `pat` (pinned to regexec by tests) */
    unsigned char builtin;
    unsigned char pat_known; /* path_prefix and pat agree on this many leading bytes */
    unsigned nhosts, nmethods, nhconds, nacts;
    /* path: for KF_PATH_PREFIX the prefix; for KF_PATH_REGEX the literal
     * prefix every match must start with (from a leading '^'), checked
     * with memcmp before any matcher. */
    kf_str path_prefix;
    kf_pat pat;              /* pat.ops != NULL: the pattern is in kf_pat's subset */
    regex_t *re;             /* glibc's, only when `pat` cannot answer (see kf_rules_pat.h) */
    const char *key_glob;
    kf_hostpat *hosts;
    kf_str *methods;
    kf_hcond *hconds;
    kf_action *acts;

    kf_str name;
    const char *origin;      /* "builtin:12", "FILE:12" */
    const char *file;
    int line;
    const char *disabled_by; /* origin of the `disable`/`defaults off` line */
    int host_line, path_line, method_line, key_line;
    const char *path_src;    /* the regex as written */
    unsigned re_nsub;
};

typedef struct kf_connect {
    const char *host;
    unsigned port;
    const char *addr;
    unsigned addr_port;
    const char *origin;
} kf_connect;

typedef struct kf_chunk kf_chunk;

struct kf_ruleset {
    kf_rule *rules;
    unsigned nrules, cap;
    unsigned nbuiltin;
    unsigned *active; /* indices of enabled rules, in order */
    unsigned nactive;
    kf_connect *conn;
    unsigned nconn, conncap;
    const char *user_origin;      /* NULL when only built-ins */
    const char *defaults_off_at;  /* origin of `defaults off` */
    kf_chunk *arena;              /* while parsing; NULL once compact */
};

/* kf_rules_parse.c: parse the built-ins, then `text` (NULL: none) as the
 * user's file named `origin`; returns the number of errors reported. */
int kf_rules_parse(kf_ruleset *rs, const char *text, size_t len, const char *origin,
                   kf_diag_fn diag, void *ud);
/* The parse-time arena (kf_rules_lex.c): copies / room that live until
 * the ruleset is compacted or freed. */
char *kf_rs_strdup(kf_ruleset *rs, const char *s, size_t n);
void *kf_rs_alloc(kf_ruleset *rs, size_t n);
void kf_rs_free_arena(kf_ruleset *rs);

/* kf_rules_compact.c: one allocation holding all of `rs` (its regexes move
 * over); NULL when out of memory. `rs` is left to kf_rs_free_parsed(). */
kf_ruleset *kf_rs_compact(kf_ruleset *rs);
/* Free a ruleset as the parser left it (regexes not moved are freed). */
void kf_rs_free_parsed(kf_ruleset *rs);
/* The glibc regexes a ruleset owns (either form). */
void kf_rs_free_regexes(kf_ruleset *rs);

/* kf_rules_lazy.c: its part of kf_rules_fork_prepare/parent/child */
void kf_rules_lazy_fork_prepare(void);
void kf_rules_lazy_fork_parent(void);
void kf_rules_lazy_fork_child(void);

/* kf_rules_apply.c */
int kf_host_match(const kf_hostpat *hp, kf_str host, unsigned port);

#endif
