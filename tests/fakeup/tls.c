/* tls.c: one SSL_CTX per host certificate found in --certs DIR.
 * SNI picks the context (servername callback); without SNI, or with an
 * unknown name, api.kimi.com answers (a client then fails verification,
 * as it would against a wrong server). ALPN prefers h2, then http/1.1. */
#include "fakeup.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <openssl/err.h>

#define MAX_CERTS 64

struct cert {
    char host[256];
    SSL_CTX *ctx;
};
static struct cert certs[MAX_CERTS];
static int ncerts;
static SSL_CTX *default_ctx;

static int alpn_has(const unsigned char *in, unsigned inlen, const char *proto)
{
    size_t plen = strlen(proto);
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen)
            return -1;
        if (l == plen && !memcmp(in + i + 1, proto, plen))
            return (int)i;
        i += 1 + l;
    }
    return -1;
}

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    (void)s;
    (void)arg;
    int at = alpn_has(in, inlen, "h2");
    if (at < 0)
        at = alpn_has(in, inlen, "http/1.1");
    if (at < 0)
        return SSL_TLSEXT_ERR_NOACK;
    *out = in + at + 1;
    *outlen = in[at];
    return SSL_TLSEXT_ERR_OK;
}

static int sni_cb(SSL *s, int *al, void *arg)
{
    (void)al;
    (void)arg;
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < ncerts; i++)
        if (!strcasecmp(certs[i].host, name)) {
            SSL_set_SSL_CTX(s, certs[i].ctx);
            break;
        }
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *load_ctx(const char *pem, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, pem) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        unsigned long e = ERR_get_error();
        fprintf(stderr, "fakeup: cannot load %s / %s: %s\n", pem, key,
                ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "?");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    return ctx;
}

int fu_tls_init(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fakeup: cannot open certs dir %s\n", dir);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) && ncerts < MAX_CERTS) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || l - 4 >= sizeof certs[0].host ||
            strcmp(e->d_name + l - 4, ".pem") || !strcmp(e->d_name, "ca.pem"))
            continue;
        char pem[4096], key[4096];
        snprintf(pem, sizeof pem, "%s/%s", dir, e->d_name);
        snprintf(key, sizeof key, "%s/%.*s.key", dir, (int)(l - 4), e->d_name);
        if (access(key, R_OK) != 0)
            continue;
        SSL_CTX *ctx = load_ctx(pem, key);
        if (!ctx)
            continue;
        snprintf(certs[ncerts].host, sizeof certs[0].host, "%.*s", (int)(l - 4), e->d_name);
        certs[ncerts].ctx = ctx;
        if (!strcasecmp(certs[ncerts].host, "api.kimi.com"))
            default_ctx = ctx;
        ncerts++;
    }
    closedir(d);
    if (!ncerts) {
        fprintf(stderr, "fakeup: no HOST.pem/HOST.key pairs in %s (run mkcerts.sh)\n", dir);
        return -1;
    }
    if (!default_ctx)
        default_ctx = certs[0].ctx;
    return 0;
}

SSL *fu_tls_new(int fd)
{
    SSL *s = SSL_new(default_ctx);
    if (s && SSL_set_fd(s, fd) != 1) {
        SSL_free(s);
        return NULL;
    }
    return s;
}
