/* tls_openssl.c - OpenSSL (and same-API forks) hooks: the client-side write
 * path (SSL_write, SSL_write_ex) and the offered ALPN.
 *
 * The library never links libssl: the types are opaque here and every real
 * function comes from kf_real_lib(), looked up from the object that called
 * the hook (Python's _ssl loads libssl RTLD_LOCAL, where RTLD_NEXT finds
 * nothing). If a real function is missing we log once and return the
 * library's own failure value; we never call NULL.
 *
 * Per SSL * (objtab KF_OBJ_SSL): the offered ALPN list (when it has "h2"),
 * the verdict taken on the first write (rewrite, or pass forever) and the
 * connection's kf_stream. Per SSL_CTX * (KF_OBJ_SSL_CTX): the ALPN list set
 * on the context; SSL_new copies it, as OpenSSL itself does.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kf_shim.h"
#include "kf_trust.h"
#include "alpn.h"
#include "objtab.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

#define KF_TLSEXT_NAMETYPE_host_name 0
#define KF_SSL_CTRL_MODE 33
#define KF_SSL_MODE_ENABLE_PARTIAL_WRITE 0x1L
#define KF_ALPN_MAX 512

typedef int (*ssl_write_fn)(SSL *, const void *, int);
typedef int (*ssl_write_ex_fn)(SSL *, const void *, size_t, size_t *);
typedef int (*ssl_int_fn)(SSL *);
typedef int (*ssl_cint_fn)(const SSL *);
typedef void (*ssl_free_fn)(SSL *);
typedef SSL *(*ssl_new_fn)(SSL_CTX *);
typedef void (*ctx_free_fn)(SSL_CTX *);
typedef const char *(*ssl_servername_fn)(const SSL *, int);
typedef long (*ssl_ctrl_fn)(SSL *, int, long, void *);
typedef int (*ssl_alpn_fn)(SSL *, const unsigned char *, unsigned);
typedef int (*ctx_alpn_fn)(SSL_CTX *, const unsigned char *, unsigned);

enum { OC_UNDECIDED = 0, OC_REWRITE, OC_PASS };

struct ossl_alpn {
    unsigned char *list; /* offered ALPN, kept only when it contains "h2" */
    unsigned len;
    unsigned char by_curl; /* set by libcurl (exempt while the libcurl layer is live) */
};

struct ossl_conn {
    unsigned char verdict;   /* OC_* */
    unsigned char alpn_done; /* ALPN checked for this handshake */
    unsigned char partial;   /* SSL_MODE_ENABLE_PARTIAL_WRITE */
    unsigned char by_curl;   /* made by libcurl while its layer is live: libcurl fixes it */
    unsigned char busy;      /* inside kf_stream_write (see SSL_clear) */
    struct ossl_alpn alpn;
    ssl_write_fn real_write; /* cached: the SSL belongs to one libssl */
    ssl_write_ex_fn real_write_ex;
    kf_stream stream;
    char host[256];
};


/* Writes made by our own send callbacks, should a libssl route one write
 * function through another exported one (e.g. SSL_write_ex -> SSL_write_ex2
 * -> ... in newer releases), must not be rewritten twice: a per-thread depth
 * (an int: large thread-local storage breaks hosts such as Node). */
static __thread int ossl_depth;

static void alpn_free(struct ossl_alpn *a)
{
    free(a->list);
    a->list = NULL;
    a->len = 0;
    a->by_curl = 0;
}

/* Remember `p` if it offers h2 (else forget any older list). */
static void alpn_set(struct ossl_alpn *a, const unsigned char *p, unsigned n, const void *caller)
{
    alpn_free(a);
    if (!p || n == 0 || n > KF_ALPN_MAX || !kf_alpn_has_h2(p, n))
        return;
    a->list = malloc(n);
    if (!a->list)
        return;
    memcpy(a->list, p, n);
    a->len = n;
    a->by_curl = (unsigned char)kf_addr_in_libcurl(caller);
}

static void conn_free(struct ossl_conn *c)
{
    if (!c)
        return;
    kf_stream_reset(&c->stream);
    alpn_free(&c->alpn);
    free(c);
}

static struct ossl_conn *conn_new(SSL *ssl)
{
    struct ossl_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    kf_stream_init(&c->stream);
    void *old = kf_obj_put(KF_OBJ_SSL, ssl, c);
    if (old == c) { /* table out of memory: go on without state */
        free(c);
        return NULL;
    }
    conn_free(old); /* a stale record: SSL_free was not seen for this address */
    return c;
}

/* ---- ALPN ---- */

/* Before the ClientHello of a client SSL whose SNI is rule-relevant: offer
 * the remembered list without h2. Never after the handshake started: the
 * client checks the server's choice against this list. */
static void ossl_fix_alpn(SSL *ssl, struct ossl_conn *c, const void *caller)
{
    if (!c || c->alpn_done || !c->alpn.list)
        return;
    c->alpn_done = 1;
    const kf_ruleset *rs = kf_shim_rules();
    if (!rs || (c->alpn.by_curl && kf_curl_layer_live()))
        return;
    ssl_cint_fn in_before = (ssl_cint_fn)kf_real_lib("SSL_in_before", caller);
    ssl_cint_fn is_server = (ssl_cint_fn)kf_real_lib("SSL_is_server", caller);
    ssl_servername_fn sname = (ssl_servername_fn)kf_real_lib("SSL_get_servername", caller);
    ssl_alpn_fn set_alpn = (ssl_alpn_fn)kf_real_lib("SSL_set_alpn_protos", caller);
    if (!in_before || !is_server || !sname || !set_alpn) {
        kf_warn_once("openssl: a libssl function is missing; ALPN left as offered");
        return;
    }
    if (!in_before(ssl) || is_server(ssl))
        return;
    const char *sni = sname(ssl, KF_TLSEXT_NAMETYPE_host_name);
    if (!sni || !kf_rules_host_relevant(rs, sni, 443))
        return;
    unsigned char out[KF_ALPN_MAX + 16];
    size_t n = kf_alpn_drop_h2(c->alpn.list, c->alpn.len, out, sizeof out);
    if (n && set_alpn(ssl, out, (unsigned)n) == 0)
        kf_log(KF_LOG_DEBUG, "openssl: %s: ALPN without h2 (so requests can be fixed)", sni);
}

static int kf_SSL_CTX_set_alpn_protos(SSL_CTX *ctx, const unsigned char *p, unsigned n, const void *caller)
{
    ctx_alpn_fn real = (ctx_alpn_fn)kf_real_lib("SSL_CTX_set_alpn_protos", caller);
    if (!real) {
        kf_warn_once("openssl: SSL_CTX_set_alpn_protos not found");
        return 1; /* OpenSSL's failure value for this call */
    }
    int r = real(ctx, p, n);
    if (r != 0 || !ctx || !kf_shim_rules())
        return r;
    struct ossl_alpn *a = kf_obj_get(KF_OBJ_SSL_CTX, ctx);
    if (!a && (!p || !kf_alpn_has_h2(p, n)))
        return r;
    if (!a) {
        a = calloc(1, sizeof *a);
        if (!a)
            return r;
        void *old = kf_obj_put(KF_OBJ_SSL_CTX, ctx, a);
        if (old == a) {
            free(a);
            return r;
        }
    }
    alpn_set(a, p, n, caller);
    return r;
}

KF_EXPORT int SSL_CTX_set_alpn_protos(SSL_CTX *ctx, const unsigned char *p, unsigned n);
KF_EXPORT int SSL_CTX_set_alpn_protos(SSL_CTX *ctx, const unsigned char *p, unsigned n)
{
    return kf_SSL_CTX_set_alpn_protos(ctx, p, n, __builtin_return_address(0));
}

static int kf_SSL_set_alpn_protos(SSL *ssl, const unsigned char *p, unsigned n, const void *caller)
{
    ssl_alpn_fn real = (ssl_alpn_fn)kf_real_lib("SSL_set_alpn_protos", caller);
    if (!real) {
        kf_warn_once("openssl: SSL_set_alpn_protos not found");
        return 1;
    }
    int r = real(ssl, p, n);
    if (r != 0 || !ssl || !kf_shim_rules())
        return r;
    struct ossl_conn *c = kf_obj_get(KF_OBJ_SSL, ssl);
    if (!c && (!p || !kf_alpn_has_h2(p, n)))
        return r;
    if (!c && !(c = conn_new(ssl)))
        return r;
    alpn_set(&c->alpn, p, n, caller);
    c->alpn_done = 0;
    return r;
}

KF_EXPORT int SSL_set_alpn_protos(SSL *ssl, const unsigned char *p, unsigned n);
KF_EXPORT int SSL_set_alpn_protos(SSL *ssl, const unsigned char *p, unsigned n)
{
    return kf_SSL_set_alpn_protos(ssl, p, n, __builtin_return_address(0));
}

static SSL *kf_SSL_new(SSL_CTX *ctx, const void *caller)
{
    ssl_new_fn real = (ssl_new_fn)kf_real_lib("SSL_new", caller);
    if (!real) {
        kf_warn_once("openssl: SSL_new not found");
        return NULL;
    }
    SSL *ssl = real(ctx);
    if (!ssl)
        return ssl;
    /* A record for this address is stale (an SSL freed behind our back). */
    conn_free(kf_obj_take(KF_OBJ_SSL, ssl));
    struct ossl_alpn *a = kf_obj_get(KF_OBJ_SSL_CTX, ctx);
    int by_curl = kf_curl_layer_live() && kf_addr_in_libcurl(caller);
    if ((a && a->list) || by_curl) {
        struct ossl_conn *c = conn_new(ssl);
        if (c)
            c->by_curl = (unsigned char)by_curl;
        if (c && a && a->list && (c->alpn.list = malloc(a->len)) != NULL) {
            memcpy(c->alpn.list, a->list, a->len);
            c->alpn.len = a->len;
            c->alpn.by_curl = a->by_curl;
        }
    }
    return ssl;
}

KF_EXPORT SSL *SSL_new(SSL_CTX *ctx);
KF_EXPORT SSL *SSL_new(SSL_CTX *ctx)
{
    return kf_SSL_new(ctx, __builtin_return_address(0));
}

static void kf_SSL_free(SSL *ssl, const void *caller)
{
    ssl_free_fn real = (ssl_free_fn)kf_real_lib("SSL_free", caller);
    conn_free(kf_obj_take(KF_OBJ_SSL, ssl));
    if (!real) {
        kf_warn_once("openssl: SSL_free not found (object leaked)");
        return;
    }
    real(ssl);
}

KF_EXPORT void SSL_free(SSL *ssl);
KF_EXPORT void SSL_free(SSL *ssl)
{
    kf_SSL_free(ssl, __builtin_return_address(0));
}

static void kf_SSL_CTX_free(SSL_CTX *ctx, const void *caller)
{
    ctx_free_fn real = (ctx_free_fn)kf_real_lib("SSL_CTX_free", caller);
    /* SSLs made from ctx already copied its list (SSL_new). */
    struct ossl_alpn *a = kf_obj_take(KF_OBJ_SSL_CTX, ctx);
    if (a) {
        alpn_free(a);
        free(a);
    }
    if (!real) {
        kf_warn_once("openssl: SSL_CTX_free not found (object leaked)");
        return;
    }
    real(ctx);
}

KF_EXPORT void SSL_CTX_free(SSL_CTX *ctx);
KF_EXPORT void SSL_CTX_free(SSL_CTX *ctx)
{
    kf_SSL_CTX_free(ctx, __builtin_return_address(0));
}

/* Is `caller` code of the library that defines `fn`? */
static int same_object(const void *caller, const void *fn)
{
    Dl_info a, b;
    return dladdr(caller, &a) && dladdr(fn, &b) && a.dli_fbase == b.dli_fbase;
}

/* SSL_clear readies the object for a new connection: new SNI, new stream,
 * same offered ALPN (OpenSSL keeps it too).
 * Why the checks: libssl calls SSL_clear itself at the start of every
 * handshake, and that may happen inside our own SSL_write (a first write
 * that runs the handshake): resetting then would lose the stream's state
 * in the middle of a request. Only the application's calls count. */
static int kf_SSL_clear(SSL *ssl, const void *caller)
{
    ssl_int_fn real = (ssl_int_fn)kf_real_lib("SSL_clear", caller);
    if (!real) {
        kf_warn_once("openssl: SSL_clear not found");
        return 0;
    }
    int r = real(ssl);
    struct ossl_conn *c = kf_obj_count(KF_OBJ_SSL) ? kf_obj_get(KF_OBJ_SSL, ssl) : NULL;
    if (c && !c->busy && !same_object(caller, (const void *)real)) {
        kf_stream_reset(&c->stream);
        kf_stream_init(&c->stream);
        c->verdict = OC_UNDECIDED;
        c->alpn_done = 0;
        c->host[0] = 0;
    }
    return r;
}

KF_EXPORT int SSL_clear(SSL *ssl);
KF_EXPORT int SSL_clear(SSL *ssl)
{
    return kf_SSL_clear(ssl, __builtin_return_address(0));
}

static int kf_SSL_handshake(SSL *ssl, const char *sym, const void *caller)
{
    ssl_int_fn real = (ssl_int_fn)kf_real_lib(sym, caller);
    if (!real) {
        kf_warn_once("openssl: SSL_connect/SSL_do_handshake not found");
        return -1;
    }
    if (kf_obj_count(KF_OBJ_SSL))
        ossl_fix_alpn(ssl, kf_obj_get(KF_OBJ_SSL, ssl), caller);
    return real(ssl);
}

KF_EXPORT int SSL_connect(SSL *ssl);
KF_EXPORT int SSL_connect(SSL *ssl)
{
    return kf_SSL_handshake(ssl, "SSL_connect", __builtin_return_address(0));
}

KF_EXPORT int SSL_do_handshake(SSL *ssl);
KF_EXPORT int SSL_do_handshake(SSL *ssl)
{
    return kf_SSL_handshake(ssl, "SSL_do_handshake", __builtin_return_address(0));
}

/* ---- the write path ---- */

/* No socket under this SSL (a memory BIO: Python's asyncio and aiohttp,
 * Node on a shared libssl), so connect() steering cannot be told by its
 * fd. A connection the relay answers says so in its certificate: issued by
 * the kimifix CA (KF_CA_ORG, KF_CA_CN_PREFIX: kf_trust.h).
 * The relay rewrites such a request; rewriting it here as well would apply
 * each rule twice (an add-header twice). A server that only claims the
 * name gets its requests unfixed, nothing worse. OpenSSL 3 has
 * SSL_get0_peer_certificate, 1.1 only SSL_get_peer_certificate (+1 ref). */
static int ossl_peer_is_relay(SSL *ssl, const void *caller)
{
    typedef void *(*peer_fn)(const SSL *);
    typedef void *(*issuer_fn)(const void *);
    typedef int (*text_fn)(void *, int, char *, int);
    typedef void (*x509_free_fn)(void *);
    peer_fn get0 = (peer_fn)kf_real_lib("SSL_get0_peer_certificate", caller);
    peer_fn get1 = get0 ? NULL : (peer_fn)kf_real_lib("SSL_get_peer_certificate", caller);
    issuer_fn issuer = (issuer_fn)kf_real_lib("X509_get_issuer_name", caller);
    text_fn text = (text_fn)kf_real_lib("X509_NAME_get_text_by_NID", caller);
    x509_free_fn x509_free = (x509_free_fn)kf_real_lib("X509_free", caller);
    if ((!get0 && !(get1 && x509_free)) || !issuer || !text)
        return 0;
    void *cert = get0 ? get0(ssl) : get1(ssl);
    if (!cert)
        return 0; /* no handshake yet (this write runs it): as before */
    void *name = issuer(cert);
    /* one byte over each name: a longer O is not ours, and the CN only
     * has to start with the prefix */
    char o[sizeof KF_CA_ORG + 1] = "", cn[sizeof KF_CA_CN_PREFIX + 1] = "";
    const int ol = (int)sizeof KF_CA_ORG - 1, cl = (int)sizeof KF_CA_CN_PREFIX - 1;
    int is = name && text(name, 17 /* NID_organizationName */, o, sizeof o) == ol &&
             !memcmp(o, KF_CA_ORG, (size_t)ol) &&
             text(name, 13 /* NID_commonName */, cn, sizeof cn) > cl &&
             !memcmp(cn, KF_CA_CN_PREFIX, (size_t)cl);
    if (get1)
        x509_free(cert);
    return is;
}

/* The connection record when its writes go through the rewriter, NULL when
 * they pass straight (server side, libcurl's own connections, hosts no rule
 * can match). Decided on the first write and cached. */
static struct ossl_conn *ossl_conn_for_write(SSL *ssl, const kf_ruleset *rs, const void *caller)
{
    struct ossl_conn *c = kf_obj_get(KF_OBJ_SSL, ssl);
    if (c && c->verdict != OC_UNDECIDED)
        return c->verdict == OC_REWRITE ? c : NULL;
    /* The first write may run the handshake itself (no SSL_connect). */
    ossl_fix_alpn(ssl, c, caller);
    if (!c && !(c = conn_new(ssl)))
        return NULL;
    c->verdict = OC_PASS;
    ssl_cint_fn is_server = (ssl_cint_fn)kf_real_lib("SSL_is_server", caller);
    ssl_servername_fn sname = (ssl_servername_fn)kf_real_lib("SSL_get_servername", caller);
    if (!is_server || !sname) {
        kf_warn_once("openssl: SSL_is_server/SSL_get_servername not found; passing through");
        return NULL;
    }
    if (is_server(ssl) || ((c->by_curl || c->alpn.by_curl) && kf_curl_layer_live()))
        return NULL;
    /* A connection steered to the relay is rewritten there, where an
     * `upstream` rule can also choose the connection. */
    ssl_cint_fn get_fd = (ssl_cint_fn)kf_real_lib("SSL_get_fd", caller);
    int fd = get_fd ? get_fd(ssl) : -1;
    if (fd >= 0 ? kf_shim_fd_steered(fd) : ossl_peer_is_relay(ssl, caller))
        return NULL;
    const char *sni = sname(ssl, KF_TLSEXT_NAMETYPE_host_name);
    if (!sni)
        sni = ""; /* no SNI (an IP address): only host-less rules can match */
    if (!kf_rules_host_relevant(rs, sni, 443))
        return NULL;
    size_t n = strlen(sni);
    if (n >= sizeof c->host)
        return NULL;
    memcpy(c->host, sni, n + 1);
    ssl_ctrl_fn ctrl = (ssl_ctrl_fn)kf_real_lib("SSL_ctrl", caller);
    c->partial = ctrl && (ctrl(ssl, KF_SSL_CTRL_MODE, 0, NULL) & KF_SSL_MODE_ENABLE_PARTIAL_WRITE);
    c->verdict = OC_REWRITE;
    return c;
}

static void ossl_ctx(kf_ctx *ctx, const kf_ruleset *rs, struct ossl_conn *c)
{
    ctx->rs = rs;
    ctx->host = c->host;
    ctx->port = 443;
    ctx->tls = 1;
    ctx->caps = 0;
    ctx->on_head = kf_shim_on_head;
    ctx->notice = kf_shim_notice;
    ctx->ud = (void *)"openssl";
}

/* One write path for SSL_write and SSL_write_ex: `ex` says which one the
 * caller called (its real function and its return convention). */
struct ossl_io {
    SSL *ssl;
    int ex;
    int inum;              /* SSL_write: the caller's count, as given */
    ssl_write_fn write;
    ssl_write_ex_fn write_ex;
};

/* The real function, called as the caller called it. */
static int ossl_real(const struct ossl_io *o, const void *buf, size_t num, size_t *written)
{
    return o->ex ? o->write_ex(o->ssl, buf, num, written) : o->write(o->ssl, buf, o->inum);
}

/* Send callbacks: the real call's result, untouched, so SSL_get_error()
 * reads what the real call left. */
static ssize_t ossl_send(void *io, const void *buf, size_t len)
{
    struct ossl_io *o = io;
    int n = len > INT_MAX ? INT_MAX : (int)len;
    return o->write(o->ssl, buf, n);
}

static ssize_t ossl_send_ex(void *io, const void *buf, size_t len)
{
    struct ossl_io *o = io;
    size_t w = 0;
    int r = o->write_ex(o->ssl, buf, len, &w);
    if (r > 0)
        return w > (size_t)SSIZE_MAX ? SSIZE_MAX : (ssize_t)w;
    return r; /* 0 (or a negative value from some forks) */
}

/* The real function: cached on the connection record, else looked up in
 * the library that called us. 0 when there is none. */
static int ossl_find_real(struct ossl_io *o, const struct ossl_conn *c, const void *caller)
{
    if (o->ex)
        o->write_ex = c && c->real_write_ex ? c->real_write_ex
                                            : (ssl_write_ex_fn)kf_real_lib("SSL_write_ex", caller);
    else
        o->write = c && c->real_write ? c->real_write : (ssl_write_fn)kf_real_lib("SSL_write", caller);
    if (o->ex ? o->write_ex != NULL : o->write != NULL)
        return 1;
    kf_warn_once(o->ex ? "openssl: SSL_write_ex not found" : "openssl: SSL_write not found");
    return 0;
}

static void ossl_keep_real(struct ossl_conn *c, const struct ossl_io *o)
{
    if (o->ex)
        c->real_write_ex = o->write_ex;
    else
        c->real_write = o->write;
}

/* The pump's result in the caller's convention. */
static int ossl_result(const struct ossl_io *o, ssize_t r, size_t *written)
{
    if (!o->ex)
        return r > INT_MAX ? INT_MAX : (int)r;
    if (written)
        *written = r > 0 ? (size_t)r : 0;
    return r > 0 ? 1 : r < 0 ? (int)r : 0;
}

static int kf_SSL_write_any(struct ossl_io *o, const void *buf, size_t num, size_t *written,
                            const void *caller)
{
    struct ossl_conn *c = kf_obj_get(KF_OBJ_SSL, o->ssl);
    if (!ossl_find_real(o, c, caller)) {
        if (o->ex && written)
            *written = 0;
        return o->ex ? 0 : -1;
    }
    if (ossl_depth > 0)
        return ossl_real(o, buf, num, written);
    if (c) {
        ossl_keep_real(c, o);
        if (c->verdict == OC_PASS) /* the common case: one lookup, then straight on */
            return ossl_real(o, buf, num, written);
    }
    const kf_ruleset *rs = kf_shim_rules();
    unsigned eng = kf_held_enter(KF_HOLD_ENGINE); /* signal handlers: kf_shim.h */
    int empty = o->ex ? num == 0 : o->inum <= 0;
    if (!rs || empty || !buf || !(c = ossl_conn_for_write(o->ssl, rs, caller))) {
        kf_held_leave(eng);
        return ossl_real(o, buf, num, written);
    }
    ossl_keep_real(c, o);
    kf_ctx ctx;
    ossl_ctx(&ctx, rs, c);
    c->busy = 1;
    ossl_depth++;
    ssize_t r = kf_stream_write(&c->stream, &ctx, buf, num,
                                c->partial ? KF_WR_PARTIAL : KF_WR_ALL_OR_NOTHING,
                                o->ex ? ossl_send_ex : ossl_send, o);
    ossl_depth--;
    c->busy = 0;
    kf_held_leave(eng);
    return ossl_result(o, r, written);
}

static int kf_SSL_write(SSL *ssl, const void *buf, int num, const void *caller)
{
    struct ossl_io o = { ssl, 0, num, NULL, NULL };
    return kf_SSL_write_any(&o, buf, num > 0 ? (size_t)num : 0, NULL, caller);
}

static int kf_SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written,
                           const void *caller)
{
    struct ossl_io o = { ssl, 1, 0, NULL, NULL };
    return kf_SSL_write_any(&o, buf, num, written, caller);
}

KF_EXPORT int SSL_write(SSL *ssl, const void *buf, int num);
KF_EXPORT int SSL_write(SSL *ssl, const void *buf, int num)
{
    return kf_SSL_write(ssl, buf, num, __builtin_return_address(0));
}

KF_EXPORT int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written);
KF_EXPORT int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)
{
    return kf_SSL_write_ex(ssl, buf, num, written, __builtin_return_address(0));
}
