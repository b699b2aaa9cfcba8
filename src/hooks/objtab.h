/* objtab.h - per-object state of the library hook families, keyed by the
 * library's own object pointer (SSL *, SSL_CTX *, gnutls_session_t, CURL *).
 *
 * One lock-protected hash table for every kind. The table only stores the
 * pointer to a caller-allocated record; the hook family owns the record and
 * frees it after kf_obj_take(). A record may be used without the lock once
 * found: the libraries themselves forbid using one object from two threads
 * at once, and the record dies only when the object does (SSL_free, ...).
 *
 * fork(): the table lock is taken in the prepare handler and released in
 * the parent and re-initialised in the child (pthread_atfork).
 *
 * Also here: the few facts the TLS and libcurl families share.
 */
#ifndef KF_OBJTAB_H
#define KF_OBJTAB_H

#include <stddef.h>

enum kf_obj_kind {
    KF_OBJ_SSL = 1,    /* OpenSSL SSL *: struct ossl_conn (tls_openssl.c) */
    KF_OBJ_SSL_CTX,    /* OpenSSL SSL_CTX *: struct ossl_ctx (offered ALPN) */
    KF_OBJ_GNUTLS,     /* gnutls_session_t: struct gt_conn (tls_gnutls.c) */
    KF_OBJ_CURL,       /* CURL *: struct curl_state (curl_easy.c) */
    KF_OBJ_NKINDS
};

/* The record stored for (kind, key), or NULL. */
void *kf_obj_get(int kind, const void *key);

/* Store `rec` for (kind, key). An older record for the same key is returned
 * (the caller frees it), else NULL. Returns `rec` itself when the table could
 * not grow (out of memory): the caller keeps ownership and goes on without state. */
void *kf_obj_put(int kind, const void *key, void *rec);

/* Remove and return the record for (kind, key), or NULL. */
void *kf_obj_take(int kind, const void *key);

/* Number of records of `kind`; lock-free, for "nothing tracked" fast paths. */
unsigned long kf_obj_count(int kind);
/* fork handlers, run by shim.c's (one registration for the shim) */
void kf_objtab_prepare(void);
void kf_objtab_parent(void);
void kf_objtab_child(void);

/* True when the libcurl layer is active in this process: curl_easy_setopt
 * went through the hook with rules loaded and the real function found. The
 * TLS families then leave libcurl's connections alone (libcurl's requests
 * are fixed above TLS, HTTP/2 included). */
int kf_curl_layer_live(void);
void kf_curl_layer_set_live(void);

/* Does the code at `addr` belong to a libcurl (dladdr name contains "libcurl")? */
int kf_addr_in_libcurl(const void *addr);

#endif
