/* upstream.c - the relay's own connection to the real server.
 *
 * Verification is always on: against KIMIFIX_UPSTREAM_CA (a PEM file) when
 * set, else the system store, loaded from OpenSSL's compiled-in paths, not
 * from SSL_CERT_FILE: the relay may inherit an SSL_CERT_FILE that contains
 * the kimifix CA, and must never trust its own certificates upstream.
 * (Per-client trust sets - contract B - are other SSL_CTXs made the same
 * way; the connection code takes whichever relay_ctx_upstream_ssl_ctx says.)
 */
#include "relay.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "kf_log.h"


SSL_CTX *upstream_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    const char *ca = secure_getenv("KIMIFIX_UPSTREAM_CA");
    int ok;
    if (ca && *ca) {
        ok = SSL_CTX_load_verify_locations(ctx, ca, NULL) == 1;
        kf_log(ok ? KF_LOG_INFO : KF_LOG_ERROR, "relay: upstream trust: %s%s", ca,
               ok ? "" : " (cannot load it)");
    } else {
        /* The hashed directory first: certificates are loaded on demand,
         * where the bundle file would cost ~2 MB of RSS for ~140 CAs. */
        ok = SSL_CTX_load_verify_locations(ctx, NULL, X509_get_default_cert_dir()) == 1 ||
             SSL_CTX_load_verify_locations(ctx, X509_get_default_cert_file(), NULL) == 1;
    }
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void relay_addr_text(const struct sockaddr *sa, char *buf, size_t n)
{
    const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, a, buf, (socklen_t)n))
        snprintf(buf, n, "?");
}

static int is_ip(const char *h)
{
    unsigned char b[16];
    return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

SSL *upstream_ssl_new(const upkey *key, int fd)
{
    SSL *ssl = SSL_new(key->sslctx);
    if (!ssl)
        return NULL;
    const char *host = key->sni;
    if (is_ip(host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    } else {
        SSL_set_tlsext_host_name(ssl, host);
        SSL_set1_host(ssl, host);
    }
    SSL_set_fd(ssl, fd);
    return ssl;
}

void upstream_tls_error(SSL *ssl, const char *host, char *err, size_t errn)
{
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        snprintf(err, errn, "TLS to %s: certificate verification failed: %s", host,
                 X509_verify_cert_error_string(v));
    } else {
        unsigned long le = ERR_peek_error();
        snprintf(err, errn, "TLS to %s: handshake failed: %s", host,
                 le ? ERR_reason_error_string(le) : "connection closed");
    }
}
