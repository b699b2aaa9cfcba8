/* test_steer.c - the shim's relay steering (src/hooks/steer.c) under a real
 * program (steerclient) with LD_PRELOAD=libkimifix.so.
 *
 * A fake relay (a loopback listener that records bytes) and a fake upstream
 * stand in for the real ones; a private XDG_RUNTIME_DIR holds a relay.state
 * naming the fake relay (pid: this test process, alive) and a private
 * XDG_DATA_HOME a kimifix CA file, so nothing of the tester's is touched and
 * no real relay is ever started. `connect-to api.kimi.com:443 127.0.0.1:UP`
 * gives the name an address without DNS: the original destination the
 * preamble must carry is 127.0.0.1:UP.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kf_paths.h"
#include "kf_proxy.h"

#define LIB KF_TEST_BUILD "/libkimifix.so"
#define CLIENT KF_TEST_BUILD "/tests/shim/steerclient"
#define CA_TEXT "-----BEGIN CERTIFICATE-----\nKIMIFIX-TEST-CA\n-----END CERTIFICATE-----\n"

/* ---- a listener that records each connection's bytes ---- */

struct rec {
    int lfd, port, n;
    pthread_t t;
    char data[8][2048];
    size_t len[8];
};

static void *rec_loop(void *p)
{
    struct rec *r = p;
    for (;;) {
        int fd = accept(r->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        int i = r->n < 8 ? r->n : 7;
        ssize_t k;
        while ((k = read(fd, r->data[i] + r->len[i], sizeof r->data[i] - 1 - r->len[i])) > 0)
            r->len[i] += (size_t)k;
        close(fd);
        __atomic_add_fetch(&r->n, 1, __ATOMIC_SEQ_CST);
    }
}

static void rec_start(struct rec *r)
{
    memset(r, 0, sizeof *r);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(bind(r->lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(r->lfd, 16) == 0);
    getsockname(r->lfd, (struct sockaddr *)&a, &l);
    r->port = ntohs(a.sin_port);
    pthread_create(&r->t, NULL, rec_loop, r);
}

static void rec_wait(struct rec *r, int n)
{
    for (int i = 0; i < 300 && __atomic_load_n(&r->n, __ATOMIC_SEQ_CST) < n; i++)
        usleep(10000);
}

static void rec_stop(struct rec *r)
{
    shutdown(r->lfd, SHUT_RDWR);
    close(r->lfd);
    pthread_join(r->t, NULL);
}

/* A port nothing listens on. */
static int dead_port(void)
{
    struct rec r;
    rec_start(&r);
    int p = r.port;
    rec_stop(&r);
    return p;
}

/* ---- the private world of one test ---- */

struct world {
    char dir[64], run[128], data[128], rules[128], out[128], err[4096];
    unsigned char token[KF_PROXY_TOKEN_LEN];
    int status;
};

static void mkdir_p(const char *p)
{
    cr_assert(mkdir(p, 0700) == 0 || access(p, F_OK) == 0, "%s", p);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* relay_port < 0: no relay.state at all. */
static void world_init(struct world *w, int relay_port, int up_port)
{
    char p[256];
    snprintf(w->dir, sizeof w->dir, "/tmp/kfsteer.XXXXXX");
    cr_assert(mkdtemp(w->dir));
    snprintf(w->run, sizeof w->run, "%s/run", w->dir);
    snprintf(w->data, sizeof w->data, "%s/data", w->dir);
    mkdir_p(w->run);
    mkdir_p(w->data);
    snprintf(p, sizeof p, "%s/kimifix", w->data);
    mkdir_p(p);
    snprintf(p, sizeof p, "%s/kimifix/ca.pem", w->data);
    put(p, CA_TEXT);
    snprintf(p, sizeof p, "%s/kimifix/ca-bundle.pem", w->data);
    put(p, "SYSTEM CAS\n" CA_TEXT);
    for (unsigned i = 0; i < sizeof w->token; i++)
        w->token[i] = (unsigned char)(0xA0 + i);
    if (relay_port >= 0) {
        snprintf(p, sizeof p, "%s/kimifix", w->run);
        mkdir_p(p);
        kf_relay_state st = { .port = (unsigned)relay_port, .pid = getpid(), .started = 1 };
        memcpy(st.token, w->token, sizeof st.token);
        cr_assert(kf_relay_state_write(p, &st) == 0);
    }
    snprintf(w->rules, sizeof w->rules, "%s/rules", w->dir);
    snprintf(p, sizeof p, "connect-to api.kimi.com:443 127.0.0.1:%d\n", up_port);
    put(w->rules, p);
}

static void world_free(struct world *w)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", w->dir);
    cr_expect_eq(system(cmd), 0);
}

/* Run steerclient api.kimi.com 443 N [nonblock] with mode (NULL: unset)
 * and optionally NODE_EXTRA_CA_CERTS preset by "the user". */
static void run(struct world *w, const char *mode, int n, int nonblock, const char *user_node_ca)
{
    char errp[160], outp[160], num[16];
    snprintf(errp, sizeof errp, "%s/stderr", w->dir);
    snprintf(outp, sizeof outp, "%s/stdout", w->dir);
    snprintf(num, sizeof num, "%d", n);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        setenv("LD_PRELOAD", LIB, 1);
        setenv("KIMIFIX_RULES", w->rules, 1);
        unsetenv("KIMIFIX_LOG"); /* default: warnings only, to stderr */
        if (mode)
            setenv("KIMIFIX_MODE", mode, 1);
        else
            unsetenv("KIMIFIX_MODE");
        setenv("HOME", w->dir, 1);
        setenv("XDG_RUNTIME_DIR", w->run, 1);
        setenv("XDG_DATA_HOME", w->data, 1);
        unsetenv("SSL_CERT_FILE");
        unsetenv("REQUESTS_CA_BUNDLE");
        if (user_node_ca)
            setenv("NODE_EXTRA_CA_CERTS", user_node_ca, 1);
        else
            unsetenv("NODE_EXTRA_CA_CERTS");
        char *argv[] = { CLIENT, "api.kimi.com", "443", num, nonblock ? "nonblock" : NULL, NULL };
        execv(CLIENT, argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    w->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *f = fopen(errp, "r");
    size_t k = f ? fread(w->err, 1, sizeof w->err - 1, f) : 0;
    w->err[k] = 0;
    if (f)
        fclose(f);
    struct stat so;
    cr_expect(stat(outp, &so) == 0 && so.st_size == 0, "the client's stdout is not empty");
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The bytes one steered connection delivered: a PROXY v2 preamble naming
 * the original destination, the name and the token, then the client's. */
static void expect_preamble(struct world *w, const struct rec *relay, int i, int up_port)
{
    kf_proxy_info pi;
    ssize_t hl = kf_proxy_parse(relay->data[i], relay->len[i], &pi);
    cr_assert_gt(hl, 0, "connection %d: no PROXY v2 preamble (%zu bytes)", i, relay->len[i]);
    cr_expect_eq(pi.local, 0);
    cr_expect_eq(pi.family, AF_INET);
    const struct sockaddr_in *d = (const struct sockaddr_in *)&pi.dst;
    cr_expect_eq(ntohs(d->sin_port), up_port, "original port");
    cr_expect_eq(ntohl(d->sin_addr.s_addr), INADDR_LOOPBACK, "original address");
    cr_expect_str_eq(pi.authority, "api.kimi.com");
    cr_expect(pi.has_token && !memcmp(pi.token, w->token, sizeof w->token), "token");
    char want[32];
    snprintf(want, sizeof want, "hello %d\n", i);
    cr_expect_eq((size_t)(relay->len[i] - (size_t)hl), strlen(want));
    cr_expect(!memcmp(relay->data[i] + hl, want, strlen(want)), "client bytes after the preamble");
}

TestSuite(steer, .timeout = 60);

/* KIMIFIX_MODE=relay: every connection to a rule host goes to the relay,
 * with the preamble; getpeername() still shows the original destination. */
static void steered(int nonblock)
{
    struct rec relay, up;
    rec_start(&relay);
    rec_start(&up);
    struct world w;
    world_init(&w, relay.port, up.port);
    run(&w, "relay", 2, nonblock, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&relay, 2);
    cr_expect_eq(relay.n, 2, "relay saw %d connection(s)\n%s", relay.n, w.err);
    cr_expect_eq(up.n, 0, "upstream reached directly");
    for (int i = 0; i < relay.n && i < 2; i++)
        expect_preamble(&w, &relay, i, up.port);
    char peer[64];
    snprintf(peer, sizeof peer, "peer=127.0.0.1:%d ", up.port);
    cr_expect_eq(count(w.err, peer), 2, "getpeername: want %s\n%s", peer, w.err);
    cr_expect_eq(count(w.err, "kimifix["), 0, "unexpected log lines:\n%s", w.err);
    rec_stop(&relay);
    rec_stop(&up);
    world_free(&w);
}

Test(steer, relay_mode_blocking) { steered(0); }
Test(steer, relay_mode_nonblocking_connect_returns_0) { steered(1); }

/* The relay's port is dead: the client goes direct (same socket) and the
 * log says why once, not per connection. */
Test(steer, relay_down_goes_direct_one_log_line)
{
    struct rec up;
    rec_start(&up);
    struct world w;
    world_init(&w, dead_port(), up.port);
    run(&w, "relay", 3, 1, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&up, 3);
    cr_expect_eq(up.n, 3, "%s", w.err);
    for (int i = 0; i < up.n && i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "hello %d\n", i);
        cr_expect_str_eq(up.data[i], want, "direct connection %d carried a preamble?", i);
    }
    cr_expect_eq(count(w.err, "relay: cannot reach it"), 1, "%s", w.err);
    cr_expect_eq(count(w.err, "kimifix["), 1, "%s", w.err);
    rec_stop(&up);
    world_free(&w);
}

/* KIMIFIX_MODE=inprocess never steers, even with a relay running. */
Test(steer, inprocess_never_steers)
{
    struct rec relay, up;
    rec_start(&relay);
    rec_start(&up);
    struct world w;
    world_init(&w, relay.port, up.port);
    run(&w, "inprocess", 2, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&up, 2);
    cr_expect_eq(up.n, 2);
    cr_expect_eq(relay.n, 0, "steered in inprocess mode");
    cr_expect(strstr(w.err, "trust NODE_EXTRA_CA_CERTS=\n"), "trust set in inprocess mode:\n%s", w.err);
    rec_stop(&relay);
    rec_stop(&up);
    world_free(&w);
}

/* Auto mode, a program with no TLS library the hooks see (like a static
 * TLS build): its TLS connection to a rule host is steered. */
Test(steer, auto_mode_no_visible_tls_is_steered)
{
    struct rec relay, up;
    rec_start(&relay);
    rec_start(&up);
    struct world w;
    world_init(&w, relay.port, up.port);
    run(&w, NULL, 1, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&relay, 1);
    cr_expect_eq(relay.n, 1, "%s", w.err);
    cr_expect_eq(up.n, 0);
    if (relay.n)
        expect_preamble(&w, &relay, 0, up.port);
    rec_stop(&relay);
    rec_stop(&up);
    world_free(&w);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static const char *var(const char *err, const char *name, char *out, size_t n)
{
    char key[64];
    snprintf(key, sizeof key, "trust %s=", name);
    const char *p = strstr(err, key);
    if (!p)
        return NULL;
    p += strlen(key);
    snprintf(out, n, "%.*s", (int)strcspn(p, "\n"), p);
    return out;
}

/* The constructor sets the trust variables before main: unset ones point
 * at the kimifix CA files; a user's NODE_EXTRA_CA_CERTS is combined with
 * ours into the runtime dir. */
Test(steer, trust_variables_set_before_main)
{
    struct rec relay;
    rec_start(&relay);
    struct world w;
    world_init(&w, relay.port, dead_port());
    char v[512], user[160];
    run(&w, "relay", 0, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    cr_assert(var(w.err, "NODE_EXTRA_CA_CERTS", v, sizeof v), "%s", w.err);
    const char *text = slurp(v);
    cr_expect(text && strstr(text, "KIMIFIX-TEST-CA"), "NODE_EXTRA_CA_CERTS=%s: no kimifix CA", v);
    cr_assert(var(w.err, "SSL_CERT_FILE", v, sizeof v));
    text = slurp(v);
    cr_expect(text && strstr(text, "SYSTEM CAS") && strstr(text, "KIMIFIX-TEST-CA"), "SSL_CERT_FILE=%s", v);
    cr_assert(var(w.err, "REQUESTS_CA_BUNDLE", v, sizeof v));
    cr_expect(v[0], "REQUESTS_CA_BUNDLE unset");

    snprintf(user, sizeof user, "%s/user-ca.pem", w.dir);
    put(user, "USER-CA\n");
    run(&w, "relay", 0, 0, user);
    cr_assert(var(w.err, "NODE_EXTRA_CA_CERTS", v, sizeof v), "%s", w.err);
    cr_expect(!strncmp(v, w.run, strlen(w.run)), "combined file %s not in the runtime dir", v);
    text = slurp(v);
    cr_expect(text && strstr(text, "USER-CA") && strstr(text, "KIMIFIX-TEST-CA"),
              "combined %s: %s", v, text ? text : "(unreadable)");
    rec_stop(&relay);
    world_free(&w);
}
