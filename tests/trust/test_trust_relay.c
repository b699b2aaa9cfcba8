/* test_trust_relay.c - the relay's side of "trust both ways" and of client
 * contexts: truststore (what a store trusts, the kimifix CA left out, the
 * cache, reloads, missing sources, KIMIFIX_UPSTREAM_CA), javatrust (JKS and
 * PKCS12 read, the JVM's store built and checked with keytool), distrust
 * (a real refused handshake recorded), ctxtab and its socket server
 * (registration with SCM_RIGHTS, duplicates, bad requests, stalled clients,
 * expiry, caps, Java stores on request). Real TLS handshakes in memory. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "ctxtab.h"
#include "kf_ctxmsg.h"
#include "kf_distrust.h"
#include "kf_log.h"
#include "kf_paths.h"
#include "kf_trust.h"
#include "kf_trustjava.h"
#include "testcerts.h"
#include "truststore.h"

static char tmpd[64], datadir[128], rundir[128], logp[128];
static tc_ca kca; /* the kimifix CA of this test */

static void path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpd, name);
}

/* A private world: data dir with ca.pem (the kimifix CA), run dir, a log
 * file, the truststore initialised, no KIMIFIX_UPSTREAM_CA. */
static void world(void)
{
    snprintf(tmpd, sizeof tmpd, "/tmp/kftrust-relay.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpd));
    path(datadir, sizeof datadir, "data");
    path(rundir, sizeof rundir, "run");
    path(logp, sizeof logp, "log");
    mkdir(datadir, 0700);
    mkdir(rundir, 0700);
    tc_make_ca(&kca, "kimifix local CA (test)");
    char ca[256];
    snprintf(ca, sizeof ca, "%s/ca.pem", datadir);
    tc_write_pem(ca, &kca.cert, 1, 0);
    unsetenv("KIMIFIX_UPSTREAM_CA");
    kf_log_open(logp);
    kf_log_set_level(KF_LOG_DEBUG);
    cr_assert_eq(truststore_init(datadir), 0);
    truststore_set_recheck_ms(0); /* every lookup re-validates: no timing in tests */
}

static void world_end(void)
{
    truststore_shutdown();
    tc_free_ca(&kca);
    kf_log_close();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpd);
    cr_expect_eq(system(cmd), 0);
}

static int log_count(const char *needle)
{
    FILE *f = fopen(logp, "r");
    char line[2048];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* Does a client from cctx accept a leaf for api.kimi.com signed by ca? */
static long verify_with(SSL_CTX *cctx, const tc_ca *ca)
{
    EVP_PKEY *k = tc_key();
    X509 *leaf = tc_make_leaf(ca, k, "api.kimi.com");
    long v = -1;
    unsigned long serr;
    tc_handshake(cctx, leaf, k, "api.kimi.com", &v, &serr);
    X509_free(leaf);
    EVP_PKEY_free(k);
    return v;
}

static long verify_sources(const char *const *src, unsigned n, const tc_ca *ca)
{
    SSL_CTX *c = truststore_get(src, n);
    cr_assert_not_null(c);
    long v = verify_with(c, ca);
    SSL_CTX_free(c);
    return v;
}

/* ---- truststore ---- */

Test(truststore, client_sources_count_system_alone_does_not)
{
    world();
    tc_ca corp;
    tc_make_ca(&corp, "Corp Inspection CA");
    char f[256], d[256];
    path(f, sizeof f, "corp.pem");
    tc_write_pem(f, &corp.cert, 1, 0);
    const char *src[] = {f};
    cr_expect_eq(verify_sources(NULL, 0, &corp), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    cr_expect_eq(verify_sources(src, 1, &corp), X509_V_OK);
    /* a DER file and a directory of plain files (Go/rustls style) count too */
    path(d, sizeof d, "certdir");
    mkdir(d, 0700);
    char in[300];
    snprintf(in, sizeof in, "%s/corp.crt", d);
    FILE *fp = fopen(in, "w");
    i2d_X509_fp(fp, corp.cert);
    fclose(fp);
    const char *dir[] = {d};
    cr_expect_eq(verify_sources(dir, 1, &corp), X509_V_OK);
    tc_free_ca(&corp);
    world_end();
}

/* A CA appended to the system bundle without a hash link (Dockerfiles):
 * the relay trusts it like every client of the system store does. */
Test(truststore, system_bundle_file_counts)
{
    world();
    tc_ca app;
    tc_make_ca(&app, "Appended Root");
    char bundle[256];
    path(bundle, sizeof bundle, "ca-certificates.crt");
    cr_assert_not_null(kf_trust_system_bundle());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s %s", kf_trust_system_bundle(), bundle);
    cr_assert_eq(system(cmd), 0);
    tc_write_pem(bundle, &app.cert, 1, 1);
    truststore_set_system_bundle(bundle);
    cr_expect_eq(verify_sources(NULL, 0, &app), X509_V_OK);
    tc_free_ca(&app);
    world_end();
}

Test(truststore, kimifix_ca_never_trusted)
{
    world();
    tc_ca corp;
    tc_make_ca(&corp, "Corp CA");
    char f[256], d[256], link[300];
    path(f, sizeof f, "user-bundle.pem");
    X509 *both[2] = {kca.cert, corp.cert};
    tc_write_pem(f, both, 2, 0); /* the user's SSL_CERT_FILE also holds the kimifix CA */
    const char *src[] = {f};
    cr_expect_eq(verify_sources(src, 1, &corp), X509_V_OK);
    cr_expect_neq(verify_sources(src, 1, &kca), X509_V_OK);
    cr_expect_eq(log_count("holds the kimifix CA: left out"), 1);
    /* a hashed directory that produces it: refused at verification time */
    path(d, sizeof d, "hashed");
    mkdir(d, 0700);
    snprintf(link, sizeof link, "%s/%08lx.0", d, X509_subject_name_hash(kca.cert));
    tc_write_pem(link, &kca.cert, 1, 0);
    snprintf(link, sizeof link, "%s/%08lx.0", d, X509_subject_name_hash(corp.cert));
    tc_write_pem(link, &corp.cert, 1, 0);
    const char *dir[] = {d};
    cr_expect_eq(verify_sources(dir, 1, &corp), X509_V_OK); /* the directory works */
    cr_expect_eq(verify_sources(dir, 1, &kca), X509_V_ERR_CERT_REJECTED);
    tc_free_ca(&corp);
    world_end();
}

Test(truststore, cache_hit_reload_and_refcount)
{
    world();
    tc_ca a, b;
    tc_make_ca(&a, "CA A");
    tc_make_ca(&b, "CA B");
    char f[256];
    path(f, sizeof f, "user.pem");
    tc_write_pem(f, &a.cert, 1, 0);
    const char *src[] = {f};
    ts_stats s0, s1;
    SSL_CTX *c1 = truststore_get(src, 1);
    truststore_stats(&s0);
    SSL_CTX *c2 = truststore_get(src, 1);
    truststore_stats(&s1);
    cr_expect_eq(c1, c2, "unchanged sources: the same store");
    cr_expect_eq(s1.builds, s0.builds);
    cr_expect_eq(s1.hits, s0.hits + 1);
    SSL_CTX_free(c2);
    /* the file changes: a new store on the next lookup; the old one still
     * works for the connection that holds it */
    tc_write_pem(f, &b.cert, 1, 0);
    struct timespec t[2] = {{2000000000, 0}, {2000000000, 0}};
    utimensat(AT_FDCWD, f, t, 0);
    SSL_CTX *c3 = truststore_get(src, 1);
    truststore_stats(&s1);
    cr_expect_neq(c3, c1);
    cr_expect_eq(s1.builds, s0.builds + 1);
    cr_expect_eq(verify_with(c3, &b), X509_V_OK);
    cr_expect_neq(verify_with(c3, &a), X509_V_OK);
    cr_expect_eq(verify_with(c1, &a), X509_V_OK);
    SSL_CTX_free(c1);
    SSL_CTX_free(c3);
    /* the order of the sources does not make another store */
    char g[256];
    path(g, sizeof g, "other.pem");
    tc_write_pem(g, &a.cert, 1, 0);
    const char *ab[] = {f, g}, *ba[] = {g, f, f};
    SSL_CTX *x = truststore_get(ab, 2), *y = truststore_get(ba, 3);
    cr_expect_eq(x, y);
    SSL_CTX_free(x);
    SSL_CTX_free(y);
    tc_free_ca(&a);
    tc_free_ca(&b);
    world_end();
}

Test(truststore, missing_source_skipped_once)
{
    world();
    tc_ca corp;
    tc_make_ca(&corp, "Corp CA");
    char f[256], miss[256], junk[256];
    path(f, sizeof f, "corp.pem");
    path(miss, sizeof miss, "gone.pem");
    path(junk, sizeof junk, "junk.pem");
    tc_write_pem(f, &corp.cert, 1, 0);
    FILE *j = fopen(junk, "w");
    fputs("not a certificate\n", j);
    fclose(j);
    const char *src[] = {miss, f, junk};
    cr_expect_eq(verify_sources(src, 3, &corp), X509_V_OK);
    cr_expect_eq(verify_sources(src, 3, &corp), X509_V_OK);
    cr_expect_eq(log_count("gone.pem: No such file or directory: skipped"), 1);
    cr_expect_eq(log_count("junk.pem: no certificate in it: skipped"), 1);
    char d[2048];
    truststore_describe(d, sizeof d, src, 3);
    cr_expect(strstr(d, "system store (") && strstr(d, "gone.pem (missing)") &&
              strstr(d, "corp.pem,"), "%s", d);
    truststore_verify_error(d, sizeof d, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, src, 1);
    cr_expect(strstr(d, "certificate verification failed: unable to get local issuer "
                        "certificate (trusted: system store ("), "%s", d);
    tc_free_ca(&corp);
    world_end();
}

Test(truststore, lru_bound_keeps_stores_in_use)
{
    world();
    tc_ca corp;
    tc_make_ca(&corp, "Corp CA");
    SSL_CTX *first = NULL;
    for (int i = 0; i < TS_CACHE_MAX + 3; i++) {
        char f[256], name[32];
        snprintf(name, sizeof name, "s%d.pem", i);
        path(f, sizeof f, name);
        tc_write_pem(f, &corp.cert, 1, 0);
        const char *src[] = {f};
        SSL_CTX *c = truststore_get(src, 1);
        if (i == 0)
            first = c; /* held, like a long connection */
        else
            SSL_CTX_free(c);
    }
    ts_stats s;
    truststore_stats(&s);
    cr_expect_eq(s.entries, TS_CACHE_MAX);
    cr_expect_eq(s.evictions, 3);
    cr_expect_eq(verify_with(first, &corp), X509_V_OK); /* evicted, still alive */
    SSL_CTX_free(first);
    tc_free_ca(&corp);
    world_end();
}

Test(truststore, upstream_ca_replaces_everything)
{
    world();
    tc_ca test, corp;
    tc_make_ca(&test, "Test upstream CA");
    tc_make_ca(&corp, "Corp CA");
    char t[256], f[256];
    path(t, sizeof t, "upstream-ca.pem");
    path(f, sizeof f, "corp.pem");
    tc_write_pem(t, &test.cert, 1, 0);
    tc_write_pem(f, &corp.cert, 1, 0);
    setenv("KIMIFIX_UPSTREAM_CA", t, 1);
    cr_assert_eq(truststore_init(datadir), 0);
    const char *src[] = {f};
    cr_expect_eq(verify_sources(src, 1, &test), X509_V_OK);
    cr_expect_neq(verify_sources(src, 1, &corp), X509_V_OK);
    char d[512];
    truststore_describe(d, sizeof d, src, 1);
    cr_expect(strstr(d, "KIMIFIX_UPSTREAM_CA"), "%s", d);
    unsetenv("KIMIFIX_UPSTREAM_CA");
    tc_free_ca(&test);
    tc_free_ca(&corp);
    world_end();
}

/* ---- Java key stores ---- */

static int count_cb(void *ud, X509 *x, const char *alias)
{
    (void)x;
    (void)alias;
    ++*(int *)ud;
    return 0;
}

static int keytool_entries(const char *store, int *kimifix)
{
    char cmd[600], line[1024];
    snprintf(cmd, sizeof cmd, "keytool -list -keystore '%s' -storepass changeit 2>&1", store);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int n = 0;
    *kimifix = 0;
    while (fgets(line, sizeof line, p)) {
        n += strstr(line, "trustedCertEntry") != NULL;
        *kimifix += !strncmp(line, "kimifix-local-ca,", 17) && strstr(line, "trustedCertEntry");
    }
    pclose(p);
    return n;
}

#define DEBIAN_JKS "/etc/ssl/certs/java/cacerts"

Test(javatrust, debian_cacerts_and_the_jvm_store)
{
    world();
    cr_assert_eq(access(DEBIAN_JKS, R_OK), 0, "Debian's ca-certificates-java store is missing");
    cr_assert_eq(system("keytool -help >/dev/null 2>&1"), 0, "keytool (openjdk-17-jdk-headless)");
    char why[256], out[4200];
    int n = 0, k;
    cr_assert_gt(javatrust_read(DEBIAN_JKS, NULL, count_cb, &n, why, sizeof why), 0, "%s", why);
    cr_expect_eq(n, keytool_entries(DEBIAN_JKS, &k), "JKS entries vs keytool");
    cr_assert_eq(javatrust_build(datadir, DEBIAN_JKS, NULL, out, sizeof out, why, sizeof why), 0,
                 "%s", why);
    struct stat st;
    cr_assert_eq(stat(out, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0644);
    cr_expect_eq(keytool_entries(out, &k), n + 1);
    cr_expect_eq(k, 1, "the kimifix CA as a trusted certificate entry");
    /* read back (PKCS12, no password): same entries; a store built from it
     * does not grow (the kimifix CA is not added twice) */
    int m = 0;
    cr_expect_eq(javatrust_read(out, NULL, count_cb, &m, why, sizeof why), n + 1);
    char out2[4200];
    cr_assert_eq(javatrust_build(datadir, out, NULL, out2, sizeof out2, why, sizeof why), 0);
    cr_expect_eq(keytool_entries(out2, &k), n + 1);
    /* the name follows the source: an existing store is reused */
    char again[4200];
    cr_assert_eq(javatrust_build(datadir, DEBIAN_JKS, NULL, again, sizeof again, why, sizeof why), 0);
    cr_expect_str_eq(again, out);
    world_end();
}

Test(javatrust, jks_truncations_and_garbage)
{
    world();
    tc_ca a, b;
    tc_make_ca(&a, "A");
    tc_make_ca(&b, "B");
    X509 *certs[2] = {a.cert, b.cert};
    char f[256], why[256];
    path(f, sizeof f, "t.jks");
    long len = tc_write_jks(f, certs, 2, 0);
    int n = 0;
    cr_assert_eq(javatrust_read(f, NULL, count_cb, &n, why, sizeof why), 2);
    for (long cut = 1; cut < len; cut += 7) {
        tc_write_jks(f, certs, 2, cut);
        n = 0;
        int r = javatrust_read(f, NULL, count_cb, &n, why, sizeof why);
        cr_assert(r <= 2 && n <= 2, "cut %ld: %d", cut, r);
    }
    FILE *g = fopen(f, "w");
    fputs("garbage, not a store", g);
    fclose(g);
    cr_expect_eq(javatrust_read(f, NULL, count_cb, &n, why, sizeof why), -1);
    /* a JKS as an upstream trust source */
    tc_write_jks(f, certs, 2, 0);
    const char *src[] = {f};
    cr_expect_eq(verify_sources(src, 1, &b), X509_V_OK);
    tc_free_ca(&a);
    tc_free_ca(&b);
    world_end();
}

/* ---- learning distrust ---- */

Test(distrust, refused_handshake_is_recorded_once)
{
    world();
    tc_ca other;
    tc_make_ca(&other, "The client's private root");
    /* the client trusts only its own root; the relay presents a kimifix leaf */
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), other.cert);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    EVP_PKEY *k = tc_key();
    X509 *leaf = tc_make_leaf(&kca, k, "api.kimi.com");
    long v;
    unsigned long serr;
    cr_assert_eq(tc_handshake(cctx, leaf, k, "api.kimi.com", &v, &serr), 0);
    cr_assert_str_eq(distrust_alert_name(serr) ? distrust_alert_name(serr) : "(none)", "unknown_ca");
    cr_expect_eq(distrust_note(serr, datadir, "/usr/bin/pinned", "c0ffee", "api.kimi.com"), 1);
    cr_expect_eq(kf_distrust_check(datadir, "/usr/bin/pinned", "c0ffee", NULL), 1);
    cr_expect_eq(distrust_note(serr, datadir, "/usr/bin/pinned", "c0ffee", "api.kimi.com"), 1);
    cr_expect_eq(log_count("/usr/bin/pinned does not trust the kimifix CA (TLS alert unknown_ca)"), 1);
    /* no context: logged, nothing recorded */
    cr_expect_eq(distrust_note(serr, datadir, NULL, NULL, "api.kimi.com"), 1);
    cr_expect_eq(log_count("registered no context"), 1);
    /* other failures are not distrust */
    cr_expect_eq(distrust_note(ERR_PACK(ERR_LIB_SSL, 0, SSL_R_WRONG_VERSION_NUMBER), datadir, "/x",
                               "1", "h"), 0);
    const char *cu = distrust_alert_name(ERR_PACK(ERR_LIB_SSL, 0, SSL_AD_REASON_OFFSET +
                                                                    SSL_AD_CERTIFICATE_UNKNOWN));
    cr_expect_str_eq(cu ? cu : "(none)", "certificate_unknown");
    X509_free(leaf);
    EVP_PKEY_free(k);
    SSL_CTX_free(cctx);
    tc_free_ca(&other);
    world_end();
}

/* ---- the context table and relay.sock ---- */

static int call(const char *msg, size_t n, int fd, char *reply, size_t rn)
{
    char why[256];
    int r = kf_ctx_call(rundir, msg, n, fd, 1000, reply, rn, why, sizeof why);
    if (r < 0)
        snprintf(reply, rn, "%s", why);
    return r;
}

static int register_self(int fd, unsigned char id[16])
{
    char msg[KF_CTXMSG_MAX], reply[KF_CTXMSG_REPLY_MAX];
    int want;
    setenv("KIMIFIX_LOG", "stderr", 1);
    ssize_t n = kf_ctxmsg_self(msg, sizeof msg, NULL, &want);
    cr_assert_gt(n, 0);
    if (fd >= 0) { /* a client handing over a log fd (contract A's `log fd`) */
        memcpy(msg + n - 1, "log fd\n\n", 8);
        n += 7;
    }
    int r = call(msg, (size_t)n, fd, reply, sizeof reply);
    cr_assert_eq(r, 1, "%s", reply);
    return kf_ctx_id_parse((kf_str){reply, strlen(reply)}, id);
}

static void ctx_world(void)
{
    world();
    for (int i = 0; kf_trust_var_name(i); i++) { /* this machine's own settings */
        char o[64];
        unsetenv(kf_trust_var_name(i));
        snprintf(o, sizeof o, "KIMIFIX_ORIG_%s", kf_trust_var_name(i));
        unsetenv(o);
    }
    setenv("SSL_CERT_FILE", "/corp/ca.pem", 1);
    cr_assert_eq(ctxtab_start(rundir, datadir), 0);
}

static void ctx_world_end(void)
{
    ctxtab_stop();
    char sock[256];
    snprintf(sock, sizeof sock, "%s/relay.sock", rundir);
    cr_expect_neq(access(sock, F_OK), 0, "relay.sock left behind");
    world_end();
}

Test(ctxtab, register_lookup_duplicates_fd)
{
    ctx_world();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    unsigned char id[16], id2[16], id3[16];
    cr_assert_eq(register_self(p[1], id), 0);
    relay_ctx *c = ctxtab_get(id);
    cr_assert_not_null(c);
    cr_expect_eq(c->ntrust, 1);
    cr_expect_str_eq(c->trust[0], "/corp/ca.pem");
    char exe[4096];
    ssize_t en = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[en > 0 ? en : 0] = 0;
    cr_expect_str_eq(c->exe, exe);
    cr_expect_not_null(c->buildid);
    cr_expect_eq(c->level, KF_LOG_INFO);
    cr_assert_geq(c->log_fd, 0, "the SCM_RIGHTS fd");
    cr_assert_eq(write(c->log_fd, "via relay\n", 10), 10);
    char got[32] = "";
    cr_expect_eq(read(p[0], got, sizeof got), 10);
    cr_expect_eq(memcmp(got, "via relay\n", 10), 0);
    SSL_CTX *sc = ctxtab_upstream_ctx(c);
    cr_expect_not_null(sc);
    SSL_CTX_free(sc);
    ctxtab_put(c);
    /* A handed-over fd lives as long as the process that sent it
     * (ctxlog.c): contexts with one are never shared ... */
    cr_assert_eq(register_self(p[1], id2), 0);
    cr_expect_neq(memcmp(id, id2, 16), 0);
    cr_expect_eq(ctxtab_count(), 2);
    /* ... those without are: the same registration, the same context */
    unsigned char id4[16];
    cr_assert_eq(register_self(-1, id3), 0);
    cr_assert_eq(register_self(-1, id4), 0);
    cr_expect_eq(memcmp(id3, id4, 16), 0);
    cr_expect_eq(ctxtab_count(), 3);
    /* other trust: another context */
    setenv("SSL_CERT_FILE", "/other/ca.pem", 1);
    cr_assert_eq(register_self(-1, id4), 0);
    cr_expect_neq(memcmp(id3, id4, 16), 0);
    cr_expect_eq(ctxtab_count(), 4);
    unsigned char unknown[16] = {0};
    cr_expect_null(ctxtab_get(unknown));
    close(p[1]);
    ctx_world_end();
}

Test(ctxtab, bad_requests_answered_err)
{
    ctx_world();
    char reply[KF_CTXMSG_REPLY_MAX];
    static const char bad[] = "kfctx 1\nrules a\nrules b\n\n";
    cr_expect_eq(call(bad, sizeof bad - 1, -1, reply, sizeof reply), 0);
    cr_expect_str_eq(reply, "repeated key");
    static const char nofd[] = "kfctx 1\nlog fd\n\n";
    cr_expect_eq(call(nofd, sizeof nofd - 1, -1, reply, sizeof reply), 0);
    cr_expect_str_eq(reply, "log fd without an fd");
    static const char java[] = "kfjava 1\n\n";
    cr_expect_eq(call(java, sizeof java - 1, -1, reply, sizeof reply), 0);
    cr_expect_eq(ctxtab_count(), 0);
    ctx_world_end();
}

static int raw_connect(void)
{
    struct sockaddr_un sa;
    int dirfd, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int len = kf_ctx_sockaddr(rundir, &sa, &dirfd);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, (socklen_t)len), 0);
    if (dirfd >= 0)
        close(dirfd);
    return fd;
}

/* Clients that connect and say nothing (^Z mid-request) delay nobody and
 * are closed at their deadline; beyond CTX_PENDING_MAX, "busy". */
Test(ctxtab, stalled_clients_do_not_block_others, .timeout = 30)
{
    ctx_world();
    int stalled[CTX_PENDING_MAX];
    for (int i = 0; i < CTX_PENDING_MAX - 1; i++)
        stalled[i] = raw_connect();
    unsigned char id[16];
    cr_assert_eq(register_self(-1, id), 0);
    stalled[CTX_PENDING_MAX - 1] = raw_connect();
    /* every slot is taken now: the next one is told so at once */
    char reply[KF_CTXMSG_REPLY_MAX];
    static const char ok[] = "kfctx 1\nexe /bin/x\n\n";
    int r = call(ok, sizeof ok - 1, -1, reply, sizeof reply);
    cr_expect(r == 0 && !strcmp(reply, "busy"), "%d %s", r, reply);
    /* the stalled ones are closed by the relay (hang guard: 10 s) */
    for (int i = 0; i < CTX_PENDING_MAX; i++) {
        struct pollfd pf = {.fd = stalled[i], .events = POLLIN};
        cr_expect_eq(poll(&pf, 1, 10000), 1);
        char b;
        cr_expect_eq(read(stalled[i], &b, 1), 0);
        close(stalled[i]);
    }
    r = call(ok, sizeof ok - 1, -1, reply, sizeof reply);
    cr_expect_eq(r, 1, "%s", reply);
    ctx_world_end();
}

Test(ctxtab, expiry_closes_log_fd_keeps_referenced)
{
    ctx_world();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    unsigned char a[16], b[16];
    cr_assert_eq(register_self(p[1], a), 0);
    close(p[1]); /* the context holds the only write end now */
    setenv("SSL_CERT_FILE", "/other/ca.pem", 1);
    cr_assert_eq(register_self(-1, b), 0);
    relay_ctx *held = ctxtab_get(b);
    cr_assert_not_null(held);
    cr_expect_eq(ctxtab_sweep(ctxtab_now() + CTX_EXPIRE_S - 5), 0); /* not yet */
    cr_expect_eq(ctxtab_sweep(ctxtab_now() + CTX_EXPIRE_S + 1), 1); /* a goes, b is held */
    cr_expect_null(ctxtab_get(a));
    char c;
    cr_expect_eq(read(p[0], &c, 1), 0, "the expired context's log fd was closed");
    ctxtab_put(held);
    cr_expect_eq(ctxtab_sweep(ctxtab_now() + CTX_EXPIRE_S + 1), 1);
    cr_expect_eq(ctxtab_count(), 0);
    close(p[0]);
    ctx_world_end();
}

/* The relay holds a client's stderr only while the client lives: a
 * reader waiting for the pipe's end ($(...)) is not kept waiting until the
 * context expires. The child registers with the write end and exits; the
 * serving thread sees its pidfd and closes the relay's copy. */
Test(ctxtab, log_fd_closed_when_its_process_exits, .timeout = 60)
{
    ctx_world();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        char msg[] = "kfctx 1\nlog fd\n\n", reply[KF_CTXMSG_REPLY_MAX];
        close(p[0]);
        _exit(call(msg, sizeof msg - 1, p[1], reply, sizeof reply) == 1 ? 0 : 1);
    }
    close(p[1]); /* the child's copy, then only the relay's */
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child registered");
    cr_expect_eq(ctxtab_count(), 1, "the context itself stays (it expires as before)");
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    cr_expect_eq(poll(&pf, 1, 30000), 1, "hang guard: the pipe's end comes");
    char c;
    cr_expect_eq(read(p[0], &c, 1), 0, "the relay closed the exited client's log fd");
    close(p[0]);
    ctx_world_end();
}

/* Without a pid to tie it to (in-process callers), a passed fd is not
 * kept: the context is registered, its lines stay in the relay's log. */
Test(ctxtab, log_fd_without_pid_not_kept, .timeout = 60)
{
    ctx_world();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    char msg[] = "kfctx 1\nlog fd\n\n", reply[KF_CTXMSG_REPLY_MAX];
    int handed = dup(p[1]); /* the table owns what it is given */
    size_t n = ctxtab_answer(msg, sizeof msg - 1, handed, reply, sizeof reply);
    cr_assert_gt(n, 3);
    cr_expect_eq(memcmp(reply, "ok ", 3), 0, "%s", reply);
    close(p[1]); /* ours; the table's copy, if it kept one, would hold the pipe */
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 30000), 1, "hang guard: the pipe's end comes");
    char c;
    cr_expect_eq(read(p[0], &c, 1), 0, "the relay kept no copy of the write end");
    close(p[0]);
    ctx_world_end();
}

Test(ctxtab, capped_least_recently_used_goes)
{
    ctx_world();
    char text[128], why[128];
    unsigned char id[16], first[16];
    for (int i = 0; i < CTX_MAX + 5; i++) {
        int n = snprintf(text, sizeof text, "kfctx 1\nexe /bin/p%d\n\n", i);
        kf_ctxmsg m;
        const char *w;
        cr_assert_eq(kf_ctxmsg_parse(text, (size_t)n, &m, &w), n);
        cr_assert_eq(ctxtab_register(&m, text, (size_t)n, -1, id, why, sizeof why), 0, "%s", why);
        if (i == 0)
            memcpy(first, id, 16);
    }
    cr_expect_eq(ctxtab_count(), CTX_MAX);
    ctx_world_end();
}

Test(ctxtab, java_store_on_request)
{
    ctx_world();
    cr_assert_eq(access(DEBIAN_JKS, R_OK), 0);
    static const char req[] = "kfjava 1\ncacerts " DEBIAN_JKS "\n\n";
    char reply[KF_CTXMSG_REPLY_MAX];
    cr_assert_eq(call(req, sizeof req - 1, -1, reply, sizeof reply), 1, "%s", reply);
    cr_expect_eq(access(reply, R_OK), 0, "%s", reply);
    char want[4200];
    cr_assert_eq(kf_java_store_path(datadir, DEBIAN_JKS, want, sizeof want), 0);
    cr_expect_str_eq(reply, want);
    ctx_world_end();
}

/* Another user's process is closed without an answer (SO_PEERCRED). */
Test(ctxtab, other_uid_refused)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to run a client as another uid");
    ctx_world();
    chmod(tmpd, 0755);
    chmod(rundir, 0755);
    char sock[256];
    snprintf(sock, sizeof sock, "%s/relay.sock", rundir);
    chmod(sock, 0666);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) || setuid(65534))
            _exit(3);
        char reply[KF_CTXMSG_REPLY_MAX];
        static const char ok[] = "kfctx 1\nexe /bin/x\n\n";
        _exit(call(ok, sizeof ok - 1, -1, reply, sizeof reply) == -1 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cr_expect_eq(log_count("a process of another user connected: closed"), 1);
    cr_expect_eq(ctxtab_count(), 0);
    ctx_world_end();
}

