/* testcerts.c - see testcerts.h. Test-only: failures abort the test. */
#include "testcerts.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

EVP_PKEY *tc_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    cr_assert_not_null(k);
    return k;
}

static void ext(X509 *issuer, X509 *x, int nid, const char *v)
{
    X509V3_CTX c;
    X509V3_set_ctx(&c, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &c, nid, v);
    cr_assert_not_null(e, "extension %s", v);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

static X509 *base(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    unsigned char serial[8];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    return x;
}

void tc_make_ca(tc_ca *ca, const char *cn)
{
    ca->key = tc_key();
    ca->cert = base(ca->key, cn);
    X509_set_issuer_name(ca->cert, X509_get_subject_name(ca->cert));
    ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE");
    ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash");
    cr_assert(X509_sign(ca->cert, ca->key, EVP_sha256()));
}

void tc_free_ca(tc_ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
}

X509 *tc_make_leaf(const tc_ca *ca, EVP_PKEY *key, const char *host)
{
    X509 *x = base(key, host);
    char san[300];
    snprintf(san, sizeof san, "DNS:%s", host);
    X509_set_issuer_name(x, X509_get_subject_name(ca->cert));
    ext(ca->cert, x, NID_subject_alt_name, san);
    ext(ca->cert, x, NID_ext_key_usage, "serverAuth");
    ext(ca->cert, x, NID_authority_key_identifier, "keyid:always");
    cr_assert(X509_sign(x, ca->key, EVP_sha256()));
    return x;
}

void tc_write_pem(const char *path, X509 *const *certs, int n, int append)
{
    FILE *f = fopen(path, append ? "a" : "w");
    cr_assert_not_null(f, "%s", path);
    for (int i = 0; i < n; i++)
        PEM_write_X509(f, certs[i]);
    fclose(f);
}

static void be(FILE *f, unsigned long long v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        fputc((int)(v >> (8 * i)) & 0xff, f);
}

long tc_write_jks(const char *path, X509 *const *certs, int n, long cut)
{
    FILE *f = fopen(path, "w+");
    cr_assert_not_null(f);
    be(f, 0xFEEDFEEDu, 4);
    be(f, 2, 4);
    be(f, (unsigned)n, 4);
    for (int i = 0; i < n; i++) {
        char alias[32];
        unsigned char *der = NULL;
        int dl = i2d_X509(certs[i], &der);
        snprintf(alias, sizeof alias, "test%d", i);
        be(f, 2, 4); /* trusted certificate */
        be(f, strlen(alias), 2);
        fputs(alias, f);
        be(f, 1700000000000ULL, 8);
        be(f, 5, 2);
        fputs("X.509", f);
        be(f, (unsigned)dl, 4);
        fwrite(der, 1, (size_t)dl, f);
        OPENSSL_free(der);
    }
    for (int i = 0; i < 20; i++) /* the keyed SHA-1 (not checked by readers) */
        fputc(0, f);
    long len = ftell(f);
    fclose(f);
    if (cut > 0)
        cr_assert_eq(truncate(path, cut), 0);
    return len;
}

/* One thread drives both ends: step each SSL until both are done. */
int tc_handshake(SSL_CTX *cctx, X509 *leaf, EVP_PKEY *key, const char *host, long *verify,
                 unsigned long *server_err)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(sctx, leaf);
    SSL_CTX_use_PrivateKey(sctx, key);
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    SSL_set_fd(s, sv[0]);
    SSL_set_fd(c, sv[1]);
    SSL_set_tlsext_host_name(c, host);
    SSL_set1_host(c, host);
    int cdone = 0, sdone = 0, cfail = 0, sfail = 0;
    *server_err = 0;
    ERR_clear_error();
    for (int round = 0; round < 1000 && !((cdone || cfail) && (sdone || sfail)); round++) {
        if (!cdone && !cfail) {
            int r = SSL_connect(c);
            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ &&
                     SSL_get_error(c, r) != SSL_ERROR_WANT_WRITE)
                cfail = 1;
        }
        ERR_clear_error();
        if (!sdone && !sfail) {
            int r = SSL_accept(s);
            if (r == 1)
                sdone = 1;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ &&
                     SSL_get_error(s, r) != SSL_ERROR_WANT_WRITE) {
                sfail = 1;
                *server_err = ERR_peek_error();
            }
        }
        ERR_clear_error();
        if (cfail && !sdone && !sfail) { /* let the server read the client's alert */
            struct pollfd p = {.fd = sv[0], .events = POLLIN};
            poll(&p, 1, 1000);
        }
    }
    *verify = SSL_get_verify_result(c);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(sctx);
    close(sv[0]);
    close(sv[1]);
    return cdone && sdone;
}
