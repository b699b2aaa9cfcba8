/* kf_rules_parse_int.h - private to the rules parser (kf_rules_lex.c,
 * kf_rules_parse.c, kf_rules_directives.c). */
#ifndef KF_RULES_PARSE_INT_H
#define KF_RULES_PARSE_INT_H

#include <stdarg.h>

#include "kf_rules_int.h"

typedef struct kf_parser {
    kf_ruleset *rs;
    const char *file;   /* origin name in messages */
    int builtin;
    kf_diag_fn diag;
    void *ud;
    int nerr;
    int oom;
    int line;
    int cur;            /* index of the open rule block, -1 = none */
    unsigned first;     /* index of this file's first rule */
    /* `disable` lines of the user's file, resolved after parsing */
    struct { char *name; int line; } *dis;
    unsigned ndis;
    /* The open rule's arrays (its pointers point here until end_rule()
     * copies them into the arena, sized). */
    kf_hostpat hosts[KF_RULE_MAX_HOSTS];
    kf_str methods[KF_RULE_MAX_METHODS];
    kf_hcond hconds[KF_RULE_MAX_HCONDS];
    kf_action acts[KF_RULE_MAX_ACTIONS];
} kf_parser;

#define MAX_TOKENS 64

/* A word of a rules line: NUL-terminated, unescaped, in the line buffer. */
typedef struct kf_tok {
    char *s;
    size_t n;
} kf_tok;

/* kf_rules_lex.c: diagnostics, strings, words, validators */
__attribute__((format(printf, 3, 4))) int kf_p_err(kf_parser *p, int line, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void kf_p_warn(kf_parser *p, const char *fmt, ...);
#define ERR(p, ...) kf_p_err((p), (p)->line, __VA_ARGS__)
#define ERR_AT(p, ln, ...) kf_p_err((p), (ln), __VA_ARGS__)
#define WARN(p, ...) kf_p_warn((p), __VA_ARGS__)
char *kf_p_sdup(kf_parser *p, const char *s, size_t n);
int kf_p_tokenize(kf_parser *p, char *line, kf_tok *t);
int kf_p_is_token(const kf_tok *t);
int kf_p_parse_port(const char *s, size_t n, unsigned *port);
int kf_p_parse_hostport(kf_parser *p, const char *what, char *s, size_t n, int allow_wild, kf_str *h,
                        unsigned *port, int *wild);
int kf_p_bad_value(const kf_tok *t);
int kf_p_valid_rule_name(const kf_tok *t);
size_t kf_p_regex_literal_prefix(const char *re, char *out, size_t cap);

/* kf_rules_parse.c: rule blocks */
kf_rule *kf_p_cur_rule(kf_parser *p);
int kf_p_find_rule(const kf_ruleset *rs, unsigned from, unsigned to, kf_str name);
int kf_p_once(kf_parser *p, kf_rule *r, int *line_slot, const char *what);

/* kf_rules_directives.c: one function per directive */
int kf_p_cond_host(kf_parser *p, kf_rule *r, kf_tok *t, int nt);
int kf_p_cond_path(kf_parser *p, kf_rule *r, kf_tok *t, int nt);
int kf_p_cond_method(kf_parser *p, kf_rule *r, kf_tok *t, int nt);
int kf_p_cond_header(kf_parser *p, kf_rule *r, kf_tok *t, int nt);
int kf_p_cond_key(kf_parser *p, kf_rule *r, kf_tok *t, int nt);
kf_action *kf_p_new_action(kf_parser *p, kf_rule *r, int kind);
int kf_p_act_header(kf_parser *p, kf_rule *r, kf_tok *t, int nt, int kind, const char *what);
int kf_p_act_rewrite(kf_parser *p, kf_rule *r, kf_tok *t, int nt);
int kf_p_act_upstream(kf_parser *p, kf_rule *r, kf_tok *t, int nt);
int kf_p_directive_connect(kf_parser *p, kf_tok *t, int nt);
int kf_p_directive_disable(kf_parser *p, kf_tok *t, int nt);
int kf_p_directive_defaults(kf_parser *p, kf_tok *t, int nt);

#endif
