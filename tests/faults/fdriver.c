/* fdriver.c - fault-injection tests of libkimifix's libc write paths.
 *
 *   fdriver BUILD_DIR [-v]
 *
 * A recording server on loopback; fclient (tests/faults/fclient.c) sends a
 * keep-alive stream of three requests (a doubled /v1 with a body, a chunked
 * request with kimi-code's platform header, an already-right GET) under
 * LD_PRELOAD=libkimifix.so:libkffault.so. The fault layer makes the real
 * write/send/writev/sendmsg return EAGAIN, EINTR, a 1-byte or half count,
 * EPIPE, or reset the connection, at every point (call) of the stream, in
 * five client modes. The server also resets connections itself after K
 * bytes (mid-head, mid-body). Expected bytes are computed here with the
 * engine (kf_stream one-shot, same rules file).
 *
 * Every case must end with: recoverable faults -> client exit 0 and the
 * server got exactly the expected bytes; hard faults and resets -> client
 * exit 0 or 3 with EPIPE/ECONNRESET (what it sees without kimifix) and the
 * server got a prefix of the expected bytes. Never a crash, a hang, a
 * broken count, or a corrupted request. Also: the test key never appears
 * in any log or in the client's stderr.
 * Prints "faults: N passed, N failed" last.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kf_rules.h"
#include "kf_stream.h"

#define SECRET "sk-kimi-FAULTSECRET-7f3a9c"
#define RULES                                                                   \
    "rule test-grow\n    host api.kimi.com\n    path /coding/\n"               \
    "    add-header X-Kimifix-Test grown-by-kimifix-0123456789-0123456789\n"

static const char *B;
static char dir[64], run_dir[96], rules_path[128], stream_path[128], log_path[128], report_path[128],
    err_path[128];
static char preload_kf[16384], preload_base[16384];
static int verbose;
static int passed, failed;
static long total_faults, total_points;

/* ---- recording server ---- */
static int lfd, port;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char *got;
static size_t got_len, got_cap;
static int got_done;
static long reset_after = -1; /* server: RST after this many bytes (-1: never) */

static void *server(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[65536];
        size_t n = 0;
        pthread_mutex_lock(&mu);
        long ra = reset_after;
        pthread_mutex_unlock(&mu);
        for (;;) {
            size_t want = sizeof buf;
            if (ra >= 0 && (size_t)ra - n < want)
                want = (size_t)ra - n;
            if (ra >= 0 && n >= (size_t)ra) {
                struct linger lg = { 1, 0 };
                setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                break;
            }
            ssize_t r = read(c, buf, want);
            if (r <= 0)
                break;
            pthread_mutex_lock(&mu);
            if (got_len + (size_t)r > got_cap) {
                got_cap = (got_len + (size_t)r) * 2;
                got = realloc(got, got_cap);
            }
            memcpy(got + got_len, buf, (size_t)r);
            got_len += (size_t)r;
            pthread_mutex_unlock(&mu);
            n += (size_t)r;
        }
        close(c);
        pthread_mutex_lock(&mu);
        got_done = 1;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static void server_reset(long ra)
{
    pthread_mutex_lock(&mu);
    got_len = 0;
    got_done = 0;
    reset_after = ra;
    pthread_mutex_unlock(&mu);
}

/* Wait (bounded) until the server finished the connection. */
static void server_wait(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60; /* hang guard: the client has exited, EOF comes at once */
    pthread_mutex_lock(&mu);
    while (!got_done && pthread_cond_timedwait(&cv, &mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&mu);
}

/* ---- expected bytes ---- */
static char *stream, *expect;
static size_t stream_len, expect_len, head1_len;

static ssize_t exp_send(void *io, const void *b, size_t n)
{
    (void)io;
    memcpy(expect + expect_len, b, n);
    expect_len += n;
    return (ssize_t)n;
}

static void make_stream(void)
{
    char body[700];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)('a' + i % 26);
    stream = malloc(1 << 16);
    size_t n = 0;
    n += (size_t)sprintf(stream + n,
                         "POST /coding/v1/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\n"
                         "Authorization: Bearer " SECRET "\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n", sizeof body);
    head1_len = n;
    memcpy(stream + n, body, sizeof body);
    n += sizeof body;
    n += (size_t)sprintf(stream + n,
                         "POST /coding/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n"
                         "X-Msh-Platform: kimi_code_cli\r\nx-api-key: " SECRET "\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"
                         "1a\r\n{\"model\":\"kimi-for-coding\"\r\n3;ext=1\r\n,\r\n\r\n0\r\n\r\n");
    n += (size_t)sprintf(stream + n, "GET /coding/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n"
                                     "Connection: close\r\n\r\n");
    stream_len = n;

    kf_ruleset *rs = kf_ruleset_load(rules_path, NULL, NULL, NULL);
    if (!rs) {
        fprintf(stderr, "fdriver: rules do not load\n");
        exit(1);
    }
    expect = malloc(1 << 16);
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx ctx = { .rs = rs, .port = (unsigned)port };
    for (size_t off = 0; off < stream_len;) {
        ssize_t w = kf_stream_write(&s, &ctx, stream + off, stream_len - off, KF_WR_PARTIAL,
                                    exp_send, NULL);
        if (w <= 0)
            exit(1);
        off += (size_t)w;
    }
    kf_stream_reset(&s);
    kf_ruleset_free(rs);
    if (!memmem(expect, expect_len, "POST /coding/v1/messages?beta=true ", 35) ||
        !memmem(expect, expect_len, "X-Msh-Platform: kimi_cli\r\n", 26) ||
        !memmem(expect, expect_len, "POST /coding/v1/chat/completions ", 33)) {
        fprintf(stderr, "fdriver: the engine did not rewrite the test stream:\n%.*s\n",
                (int)expect_len, expect);
        exit(1);
    }
    FILE *f = fopen(stream_path, "wb");
    fwrite(stream, 1, stream_len, f);
    fclose(f);
}

/* ---- running the client ---- */
typedef struct result {
    int status;          /* exit code, 128+sig, or -1 on timeout */
    char err[2048];
    long points, faults;
} result;

static void run_client(const char *mode, int with_kimifix, const char *kind, long at, long every,
                       result *res)
{
    unlink(report_path);
    pid_t pid = fork();
    if (pid == 0) {
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(e, 2);
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        char p[16], a[24], ev[24];
        snprintf(p, sizeof p, "%d", port);
        snprintf(a, sizeof a, "%ld", at);
        snprintf(ev, sizeof ev, "%ld", every);
        setenv("LD_PRELOAD", with_kimifix ? preload_kf : preload_base, 1);
        setenv("KIMIFIX_RULES", rules_path, 1);
        setenv("KIMIFIX_LOG", log_path, 1);
        setenv("HOME", dir, 1);
        unsetenv("KIMIFIX_MODE");
        setenv("KFFAULT_PORT", p, 1);
        setenv("KFFAULT_AT", a, 1);
        setenv("KFFAULT_KIND", kind, 1);
        setenv("KFFAULT_EVERY", ev, 1);
        setenv("KFFAULT_REPORT", report_path, 1);
        char client[4200];
        snprintf(client, sizeof client, "%s/tests/faults/fclient", B);
        execl(client, client, mode, p, stream_path, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    res->status = -1;
    for (int i = 0; i < 12000; i++) { /* 120 s: a hang guard */
        if (waitpid(pid, &st, WNOHANG) == pid) {
            res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        usleep(i < 100 ? 1000 : 10000);
    }
    if (res->status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    server_wait();
    res->err[0] = 0;
    FILE *f = fopen(err_path, "r");
    if (f) {
        size_t n = fread(res->err, 1, sizeof res->err - 1, f);
        res->err[n] = 0;
        fclose(f);
    }
    res->points = res->faults = 0;
    f = fopen(report_path, "r");
    if (f) {
        if (fscanf(f, "points %ld faults %ld", &res->points, &res->faults) != 2)
            res->points = res->faults = 0;
        fclose(f);
    }
    total_faults += res->faults;
    total_points += res->points;
    if (strstr(res->err, "FAULTSECRET")) {
        fprintf(stderr, "FAIL secret in client stderr: %s\n", res->err);
        failed++;
    }
}

static int is_prefix(void)
{
    return got_len <= expect_len && memcmp(got, expect, got_len) == 0;
}

static void verdict(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void verdict(int ok, const char *fmt, ...)
{
    va_list ap;
    if (ok) {
        passed++;
        if (!verbose)
            return;
    } else {
        failed++;
    }
    va_start(ap, fmt);
    fputs(ok ? "ok   " : "FAIL ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static const char *const modes[] = { "write", "send", "writev", "sendmsg", "pieces" };
static const char *const soft[] = { "eagain", "eintr", "short1", "shorthalf" };
static const char *const hard[] = { "epipe", "reset" };

static int hard_error_ok(const result *r)
{
    return r->status == 0 ||
           (r->status == 3 && (strstr(r->err, "error 32 ") || strstr(r->err, "error 104 ")));
}

/* The relay a client's shim started in run_dir, by the pid its own state
 * file names: SIGTERM, then up to 5 s for it to go. */
static void stop_relay(void)
{
    char path[sizeof run_dir + 32], line[128];
    snprintf(path, sizeof path, "%s/kimifix/relay.state", run_dir);
    FILE *f = fopen(path, "r");
    long pid = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "pid %ld", &pid) == 1)
            break;
    if (f)
        fclose(f);
    if (pid <= 1 || kill((pid_t)pid, SIGTERM) != 0)
        return;
    for (int i = 0; i < 500 && kill((pid_t)pid, 0) == 0; i++)
        usleep(10000);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    B = argv[1];
    verbose = argc > 2 && !strcmp(argv[2], "-v");
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/kffault.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(rules_path, sizeof rules_path, "%s/rules", dir);
    snprintf(stream_path, sizeof stream_path, "%s/stream", dir);
    snprintf(log_path, sizeof log_path, "%s/kimifix.log", dir);
    snprintf(report_path, sizeof report_path, "%s/report", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    /* A private world: the clients run in auto mode on a fresh account, so
     * their shim starts a relay (it makes the CA). It lives in dir/run and
     * is stopped at the end, never in the caller's runtime dir (a relay of
     * a temporary HOME there would serve the user's own clients a CA they
     * do not trust, until it idles out). */
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    char data_dir[sizeof dir + 8];
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    if (mkdir(run_dir, 0700) || mkdir(data_dir, 0700))
        return 1;
    setenv("XDG_RUNTIME_DIR", run_dir, 1);
    setenv("XDG_DATA_HOME", data_dir, 1);
    FILE *f = fopen(rules_path, "w");
    fputs(RULES, f);
    fclose(f);
    /* KF_PRELOAD_PREFIX: e.g. the ASan runtime, which must come first. */
    const char *pre = getenv("KF_PRELOAD_PREFIX");
    char abs[4096];
    if (!realpath(B, abs))
        return 1;
    snprintf(preload_kf, sizeof preload_kf, "%s%s%s/libkimifix.so:%s/tests/faults/libkffault.so",
             pre ? pre : "", pre ? ":" : "", abs, abs);
    snprintf(preload_base, sizeof preload_base, "%s%s%s/tests/faults/libkffault.so",
             pre ? pre : "", pre ? ":" : "", abs);

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 64) ||
        getsockname(lfd, (struct sockaddr *)&a, &al))
        return 1;
    port = ntohs(a.sin_port);
    pthread_t th;
    pthread_create(&th, NULL, server, NULL);
    make_stream();

    long cases = 0;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        result r;
        /* Baselines: without kimifix the bytes arrive unchanged; with it,
         * exactly the engine's rewrite. The with-run counts the points. */
        server_reset(-1);
        run_client(modes[m], 0, "none", 0, 0, &r);
        verdict(r.status == 0 && got_len == stream_len && !memcmp(got, stream, got_len),
                "%s without kimifix: unchanged (status %d, %zu bytes) %s", modes[m], r.status,
                got_len, r.err);
        server_reset(-1);
        run_client(modes[m], 1, "none", 0, 0, &r);
        verdict(r.status == 0 && got_len == expect_len && !memcmp(got, expect, got_len),
                "%s with kimifix: rewritten (status %d, %zu of %zu bytes) %s", modes[m], r.status,
                got_len, expect_len, r.err);
        long points = r.points;
        if (points < 1) {
            verdict(0, "%s: no write points counted (fault layer not below the shim?)", modes[m]);
            continue;
        }
        /* Recoverable faults at every point (and one past the end). */
        for (size_t k = 0; k < sizeof soft / sizeof soft[0]; k++)
            for (long at = 1; at <= points + 1; at++) {
                server_reset(-1);
                run_client(modes[m], 1, soft[k], at, 0, &r);
                cases++;
                verdict(r.status == 0 && got_len == expect_len && !memcmp(got, expect, got_len),
                        "%s %s at point %ld/%ld: exact (status %d, %zu of %zu) %s", modes[m],
                        soft[k], at, points, r.status, got_len, expect_len, r.err);
            }
        /* Recoverable faults at every other / every third point. */
        for (size_t k = 0; k < sizeof soft / sizeof soft[0]; k++)
            for (long every = 2; every <= 3; every++) {
                server_reset(-1);
                run_client(modes[m], 1, soft[k], 1, every, &r);
                cases++;
                verdict(r.status == 0 && got_len == expect_len && !memcmp(got, expect, got_len),
                        "%s %s every %ld points: exact (status %d, %zu of %zu) %s", modes[m],
                        soft[k], every, r.status, got_len, expect_len, r.err);
            }
        /* Hard errors at every point: same error as without kimifix, a
         * prefix of the right bytes upstream. */
        for (size_t k = 0; k < sizeof hard / sizeof hard[0]; k++)
            for (long at = 1; at <= points; at++) {
                server_reset(-1);
                run_client(modes[m], 1, hard[k], at, 0, &r);
                cases++;
                verdict(hard_error_ok(&r) && is_prefix(),
                        "%s %s at point %ld/%ld: error or success, prefix (status %d, %zu) %s",
                        modes[m], hard[k], at, points, r.status, got_len, r.err);
            }
        /* The peer resets mid-head / mid-body / between requests. */
        long ks[] = { 1, 10, 40, (long)head1_len - 3, (long)head1_len + 5, (long)head1_len + 400,
                      (long)expect_len - 30 };
        for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
            for (int with = 0; with <= 1; with++) {
                server_reset(ks[i]);
                run_client(modes[m], with, "none", 0, 0, &r);
                cases++;
                int pre_ok = with ? is_prefix()
                                  : got_len <= stream_len && !memcmp(got, stream, got_len);
                verdict(hard_error_ok(&r) && pre_ok,
                        "%s peer reset after %ld bytes %s kimifix: (status %d, got %zu) %s",
                        modes[m], ks[i], with ? "with" : "without", r.status, got_len, r.err);
            }
    }
    /* Secrets: the log of every run. */
    size_t ln = 0;
    char *logbuf = NULL;
    f = fopen(log_path, "r");
    if (f) {
        logbuf = malloc(1 << 24);
        ln = fread(logbuf, 1, (1 << 24) - 1, f);
        logbuf[ln] = 0;
        fclose(f);
        struct stat st;
        stat(log_path, &st);
        verdict((st.st_mode & 0777) == 0600, "log file mode %o is 0600", st.st_mode & 0777);
    }
    verdict(ln > 0, "the runs logged (%zu bytes)", ln);
    verdict(!logbuf || !strstr(logbuf, "FAULTSECRET"), "no test key in %zu bytes of log", ln);
    free(logbuf);
    printf("faults: %ld cases, %ld write points seen, %ld faults injected\n", cases, total_points,
           total_faults);
    stop_relay();
    printf("faults: %d passed, %d failed\n", passed, failed);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!failed && system(cmd) != 0)
        return 1;
    if (failed)
        printf("kept %s\n", dir);
    return failed ? 1 : 0;
}
