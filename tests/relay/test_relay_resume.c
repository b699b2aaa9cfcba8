/* test_relay_resume.c - TLS session resumption towards upstreams
 * (src/relay/tlsresume.c): a session is offered again to the exact target
 * it came from (host, port, SNI, upstream SSL_CTX = trust set), never to
 * another. Real handshakes over a socketpair, in one thread. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "relay.h"
#include "testcerts.h"
#include "tlsresume.h"
#include "truststore.h"

static tc_ca ca;
static EVP_PKEY *leaf_key;
static X509 *leaf;
static SSL_CTX *sctx;

static void setup(void)
{
    cr_assert_eq(tlsresume_init(), 0);
    tc_make_ca(&ca, "resume test CA");
    leaf_key = tc_key();
    leaf = tc_make_leaf(&ca, leaf_key, "api.kimi.com");
    sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(sctx, leaf);
    SSL_CTX_use_PrivateKey(sctx, leaf_key);
}

static void teardown(void)
{
    tlsresume_clear();
    SSL_CTX_free(sctx);
    X509_free(leaf);
    EVP_PKEY_free(leaf_key);
    tc_free_ca(&ca);
}

/* An upstream context as the relay makes them, trusting the test CA. */
static SSL_CTX *client_ctx(void)
{
    SSL_CTX *c = truststore_client_ctx();
    cr_assert_not_null(c);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(c), ca.cert);
    return c;
}

static void key_init(upkey *k, SSL_CTX *ctx, const char *sni, unsigned port)
{
    memset(k, 0, sizeof *k);
    strcpy(k->host, sni);
    strcpy(k->sni, sni);
    k->port = port;
    k->sslctx = ctx;
    upkey_seal(k);
}

/* One connection to the test server for key k, as the relay makes it
 * (upstream_ssl_new), handshake and one byte each way (the byte makes the
 * client read the server's session tickets). Returns 1 resumed, 0 full
 * handshake, -1 failed. */
static int connect_once(const upkey *k)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    SSL *s = SSL_new(sctx), *c = upstream_ssl_new(k, sv[1]);
    SSL_set_fd(s, sv[0]);
    int cdone = 0, sdone = 0, got = 0, sent = 0;
    for (int round = 0; round < 2000 && !(cdone && sdone && got); round++) {
        ERR_clear_error();
        if (!cdone && SSL_connect(c) == 1)
            cdone = 1;
        ERR_clear_error();
        if (!sdone && SSL_accept(s) == 1)
            sdone = 1;
        if (sdone && !sent)
            sent = SSL_write(s, "x", 1) == 1;
        char b;
        if (cdone && sent && !got)
            got = SSL_read(c, &b, 1) == 1;
    }
    int r = cdone && sdone && got ? SSL_session_reused(c) : -1;
    SSL_free(c);
    SSL_free(s);
    close(sv[0]);
    close(sv[1]);
    return r;
}

/* Would this key be offered a session? (without a handshake) */
static int offered(const upkey *k)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    SSL *c = upstream_ssl_new(k, sv[1]);
    int r = SSL_get_session(c) != NULL;
    SSL_free(c);
    close(sv[0]);
    close(sv[1]);
    return r;
}

Test(resume, the_same_target_resumes, .init = setup, .fini = teardown)
{
    SSL_CTX *a = client_ctx();
    upkey k;
    key_init(&k, a, "api.kimi.com", 443);
    cr_assert_eq(connect_once(&k), 0, "the first connection: a full handshake");
    cr_assert(offered(&k));
    cr_assert_eq(connect_once(&k), 1, "the second: resumed");
    SSL_CTX_free(a);
}

Test(resume, never_across_targets_or_trust_sets, .init = setup, .fini = teardown)
{
    SSL_CTX *a = client_ctx(), *b = client_ctx();
    upkey k, other_sni, other_port, other_trust;
    key_init(&k, a, "api.kimi.com", 443);
    key_init(&other_sni, a, "api.moonshot.ai", 443);
    key_init(&other_port, a, "api.kimi.com", 8443);
    key_init(&other_trust, b, "api.kimi.com", 443);
    cr_assert_eq(connect_once(&k), 0);
    cr_assert(offered(&k));
    cr_assert_not(offered(&other_sni), "another SNI on the same server: never");
    cr_assert_not(offered(&other_port), "another port: never");
    cr_assert_not(offered(&other_trust), "another client's trust set: never");
    /* the other trust set makes its own (full) handshake, then resumes */
    cr_assert_eq(connect_once(&other_trust), 0);
    cr_assert_eq(connect_once(&other_trust), 1);
    SSL_CTX_free(a);
    SSL_CTX_free(b);
}

Test(resume, the_cache_keeps_its_context_alive, .init = setup, .fini = teardown)
{
    /* The entry holds a reference: a freed trust set's address cannot be
     * taken by a new context and inherit its sessions. */
    SSL_CTX *a = client_ctx();
    upkey k;
    key_init(&k, a, "api.kimi.com", 443);
    cr_assert_eq(connect_once(&k), 0);
    SSL_CTX_free(a); /* the relay dropped the trust set */
    SSL_CTX *b = client_ctx();
    cr_assert_neq(b, a, "the cache's reference kept the old context's address taken");
    upkey kb;
    key_init(&kb, b, "api.kimi.com", 443);
    cr_assert_not(offered(&kb));
    SSL_CTX_free(b);
}

/* rio.c: a read that got fewer bytes than it asked for emptied the socket,
 * and the edge counts as used (no read that could only say EAGAIN); a read
 * that filled its buffer leaves the edge for the next one. Plain and TLS
 * (the socket BIO's reads watched with BIO_set_callback_ex). */
Test(rio, a_short_read_uses_up_the_edge)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    rio r;
    rio_init(&r, sv[1]);
    char buf[64];
    cr_assert_eq(write(sv[0], "0123456789", 10), 10);
    r.ready = RIO_IN | RIO_OUT;
    cr_assert_eq(rio_read(&r, buf, 4), 4, "the buffer filled: more may wait");
    cr_assert(r.ready & RIO_IN);
    cr_assert_eq(rio_read(&r, buf, sizeof buf), 6);
    cr_assert_not(r.ready & RIO_IN, "a short read emptied the socket");
    cr_assert(rio_can_read(&r) == 0);
    /* data with the peer's FIN in one event (EPOLLIN|EPOLLRDHUP): the FIN
     * raises no edge of its own, so the short read must leave the edge for
     * the read that says EOF (else the close is never passed on) */
    cr_assert_eq(write(sv[0], "tail", 4), 4);
    cr_assert_eq(shutdown(sv[0], SHUT_WR), 0);
    rio_event(&r, EPOLLIN | EPOLLRDHUP);
    cr_assert_eq(rio_read(&r, buf, sizeof buf), 4);
    cr_assert(rio_can_read(&r), "the EOF is still to be read");
    cr_assert_eq(rio_read(&r, buf, sizeof buf), 0);
    cr_assert(r.rd_eof);
    close(sv[0]);
    close(sv[1]);
}

Test(rio, a_short_tls_read_uses_up_the_edge, .init = setup, .fini = teardown)
{
    SSL_CTX *cctx = client_ctx();
    upkey k;
    key_init(&k, cctx, "api.kimi.com", 443);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    SSL *s = SSL_new(sctx);
    SSL_set_fd(s, sv[0]);
    rio r;
    rio_init(&r, sv[1]);
    rio_set_ssl(&r, upstream_ssl_new(&k, sv[1]));
    int cdone = 0, sdone = 0;
    for (int round = 0; round < 2000 && !(cdone && sdone); round++) {
        ERR_clear_error();
        if (!cdone && SSL_connect(r.ssl) == 1)
            cdone = 1;
        ERR_clear_error();
        if (!sdone && SSL_accept(s) == 1)
            sdone = 1;
    }
    cr_assert(cdone && sdone);
    /* a small answer: one short socket read, the edge used up */
    cr_assert_eq(SSL_write(s, "hello", 5), 5);
    char buf[4096];
    ssize_t n = -1;
    r.ready = RIO_IN | RIO_OUT;
    for (int i = 0; i < 10 && n < 0; i++) /* session tickets come first */
        n = rio_read(&r, buf, sizeof buf), r.ready |= n < 0 ? RIO_IN : 0;
    cr_assert_eq(n, 5);
    cr_assert_not(r.ready & RIO_IN);
    /* more than one socket read can take: the edge stays until the last */
    static char big[200000];
    memset(big, 'b', sizeof big);
    size_t put = 0;
    while (put < sizeof big) {
        int w = SSL_write(s, big + put, (int)(sizeof big - put));
        if (w <= 0)
            break;
        put += (size_t)w;
    }
    /* more than two of OpenSSL's ~16 KiB socket reads, whatever the socket buffer */
    cr_assert_gt(put, 40000, "the socket buffer took %zu", put);
    r.ready = RIO_IN | RIO_OUT;
    n = rio_read(&r, buf, sizeof buf);
    cr_assert_eq(n, (ssize_t)sizeof buf);
    cr_assert(r.ready & RIO_IN, "a full socket read: more may wait");
    size_t got = (size_t)n;
    while (rio_can_read(&r) && (n = rio_read(&r, buf, sizeof buf)) > 0)
        got += (size_t)n;
    cr_assert_eq(got, put, "every byte read before the edge was used up (%zu of %zu)", got, put);
    rio_close(&r);
    SSL_free(s);
    close(sv[0]);
    SSL_CTX_free(cctx);
}
