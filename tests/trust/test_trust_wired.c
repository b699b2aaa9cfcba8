/* test_trust_wired.c - the relay's wiring of client contexts into its
 * connections (src/relay/ctx.c, contract B over ctxtab.c and
 * truststore.c): a steered connection's TLV 0xE1 finds its context, a
 * proxy-carrier id finds the lease's, and each yields the upstream store of
 * that client's trust (a reference; cached: the same pointer again), with
 * the defaults for none, an unknown id, or no lease. Linked with every
 * relay object but main.o. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "ctxtab.h"
#include "kf_lease.h"
#include "kf_log.h"
#include "kf_paths.h"
#include "kf_trust.h"
#include "relay.h"
#include "testcerts.h"
#include "truststore.h"

static char tmpd[128], datadir[4096], corp[4300];
static tc_ca kca, corp_ca;

static void world(void)
{
    snprintf(tmpd, sizeof tmpd, "/tmp/kftrust-wired.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpd));
    char x[256];
    snprintf(x, sizeof x, "%s/run", tmpd);
    mkdir(x, 0700);
    setenv("XDG_RUNTIME_DIR", x, 1);
    snprintf(x, sizeof x, "%s/data", tmpd);
    setenv("XDG_DATA_HOME", x, 1);
    for (int i = 0; kf_trust_var_name(i); i++) {
        unsetenv(kf_trust_var_name(i));
        char o[128];
        snprintf(o, sizeof o, KF_TRUST_ORIG_PREFIX "%s", kf_trust_var_name(i));
        unsetenv(o);
    }
    unsetenv("KIMIFIX_UPSTREAM_CA");
    cr_assert_eq(kf_runtime_dir(g_relay.rundir, sizeof g_relay.rundir, 1), 0);
    cr_assert_eq(kf_data_dir(datadir, sizeof datadir, 1), 0);
    snprintf(g_relay.datadir, sizeof g_relay.datadir, "%s", datadir);
    tc_make_ca(&kca, "kimifix local CA (test)");
    tc_make_ca(&corp_ca, "Corp Inspecting CA");
    char ca[4300];
    snprintf(ca, sizeof ca, "%s/ca.pem", datadir);
    tc_write_pem(ca, &kca.cert, 1, 0);
    snprintf(corp, sizeof corp, "%s/corp.pem", tmpd);
    tc_write_pem(corp, &corp_ca.cert, 1, 0);
    snprintf(x, sizeof x, "%s/log", tmpd);
    kf_log_open(x);
    kf_log_set_level(KF_LOG_DEBUG);
    g_relay.up_ctx = SSL_CTX_new(TLS_client_method()); /* stands for upstream_ctx() */
    cr_assert_eq(ctxtab_start(g_relay.rundir, datadir), 0);
}

static void world_end(void)
{
    ctxtab_stop();
    truststore_shutdown();
    SSL_CTX_free(g_relay.up_ctx);
    tc_free_ca(&kca);
    tc_free_ca(&corp_ca);
    kf_log_close();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpd);
    cr_expect_eq(system(cmd), 0);
}

/* Does this store verify a leaf of corp_ca for api.kimi.com? */
static int trusts_corp(SSL_CTX *s)
{
    EVP_PKEY *k = tc_key();
    X509 *leaf = tc_make_leaf(&corp_ca, k, "api.kimi.com");
    long v = -1;
    unsigned long se = 0;
    int done = tc_handshake(s, leaf, k, "api.kimi.com", &v, &se);
    X509_free(leaf);
    EVP_PKEY_free(k);
    return done && v == X509_V_OK;
}

static void register_ctx(const char *text, unsigned char id[KF_CTX_ID_LEN])
{
    char reply[KF_CTXMSG_REPLY_MAX];
    size_t n = ctxtab_answer(text, strlen(text), -1, reply, sizeof reply);
    cr_assert(n > 3 && !strncmp(reply, "ok ", 3), "registration: %.*s", (int)n, reply);
    cr_assert_eq(kf_ctx_id_parse((kf_str){reply + 3, 2 * KF_CTX_ID_LEN}, id), 0);
}

Test(wired, steered_tlv_finds_the_clients_trust)
{
    world();
    char text[8400];
    snprintf(text, sizeof text, "kfctx 1\ntrust %s\nexe /usr/bin/prog\nbuildid abcd\n\n", corp);
    kf_proxy_info pi;
    memset(&pi, 0, sizeof pi);
    register_ctx(text, pi.ctx);
    pi.has_ctx = 1;
    relay_ctx *c = relay_ctx_for_conn(&pi);
    cr_assert_not_null(c, "a registered id finds its context");
    cr_expect_str_eq(relay_ctx_exe(c), "/usr/bin/prog");
    cr_expect_str_eq(relay_ctx_buildid(c), "abcd");
    SSL_CTX *a = relay_ctx_upstream_ssl_ctx(c), *b = relay_ctx_upstream_ssl_ctx(c);
    SSL_CTX *d = relay_ctx_upstream_ssl_ctx(NULL);
    cr_assert(a && b && d);
    cr_expect_eq(a, b, "a cache hit: the same store (and pool key) again");
    cr_expect_neq(a, d, "the client's trust is not the defaults");
    cr_expect(trusts_corp(a), "the client's CA file counts upstream");
    cr_expect(!trusts_corp(d), "the defaults do not trust the client's CA");
    SSL_CTX_free(a);
    SSL_CTX_free(b);
    SSL_CTX_free(d);
    relay_ctx_put(c);
    world_end();
}

Test(wired, no_tlv_or_unknown_id_gets_the_defaults)
{
    world();
    kf_proxy_info pi;
    memset(&pi, 0, sizeof pi);
    cr_expect_null(relay_ctx_for_conn(&pi), "no TLV: defaults");
    memset(pi.ctx, 0x5a, sizeof pi.ctx);
    pi.has_ctx = 1;
    cr_expect_null(relay_ctx_for_conn(&pi), "unknown id: defaults");
    cr_expect_null(relay_ctx_exe(NULL));
    world_end();
}

Test(wired, verification_failure_names_the_sources)
{
    world();
    char text[8400];
    snprintf(text, sizeof text, "kfctx 1\ntrust %s\ntrust %s/gone.pem\n\n", corp, tmpd);
    kf_proxy_info pi;
    memset(&pi, 0, sizeof pi);
    register_ctx(text, pi.ctx);
    pi.has_ctx = 1;
    relay_ctx *c = relay_ctx_for_conn(&pi);
    cr_assert_not_null(c);
    SSL_CTX *s = relay_ctx_upstream_ssl_ctx(c);
    SSL *ssl = SSL_new(s);
    SSL_set_verify_result(ssl, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    char err[2048], want[4600];
    relay_ctx_tls_error(c, ssl, "api.kimi.com", err, sizeof err);
    cr_expect(strstr(err, "TLS to api.kimi.com: certificate verification failed: unable to get local "
                          "issuer certificate (trusted: system store ("), "%s", err);
    snprintf(want, sizeof want, ", %s, %s/gone.pem (missing))", corp, tmpd);
    cr_expect(strstr(err, want), "%s lacks %s", err, want);
    SSL_free(ssl);
    SSL_CTX_free(s);
    relay_ctx_put(c);
    world_end();
}

/* The proxy carrier: the URL's `kimifix-ID` names the lease file, whose
 * `trust` lines (the client's original sources) make the context. */
Test(wired, lease_id_finds_proxy_and_trust)
{
    world();
    setenv("SSL_CERT_FILE", corp, 1); /* the user's own, as the wrapper sees it */
    char id[KF_LEASE_ID_HEX + 1];
    cr_assert_eq(kf_lease_write(g_relay.rundir, getpid(), "http://u:pw@proxy.corp:3128", "localhost",
                                id), 0);
    relay_ctx *c = relay_ctx_for_id(id);
    cr_assert_not_null(c, "a lease id finds a context");
    cr_expect_str_eq(relay_ctx_proxy(c), "http://u:pw@proxy.corp:3128");
    cr_expect_str_eq(relay_ctx_noproxy(c), "localhost");
    relay_ctx *again = relay_ctx_for_id(id);
    cr_expect_eq(again, c, "the same context for the same id");
    SSL_CTX *s = relay_ctx_upstream_ssl_ctx(c);
    cr_expect(trusts_corp(s), "the lease's trust line counts upstream");
    SSL_CTX_free(s);
    cr_expect_gt(relay_ctx_last_used(id), 0);
    relay_ctx_put(again);
    relay_ctx_put(c);
    relay_ctx_forget(id);
    cr_expect_eq(relay_ctx_last_used(id), 0, "forgotten once the lease went");
    cr_expect_null(relay_ctx_for_id("00000000000000000000000000000000"), "no such lease: defaults");
    world_end();
}
