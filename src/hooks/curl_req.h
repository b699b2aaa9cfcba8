/* curl_req.h - turning a libcurl handle's options into a kf_req and the
 * rules' result back into a URL and a header list (curl_req.c). Used by
 * curl_easy.c only. Nothing here calls libcurl: the list is built through
 * an append callback (the real curl_slist_append).
 */
#ifndef KF_CURL_REQ_H
#define KF_CURL_REQ_H

#include <stddef.h>

#include "kf_req.h"

/* libcurl's public list node (ABI-stable since 7.x). */
struct kf_curl_slist {
    char *data;
    struct kf_curl_slist *next;
};

typedef struct kf_curl_slist *(*kf_slist_append_fn)(struct kf_curl_slist *, const char *);
typedef void (*kf_slist_free_fn)(struct kf_curl_slist *);

/* A URL split into views of the caller's string. */
typedef struct kf_url {
    kf_str scheme;   /* "https"; "http" when the URL has none */
    kf_str userinfo; /* without the '@'; p==NULL when absent */
    kf_str hostport; /* as written: "h", "h:p", "[v6]:p" */
    kf_str path;     /* "/" when the URL has none (then p points at a constant) */
    kf_str query;    /* "?..." or empty; the fragment is dropped (never sent) */
    int tls;         /* scheme is https */
} kf_url;

/* Returns 0, or -1 when the URL is not http(s) or cannot be parsed. */
int kf_url_parse(const char *url, kf_url *u);

/* The method libcurl will send, as the options say. */
enum kf_curl_method { KF_CM_GET = 0, KF_CM_POST, KF_CM_PUT, KF_CM_HEAD };

typedef struct kf_curl_opts {
    const char *url;
    const struct kf_curl_slist *headers; /* the user's CURLOPT_HTTPHEADER */
    const char *custom;                  /* CURLOPT_CUSTOMREQUEST */
    const char *useragent;               /* CURLOPT_USERAGENT */
    const char *bearer;                  /* CURLOPT_XOAUTH2_BEARER */
    int method;                          /* enum kf_curl_method */
} kf_curl_opts;

/* Fill req (after kf_req_init) from the options; `u` from kf_url_parse(o->url).
 * `synth_from` gets the index of the first header libcurl adds by itself
 * (Host, User-Agent, Authorization: views for matching only). Returns 0 or -1. */
int kf_curl_build_req(kf_req *req, const kf_curl_opts *o, const kf_url *u, unsigned *synth_from);

/* The rewritten URL (malloc'd), or NULL on OOM. */
char *kf_curl_new_url(const kf_req *req, const kf_url *u);

/* The replacement header list for req: the user's entries in order, changed
 * ones rewritten, removed ones left out (with "Name:" so libcurl does not add
 * its own), added ones appended, into *out (NULL when empty). Returns 0,
 * or -1 on failure (nothing leaks). */
int kf_curl_new_headers(const kf_req *req, const kf_curl_opts *o, unsigned synth_from,
                        kf_slist_append_fn append, kf_slist_free_fn free_all,
                        struct kf_curl_slist **out);

#endif
