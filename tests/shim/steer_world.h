/* steer_world.h - the private world of a relay-steering test (test_steer.c,
 * test_relay_paths.c): a fake relay and a fake upstream (loopback listeners
 * that record bytes), private runtime and data directories with a
 * relay.state naming the fake relay, and steerclient run under the shim.
 *
 * The fake relay is "live" the way kf_relay_live() checks: the test process
 * holds RUNDIR/relay.run.lock and owns the listener. KIMIFIX_RELAY points
 * nowhere, so a client that finds no live relay can never start a real one.
 */
#ifndef KF_STEER_WORLD_H
#define KF_STEER_WORLD_H

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kf_paths.h"
#include "kf_proxy.h"

#define LIB KF_TEST_BUILD "/libkimifix.so"
#define CLIENT KF_TEST_BUILD "/tests/shim/steerclient"
#define CA_TEXT "-----BEGIN CERTIFICATE-----\nKIMIFIX-TEST-CA\n-----END CERTIFICATE-----\n"
#define NO_RELAY_PROG "/nonexistent/kimifix-relay"

/* ---- a listener that records each connection's bytes ----
 * One thread polls the listener and every open connection, so any number
 * of connections may be open at once (up to REC_CONN_MAX, the most a test
 * makes). Connection i is the i-th accepted; `n` counts those closed. */

#define REC_CONN_MAX 1100
#define REC_BYTES 2048

struct rec {
    int lfd, port, wake[2];
    int n, accepted; /* atomics (__atomic builtins) */
    pthread_t t;
    int fd[REC_CONN_MAX];
    size_t len[REC_CONN_MAX];
    char (*data)[REC_BYTES];
    struct pollfd *pf;
    int *idx;
};

__attribute__((unused)) static void *rec_loop(void *p)
{
    struct rec *r = p;
    struct pollfd *pf = r->pf;
    int *idx = r->idx;
    for (;;) {
        int k = 0;
        pf[k++] = (struct pollfd){ .fd = r->wake[0], .events = POLLIN };
        pf[k++] = (struct pollfd){ .fd = r->lfd, .events = POLLIN };
        for (int i = 0; i < r->accepted; i++)
            if (r->fd[i] >= 0) {
                idx[k] = i;
                pf[k++] = (struct pollfd){ .fd = r->fd[i], .events = POLLIN };
            }
        if (poll(pf, (nfds_t)k, -1) < 0)
            continue;
        if (pf[0].revents)
            break;
        if (pf[1].revents & POLLIN) {
            int fd = accept(r->lfd, NULL, NULL);
            if (fd >= 0 && r->accepted < REC_CONN_MAX)
                r->fd[__atomic_fetch_add(&r->accepted, 1, __ATOMIC_SEQ_CST)] = fd;
            else if (fd >= 0)
                close(fd);
        }
        for (int j = 2; j < k; j++) {
            if (!pf[j].revents)
                continue;
            int i = idx[j];
            char *d = r->data[i];
            ssize_t got = read(r->fd[i], d + r->len[i], REC_BYTES - 1 - r->len[i]);
            if (got > 0) {
                r->len[i] += (size_t)got;
                continue;
            }
            if (got < 0 && errno == EINTR)
                continue;
            close(r->fd[i]);
            r->fd[i] = -1;
            __atomic_add_fetch(&r->n, 1, __ATOMIC_SEQ_CST);
        }
    }
    for (int i = 0; i < r->accepted; i++)
        if (r->fd[i] >= 0)
            close(r->fd[i]);
    return NULL;
}

/* Room for every fd a test opens: 1000 connections on each side. */
__attribute__((unused)) static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

__attribute__((unused)) static void rec_start(struct rec *r)
{
    memset(r, 0, sizeof *r);
    raise_nofile();
    r->data = calloc(REC_CONN_MAX, REC_BYTES);
    r->pf = calloc(REC_CONN_MAX + 2, sizeof *r->pf);
    r->idx = calloc(REC_CONN_MAX + 2, sizeof *r->idx);
    cr_assert(r->data && r->pf && r->idx && pipe(r->wake) == 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(bind(r->lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(r->lfd, 4096) == 0);
    getsockname(r->lfd, (struct sockaddr *)&a, &l);
    r->port = ntohs(a.sin_port);
    pthread_create(&r->t, NULL, rec_loop, r);
}

/* Wait until n connections closed. A hang guard only: a client that has
 * exited has closed all its connections; the recorder sees that at once. */
__attribute__((unused)) static void rec_wait(struct rec *r, int n)
{
    for (int i = 0; i < 3000 && __atomic_load_n(&r->n, __ATOMIC_SEQ_CST) < n; i++)
        usleep(10000);
}

__attribute__((unused)) static void rec_stop(struct rec *r)
{
    if (write(r->wake[1], "x", 1) != 1)
        cr_log_warn("rec_stop: wake");
    pthread_join(r->t, NULL);
    close(r->lfd);
    close(r->wake[0]);
    close(r->wake[1]);
    free(r->data);
    free(r->pf);
    free(r->idx);
}

/* A port nothing listens on. */
__attribute__((unused)) static int dead_port(void)
{
    struct rec r;
    rec_start(&r);
    int p = r.port;
    rec_stop(&r);
    return p;
}

/* ---- the private world of one test ---- */

#define WORLD_ERR (256 * 1024) /* 1000 connections' lines */

struct world {
    char dir[256], run[300], data[300], rules[300], out[300];
    char *err;
    unsigned char token[KF_PROXY_TOKEN_LEN];
    int status, runlock;
    int hold;                  /* steerclient opens all connections first */
    const char *relay_prog;    /* KIMIFIX_RELAY (default: none) */
    const char *unset_runtime; /* non-NULL: no XDG_RUNTIME_DIR for the client */
    const char *prog;          /* the client (default: steerclient) */
    double secs;               /* the client's wall time */
};

__attribute__((unused)) static void mkdir_p(const char *p)
{
    cr_assert(mkdir(p, 0700) == 0 || access(p, F_OK) == 0, "%s", p);
}

__attribute__((unused)) static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* Hold RUNDIR/relay.run.lock as a live relay does (until world_free). */
__attribute__((unused)) static void world_hold_run_lock(struct world *w, const char *rundir)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/relay.run.lock", rundir);
    w->runlock = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    cr_assert(w->runlock >= 0 && flock(w->runlock, LOCK_EX | LOCK_NB) == 0, "%s", p);
}

/* relay_port < 0: no relay.state at all. live: hold its run lock. The
 * world lives under base (NULL: /tmp). */
__attribute__((unused)) static void world_init_at(struct world *w, const char *base, int relay_port, int up_port, int live)
{
    char p[1024];
    memset(w, 0, sizeof *w);
    w->runlock = -1;
    w->err = calloc(1, WORLD_ERR);
    cr_assert(w->err);
    snprintf(w->dir, sizeof w->dir, "%s/kfsteer.XXXXXX", base ? base : "/tmp");
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
        if (live)
            world_hold_run_lock(w, p);
    }
    snprintf(w->rules, sizeof w->rules, "%s/rules", w->dir);
    snprintf(p, sizeof p, "connect-to api.kimi.com:443 127.0.0.1:%d\n", up_port);
    put(w->rules, p);
}

__attribute__((unused)) static void world_init(struct world *w, int relay_port, int up_port)
{
    world_init_at(w, NULL, relay_port, up_port, 1);
}

__attribute__((unused)) static void world_free(struct world *w)
{
    char cmd[512];
    if (w->runlock >= 0)
        close(w->runlock);
    snprintf(cmd, sizeof cmd, "rm -rf %s", w->dir);
    cr_expect_eq(system(cmd), 0);
    free(w->err);
}

/* Run steerclient api.kimi.com 443 N [nonblock] with mode (NULL: unset)
 * and optionally NODE_EXTRA_CA_CERTS preset by "the user". */
__attribute__((unused)) static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((unused)) static void run(struct world *w, const char *mode, int n, int nonblock, const char *user_node_ca)
{
    char errp[400], outp[400], num[16];
    snprintf(errp, sizeof errp, "%s/stderr", w->dir);
    snprintf(outp, sizeof outp, "%s/stdout", w->dir);
    snprintf(num, sizeof num, "%d", n);
    double t0 = now_s();
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
        if (w->unset_runtime)
            unsetenv("XDG_RUNTIME_DIR");
        else
            setenv("XDG_RUNTIME_DIR", w->run, 1);
        unsetenv("XDG_CACHE_HOME");
        setenv("XDG_DATA_HOME", w->data, 1);
        setenv("KIMIFIX_RELAY", w->relay_prog ? w->relay_prog : NO_RELAY_PROG, 1);
        /* the machine's own trust settings (a CI's CURL_CA_BUNDLE, ...)
         * decide what kimifix sets: none of them here */
        static const char *const trust[] = { "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
                                             "CURL_CA_BUNDLE", "HTTPS_CA_FILE", "DENO_CERT",
                                             "GIT_SSL_CAINFO", "CARGO_HTTP_CAINFO",
                                             "PERL_LWP_SSL_CA_FILE" };
        for (unsigned t = 0; t < sizeof trust / sizeof trust[0]; t++)
            unsetenv(trust[t]);
        if (user_node_ca)
            setenv("NODE_EXTRA_CA_CERTS", user_node_ca, 1);
        else
            unsetenv("NODE_EXTRA_CA_CERTS");
        const char *prog = w->prog ? w->prog : CLIENT;
        char *argv[] = { (char *)prog, "api.kimi.com", "443", num, nonblock ? "nonblock" : "block",
                         w->hold ? "hold" : NULL, NULL };
        execv(prog, argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    w->secs = now_s() - t0;
    w->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *f = fopen(errp, "r");
    size_t k = f ? fread(w->err, 1, WORLD_ERR - 1, f) : 0;
    w->err[k] = 0;
    if (f)
        fclose(f);
    struct stat so;
    cr_expect(stat(outp, &so) == 0 && so.st_size == 0, "the client's stdout is not empty");
}

static inline int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The bytes one steered connection delivered: a PROXY v2 preamble naming
 * the original destination, the name and the token, then the client's. */
__attribute__((unused)) static void expect_preamble(struct world *w, const struct rec *relay, int i, int up_port)
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

#endif
