/* kf_rules_int.h - private: the compiled form of a ruleset.
 *
 * Shared by kf_rules_parse.c (builds it), kf_rules_apply.c (matches and
 * applies it) and kf_rules_dump.c (prints it). Every string is
 * NUL-terminated and lives in the ruleset's arena, so views handed to a
 * kf_req stay valid for the ruleset's lifetime.
 */
#ifndef KF_RULES_INT_H
#define KF_RULES_INT_H

#include <regex.h>

#include "kf_rules.h"

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
} kf_hcond;

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

struct kf_rule {
    kf_str name;
    const char *origin;      /* "builtin:12", "FILE:12" */
    const char *file;
    int line;
    unsigned char builtin;
    unsigned char enabled;
    unsigned char path_kind;
    unsigned char needs_upstream;
    unsigned char uses_groups;  /* a template refers to \1..\9 */
    unsigned char re_ok;
    const char *disabled_by; /* origin of the `disable`/`defaults off` line */

    unsigned host_group;     /* first rule with the same host list (apply caches the answer) */
    unsigned nhosts, nmethods, nhconds, nacts;
    int host_line, path_line, method_line, key_line;
    kf_hostpat hosts[KF_RULE_MAX_HOSTS];
    kf_str methods[KF_RULE_MAX_METHODS];
    kf_hcond hconds[KF_RULE_MAX_HCONDS];
    kf_action acts[KF_RULE_MAX_ACTIONS];

    /* path: for KF_PATH_PREFIX the prefix; for KF_PATH_REGEX the literal
     * prefix every match must start with (from a leading '^'), checked
     * with memcmp before regexec. */
    kf_str path_prefix;
    const char *path_src; /* the regex as written */
    regex_t re;
    unsigned re_nsub;
    const char *key_glob;
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
    kf_chunk *arena;
};

/* kf_rules_parse.c: parse the built-ins, then `text` (NULL: none) as the
 * user's file named `origin`; returns the number of errors reported. */
int kf_rules_parse(kf_ruleset *rs, const char *text, size_t len, const char *origin,
                   kf_diag_fn diag, void *ud);
char *kf_rs_strdup(kf_ruleset *rs, const char *s, size_t n);
void kf_rs_free_arena(kf_ruleset *rs);

/* kf_rules_apply.c */
int kf_host_match(const kf_hostpat *hp, kf_str host, unsigned port);

#endif
