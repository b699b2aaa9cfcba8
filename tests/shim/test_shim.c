/* test_shim.c - libkimifix.so's libc hooks under real programs.
 *
 * Each test starts a loopback server that records every connection's bytes,
 * runs kfclient (or sh, or the wrapper) with LD_PRELOAD=libkimifix.so and a
 * rules file, and asserts what the server received byte for byte, that the
 * client's own checks passed, and that nothing reached the client's stdout.
 */
#include <criterion/criterion.h>
#include <errno.h>
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
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define LIB KF_TEST_BUILD "/libkimifix.so"
#define CLIENT KF_TEST_BUILD "/tests/shim/kfclient"
#define WRAPPER KF_TEST_BUILD "/kimifix"
#define MAXCONN 512

/* ---- recording server ---- */

struct tconn {
    char *data;
    size_t len, cap;
};

struct tsrv {
    int lfd, port, expect, slow;
    pthread_t acc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int accepted, finished;
    struct tconn c[MAXCONN];
};

struct reader_arg {
    struct tsrv *s;
    int fd, idx;
};

static void *reader(void *p)
{
    struct reader_arg *a = p;
    struct tconn *c = &a->s->c[a->idx];
    char buf[65536];
    for (;;) {
        ssize_t r = read(a->fd, buf, a->s->slow ? 4096 : sizeof buf);
        if (r <= 0)
            break;
        if (c->len + (size_t)r > c->cap) {
            c->cap = (c->len + (size_t)r) * 2;
            c->data = realloc(c->data, c->cap);
        }
        memcpy(c->data + c->len, buf, (size_t)r);
        c->len += (size_t)r;
        if (a->s->slow)
            usleep(300);
    }
    close(a->fd);
    pthread_mutex_lock(&a->s->mu);
    a->s->finished++;
    pthread_cond_broadcast(&a->s->cv);
    pthread_mutex_unlock(&a->s->mu);
    free(a);
    return NULL;
}

static void *acceptor(void *p)
{
    struct tsrv *s = p;
    for (int i = 0; i < s->expect; i++) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            break;
        struct reader_arg *a = malloc(sizeof *a);
        a->s = s;
        a->fd = fd;
        a->idx = i;
        pthread_mutex_lock(&s->mu);
        s->accepted++;
        pthread_mutex_unlock(&s->mu);
        pthread_t t;
        pthread_create(&t, NULL, reader, a);
        pthread_detach(t);
    }
    return NULL;
}

static struct tsrv *srv_start(int expect, int slow)
{
    struct tsrv *s = calloc(1, sizeof *s);
    s->expect = expect;
    s->slow = slow;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (slow) { /* small window (set before listen: accepted sockets inherit it) */
        int rcv = 16384;
        setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    }
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(s->lfd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(listen(s->lfd, 256) == 0);
    socklen_t l = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &l);
    s->port = ntohs(a.sin_port);
    if (expect)
        pthread_create(&s->acc, NULL, acceptor, s);
    return s;
}

/* Wait until `expect` connections were read to EOF. */
static void srv_wait(struct tsrv *s)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    pthread_mutex_lock(&s->mu);
    while (s->finished < s->expect)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
            break;
    int fin = s->finished;
    pthread_mutex_unlock(&s->mu);
    cr_assert_eq(fin, s->expect, "server saw %d of %d connections end", fin, s->expect);
    pthread_join(s->acc, NULL);
}

/* ---- running a client under the shim ---- */

struct run {
    char dir[64];
    char sub[512]; /* the rules file's own dir when g_long_rules ("": dir) */
    char rules[640];
    int status;
    char err[65536];
    size_t errlen;
    size_t outlen;
};

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *len = 0;
        return NULL;
    }
    char *b = malloc(1 << 20);
    *len = fread(b, 1, (1 << 20) - 1, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

/* KIMIFIX_MODE for run_prog (NULL: unset, i.e. auto). */
static const char *g_mode;
/* run_prog puts the rules file at a path over 256 bytes (the shim keeps
 * shorter ones on a page every start writes, longer ones elsewhere). */
static int g_long_rules;

/* rules: text of the rules file (a connect-to line for api.kimi.com:80 to
 * the server is appended when port > 0); NULL: no KIMIFIX_RULES at all.
 * preload: set LD_PRELOAD (0 for the wrapper, which sets it itself). */
static void run_prog(struct run *r, char *const argv[], const char *rules, int port, int preload,
                     const char *log)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/kfshim.XXXXXX");
    cr_assert(mkdtemp(r->dir));
    r->rules[0] = 0;
    r->sub[0] = 0;
    if (rules && g_long_rules) {
        char d[201];
        memset(d, 'd', 200);
        d[200] = 0;
        snprintf(r->sub, sizeof r->sub, "%s/%s", r->dir, d);
        cr_assert_eq(mkdir(r->sub, 0700), 0);
    }
    if (rules) {
        snprintf(r->rules, sizeof r->rules, "%s/%s", r->sub[0] ? r->sub : r->dir,
                 g_long_rules ? "rules-kept-at-a-path-longer-than-256-bytes" : "rules");
        FILE *f = fopen(r->rules, "w");
        fputs(rules, f);
        if (port > 0)
            fprintf(f, "connect-to api.kimi.com:80 127.0.0.1:%d\n", port);
        fclose(f);
    }
    char out[128], err[128];
    snprintf(out, sizeof out, "%s/stdout", r->dir);
    snprintf(err, sizeof err, "%s/stderr", r->dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0); /* a hung run is killed with all its children */
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        if (preload)
            setenv("LD_PRELOAD", LIB, 1);
        else
            unsetenv("LD_PRELOAD");
        if (r->rules[0])
            setenv("KIMIFIX_RULES", r->rules, 1);
        else
            unsetenv("KIMIFIX_RULES");
        if (log)
            setenv("KIMIFIX_LOG", log, 1);
        else
            unsetenv("KIMIFIX_LOG");
        if (g_mode)
            setenv("KIMIFIX_MODE", g_mode, 1);
        else
            unsetenv("KIMIFIX_MODE");
        setenv("HOME", r->dir, 1); /* no ~/.config/kimifix/rules of the tester */
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    for (int i = 0; i < 6000; i++) { /* 60 s */
        if (waitpid(pid, &st, WNOHANG) == pid)
            goto done;
        usleep(10000);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_assert_fail("%s %s: timed out (deadlock?)", argv[0], argv[1]);
done:
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    char *e = slurp(err, &r->errlen);
    if (e) {
        size_t n = r->errlen < sizeof r->err - 1 ? r->errlen : sizeof r->err - 1;
        memcpy(r->err, e, n);
        r->err[n] = 0;
        free(e);
    } else {
        r->err[0] = 0;
    }
    free(slurp(out, &r->outlen));
    unlink(out);
    unlink(err);
    if (r->rules[0])
        unlink(r->rules);
    if (r->sub[0])
        rmdir(r->sub);
    rmdir(r->dir);
    /* (14) the library never writes to the program's stdout */
    cr_expect_eq(r->outlen, 0, "stdout of %s is not empty", argv[1]);
}

static void run_client(struct run *r, const char *mode, struct tsrv *s, const char *arg,
                       const char *rules)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s ? s->port : 1);
    char *argv[] = { CLIENT, (char *)mode, port, (char *)arg, NULL };
    run_prog(r, argv, rules, s ? s->port : 0, 1, "stderr");
    cr_assert_eq(r->status, 0, "kfclient %s failed (%d):\n%s", mode, r->status, r->err);
}

/* ---- expectations ---- */

struct buf {
    char *p;
    size_t n;
};

static void add(struct buf *b, const char *p, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void add_req(struct buf *b, long body, size_t pad, unsigned seed, int fixed)
{
    char h[4096];
    add(b, h, kf_t_head(h, sizeof h, body, pad, fixed));
    if (body > 0) {
        char *x = malloc((size_t)body);
        kf_t_body(x, (size_t)body, seed);
        add(b, x, (size_t)body);
        free(x);
    }
}

static size_t first_diff(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0;
    while (i < an && i < bn && a[i] == b[i])
        i++;
    return i;
}

static void expect_conn(struct tsrv *s, int i, const struct buf *want)
{
    const struct tconn *c = &s->c[i];
    size_t d = first_diff(c->data, c->len, want->p, want->n);
    cr_expect(c->len == want->n && d == want->n,
              "connection %d: got %zu bytes, want %zu; first difference at %zu:\n"
              "got:  %.80s\nwant: %.80s", i, c->len, want->n, d,
              d < c->len ? c->data + d : "", d < want->n ? want->p + d : "");
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* ---- the tests ---- */

TestSuite(shim, .timeout = 120);

Test(shim, one_write)
{
    struct tsrv *s = srv_start(1, 0);
    struct run r;
    run_client(&r, "one", s, NULL, TEST_RULES);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 1);
    expect_conn(s, 0, &w);
    cr_expect(strstr(r.err, "[libc] api.kimi.com: rules kimi-coding-double-v1, test-grow: "
                            "POST /coding/v1/v1/messages -> /coding/v1/messages"),
              "log line missing:\n%s", r.err);
}

/* The rules file's path does not fit the shim's short buffer: it is
 * still the file in effect (its rule rewrites, its name in the log). */
Test(shim, rules_file_at_a_long_path)
{
    struct tsrv *s = srv_start(1, 0);
    struct run r;
    g_long_rules = 1;
    run_client(&r, "one", s, NULL, TEST_RULES);
    g_long_rules = 0;
    cr_assert_gt(strlen(r.rules), 256, "%s", r.rules);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 1);
    expect_conn(s, 0, &w);
    cr_expect(strstr(r.err, "rules kimi-coding-double-v1, test-grow: "), "%s", r.err);
}

Test(shim, split_at_every_byte)
{
    char h[4096];
    size_t n = kf_t_head(h, sizeof h, 5, 0, 0) + 5;
    struct tsrv *s = srv_start((int)n - 1, 0);
    struct run r;
    run_client(&r, "split", s, NULL, TEST_RULES);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 1);
    for (int i = 0; i < (int)n - 1; i++)
        expect_conn(s, i, &w);
}

Test(shim, writev_node_iovecs)
{
    struct tsrv *s = srv_start(2, 0);
    struct run r;
    run_client(&r, "writev", s, NULL, TEST_RULES);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 20, 286, 3, 1);
    expect_conn(s, 0, &w); /* writev */
    expect_conn(s, 1, &w); /* sendmsg */
}

Test(shim, nonblocking_tiny_sndbuf_slow_reader)
{
    struct tsrv *s = srv_start(1, 1);
    struct run r;
    run_client(&r, "nonblock", s, NULL, TEST_RULES);
    srv_wait(s);
    struct buf w = { 0 };
    w.n = kf_t_nb_stream(NULL, 1);
    w.p = malloc(w.n);
    kf_t_nb_stream(w.p, 1);
    expect_conn(s, 0, &w);
}

Test(shim, sendfile_body_after_rewritten_head)
{
    char path[] = "/tmp/kfshim-body.XXXXXX";
    int f = mkstemp(path);
    size_t n = 1 << 20;
    char *body = malloc(n);
    kf_t_body(body, n, 9);
    cr_assert_eq(write(f, body, n), (ssize_t)n);
    close(f);
    struct tsrv *s = srv_start(1, 0);
    struct run r;
    run_client(&r, "sendfile", s, path, TEST_RULES);
    srv_wait(s);
    unlink(path);
    struct buf w = { 0 };
    add_req(&w, (long)n, 0, 0, 1); /* head + body generated with seed 0 ... */
    w.n -= n;                      /* ... replaced by the file's bytes */
    add(&w, body, n);
    add_req(&w, 5, 0, 1, 1);
    expect_conn(s, 0, &w);
}

Test(shim, keep_alive_sized_chunked_split)
{
    struct tsrv *s = srv_start(1, 0);
    struct run r;
    run_client(&r, "keepalive", s, NULL, TEST_RULES);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 1);
    add_req(&w, -1, 0, 0, 1);
    add(&w, "5\r\nhello\r\n0\r\n\r\n", 15);
    add_req(&w, 5, 0, 2, 1);
    expect_conn(s, 0, &w);
}

Test(shim, untracked_fds_byte_exact)
{
    struct run r;
    run_client(&r, "untracked", NULL, NULL, TEST_RULES);
}

Test(shim, connect_to_getaddrinfo)
{
    struct tsrv *s = srv_start(1, 0);
    struct run r;
    run_client(&r, "connect-to", s, "api.kimi.com", TEST_RULES);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 1);
    expect_conn(s, 0, &w);
}

Test(shim, connect_to_gethostbyname)
{
    struct tsrv *s = srv_start(1, 0);
    struct run r;
    run_client(&r, "connect-to-ghbn", s, "API.Kimi.com", TEST_RULES);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 1);
    expect_conn(s, 0, &w);
}

Test(shim, fork_threads_signal_handler)
{
    int kids = 50;
    struct tsrv *s = srv_start(kids + 1, 0);
    struct run r;
    run_client(&r, "fork", s, "50", TEST_RULES);
    srv_wait(s);
    struct buf one = { 0 }, many = { 0 };
    add_req(&one, 5, 0, 1, 1);
    for (int i = 0; i < 200; i++)
        add_req(&many, 5, 0, 1, 1);
    int nmany = 0;
    for (int i = 0; i < kids + 1; i++) {
        if (s->c[i].len == many.n) {
            nmany++;
            expect_conn(s, i, &many);
        } else {
            expect_conn(s, i, &one);
        }
    }
    cr_expect_eq(nmany, 1);
}

Test(shim, dup2_close_fd_reuse)
{
    struct tsrv *s = srv_start(3, 0);
    struct run r;
    run_client(&r, "dup", s, NULL, TEST_RULES);
    srv_wait(s);
    struct buf w = { 0 }, empty = { 0 };
    add_req(&w, 5, 0, 1, 1);
    add_req(&w, 5, 0, 1, 1);
    expect_conn(s, 0, &w);
    expect_conn(s, 1, &empty);
    expect_conn(s, 2, &empty);
}

Test(shim, vfork_child_closes_do_not_untrack_parent)
{
    struct tsrv *s = srv_start(1, 0);
    struct run r;
    run_client(&r, "vfork", s, NULL, TEST_RULES);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 1);
    expect_conn(s, 0, &w);
}

Test(shim, exec_chain_keeps_working)
{
    struct tsrv *s = srv_start(1, 0);
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    char *argv[] = { "/bin/sh", "-c", "/bin/sh -c 'exec \"$0\" one \"$1\"' \"$0\" \"$1\"", CLIENT,
                     port, NULL };
    struct run r;
    run_prog(&r, argv, TEST_RULES, s->port, 1, "stderr");
    cr_assert_eq(r.status, 0, "%s", r.err);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 1);
    expect_conn(s, 0, &w);
}

/* A broken rules file: the built-in rules stay in effect (the doubled /v1
 * is still fixed), the whole file is ignored (its test-grow rule too), and
 * the process says so in exactly one FILE:LINE: error line
 * (docs/rules.md, "When the rules file is broken"). */
Test(shim, bad_rules_builtins_stay_one_line)
{
    struct tsrv *s = srv_start(1, 0);
    struct run r;
    run_client(&r, "one", s, NULL, TEST_RULES "rule broken\n    bogus-directive x\n");
    srv_wait(s);
    char h[4096];
    size_t hn = kf_t_head(h, sizeof h, 5, 0, 1);
    char *g = strstr(h, TEST_GROW_HDR); /* the file's rule is not in effect */
    cr_assert(g);
    memmove(g, g + strlen(TEST_GROW_HDR), hn - (size_t)(g - h) - strlen(TEST_GROW_HDR) + 1);
    struct buf w = { 0 };
    add(&w, h, strlen(h));
    char body[5];
    kf_t_body(body, 5, 1);
    add(&w, body, 5);
    expect_conn(s, 0, &w);
    cr_expect_eq(count_lines(r.err, ": error: "), 1, "want one error line:\n%s", r.err);
    cr_expect(strstr(r.err, "/rules:6: error:") &&
                  strstr(r.err, "the file is ignored, the built-in rules are in effect"),
              "%s", r.err);
    cr_expect(strstr(r.err, "[libc] api.kimi.com: rule kimi-coding-double-v1: "
                            "POST /coding/v1/v1/messages -> /coding/v1/messages"),
              "log line missing:\n%s", r.err);
}

Test(shim, mode_off_passes_through)
{
    struct tsrv *s = srv_start(1, 0);
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    char *argv[] = { WRAPPER, "-q", "--mode", "off", CLIENT, "one", port, NULL };
    struct run r;
    run_prog(&r, argv, TEST_RULES, s->port, 0, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 0);
    expect_conn(s, 0, &w);
    cr_expect_eq(r.errlen, 0, "%s", r.err);
}

/* The wrapper tests run in inprocess mode: in auto mode the wrapper starts
 * the user's relay (the e2e harness covers that, in its own namespace). */
Test(shim, wrapper_runs_command_with_rules)
{
    g_mode = "inprocess";
    struct tsrv *s = srv_start(1, 0);
    char port[16], rules[128];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(rules, sizeof rules, "/tmp/kfshim-wrap-%d.rules", (int)getpid());
    FILE *f = fopen(rules, "w");
    fputs(TEST_RULES, f);
    fclose(f);
    char *argv[] = { WRAPPER, "-v", "-f", rules, "--", CLIENT, "one", port, NULL };
    struct run r;
    run_prog(&r, argv, NULL, 0, 0, NULL);
    unlink(rules);
    cr_assert_eq(r.status, 0, "%s", r.err);
    srv_wait(s);
    struct buf w = { 0 };
    add_req(&w, 5, 0, 1, 1);
    expect_conn(s, 0, &w);
    cr_expect(strstr(r.err, "rules kimi-coding-double-v1, test-grow"), "%s", r.err);
}

Test(shim, wrapper_rejects_bad_rules_and_missing_command)
{
    g_mode = "inprocess";
    char rules[128];
    snprintf(rules, sizeof rules, "/tmp/kfshim-bad-%d.rules", (int)getpid());
    FILE *f = fopen(rules, "w");
    fputs("rule x\n    nonsense\n", f);
    fclose(f);
    char *argv[] = { WRAPPER, "-f", rules, "/bin/true", NULL };
    struct run r;
    run_prog(&r, argv, NULL, 0, 0, NULL);
    unlink(rules);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, ":2: error:"), "%s", r.err);
    char *argv2[] = { WRAPPER, "/nonexistent/kf-no-such-command", NULL };
    run_prog(&r, argv2, NULL, 0, 0, NULL);
    cr_expect_eq(r.status, 127);
    cr_expect(strstr(r.err, "kimifix: /nonexistent/kf-no-such-command: No such file or directory"),
              "%s", r.err);
}

static char *capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    pclose(p);
    return buf;
}

Test(shim, library_needs_and_exports)
{
    char *needs = capture("readelf -d " LIB " | sed -n 's/.*NEEDED.*\\[\\(.*\\)\\]/\\1/p'");
    for (char *l = strtok(needs, "\n"); l; l = strtok(NULL, "\n"))
        cr_expect(!strcmp(l, "libc.so.6") || !strcmp(l, "ld-linux-x86-64.so.2") ||
                      !strncmp(l, "libdl.so", 8) || !strncmp(l, "libpthread.so", 13),
                  "unexpected NEEDED %s", l);
    static const char *const hooks[] = {
        "write", "writev", "send", "sendto", "sendmsg", "sendmmsg", "sendfile", "sendfile64",
        "connect", "close", "close_range", "closefrom", "dup", "dup2", "dup3", "fcntl",
        "fcntl64", "getaddrinfo", "gethostbyname", "gethostbyname2", "gethostbyname_r",
        "gethostbyname2_r", "getpeername", "recv", "recvfrom", "recvmsg", "dlopen", "dlmopen",
    };
    char *syms = capture("nm -D --defined-only " LIB " | awk '{print $3}'");
    int nlibc = 0;
    for (char *l = strtok(syms, "\n"); l; l = strtok(NULL, "\n")) {
        int ok = !strncmp(l, "SSL_", 4) || !strncmp(l, "gnutls_", 7) || !strncmp(l, "curl_", 5);
        for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
            if (!strcmp(l, hooks[i])) {
                ok = 1;
                nlibc++;
            }
        cr_expect(ok, "exported symbol %s is not a hook", l);
    }
    cr_expect_eq(nlibc, (int)(sizeof hooks / sizeof hooks[0]), "libc hooks missing from exports");
}

/* Python loads libssl privately (RTLD_LOCAL): dlsym(RTLD_NEXT) cannot see
 * SSL_write_ex there; resolve.c finds it from the calling object. An
 * in-memory TLS pair in one Python process; the server must decrypt the
 * rewritten head. Certificates are made at test time. */
Test(shim, python_private_libssl)
{
    /* Debian's python3, and the python3 first on PATH (pyenv's shims exec
     * through bash: an exec chain too). */
    const char *pys[] = { "/usr/bin/python3", "/usr/bin/env" };
    if (access("/usr/bin/python3", X_OK) != 0 || system("command -v openssl >/dev/null") != 0)
        cr_skip_test("needs /usr/bin/python3 and the openssl command");
    char dir[] = "/tmp/kfshim-tls.XXXXXX";
    cr_assert(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s/key.pem -out %s/cert.pem -days 1 -subj /CN=api.kimi.com 2>/dev/null",
             dir, dir);
    cr_assert_eq(system(cmd), 0);
    for (size_t i = 0; i < sizeof pys / sizeof pys[0]; i++) {
        if (access(pys[i], X_OK) != 0)
            continue;
        int env = i == 1;
        char cert[128], key[128];
        snprintf(cert, sizeof cert, "%s/cert.pem", dir);
        snprintf(key, sizeof key, "%s/key.pem", dir);
        char *argv[] = { (char *)pys[i], env ? "python3" : KF_TEST_SRC "/tests/shim/tls_memory.py",
                         env ? KF_TEST_SRC "/tests/shim/tls_memory.py" : cert, env ? cert : key,
                         env ? key : NULL, NULL };
        struct run r;
        run_prog(&r, argv, TEST_RULES, 0, 1, "stderr");
        cr_expect_eq(r.status, 0, "%s: %s", pys[i], r.err);
        cr_expect(strstr(r.err, "'POST /coding/v1/messages HTTP/1.1\\r\\nHost: api.kimi.com\\r\\n"
                                "Content-Length: 2\\r\\n" TEST_GROW_HDR_PY "\\r\\n{}'"),
                  "%s: server did not get the rewritten head:\n%s", pys[i], r.err);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Node from nodesource/official builds carries OpenSSL in the executable:
 * with KIMIFIX_MODE=inprocess (no relay), one warning naming the limit and
 * the way out. (In auto mode such a process goes through the relay:
 * test_steer.c; not here, where it would start a real relay.) */
Test(shim, static_tls_warning)
{
    g_mode = "inprocess";
    const char *node = "/usr/bin/node";
    if (access(node, X_OK) != 0 ||
        system("nm -D --defined-only /usr/bin/node 2>/dev/null | grep -qw SSL_write") != 0)
        cr_skip_test("no node with OpenSSL compiled in");
    char *argv[] = { (char *)node, "-e", "0", NULL };
    struct run r;
    run_prog(&r, argv, TEST_RULES, 0, 1, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_eq(count_lines(r.err, "TLS is compiled into this program"), 1, "%s", r.err);
}
