/* tlsterm.c - the client-facing TLS server of the relay.
 *
 * The certificate is chosen in the servername callback, which OpenSSL
 * (1.1.1+) calls for every ClientHello, with or without SNI: the name is
 * the SNI, else the PROXY authority. We mint only for names an enabled
 * rule lists explicitly (kf_rules_host_listed): anything else gets a fatal
 * unrecognized_name alert, so the relay can never impersonate an arbitrary
 * site. ALPN: http/1.1 only (the engine rewrites HTTP/1); a client that
 * offers only h2 gets no ALPN and must speak HTTP/1.1 or fail.
 */
#include "relay.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "kf_log.h"
#include "kf_rules_hosts.h"

static int ex_index = -1;

int tlsterm_ex_index(void)
{
    return ex_index;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)arg;
    tlsterm_info *ti = SSL_get_ex_data(ssl, ex_index);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const char *name = sni && *sni ? sni : ti->authority;
    size_t n = strlen(name);
    if (n && name[n - 1] == '.')
        n--;
    if (!n || n >= sizeof ti->host || !kf_proxy_valid_host(name, n)) {
        snprintf(ti->why, sizeof ti->why, "no usable server name (SNI '%s', authority '%s')",
                 sni ? sni : "", ti->authority);
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    for (size_t i = 0; i < n; i++)
        ti->host[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    ti->host[n] = 0;
    if (!kf_rules_host_listed(ti->rs ? ti->rs : g_relay.rs, ti->host, ti->port)) {
        snprintf(ti->why, sizeof ti->why, "%s is not a rule host: no certificate", ti->host);
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    X509 *leaf = ca_leaf_for(ti->host);
    if (!leaf || SSL_use_certificate(ssl, leaf) != 1 ||
        SSL_use_PrivateKey(ssl, ca_leaf_key()) != 1) {
        X509_free(leaf);
        snprintf(ti->why, sizeof ti->why, "cannot mint a certificate for %s", ti->host);
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    X509_free(leaf);
    return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == 8 && !memcmp(in + i + 1, "http/1.1", 8)) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

SSL_CTX *tlsterm_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* RELEASE_BUFFERS: idle connections (SSE waits, keep-alive) hold no
     * 16 KiB record buffers: that is most of the memory of 200 of them. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* read_ahead: a record's header and body in one read() (and any
     * record behind it): half the reads per request. rio_can_read and the
     * pool's alive() look at SSL_has_pending, which sees those bytes. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    /* No resumption: minting is cached anyway, and tickets cost memory and
     * CPU per connection (TLS 1.3 sends two after every handshake). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return ctx;
}
