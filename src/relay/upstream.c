/* upstream.c - the relay's own connection to the real server.
 *
 * Verification is always on: against KIMIFIX_UPSTREAM_CA (a PEM file) when
 * set, else the system store, loaded from OpenSSL's compiled-in paths, not
 * from SSL_CERT_FILE: the relay may inherit an SSL_CERT_FILE that contains
 * the kimifix CA, and must never trust its own certificates upstream.
 * This store is the fallback: with the kimifix CA readable, connections use
 * truststore.c's (system directory and bundle + the client's sources, never
 * the kimifix CA; relay_ctx_upstream_ssl_ctx), made with the same settings.
 */
#include "relay.h"
#include "tlsresume.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "kf_log.h"
#include "truststore.h"


SSL_CTX *upstream_ctx(void)
{
    SSL_CTX *ctx = truststore_client_ctx(); /* the settings every upstream store shares */
    if (!ctx)
        return NULL;
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
    tlsresume_apply(ssl, key);
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
