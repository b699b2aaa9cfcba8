/* test_trust_shim.c - the shim's side (src/hooks/steer_ctx.c) against the
 * relay's real context server, in one process: registration once per
 * process and again when the relay changed, failure without a relay,
 * learned distrust, and Java: libjli.so loaded (as in a JVM), the trust
 * store requested from the relay, JAVA_TOOL_OPTIONS combined with the
 * user's, and a real Java 17 HttpClient (single-file source launch) that
 * then accepts a certificate of the kimifix CA and, without it, refuses.
 * steer_ctx.c is linked directly; kf_shim_warn_once() is a stand-in. */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>

#include "ctxtab.h"
#include "kf_distrust.h"
#include "kf_log.h"
#include "kf_progid.h"
#include "kf_shim.h"
#include "kf_trust.h"
#include "steer_ctx.h"
#include "testcerts.h"
#include "truststore.h"

#define JDK "/usr/lib/jvm/java-17-openjdk-amd64"
#define PROBE KF_TEST_SRC "/tests/e2e/clients/HttpProbe.java"

static char tmpd[64], datadir[4096], rundir[4096], logp[128];
static tc_ca kca;
static int warnings;

/* The shim's per-thread lock set (shim.c; kf_lock in steer_ctx.c). */
__thread unsigned kf_tl_held __attribute__((tls_model("initial-exec")));

/* The shim's one-time warnings (shim.c), counted. */
void kf_shim_warn_once(const char *key, const char *fmt, ...)
{
    (void)key;
    warnings++;
    va_list ap;
    va_start(ap, fmt);
    kf_vlog(KF_LOG_WARN, fmt, ap);
    va_end(ap);
}

static int ensure_calls;
static int ensure_ok(kf_relay_state *st, char *why, size_t wn)
{
    (void)why;
    (void)wn;
    ensure_calls++;
    memset(st, 0, sizeof *st);
    st->pid = getpid();
    return 0;
}

static void world(int with_relay)
{
    snprintf(tmpd, sizeof tmpd, "/tmp/kftrust-shim.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpd));
    snprintf(rundir, sizeof rundir, "%s/run", tmpd);
    snprintf(logp, sizeof logp, "%s/log", tmpd);
    mkdir(rundir, 0700);
    setenv("XDG_RUNTIME_DIR", rundir, 1);
    char x[128];
    snprintf(x, sizeof x, "%s/data", tmpd);
    setenv("XDG_DATA_HOME", x, 1);
    char rd[4096], dd[4096];
    cr_assert_eq(kf_runtime_dir(rd, sizeof rd, 1), 0);
    cr_assert_eq(kf_data_dir(dd, sizeof dd, 1), 0);
    snprintf(rundir, sizeof rundir, "%s", rd);
    snprintf(datadir, sizeof datadir, "%s", dd);
    tc_make_ca(&kca, "kimifix local CA (test)");
    char ca[4200];
    snprintf(ca, sizeof ca, "%s/ca.pem", datadir);
    tc_write_pem(ca, &kca.cert, 1, 0);
    for (int i = 0; kf_trust_var_name(i); i++)
        unsetenv(kf_trust_var_name(i));
    unsetenv("KIMIFIX_UPSTREAM_CA");
    setenv("KIMIFIX_LOG", "off", 1);
    kf_log_open(logp);
    kf_log_set_level(KF_LOG_DEBUG);
    warnings = 0;
    if (with_relay)
        cr_assert_eq(ctxtab_start(rundir, datadir), 0);
}

static void world_end(void)
{
    ctxtab_stop();
    truststore_shutdown();
    tc_free_ca(&kca);
    kf_log_close();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpd);
    cr_expect_eq(system(cmd), 0);
}

Test(shim_ctx, registers_once_again_when_the_relay_changed)
{
    world(1);
    setenv("SSL_CERT_FILE", "/corp/ca.pem", 1);
    kf_relay_state st = {.pid = getpid(), .started = 100};
    unsigned char a[16], b[16], c[16];
    cr_assert_eq(kf_steer_ctx_id(&st, a), 1);
    cr_assert_eq(kf_steer_ctx_id(&st, b), 1);
    cr_expect_eq(memcmp(a, b, 16), 0);
    cr_expect_eq(ctxtab_count(), 1);
    relay_ctx *x = ctxtab_get(a);
    cr_assert_not_null(x);
    cr_expect_str_eq(x->trust[0], "/corp/ca.pem");
    ctxtab_put(x);
    /* a new relay (other start time): register again with it */
    ctxtab_stop();
    cr_assert_eq(ctxtab_start(rundir, datadir), 0);
    st.started = 200;
    cr_assert_eq(kf_steer_ctx_id(&st, c), 1);
    x = ctxtab_get(c);
    cr_expect_not_null(x, "the id was registered with the new relay");
    ctxtab_put(x);
    cr_expect_eq(warnings, 0);
    world_end();
}

/* A relay without a context server (older, or it could not start one):
 * its defaults, quietly; not retried within 10 s. */
Test(shim_ctx, no_context_server_quiet)
{
    world(0);
    kf_relay_state st = {.pid = getpid(), .started = 300};
    unsigned char id[16];
    cr_expect_eq(kf_steer_ctx_id(&st, id), 0);
    cr_expect_eq(kf_steer_ctx_id(&st, id), 0);
    cr_expect_eq(warnings, 0);
    world_end();
}

/* A context server that does not answer in time: one warning. */
Test(shim_ctx, silent_context_server_one_line, .timeout = 30)
{
    world(0);
    struct sockaddr_un sa;
    int dirfd, l = socket(AF_UNIX, SOCK_STREAM, 0);
    int len = kf_ctx_sockaddr(rundir, &sa, &dirfd);
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, (socklen_t)len), 0);
    cr_assert_eq(listen(l, 4), 0); /* accepts (the kernel does), never answers */
    kf_relay_state st = {.pid = getpid(), .started = 400};
    unsigned char id[16];
    cr_expect_eq(kf_steer_ctx_id(&st, id), 0);
    cr_expect_eq(kf_steer_ctx_id(&st, id), 0);
    cr_expect_eq(warnings, 1);
    close(l);
    world_end();
}

/* A signal handler that interrupts the registration (the thread waits for
 * the relay's answer inside the context lock) sees the shim re-entered, so
 * its own connect() goes direct (steer.c) instead of waiting for that lock
 * on the same thread forever. */
static volatile sig_atomic_t handler_ran, handler_saw_reentered;
static void on_usr1(int sig)
{
    (void)sig;
    handler_saw_reentered = kf_reentered();
    handler_ran = 1;
}

struct sig_server {
    int l;
    pthread_t client;
};

static void *sig_serve(void *arg)
{
    struct sig_server *s = arg;
    int c = accept(s->l, NULL, NULL);
    char buf[KF_CTXMSG_MAX];
    size_t n = 0;
    while (c >= 0 && n < sizeof buf) { /* the whole request: it ends with an empty line */
        ssize_t r = read(c, buf + n, sizeof buf - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n >= 2 && buf[n - 1] == '\n' && buf[n - 2] == '\n')
            break;
    }
    pthread_kill(s->client, SIGUSR1); /* the client now waits for the reply */
    while (!handler_ran)
        sched_yield(); /* hang guard: the test's timeout */
    static const char reply[] = "ok 00112233445566778899aabbccddeeff\n";
    ssize_t w = c >= 0 ? write(c, reply, sizeof reply - 1) : -1;
    (void)w; /* the client's verdict says what happened */
    if (c >= 0)
        close(c);
    return NULL;
}

Test(shim_ctx, signal_during_registration_sees_reentered, .timeout = 60)
{
    world(0);
    struct sigaction sa_ = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa_, NULL);
    struct sockaddr_un sa;
    int dirfd;
    struct sig_server s = {.l = socket(AF_UNIX, SOCK_STREAM, 0), .client = pthread_self()};
    int len = kf_ctx_sockaddr(rundir, &sa, &dirfd);
    cr_assert_eq(bind(s.l, (struct sockaddr *)&sa, (socklen_t)len), 0);
    cr_assert_eq(listen(s.l, 4), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, sig_serve, &s), 0);
    kf_relay_state st = {.pid = getpid(), .started = 500};
    unsigned char id[16];
    int ok = kf_steer_ctx_id(&st, id);
    pthread_join(th, NULL);
    cr_expect_eq(handler_ran, 1);
    cr_expect_eq(handler_saw_reentered, 1, "a handler inside the registration must see kf_reentered()");
    cr_expect_eq(ok, 1, "an interrupted wait goes on (EINTR is not a failure)");
    cr_expect_eq(kf_reentered(), 0, "the lock is released after the registration");
    close(s.l);
    world_end();
}

/* Each test is its own process: the first answer is not cached yet. */
Test(shim_ctx, learned_distrust)
{
    world(0);
    char exe[4096], id[KF_BUILDID_MAX];
    cr_assert_eq(kf_progid_self(exe, sizeof exe, id, sizeof id), 0);
    cr_assert_eq(kf_distrust_record(datadir, exe, id, "unknown_ca", "api.kimi.com"), 1);
    cr_expect_eq(kf_steer_ctx_distrusted(), 1);
    cr_expect_eq(kf_steer_ctx_distrusted(), 1);
    cr_expect_eq(warnings, 1);
    world_end();
}

Test(shim_ctx, no_distrust_learned)
{
    world(0);
    char exe[4096], id[KF_BUILDID_MAX];
    cr_assert_eq(kf_progid_self(exe, sizeof exe, id, sizeof id), 0);
    cr_assert_eq(kf_distrust_record(datadir, exe, "another-build", "unknown_ca", "h"), 1);
    cr_expect_eq(kf_steer_ctx_distrusted(), 0);
    cr_expect_eq(warnings, 0);
    world_end();
}

/* ---- Java ---- */

static void load_jli(void)
{
    cr_assert_not_null(dlopen(JDK "/lib/libjli.so", RTLD_NOW | RTLD_GLOBAL),
                       "openjdk-17-jdk-headless: %s", dlerror());
}

Test(shim_java, options_combined_with_the_users)
{
    world(1);
    load_jli();
    unsetenv("JDK_JAVA_OPTIONS");
    unsetenv("_JAVA_OPTIONS");
    unsetenv("KIMIFIX_ORIG_JAVA_TOOL_OPTIONS");
    setenv("JAVA_TOOL_OPTIONS", "-Xmx64m", 1);
    ensure_calls = 0;
    cr_assert_eq(kf_steer_ctx_java(ensure_ok), 1);
    cr_expect_eq(ensure_calls, 1, "the store was asked for");
    const char *o = getenv("JAVA_TOOL_OPTIONS");
    cr_assert(o && !strncmp(o, "-Xmx64m -Djavax.net.ssl.trustStore=", 35), "%s", o);
    cr_expect(strstr(o, "/java/trust-") && strstr(o, " -Djavax.net.ssl.trustStoreType=PKCS12"));
    cr_expect_str_eq(getenv("KIMIFIX_ORIG_JAVA_TOOL_OPTIONS"), "-Xmx64m");
    /* a child JVM: already ours, nothing changes */
    char before[4096];
    snprintf(before, sizeof before, "%s", o);
    cr_assert_eq(kf_steer_ctx_java(ensure_ok), 1);
    cr_expect_str_eq(getenv("JAVA_TOOL_OPTIONS"), before);
    /* the store now exists: a new process finds it by name, no request */
    setenv("JAVA_TOOL_OPTIONS", "-Xmx64m", 1);
    ensure_calls = 0;
    cr_assert_eq(kf_steer_ctx_java(ensure_ok), 1);
    cr_expect_eq(ensure_calls, 0);
    /* the user's own store in JDK_JAVA_OPTIONS: ours goes there, built from it */
    setenv("JDK_JAVA_OPTIONS", "-Djavax.net.ssl.trustStore=" JDK "/lib/security/cacerts", 1);
    setenv("JAVA_TOOL_OPTIONS", "", 1);
    cr_assert_eq(kf_steer_ctx_java(ensure_ok), 1);
    o = getenv("JDK_JAVA_OPTIONS");
    cr_expect(strstr(o, "cacerts -Djavax.net.ssl.trustStore="), "%s", o);
    unsetenv("JDK_JAVA_OPTIONS");
    world_end();
}

/* A one-connection HTTPS server presenting a kimifix leaf. */
struct server {
    int lfd, port;
    X509 *leaf;
    EVP_PKEY *key;
    pthread_t t;
};

static void *serve_one(void *arg)
{
    struct server *s = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, s->leaf);
    SSL_CTX_use_PrivateKey(ctx, s->key);
    int fd = accept(s->lfd, NULL, NULL);
    if (fd >= 0) {
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        char buf[4096];
        if (SSL_accept(ssl) == 1 && SSL_read(ssl, buf, sizeof buf) > 0) {
            static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            SSL_write(ssl, r, sizeof r - 1);
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
    }
    SSL_CTX_free(ctx);
    return NULL;
}

static void server_start(struct server *s)
{
    s->key = tc_key();
    s->leaf = tc_make_leaf(&kca, s->key, "api.kimi.com");
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, l), 0);
    listen(s->lfd, 4);
    getsockname(s->lfd, (struct sockaddr *)&a, &l);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->t, NULL, serve_one, s);
}

static void server_stop(struct server *s)
{
    shutdown(s->lfd, SHUT_RDWR);
    close(s->lfd);
    pthread_join(s->t, NULL);
    X509_free(s->leaf);
    EVP_PKEY_free(s->key);
}

/* Run the Java probe; returns its exit status, output in out. */
static int java_probe(int port, const char *tool_opts, char *out, size_t n)
{
    char hosts[256], cmd[2048];
    snprintf(hosts, sizeof hosts, "%s/hosts", tmpd);
    FILE *h = fopen(hosts, "w");
    fputs("127.0.0.1 api.kimi.com\n", h);
    fclose(h);
    snprintf(cmd, sizeof cmd,
             "JAVA_TOOL_OPTIONS='%s -Djdk.net.hosts.file=%s' E2E_URL=https://api.kimi.com:%d/ "
             "E2E_REPEAT=1 " JDK "/bin/java " PROBE " 2>&1",
             tool_opts, hosts, port);
    FILE *p = popen(cmd, "r");
    size_t k = p ? fread(out, 1, n - 1, p) : 0;
    out[k] = 0;
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(shim_java, java17_httpclient_trusts_the_relay_only_with_it, .timeout = 120)
{
    world(1);
    load_jli();
    unsetenv("JDK_JAVA_OPTIONS");
    unsetenv("_JAVA_OPTIONS");
    setenv("JAVA_TOOL_OPTIONS", "-Xshare:auto", 1);
    cr_assert_eq(kf_steer_ctx_java(ensure_ok), 1);
    char opts[4096], out[8192];
    snprintf(opts, sizeof opts, "%s", getenv("JAVA_TOOL_OPTIONS"));
    struct server s;
    server_start(&s);
    int rc = java_probe(s.port, opts, out, sizeof out);
    server_stop(&s);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "status: 200"), "%s", out);
    /* and without the store: the JDK refuses the kimifix CA (PKIX) */
    server_start(&s);
    rc = java_probe(s.port, "-Xshare:auto", out, sizeof out);
    server_stop(&s);
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "PKIX path building failed"), "%s", out);
    world_end();
}
