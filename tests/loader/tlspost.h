/* tlspost.h - one HTTPS POST over a connected TCP socket with OpenSSL, for
 * the loader e2e programs (deepssl_lib.c, dnsclient.c). Trust: OpenSSL's
 * default paths (SSL_CERT_FILE: the harness's test CA, or the kimifix CA
 * the shim adds). The request is a doubled-/v1 Anthropic call unless the
 * caller's path says otherwise. Returns the HTTP status, or -1. */
#ifndef KF_TEST_TLSPOST_H
#define KF_TEST_TLSPOST_H

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int kf_tls_post(int fd, const char *host, const char *path, const char *key)
{
    static const char body[] = "{\"model\":\"kimi-for-coding\",\"max_tokens\":64,"
                               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char req[2048], resp[4096];
    int status = -1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    if (!ssl)
        goto out;
    SSL_CTX_set_default_verify_paths(ctx);
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        fprintf(stderr, "tls: handshake with %s failed: ", host);
        ERR_print_errors_fp(stderr);
        goto out;
    }
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "x-api-key: %s\r\nanthropic-version: 2023-06-01\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     path, host, key, sizeof body - 1, body);
    if (SSL_write(ssl, req, n) != n)
        goto out;
    size_t got = 0;
    int r;
    while (got < sizeof resp - 1 && (r = SSL_read(ssl, resp + got, (int)(sizeof resp - 1 - got))) > 0)
        got += (size_t)r;
    resp[got] = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
out:
    if (ssl)
        SSL_free(ssl);
    if (ctx)
        SSL_CTX_free(ctx);
    return status;
}

#endif
