/* kf_req.h - the request model the rules work on.
 *
 * A request is a set of string views (kf_str) into bytes owned by someone
 * else: the client's head buffer, the rules' own strings, or req->scratch.
 * Nothing here allocates. The stream rewriter (kf_stream.c) fills a kf_req
 * from an HTTP/1 head, the libcurl hook fills one from a URL and a header
 * list, `kimifix explain` fills one from its command line.
 */
#ifndef KF_REQ_H
#define KF_REQ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kf_str.h"


#define KF_STR(lit) ((kf_str){ (lit), sizeof(lit) - 1 })

enum kf_hdr_state {
    KF_HDR_ORIG = 0,   /* untouched: emit hdr.line verbatim */
    KF_HDR_CHANGED,    /* value (or name) replaced in place */
    KF_HDR_ADDED,      /* new header, appended at the end */
    KF_HDR_REMOVED     /* dropped */
};

typedef struct kf_hdr {
    kf_str name;       /* current name */
    kf_str value;      /* current value (no surrounding whitespace) */
    kf_str orig_value; /* value as received (for logs); empty for added */
    kf_str line;       /* original line including its line ending; p==NULL when added */
    unsigned char state;
} kf_hdr;

#define KF_MAX_HEADERS 128
#define KF_MAX_FIRED 16
#define KF_SCRATCH 4096

/* Carrier capabilities, passed to kf_rules_apply(). */
#define KF_CAP_UPSTREAM 0x1u /* carrier can choose the connection (relay, libcurl URL) */

/* What changed (req->changed bits). */
#define KF_CHG_PATH 0x1u
#define KF_CHG_HEADERS 0x2u
#define KF_CHG_UPSTREAM 0x4u

struct kf_rule;

typedef struct kf_req {
    /* input */
    kf_str method;
    kf_str path;      /* current path, query excluded; starts with '/' (or '*'/authority) */
    kf_str query;     /* "?..." including the '?', or empty */
    kf_str version;   /* "HTTP/1.1" etc.; empty when not from a head */
    kf_str host;      /* host used for matching: Host header (port stripped) or carrier default */
    unsigned port;    /* from Host header, else carrier default (443/80), 0 = unknown */
    int tls;          /* carrier is TLS: default port 443 */
    kf_hdr hdr[KF_MAX_HEADERS];
    unsigned nhdr;

    /* output, filled by kf_rules_apply() */
    kf_str orig_path;             /* path before any rule */
    kf_str orig_host;             /* host before any upstream action */
    kf_str upstream_host;         /* set by an `upstream` action that applied */
    unsigned upstream_port;       /* 0 = keep the scheme's default */
    unsigned changed;             /* KF_CHG_* */
    unsigned hdr_first_change;    /* lowest hdr[] index whose state a rule changed (>= nhdr: none) */
    const struct kf_rule *fired[KF_MAX_FIRED];   /* rules that changed something */
    unsigned nfired;
    const struct kf_rule *skipped[KF_MAX_FIRED]; /* matched but needed a missing capability */
    unsigned nskipped;

    /* storage for rewritten paths and host values; reset by kf_req_init */
    char scratch[KF_SCRATCH];
    size_t scratch_used;
} kf_req;

/* Reset everything (cheap: does not clear hdr[] or scratch). */
void kf_req_init(kf_req *req);

/* Append a header view; returns 0, or -1 when KF_MAX_HEADERS is reached. */
int kf_req_add_header(kf_req *req, kf_str name, kf_str value, kf_str line);

/* Find the first live header named `name` (case-insensitive), from index
 * `from`; returns its index or -1. */
int kf_req_find_header(const kf_req *req, kf_str name, unsigned from);

/* Copy bytes into req->scratch; returns the view, or {NULL,0} when full. */
kf_str kf_req_store(kf_req *req, const char *p, size_t n);

/* Set req->host/port from a Host header value ("h", "h:p", "[v6]:p"). */
void kf_req_set_host(kf_req *req, kf_str hostport);

/* The API key a request carries: "Authorization: Bearer X" or "x-api-key: X".
 * Returns an empty view when there is none. */
kf_str kf_req_api_key(const kf_req *req);

/* A one-line human summary of what changed, secrets redacted, e.g.
 *   POST /coding/v1/v1/messages -> /coding/v1/messages; x-msh-platform: kimi_code_cli -> kimi_cli
 * Returns the length written (always NUL-terminated when n > 0). */
size_t kf_req_summary(const kf_req *req, char *buf, size_t n);

/* Note the values of the request's secret headers (its API key, "Bearer
 * K" without the scheme) with kf_mask_note_key(): every later masked text
 * of this process (log lines, redacted values) hides them wherever they
 * are repeated. kf_req_log_text() does it. */
void kf_req_note_keys(const kf_req *req);

/* "rule NAME" or "rules A, B" for a list of rules (log lines). */
size_t kf_rule_names(const struct kf_rule *const *r, unsigned nr, char *buf, size_t n);

/* The log text of a rewritten request: "rule NAME: SUMMARY" or
 * "rules A, B: SUMMARY"; the summary alone when no rule fired. */
size_t kf_req_log_text(const kf_req *req, char *buf, size_t n);

#endif
