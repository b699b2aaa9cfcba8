/* curl_req.c - libcurl options <-> kf_req (see curl_req.h). */
#include "curl_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_name[] = { "GET", "POST", "PUT", "HEAD" };

static int ieq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

int kf_url_parse(const char *url, kf_url *u)
{
    memset(u, 0, sizeof *u);
    if (!url)
        return -1;
    const char *p = url;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *sep = strstr(p, "://");
    const char *auth;
    if (sep && (size_t)(sep - p) <= 16 && !memchr(p, '/', (size_t)(sep - p))) {
        u->scheme = (kf_str){ p, (size_t)(sep - p) };
        auth = sep + 3;
    } else {
        u->scheme = KF_STR("http"); /* libcurl's guess for a URL without scheme */
        auth = p;
    }
    if (u->scheme.n == 5 && ieq_n(u->scheme.p, "https", 5))
        u->tls = 1;
    else if (!(u->scheme.n == 4 && ieq_n(u->scheme.p, "http", 4)))
        return -1;
    size_t alen = strcspn(auth, "/?#");
    if (alen == 0)
        return -1;
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i;
    if (at) {
        u->userinfo = (kf_str){ auth, (size_t)(at - auth) };
        u->hostport = (kf_str){ at + 1, alen - (size_t)(at + 1 - auth) };
    } else {
        u->hostport = (kf_str){ auth, alen };
    }
    if (u->hostport.n == 0)
        return -1;
    const char *rest = auth + alen;
    size_t plen = strcspn(rest, "?#");
    u->path = plen ? (kf_str){ rest, plen } : KF_STR("/");
    if (rest[plen] == '?') {
        const char *q = rest + plen;
        u->query = (kf_str){ q, strcspn(q, "#") };
    } else {
        u->query = (kf_str){ rest + plen, 0 };
    }
    return 0;
}

/* An entry of CURLOPT_HTTPHEADER that libcurl sends: "Name: value" or
 * "Name;" (empty value). "Name:" alone (libcurl: do not send my own) and
 * anything malformed are not headers: they are copied through verbatim. */
static int list_header(const char *d, kf_str *name, kf_str *value)
{
    if (!d)
        return 0;
    size_t n = strcspn(d, ":;");
    if (n == 0 || !d[n])
        return 0;
    for (size_t i = 0; i < n; i++)
        if (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n')
            return 0;
    *name = (kf_str){ d, n };
    kf_str v = kf_str_trim((kf_str){ d + n + 1, strlen(d + n + 1) });
    if (d[n] == ':') {
        if (v.n == 0)
            return 0;
        *value = v;
        return 1;
    }
    if (v.n != 0)
        return 0;
    *value = (kf_str){ d + n + 1, 0 };
    return 1;
}

int kf_curl_build_req(kf_req *req, const kf_curl_opts *o, const kf_url *u, unsigned *synth_from)
{
    if (o->custom && *o->custom)
        req->method = kf_str_c(o->custom);
    else
        req->method = kf_str_c(method_name[o->method >= 0 && o->method <= KF_CM_HEAD ? o->method : 0]);
    req->path = u->path;
    req->query = u->query;
    req->tls = u->tls;
    kf_str name, value;
    for (const struct kf_curl_slist *l = o->headers; l; l = l->next)
        if (list_header(l->data, &name, &value) &&
            kf_req_add_header(req, name, value, kf_str_c(l->data)) < 0)
            break;
    *synth_from = req->nhdr;
    /* What libcurl adds by itself, for matching only (never re-emitted
     * unless a rule changes it). */
    int h = kf_req_find_header(req, KF_STR("Host"), 0);
    if (h < 0) {
        kf_req_add_header(req, KF_STR("Host"), u->hostport, u->hostport);
        kf_req_set_host(req, u->hostport);
    } else {
        kf_req_set_host(req, req->hdr[h].value);
    }
    if (req->port == 0)
        req->port = u->tls ? 443 : 80;
    if (o->useragent && *o->useragent && kf_req_find_header(req, KF_STR("User-Agent"), 0) < 0) {
        kf_str ua = kf_str_c(o->useragent);
        kf_req_add_header(req, KF_STR("User-Agent"), ua, ua);
    }
    if (o->bearer && *o->bearer && kf_req_find_header(req, KF_STR("Authorization"), 0) < 0) {
        size_t n = strlen(o->bearer);
        char tmp[1024];
        if (n + 7 <= sizeof tmp) {
            memcpy(tmp, "Bearer ", 7);
            memcpy(tmp + 7, o->bearer, n);
            kf_str v = kf_req_store(req, tmp, n + 7);
            memset(tmp, 0, n + 7);
            if (v.p)
                kf_req_add_header(req, KF_STR("Authorization"), v, v);
        }
    }
    return 0;
}

char *kf_curl_new_url(const kf_req *req, const kf_url *u)
{
    char port[16] = "";
    kf_str host = u->hostport;
    int v6 = 0;
    if ((req->changed & KF_CHG_UPSTREAM) && req->upstream_host.n) {
        host = req->upstream_host;
        v6 = memchr(host.p, ':', host.n) != NULL && host.p[0] != '[';
        if (req->upstream_port)
            snprintf(port, sizeof port, ":%u", req->upstream_port);
    }
    size_t n = u->scheme.n + 3 + (u->userinfo.p ? u->userinfo.n + 1 : 0) + host.n + 2 +
               strlen(port) + req->path.n + req->query.n + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    int w = snprintf(s, n, "%.*s://%.*s%s%s%.*s%s%s%.*s%.*s", (int)u->scheme.n, u->scheme.p,
                     u->userinfo.p ? (int)u->userinfo.n : 0, u->userinfo.p ? u->userinfo.p : "",
                     u->userinfo.p ? "@" : "", v6 ? "[" : "", (int)host.n, host.p, v6 ? "]" : "",
                     port, (int)req->path.n, req->path.p, (int)req->query.n,
                     req->query.p ? req->query.p : "");
    if (w < 0 || (size_t)w >= n) {
        free(s);
        return NULL;
    }
    return s;
}

/* Append "name: value" ("name;" for an empty value, "name:" to suppress). */
static struct kf_curl_slist *append_hdr(struct kf_curl_slist *l, kf_slist_append_fn append,
                                        kf_str name, kf_str value, int suppress, int *err)
{
    char buf[2048];
    size_t n = name.n + value.n + 3;
    char *s = n <= sizeof buf ? buf : malloc(n);
    if (!s) {
        *err = 1;
        return l;
    }
    if (suppress)
        snprintf(s, n, "%.*s:", (int)name.n, name.p);
    else if (value.n == 0)
        snprintf(s, n, "%.*s;", (int)name.n, name.p);
    else
        snprintf(s, n, "%.*s: %.*s", (int)name.n, name.p, (int)value.n, value.p);
    struct kf_curl_slist *r = append(l, s);
    if (s != buf)
        free(s);
    if (!r) {
        *err = 1;
        return l;
    }
    return r;
}

static struct kf_curl_slist *emit_one(struct kf_curl_slist *l, const kf_req *req, unsigned i,
                                      int synthetic, kf_slist_append_fn append, int *err)
{
    const kf_hdr *h = &req->hdr[i];
    switch (h->state) {
    case KF_HDR_ORIG:
        if (!synthetic && h->line.p) {
            struct kf_curl_slist *r = append(l, h->line.p);
            if (!r)
                *err = 1;
            return r ? r : l;
        }
        return l;
    case KF_HDR_CHANGED:
    case KF_HDR_ADDED:
        return append_hdr(l, append, h->name, h->value, 0, err);
    case KF_HDR_REMOVED:
        if (kf_req_find_header(req, h->name, 0) >= 0)
            return l; /* another live one of that name is still sent */
        return append_hdr(l, append, h->name, (kf_str){ "", 0 }, 1, err);
    }
    return l;
}

int kf_curl_new_headers(const kf_req *req, const kf_curl_opts *o, unsigned synth_from,
                        kf_slist_append_fn append, kf_slist_free_fn free_all,
                        struct kf_curl_slist **out)
{
    struct kf_curl_slist *l = NULL;
    int err = 0;
    unsigned idx = 0;
    kf_str name, value;
    for (const struct kf_curl_slist *u = o->headers; u && !err; u = u->next) {
        if (list_header(u->data, &name, &value) && idx < synth_from) {
            l = emit_one(l, req, idx++, 0, append, &err);
        } else if (u->data) {
            struct kf_curl_slist *r = append(l, u->data);
            if (!r)
                err = 1;
            else
                l = r;
        }
    }
    for (unsigned i = synth_from; i < req->nhdr && !err; i++)
        l = emit_one(l, req, i, req->hdr[i].state != KF_HDR_ADDED, append, &err);
    if (err) {
        if (l)
            free_all(l);
        *out = NULL;
        return -1;
    }
    *out = l; /* may be NULL: nothing left to send from a list */
    return 0;
}
