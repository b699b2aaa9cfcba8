/* curl_easy.c - libcurl hooks: the request is fixed above TLS, from the
 * handle's options, so this layer works for HTTP/2 too.
 *
 * curl_easy_setopt is variadic: the argument is forwarded by the option's
 * type range (<10000 long, <30000 pointer, <40000 curl_off_t, else blob
 * pointer), as curl-impersonate does. The options a rule can look at are
 * remembered per CURL * (objtab KF_OBJ_CURL). On curl_easy_perform and
 * curl_multi_add_handle the rules run once per change of those options; a
 * changed URL is set again (libcurl copies strings) and a changed header
 * list is replaced by one we own: libcurl does NOT copy lists, so ours
 * lives until the next replacement, curl_easy_reset or curl_easy_cleanup.
 * We always remember the user's values, never ours, so re-applying is
 * exact and restoring is possible.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "curl_req.h"
#include "kf_shim.h"
#include "objtab.h"

typedef void CURL;
typedef void CURLM;

/* Option numbers (curl/curl.h: type base + number). */
#define KF_CURLOPT_PORT 3
#define KF_CURLOPT_NOBODY 44
#define KF_CURLOPT_UPLOAD 46
#define KF_CURLOPT_POST 47
#define KF_CURLOPT_PUT 54
#define KF_CURLOPT_HTTPGET 80
#define KF_CURLOPT_URL 10002
#define KF_CURLOPT_POSTFIELDS 10015
#define KF_CURLOPT_USERAGENT 10018
#define KF_CURLOPT_HTTPHEADER 10023
#define KF_CURLOPT_HTTPPOST 10024
#define KF_CURLOPT_CUSTOMREQUEST 10036
#define KF_CURLOPT_COPYPOSTFIELDS 10165
#define KF_CURLOPT_XOAUTH2_BEARER 10220
#define KF_CURLOPT_MIMEPOST 10269

#define KF_CURLE_OK 0
#define KF_CURLE_FAILED_INIT 2
#define KF_CURLM_INTERNAL_ERROR 4

typedef int (*setopt_fn)(CURL *, int, ...);
typedef int (*perform_fn)(CURL *);
typedef void (*cleanup_fn)(CURL *);
typedef CURL *(*dup_fn)(CURL *);
typedef int (*multi_add_fn)(CURLM *, CURL *);

struct curl_state {
    char *url, *custom, *useragent, *bearer; /* the user's values (copies) */
    const struct kf_curl_slist *user_hdrs;   /* the user's list (theirs) */
    int method;                              /* enum kf_curl_method */
    unsigned char dirty;                     /* options changed since the rules last ran */
    unsigned char url_set;                   /* the handle has our URL, not the user's */
    unsigned char hdrs_set;                  /* the handle has our list (maybe NULL), not the user's */
    unsigned char oom;                       /* a copy failed: leave this handle alone */
    struct kf_curl_slist *owned;             /* our list, while hdrs_set */
    /* the handle's own libcurl */
    setopt_fn setopt;
    kf_slist_append_fn append;
    kf_slist_free_fn free_all;
};


static void zfree(char *s)
{
    if (!s)
        return;
    memset(s, 0, strlen(s)); /* may hold a token */
    free(s);
}

static void st_clear_values(struct curl_state *st)
{
    zfree(st->url);
    zfree(st->custom);
    zfree(st->useragent);
    zfree(st->bearer);
    st->url = st->custom = st->useragent = st->bearer = NULL;
    st->user_hdrs = NULL;
    st->method = KF_CM_GET;
}

static void st_free(struct curl_state *st)
{
    if (!st)
        return;
    st_clear_values(st);
    if (st->owned && st->free_all)
        st->free_all(st->owned);
    free(st);
}

static struct curl_state *st_get_or_new(CURL *h, setopt_fn setopt, const void *caller)
{
    struct curl_state *st = kf_obj_get(KF_OBJ_CURL, h);
    if (st)
        return st;
    st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->setopt = setopt;
    st->append = (kf_slist_append_fn)kf_real_lib("curl_slist_append", caller);
    st->free_all = (kf_slist_free_fn)kf_real_lib("curl_slist_free_all", caller);
    void *old = kf_obj_put(KF_OBJ_CURL, h, st);
    if (old == st) {
        free(st);
        return NULL;
    }
    st_free(old);
    return st;
}

static int set_str(char **dst, const void *v)
{
    char *s = NULL;
    if (v && !(s = strdup(v)))
        return -1;
    zfree(*dst);
    *dst = s;
    return 0;
}

static int opt_tracked(int opt)
{
    switch (opt) {
    case KF_CURLOPT_URL: case KF_CURLOPT_HTTPHEADER: case KF_CURLOPT_CUSTOMREQUEST:
    case KF_CURLOPT_USERAGENT: case KF_CURLOPT_XOAUTH2_BEARER: case KF_CURLOPT_POST:
    case KF_CURLOPT_POSTFIELDS: case KF_CURLOPT_COPYPOSTFIELDS: case KF_CURLOPT_HTTPPOST:
    case KF_CURLOPT_MIMEPOST: case KF_CURLOPT_HTTPGET: case KF_CURLOPT_NOBODY:
    case KF_CURLOPT_UPLOAD: case KF_CURLOPT_PUT:
        return 1;
    }
    return 0;
}

/* Remember an option libcurl accepted. */
static void kf_curl_track(CURL *h, int opt, long lv, const void *pv, setopt_fn real,
                          const void *caller)
{
    struct curl_state *st = st_get_or_new(h, real, caller);
    if (!st)
        return;
    int bad = 0;
    switch (opt) {
    case KF_CURLOPT_URL: bad = set_str(&st->url, pv); break;
    case KF_CURLOPT_CUSTOMREQUEST: bad = set_str(&st->custom, pv); break;
    case KF_CURLOPT_USERAGENT: bad = set_str(&st->useragent, pv); break;
    case KF_CURLOPT_XOAUTH2_BEARER: bad = set_str(&st->bearer, pv); break;
    case KF_CURLOPT_HTTPHEADER:
        st->user_hdrs = pv;
        st->hdrs_set = 0; /* the handle now holds the user's list */
        break;
    case KF_CURLOPT_POST: st->method = lv ? KF_CM_POST : KF_CM_GET; break;
    case KF_CURLOPT_POSTFIELDS: case KF_CURLOPT_COPYPOSTFIELDS:
    case KF_CURLOPT_HTTPPOST: case KF_CURLOPT_MIMEPOST:
        st->method = KF_CM_POST;
        break;
    case KF_CURLOPT_HTTPGET: if (lv) st->method = KF_CM_GET; break;
    case KF_CURLOPT_NOBODY:
        st->method = lv ? KF_CM_HEAD : (st->method == KF_CM_HEAD ? KF_CM_GET : st->method);
        break;
    case KF_CURLOPT_UPLOAD: case KF_CURLOPT_PUT: st->method = lv ? KF_CM_PUT : KF_CM_GET; break;
    }
    if (opt == KF_CURLOPT_URL)
        st->url_set = 0;
    if (bad) /* out of memory: this handle's request is left as the user made it */
        st->oom = 1;
    st->dirty = 1;
}

KF_EXPORT int curl_easy_setopt(CURL *h, int opt, ...);
KF_EXPORT int curl_easy_setopt(CURL *h, int opt, ...)
{
    const void *caller = __builtin_return_address(0);
    setopt_fn real = (setopt_fn)kf_real_lib("curl_easy_setopt", caller);
    va_list ap;
    va_start(ap, opt);
    int r;
    long lv = 0;
    void *pv = NULL;
    if (opt < 10000) {
        lv = va_arg(ap, long);
        r = real ? real(h, opt, lv) : KF_CURLE_FAILED_INIT;
    } else if (opt < 30000 || opt >= 40000) { /* object/function/string/slist, blob */
        pv = va_arg(ap, void *);
        r = real ? real(h, opt, pv) : KF_CURLE_FAILED_INIT;
    } else {
        int64_t ov = va_arg(ap, int64_t); /* curl_off_t */
        r = real ? real(h, opt, ov) : KF_CURLE_FAILED_INIT;
    }
    va_end(ap);
    if (!real) {
        kf_warn_once("libcurl: curl_easy_setopt not found");
        return r;
    }
    if (r != KF_CURLE_OK || !h || !opt_tracked(opt) || !kf_shim_rules())
        return r;
    kf_curl_layer_set_live();
    kf_curl_track(h, opt, lv, pv, real, caller);
    return r;
}

static void st_restore_headers(CURL *h, struct curl_state *st)
{
    if (!st->hdrs_set)
        return;
    st->setopt(h, KF_CURLOPT_HTTPHEADER, st->user_hdrs);
    st->hdrs_set = 0;
    if (st->owned && st->free_all)
        st->free_all(st->owned);
    st->owned = NULL;
}

/* Put the user's URL / list back on the handle (we changed them earlier,
 * now nothing needs changing). */
static void st_restore(CURL *h, struct curl_state *st)
{
    if (st->url_set) {
        st->setopt(h, KF_CURLOPT_URL, st->url);
        st->url_set = 0;
    }
    st_restore_headers(h, st);
}

static void st_set_headers(CURL *h, struct curl_state *st, const kf_req *req, const kf_curl_opts *o,
                           unsigned synth_from)
{
    if (!st->append || !st->free_all) {
        kf_warn_once("libcurl: curl_slist_append/free_all not found; headers left as they are");
        return;
    }
    struct kf_curl_slist *l;
    if (kf_curl_new_headers(req, o, synth_from, st->append, st->free_all, &l) < 0) {
        kf_log(KF_LOG_WARN, "libcurl: out of memory building headers; request left as it is");
        return;
    }
    if (st->setopt(h, KF_CURLOPT_HTTPHEADER, l) != KF_CURLE_OK) {
        if (l)
            st->free_all(l);
        return;
    }
    if (st->owned) /* the handle no longer points at it */
        st->free_all(st->owned);
    st->owned = l;
    st->hdrs_set = 1;
}

/* Run the rules on the handle's request if its options changed. */
static void kf_curl_apply(CURL *h)
{
    const kf_ruleset *rs = kf_shim_rules();
    struct curl_state *st;
    if (!rs || !h || !kf_obj_count(KF_OBJ_CURL) || !(st = kf_obj_get(KF_OBJ_CURL, h)) ||
        !st->dirty || !st->setopt)
        return;
    st->dirty = 0;
    kf_url u;
    if (st->oom || !st->url || kf_url_parse(st->url, &u) < 0) {
        st_restore(h, st);
        return;
    }
    kf_req *req = malloc(sizeof *req); /* ~13 KiB: not on the caller's stack */
    if (!req)
        return;
    kf_req_init(req);
    kf_curl_opts o = { st->url, st->user_hdrs, st->custom, st->useragent, st->bearer, st->method };
    unsigned synth_from = 0;
    kf_curl_build_req(req, &o, &u, &synth_from);
    kf_rules_apply(rs, req, KF_CAP_UPSTREAM);
    kf_shim_on_head((void *)"libcurl", req);

    if (req->changed & (KF_CHG_PATH | KF_CHG_UPSTREAM)) {
        char *nu = kf_curl_new_url(req, &u);
        if (nu && st->setopt(h, KF_CURLOPT_URL, nu) == KF_CURLE_OK)
            st->url_set = 1;
        free(nu);
    } else if (st->url_set) {
        st->setopt(h, KF_CURLOPT_URL, st->url);
        st->url_set = 0;
    }
    if (req->changed & KF_CHG_HEADERS) {
        st_set_headers(h, st, req, &o, synth_from);
    } else {
        st_restore_headers(h, st);
    }
    memset(req->scratch, 0, req->scratch_used); /* may hold a token */
    free(req);
}

KF_EXPORT int curl_easy_perform(CURL *h);
KF_EXPORT int curl_easy_perform(CURL *h)
{
    const void *caller = __builtin_return_address(0);
    perform_fn real = (perform_fn)kf_real_lib("curl_easy_perform", caller);
    if (!real) {
        kf_warn_once("libcurl: curl_easy_perform not found");
        return KF_CURLE_FAILED_INIT;
    }
    unsigned eng = kf_held_enter(KF_HOLD_ENGINE); /* signal handlers: kf_shim.h */
    kf_curl_apply(h);
    kf_held_leave(eng);
    return real(h);
}

KF_EXPORT int curl_multi_add_handle(CURLM *m, CURL *h);
KF_EXPORT int curl_multi_add_handle(CURLM *m, CURL *h)
{
    const void *caller = __builtin_return_address(0);
    multi_add_fn real = (multi_add_fn)kf_real_lib("curl_multi_add_handle", caller);
    if (!real) {
        kf_warn_once("libcurl: curl_multi_add_handle not found");
        return KF_CURLM_INTERNAL_ERROR;
    }
    unsigned eng = kf_held_enter(KF_HOLD_ENGINE); /* signal handlers: kf_shim.h */
    kf_curl_apply(h);
    kf_held_leave(eng);
    return real(m, h);
}

KF_EXPORT void curl_easy_cleanup(CURL *h);
KF_EXPORT void curl_easy_cleanup(CURL *h)
{
    const void *caller = __builtin_return_address(0);
    cleanup_fn real = (cleanup_fn)kf_real_lib("curl_easy_cleanup", caller);
    if (!real) {
        kf_warn_once("libcurl: curl_easy_cleanup not found (handle leaked)");
        return; /* the handle may still use our list: keep it */
    }
    real(h);
    st_free(kf_obj_take(KF_OBJ_CURL, h)); /* after: the handle used our list until now */
}

KF_EXPORT void curl_easy_reset(CURL *h);
KF_EXPORT void curl_easy_reset(CURL *h)
{
    const void *caller = __builtin_return_address(0);
    cleanup_fn real = (cleanup_fn)kf_real_lib("curl_easy_reset", caller);
    if (!real) {
        kf_warn_once("libcurl: curl_easy_reset not found");
        return;
    }
    real(h);
    st_free(kf_obj_take(KF_OBJ_CURL, h)); /* options are back to defaults */
}

/* The copy gets the user's URL and list (never ours: it would outlive our
 * list) and its own state, so its first perform applies the rules anew. */
KF_EXPORT CURL *curl_easy_duphandle(CURL *h);
KF_EXPORT CURL *curl_easy_duphandle(CURL *h)
{
    const void *caller = __builtin_return_address(0);
    dup_fn real = (dup_fn)kf_real_lib("curl_easy_duphandle", caller);
    if (!real) {
        kf_warn_once("libcurl: curl_easy_duphandle not found");
        return NULL;
    }
    CURL *d = real(h);
    struct curl_state *st;
    if (!d || !h || !(st = kf_obj_get(KF_OBJ_CURL, h)))
        return d;
    if (st->hdrs_set)
        st->setopt(d, KF_CURLOPT_HTTPHEADER, st->user_hdrs);
    if (st->url_set)
        st->setopt(d, KF_CURLOPT_URL, st->url);
    struct curl_state *ds = calloc(1, sizeof *ds);
    if (!ds)
        return d;
    ds->setopt = st->setopt;
    ds->append = st->append;
    ds->free_all = st->free_all;
    ds->user_hdrs = st->user_hdrs;
    ds->method = st->method;
    ds->dirty = 1;
    if (set_str(&ds->url, st->url) || set_str(&ds->custom, st->custom) ||
        set_str(&ds->useragent, st->useragent) || set_str(&ds->bearer, st->bearer)) {
        st_free(ds);
        return d;
    }
    void *old = kf_obj_put(KF_OBJ_CURL, d, ds);
    if (old == ds)
        st_free(ds);
    else
        st_free(old);
    return d;
}
