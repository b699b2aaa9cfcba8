/* tls_gnutls.c - GnuTLS hooks: gnutls_record_send(2), the offered ALPN,
 * the SNI (gnutls_server_name_set) and gnutls_deinit.
 *
 * Only clients set a server name, so a session is considered for rewriting
 * only when gnutls_server_name_set went through us: servers and sessions
 * without SNI pass straight through after one table lookup.
 *
 * gnutls_record_send() calls gnutls_record_send2() through the PLT (it
 * lands in our hook again): a thread-local depth counter (an int: large
 * thread-local storage breaks hosts such as Node) makes the inner call a
 * plain forward, so every write is seen once.
 *
 * Retry rule: after GNUTLS_E_AGAIN/INTERRUPTED the caller calls again with
 * the same arguments or with NULL,0, and GnuTLS answers with the count of
 * the record it had queued. We keep a copy of the caller's bytes of a
 * failed call (one record's worth, on the heap) so a NULL,0 retry replays
 * them through the pump and the answer stays in the caller's bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kf_shim.h"
#include "alpn.h"
#include "objtab.h"

typedef struct gnutls_session_int *gnutls_session_t;
typedef struct {
    unsigned char *data;
    unsigned int size;
} gt_datum;

#define KF_GNUTLS_NAME_DNS 1
#define KF_GNUTLS_E_AGAIN (-28)
#define KF_GNUTLS_E_INTERRUPTED (-52)
#define KF_GNUTLS_E_INTERNAL_ERROR (-59)
#define KF_GT_RECORD_MAX 16384
#define KF_GT_ALPN_MAX 512
#define KF_GT_ALPN_N 16

typedef ssize_t (*gt_send_fn)(gnutls_session_t, const void *, size_t);
typedef ssize_t (*gt_send2_fn)(gnutls_session_t, const void *, size_t, size_t, unsigned);
typedef int (*gt_sni_fn)(gnutls_session_t, int, const void *, size_t);
typedef int (*gt_alpn_fn)(gnutls_session_t, const gt_datum *, unsigned, unsigned);
typedef int (*gt_sess_fn)(gnutls_session_t);
typedef void (*gt_deinit_fn)(gnutls_session_t);

enum { GC_UNDECIDED = 0, GC_REWRITE, GC_PASS };

struct gt_conn {
    unsigned char verdict;   /* GC_* */
    unsigned char alpn_done; /* the held-back ALPN list was given to GnuTLS */
    unsigned char by_curl;   /* libcurl's session while its layer is live: libcurl fixes it */
    unsigned alpn_flags;
    unsigned char *alpn; /* ALPN list with "h2" held back (wire form), see below */
    unsigned alpn_len;
    unsigned char *saved; /* caller bytes of a call that failed with AGAIN/INTERRUPTED */
    size_t saved_len;
    kf_stream stream;
    char host[256];
};

static __thread int gt_depth; /* tiny on purpose: see the header comment */

static void gt_conn_free(struct gt_conn *c)
{
    if (!c)
        return;
    kf_stream_reset(&c->stream);
    free(c->alpn);
    free(c->saved);
    free(c);
}

static struct gt_conn *gt_conn_get_or_new(gnutls_session_t s)
{
    struct gt_conn *c = kf_obj_get(KF_OBJ_GNUTLS, s);
    if (c)
        return c;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    kf_stream_init(&c->stream);
    void *old = kf_obj_put(KF_OBJ_GNUTLS, s, c);
    if (old == c) {
        free(c);
        return NULL;
    }
    gt_conn_free(old);
    return c;
}

/* ---- SNI, ALPN, lifetime ---- */

static int gt_offer_alpn(gnutls_session_t s, struct gt_conn *c, gt_alpn_fn set);

static int kf_gnutls_server_name_set(gnutls_session_t s, int type, const void *name, size_t len, const void *caller)
{
    gt_sni_fn real = (gt_sni_fn)kf_real_lib("gnutls_server_name_set", caller);
    if (!real) {
        kf_warn_once("gnutls: gnutls_server_name_set not found");
        return KF_GNUTLS_E_INTERNAL_ERROR;
    }
    int r = real(s, type, name, len);
    if (r < 0 || type != KF_GNUTLS_NAME_DNS || !name || !kf_shim_rules())
        return r;
    struct gt_conn *c = gt_conn_get_or_new(s);
    if (c) {
        size_t n = len < sizeof c->host ? len : 0; /* too long: no host, no rewriting */
        memcpy(c->host, name, n);
        c->host[n] = 0;
        c->verdict = GC_UNDECIDED;
        c->by_curl = (unsigned char)(kf_curl_layer_live() && kf_addr_in_libcurl(caller));
        if (c->alpn && !c->alpn_done) {
            gt_alpn_fn set = (gt_alpn_fn)kf_real_lib("gnutls_alpn_set_protocols", caller);
            if (set)
                gt_offer_alpn(s, c, set);
        }
    }
    return r;
}

KF_EXPORT int gnutls_server_name_set(gnutls_session_t s, int type, const void *name, size_t len);
KF_EXPORT int gnutls_server_name_set(gnutls_session_t s, int type, const void *name, size_t len)
{
    return kf_gnutls_server_name_set(s, type, name, len, __builtin_return_address(0));
}

/* Offer `c`'s pending list: without h2 when the SNI is rule-relevant. */
static int gt_offer_alpn(gnutls_session_t s, struct gt_conn *c, gt_alpn_fn set)
{
    unsigned char buf[KF_GT_ALPN_MAX + 16];
    const unsigned char *w = buf;
    size_t n = 0;
    const kf_ruleset *rs = kf_shim_rules();
    int drop = rs && c->host[0] && kf_rules_host_relevant(rs, c->host, 443);
    if (drop)
        n = kf_alpn_drop_h2(c->alpn, c->alpn_len, buf, sizeof buf);
    if (n == 0) { /* as offered (buf is larger than any list we hold) */
        drop = 0;
        n = c->alpn_len;
        memcpy(buf, c->alpn, n);
    }
    gt_datum d[KF_GT_ALPN_N];
    unsigned nd = 0;
    for (size_t i = 0; i < n && nd < KF_GT_ALPN_N; i += 1u + w[i])
        d[nd++] = (gt_datum){ (unsigned char *)(uintptr_t)(w + i + 1), w[i] };
    free(c->alpn);
    c->alpn = NULL;
    c->alpn_len = 0;
    c->alpn_done = 1;
    int r = set(s, d, nd, c->alpn_flags);
    if (drop && r >= 0)
        kf_log(KF_LOG_DEBUG, "gnutls: %s: ALPN without h2 (so requests can be fixed)", c->host);
    return r;
}

/* Why deferred: GnuTLS appends on every gnutls_alpn_set_protocols call (it
 * never resets its count), so a list cannot be replaced once set. A list
 * offering h2 is therefore held back until the SNI is known (or the
 * handshake starts) and then set once, with or without h2. Everything the
 * real call could reject (too many or too long names) is forwarded at once. */
#define KF_GT_MAX_PROTOS 8
#define KF_GT_MAX_NAME 32

static int kf_gnutls_alpn_set_protocols(gnutls_session_t s, const gt_datum *p, unsigned n, unsigned flags, const void *caller)
{
    gt_alpn_fn real = (gt_alpn_fn)kf_real_lib("gnutls_alpn_set_protocols", caller);
    if (!real) {
        kf_warn_once("gnutls: gnutls_alpn_set_protocols not found");
        return KF_GNUTLS_E_INTERNAL_ERROR;
    }
    struct gt_conn *c = kf_obj_count(KF_OBJ_GNUTLS) ? kf_obj_get(KF_OBJ_GNUTLS, s) : NULL;
    if (c && c->alpn) /* an earlier list still held back: GnuTLS would have it by now */
        gt_offer_alpn(s, c, real);
    if (!kf_shim_rules() || !p || n == 0 || n > KF_GT_MAX_PROTOS ||
        (kf_addr_in_libcurl(caller) && kf_curl_layer_live()))
        return real(s, p, n, flags);
    unsigned char wire[KF_GT_ALPN_MAX];
    size_t w = 0;
    int h2 = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!p[i].data || p[i].size == 0 || p[i].size >= KF_GT_MAX_NAME)
            return real(s, p, n, flags); /* let GnuTLS judge it */
        wire[w] = (unsigned char)p[i].size;
        memcpy(wire + w + 1, p[i].data, p[i].size);
        h2 |= p[i].size == 2 && memcmp(p[i].data, "h2", 2) == 0;
        w += 1 + p[i].size;
    }
    if (!h2 || (!c && !(c = gt_conn_get_or_new(s))) || !(c->alpn = malloc(w)))
        return real(s, p, n, flags);
    memcpy(c->alpn, wire, w);
    c->alpn_len = (unsigned)w;
    c->alpn_flags = flags;
    c->alpn_done = 0;
    if (c->host[0]) /* the SNI is known already: decide now */
        return gt_offer_alpn(s, c, real);
    return 0;
}

KF_EXPORT int gnutls_alpn_set_protocols(gnutls_session_t s, const gt_datum *p, unsigned n, unsigned flags);
KF_EXPORT int gnutls_alpn_set_protocols(gnutls_session_t s, const gt_datum *p, unsigned n, unsigned flags)
{
    return kf_gnutls_alpn_set_protocols(s, p, n, flags, __builtin_return_address(0));
}

/* The first gnutls_handshake: offer a list still held back (no SNI came). */
static void gt_fix_alpn(gnutls_session_t s, struct gt_conn *c, const void *caller)
{
    if (!c || c->alpn_done || !c->alpn)
        return;
    gt_alpn_fn set = (gt_alpn_fn)kf_real_lib("gnutls_alpn_set_protocols", caller);
    if (!set) {
        kf_warn_once("gnutls: gnutls_alpn_set_protocols not found; ALPN not offered");
        return;
    }
    gt_offer_alpn(s, c, set);
}

static int kf_gnutls_handshake(gnutls_session_t s, const void *caller)
{
    gt_sess_fn real = (gt_sess_fn)kf_real_lib("gnutls_handshake", caller);
    if (!real) {
        kf_warn_once("gnutls: gnutls_handshake not found");
        return KF_GNUTLS_E_INTERNAL_ERROR;
    }
    if (kf_obj_count(KF_OBJ_GNUTLS))
        gt_fix_alpn(s, kf_obj_get(KF_OBJ_GNUTLS, s), caller);
    return real(s);
}

KF_EXPORT int gnutls_handshake(gnutls_session_t s);
KF_EXPORT int gnutls_handshake(gnutls_session_t s)
{
    return kf_gnutls_handshake(s, __builtin_return_address(0));
}

static void kf_gnutls_deinit(gnutls_session_t s, const void *caller)
{
    gt_deinit_fn real = (gt_deinit_fn)kf_real_lib("gnutls_deinit", caller);
    gt_conn_free(kf_obj_take(KF_OBJ_GNUTLS, s));
    if (!real) {
        kf_warn_once("gnutls: gnutls_deinit not found (session leaked)");
        return;
    }
    real(s);
}

KF_EXPORT void gnutls_deinit(gnutls_session_t s);
KF_EXPORT void gnutls_deinit(gnutls_session_t s)
{
    kf_gnutls_deinit(s, __builtin_return_address(0));
}

/* ---- the write path ---- */

struct gt_io {
    gnutls_session_t s;
    gt_send_fn send;
    gt_send2_fn send2; /* used when the caller called gnutls_record_send2 */
    size_t pad;
    unsigned flags;
};

static ssize_t gt_send(void *io, const void *buf, size_t len)
{
    struct gt_io *o = io;
    if (o->send2)
        return o->send2(o->s, buf, len, o->pad, o->flags);
    return o->send(o->s, buf, len);
}

static int gt_is_retry_code(ssize_t r)
{
    return r == KF_GNUTLS_E_AGAIN || r == KF_GNUTLS_E_INTERRUPTED;
}

static void gt_drop_saved(struct gt_conn *c)
{
    free(c->saved);
    c->saved = NULL;
    c->saved_len = 0;
}

/* A session whose socket connect() steered to the relay is rewritten there
 * (as for OpenSSL; else each rule applies twice: an add-header twice).
 * GnuTLS keeps the socket as the transport pointer (gnutls_transport_
 * set_int, or set_ptr with an fd: wget); a pointer that is no fd is
 * almost never a steered fd's number, and if it were, the session would
 * only go unfixed. */
static int gt_steered(gnutls_session_t s, const void *caller)
{
    typedef int (*gt_int_fn)(gnutls_session_t);
    gt_int_fn get_int = (gt_int_fn)kf_real_lib("gnutls_transport_get_int", caller);
    int fd = get_int ? get_int(s) : -1;
    return fd >= 0 && kf_shim_fd_steered(fd);
}

static struct gt_conn *gt_conn_for_write(gnutls_session_t s, const kf_ruleset *rs, const void *caller)
{
    struct gt_conn *c = kf_obj_get(KF_OBJ_GNUTLS, s);
    if (!c)
        return NULL;
    if (c->verdict == GC_UNDECIDED) {
        int rel = c->host[0] && !c->by_curl && kf_rules_host_relevant(rs, c->host, 443) &&
                  !gt_steered(s, caller);
        c->verdict = rel ? GC_REWRITE : GC_PASS;
    }
    return c->verdict == GC_REWRITE ? c : NULL;
}

static ssize_t gt_write(struct gt_conn *c, const kf_ruleset *rs, struct gt_io *io,
                        const void *data, size_t size)
{
    kf_ctx ctx = {
        .rs = rs, .host = c->host, .port = 443, .tls = 1, .caps = 0,
        .on_head = kf_shim_on_head, .notice = kf_shim_notice, .ud = (void *)"gnutls",
    };
    if (!data && size == 0) { /* retry of a call that failed: replay its bytes */
        if (c->saved) {
            ssize_t r = kf_stream_write(&c->stream, &ctx, c->saved, c->saved_len, KF_WR_PARTIAL,
                                        gt_send, io);
            if (!gt_is_retry_code(r))
                gt_drop_saved(c);
            return r;
        }
        ssize_t f = kf_stream_flush(&c->stream, &ctx, gt_send, io);
        if (f <= 0)
            return f;
        return gt_send(io, NULL, 0);
    }
    gt_drop_saved(c);
    ssize_t r = kf_stream_write(&c->stream, &ctx, data, size, KF_WR_PARTIAL, gt_send, io);
    if (gt_is_retry_code(r)) {
        size_t n = size < KF_GT_RECORD_MAX ? size : KF_GT_RECORD_MAX;
        if ((c->saved = malloc(n)) != NULL) {
            memcpy(c->saved, data, n);
            c->saved_len = n;
        }
    }
    return r;
}

static ssize_t kf_gnutls_send(gnutls_session_t s, const void *data, size_t size, size_t pad,
                              unsigned flags, int two, const void *caller)
{
    gt_send_fn real1 = NULL;
    gt_send2_fn real2 = NULL;
    if (two)
        real2 = (gt_send2_fn)kf_real_lib("gnutls_record_send2", caller);
    else
        real1 = (gt_send_fn)kf_real_lib("gnutls_record_send", caller);
    if (!real1 && !real2) {
        kf_warn_once("gnutls: gnutls_record_send not found");
        return KF_GNUTLS_E_INTERNAL_ERROR;
    }
    const kf_ruleset *rs;
    struct gt_conn *c;
    if (gt_depth > 0 || kf_obj_count(KF_OBJ_GNUTLS) == 0 || !(rs = kf_shim_rules()) ||
        !(c = gt_conn_for_write(s, rs, caller)))
        return two ? real2(s, data, size, pad, flags) : real1(s, data, size);
    struct gt_io io = { s, real1, real2, pad, flags };
    gt_depth++;
    unsigned eng = kf_held_enter(KF_HOLD_ENGINE); /* signal handlers: kf_shim.h */
    ssize_t r = gt_write(c, rs, &io, data, size);
    kf_held_leave(eng);
    gt_depth--;
    return r;
}

KF_EXPORT ssize_t gnutls_record_send(gnutls_session_t s, const void *data, size_t size);
KF_EXPORT ssize_t gnutls_record_send(gnutls_session_t s, const void *data, size_t size)
{
    return kf_gnutls_send(s, data, size, 0, 0, 0, __builtin_return_address(0));
}

KF_EXPORT ssize_t gnutls_record_send2(gnutls_session_t s, const void *data, size_t size,
                                      size_t pad, unsigned flags);
KF_EXPORT ssize_t gnutls_record_send2(gnutls_session_t s, const void *data, size_t size,
                                      size_t pad, unsigned flags)
{
    return kf_gnutls_send(s, data, size, pad, flags, 1, __builtin_return_address(0));
}
