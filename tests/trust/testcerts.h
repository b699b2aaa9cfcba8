/* testcerts.h - certificates made in memory for the trust tests: CAs,
 * leaves, PEM/JKS files, and a TLS handshake between two SSL_CTXs over a
 * socketpair in one thread. */
#ifndef KF_TESTCERTS_H
#define KF_TESTCERTS_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

typedef struct tc_ca {
    X509 *cert;
    EVP_PKEY *key;
} tc_ca;

void tc_make_ca(tc_ca *ca, const char *cn);
void tc_free_ca(tc_ca *ca);
/* A leaf for host (SAN DNS:host) signed by ca, with key. */
X509 *tc_make_leaf(const tc_ca *ca, EVP_PKEY *key, const char *host);
EVP_PKEY *tc_key(void);
/* Write certificates as PEM (append=1: add to the file). */
void tc_write_pem(const char *path, X509 *const *certs, int n, int append);
/* Write a JKS (version 2) trust store with these certificates; `cut` > 0
 * truncates the file to that many bytes. Returns the full length. */
long tc_write_jks(const char *path, X509 *const *certs, int n, long cut);

/* Handshake: a server presenting leaf (+key) for SNI host, a client from
 * cctx verifying host. Returns 1 when it completed; *verify gets the
 * client's verify result, *server_err the server's first OpenSSL error
 * (0 when none). */
int tc_handshake(SSL_CTX *cctx, X509 *leaf, EVP_PKEY *key, const char *host, long *verify,
                 unsigned long *server_err);

#endif
