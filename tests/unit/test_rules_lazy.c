/* test_rules_lazy.c - rules built on first need (kf_rules_lazy.c), the
 * facts the shim uses to avoid building them (the built-in summary, blank
 * user files), and the shim itself: a process that needs no rules never
 * parses them, errors are still reported once where they are first
 * needed, and `kimifix check` still reports every error at once.
 *
 * Criterion runs each test in its own process: kf_rules_lazy's process
 * state starts fresh in every test.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <arpa/inet.h>
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

#include "kf_rules_hosts.h"
#include "kf_rules_int.h"

/* ---- the built-in summary (scripts/embed-rules.sh) ---- */

Test(rules_lazy, builtin_summary_matches_the_parser)
{
    kf_ruleset *rs = kf_ruleset_builtin();
    cr_assert_not_null(rs);
    const char *name;
    int wild;
    cr_expect_eq(kf_default_rules_name_hosts, kf_rules_host_at(rs, 0, &name, &wild) != 0);
    kf_ruleset_free(rs);
}

/* ---- blank user files ---- */

static char tmpdir[64];

static const char *write_file(const char *name, const char *text, size_t n)
{
    static char path[128];
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/kflazy.XXXXXX");
        cr_assert_not_null(mkdtemp(tmpdir));
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, n, f), n);
    fclose(f);
    return path;
}

static int diag_lines;
static void count_diag(void *ud, const char *line)
{
    (void)ud;
    (void)line;
    diag_lines++;
}

Test(rules_lazy, blank_files)
{
    static const struct {
        const char *text;
        size_t n;
        int blank;
    } cases[] = {
#define T(text, blank) { text, sizeof text - 1, blank }
        T("", 1),
        T("\n\n  \t\n", 1),
        T("# a comment\n   # another \"x\n", 1),
        T("  \t\r\n#\r\r\n \r", 1), /* a CR ending its line (or the file) is dropped */
        T("\r\r\n", 0),                 /* ...only one: the other is a word */
        T("a\rb\n", 0),
        T("# x\0y\n", 0),               /* a NUL byte is an error even in a comment */
        T("defaults on\n", 0),           /* a directive, even one that changes nothing */
        T("  rule x # no\n", 0),
#undef T
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_file("r", cases[i].text, cases[i].n);
        cr_expect_eq(kf_rules_file_is_blank(p), cases[i].blank, "case %zu", i);
    }
    cr_expect_eq(kf_rules_file_is_blank("/nonexistent/kimifix-rules"), 0);
}

/* A file the check calls blank loads to exactly the built-ins, with no
 * diagnostic: generated texts of blanks, comments, CRs, NULs and words. */
Test(rules_lazy, blank_means_nothing_changes)
{
    static const char *const bits[] = { " ", "\t", "\r", "\n", "\r\n", "#", "# c", "x",
                                        "rule", "\"", "\0", "defaults off" };
    uint64_t x = 0x1a2b3c4du;
    int blanks = 0;
    for (int round = 0; round < 3000; round++) {
        char text[256];
        size_t n = 0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned k = (unsigned)(x % 9);
        for (unsigned j = 0; j < k; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* words are rare, so that blank files come up often */
            unsigned b = (unsigned)(x % 40);
            const char *p = bits[b < 34 ? b % 7 : 7 + (b - 34) % 5];
            size_t l = p[0] ? strlen(p) : 1;
            memcpy(text + n, p, l);
            n += l;
        }
        const char *path = write_file("g", text, n);
        if (!kf_rules_file_is_blank(path))
            continue;
        blanks++;
        diag_lines = 0;
        int nerr = -1;
        kf_ruleset *rs = kf_ruleset_load(path, count_diag, NULL, &nerr);
        cr_assert_not_null(rs, "blank file did not load (round %d)", round);
        cr_expect_eq(nerr, 0);
        cr_expect_eq(diag_lines, 0, "round %d: diagnostics for a blank file", round);
        cr_expect_eq(rs->nrules, rs->nbuiltin);
        cr_expect_eq(rs->nactive, rs->nbuiltin);
        cr_expect_null(rs->defaults_off_at);
        kf_ruleset_free(rs);
    }
    cr_expect_gt(blanks, 300, "only %d blank files generated", blanks);
}

/* ---- kf_rules_lazy ---- */

static int loads;
static kf_ruleset *load_builtin(void *ud)
{
    (void)ud;
    __atomic_add_fetch(&loads, 1, __ATOMIC_SEQ_CST);
    return kf_ruleset_builtin();
}

static kf_ruleset *load_fails(void *ud)
{
    (void)ud;
    loads++;
    return NULL;
}

static const kf_ruleset *inner;
static kf_ruleset *load_reentering(void *ud)
{
    (void)ud;
    loads++;
    inner = kf_rules_lazy(load_builtin, NULL); /* a hook firing inside the build */
    return kf_ruleset_builtin();
}

Test(rules_lazy, built_once_on_first_call)
{
    cr_expect_eq(kf_rules_lazy_tried(), 0);
    const kf_ruleset *a = kf_rules_lazy(load_builtin, NULL);
    const kf_ruleset *b = kf_rules_lazy(load_builtin, NULL);
    cr_expect_not_null(a);
    cr_expect_eq(a, b);
    cr_expect_eq(loads, 1);
    cr_expect_eq(kf_rules_lazy_tried(), 1);
}

Test(rules_lazy, a_failure_is_final)
{
    cr_expect_null(kf_rules_lazy(load_fails, NULL));
    cr_expect_null(kf_rules_lazy(load_fails, NULL));
    cr_expect_eq(loads, 1, "the failed build ran again (an error would be reported twice)");
    cr_expect_eq(kf_rules_lazy_tried(), 1);
}

Test(rules_lazy, reentry_passes_through)
{
    const kf_ruleset *rs = kf_rules_lazy(load_reentering, NULL);
    cr_expect_not_null(rs);
    cr_expect_null(inner);
    cr_expect_eq(loads, 1);
}

static pthread_barrier_t start_line;
static const kf_ruleset *got[8];

static void *racer(void *arg)
{
    pthread_barrier_wait(&start_line);
    got[(size_t)arg] = kf_rules_lazy(load_builtin, NULL);
    return NULL;
}

Test(rules_lazy, concurrent_first_calls_build_once)
{
    pthread_t t[8];
    pthread_barrier_init(&start_line, NULL, 8);
    for (size_t i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, racer, (void *)i);
    for (size_t i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    cr_expect_eq(loads, 1);
    for (size_t i = 0; i < 8; i++)
        cr_expect(got[i] && got[i] == got[0], "thread %zu got %p", i, (const void *)got[i]);
}

/* fork() while another thread builds: the child must find the rules built
 * (kf_rules_fork_prepare waits for the build), never a lock held by a
 * thread it does not have. The child's check has a hang guard. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_started, gate_go;

static kf_ruleset *load_gated(void *ud)
{
    (void)ud;
    pthread_mutex_lock(&gate_lock);
    gate_started = 1;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_go)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    kf_ruleset *rs = NULL;
    for (int i = 0; i < 200; i++) { /* some work, so fork() lands during the build */
        kf_ruleset_free(rs);
        rs = kf_ruleset_builtin();
    }
    return rs;
}

static void *builder(void *arg)
{
    (void)arg;
    kf_rules_lazy(load_gated, NULL);
    return NULL;
}

Test(rules_lazy, fork_during_a_build)
{
    pthread_atfork(kf_rules_fork_prepare, kf_rules_fork_parent, kf_rules_fork_child);
    pthread_t t;
    pthread_create(&t, NULL, builder, NULL);
    pthread_mutex_lock(&gate_lock);
    while (!gate_started)
        pthread_cond_wait(&gate_cond, &gate_lock);
    gate_go = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        alarm(20); /* hang guard: a deadlock kills the child */
        const kf_ruleset *rs = kf_rules_lazy(load_fails, NULL);
        _exit(rs && kf_rules_lazy_tried() ? 0 : 3);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %d", st);
    pthread_join(t, NULL);
}

/* ---- the shim ---- */

#ifndef KF_TEST_BUILD
#define KF_TEST_BUILD "build"
#endif
#define LIB KF_TEST_BUILD "/libkimifix.so"
#define CLI KF_TEST_BUILD "/kimifix"

struct run {
    int status;
    char err[8192];
};

/* Run argv under the shim (after KF_PRELOAD_PREFIX: the sanitizer runtime
 * under make check-asan), in a clean kimifix environment plus `env`
 * (NAME=VALUE strings, NULL-terminated); stderr captured. Hang guard 60 s. */
static void run(struct run *r, char *const argv[], const char *const env[])
{
    write_file("stderr", "", 0);
    char errf[128], xdg[128];
    snprintf(errf, sizeof errf, "%s/stderr", tmpdir);
    snprintf(xdg, sizeof xdg, "%s/xdg", tmpdir);
    mkdir(xdg, 0700);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        int e = open(errf, O_WRONLY | O_TRUNC);
        int dn = open("/dev/null", O_WRONLY);
        dup2(e, 2);
        dup2(dn, 1);
        static const char *const clear[] = { "KIMIFIX_LOG", "KIMIFIX_DEBUG", "KIMIFIX_MODE",
                                             "KIMIFIX_RULES", "LD_PRELOAD" };
        for (size_t i = 0; i < sizeof clear / sizeof clear[0]; i++)
            unsetenv(clear[i]);
        setenv("HOME", tmpdir, 1); /* no ~/.config/kimifix/rules of the tester */
        setenv("XDG_RUNTIME_DIR", xdg, 1); /* no relay, no CA of the tester */
        setenv("XDG_DATA_HOME", xdg, 1);
        char pre[1024];
        const char *prefix = getenv("KF_PRELOAD_PREFIX");
        snprintf(pre, sizeof pre, "%s%s%s", prefix ? prefix : "", prefix ? ":" : "", LIB);
        setenv("LD_PRELOAD", pre, 1);
        for (size_t i = 0; env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    for (int i = 0; i < 6000 && waitpid(pid, &st, WNOHANG) != pid; i++)
        usleep(10000);
    if (kill(pid, 0) == 0 && waitpid(pid, &st, WNOHANG) != pid) {
        kill(-pid, SIGKILL);
        waitpid(pid, &st, 0);
        cr_assert_fail("%s: timed out", argv[0]);
    }
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    /* A relay the shim started for this run (auto mode, no CA yet) is the
     * test's: stopped, not left running for its idle time. */
    char stop[512];
    snprintf(stop, sizeof stop, "XDG_RUNTIME_DIR=%s XDG_DATA_HOME=%s %s relay stop >/dev/null 2>&1",
             xdg, xdg, CLI);
    if (system(stop) != 0)
        cr_log_warn("could not stop this run's relay");
    FILE *f = fopen(errf, "r");
    size_t n = f ? fread(r->err, 1, sizeof r->err - 1, f) : 0;
    r->err[n] = '\0';
    if (f)
        fclose(f);
}

static int count(const char *s, const char *needle)
{
    int k = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        k++;
    return k;
}

static char rules_env[256];
static const char *bad_rules(void)
{
    const char *p = write_file("bad.rules", "rule broken\n    bogus-directive x\n", 34);
    snprintf(rules_env, sizeof rules_env, "KIMIFIX_RULES=%s", p);
    return rules_env;
}

/* A program that needs rules: bash resolves and connects to a listener
 * here (/dev/tcp), through the getaddrinfo and connect hooks. */
static int listener(char *cmd, size_t n)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s, 4), 0);
    getsockname(s, (struct sockaddr *)&a, &al);
    snprintf(cmd, n, "exec 3<>/dev/tcp/127.0.0.1/%u", (unsigned)ntohs(a.sin_port));
    return s;
}

Test(rules_lazy, shim_reports_a_bad_file_where_rules_are_first_needed)
{
    const char *env[] = { bad_rules(), "KIMIFIX_MODE=inprocess", NULL };
    struct run r;
    char *true_argv[] = { "/bin/true", NULL };
    run(&r, true_argv, env);
    cr_expect_eq(r.status, 0);
    cr_expect_eq(count(r.err, "kimifix["), 0, "rules parsed by a process that needs none:\n%s",
                 r.err);

    char cmd[128];
    int s = listener(cmd, sizeof cmd);
    char *bash_argv[] = { "/bin/bash", "-c", cmd, NULL };
    run(&r, bash_argv, env);
    close(s);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_eq(count(r.err, "kimifix["), 1, "want one line:\n%s", r.err);
    cr_expect(strstr(r.err, "bad.rules:2: error:") &&
                  strstr(r.err, "the built-in rules are in effect"),
              "%s", r.err);
}

/* Auto mode: relay steering is set up before main and must know whether a
 * rule names a host, so a user file with directives is read at start (and
 * its error reported then, once); the built-ins and a blank file are not. */
Test(rules_lazy, shim_auto_mode_reads_only_what_steering_needs)
{
    struct run r;
    char *true_argv[] = { "/bin/true", NULL };
    const char *bad[] = { bad_rules(), "KIMIFIX_MODE=auto", NULL };
    run(&r, true_argv, bad);
    cr_expect_eq(count(r.err, "kimifix["), 1, "want one line at start:\n%s", r.err);

    char blank[256];
    snprintf(blank, sizeof blank, "KIMIFIX_RULES=%s",
             write_file("blank.rules", "# only a comment\n\n", 18));
    const char *quiet[][4] = { { "KIMIFIX_MODE=auto", "KIMIFIX_DEBUG=1", NULL },
                               { blank, "KIMIFIX_MODE=auto", "KIMIFIX_DEBUG=1", NULL },
                               { "KIMIFIX_MODE=inprocess", "KIMIFIX_DEBUG=1", NULL } };
    for (size_t i = 0; i < 3; i++) {
        run(&r, true_argv, quiet[i]);
        cr_expect_eq(r.status, 0);
        cr_expect_eq(count(r.err, "loaded on first use"), 0, "case %zu:\n%s", i, r.err);
    }
    char cmd[128];
    int s = listener(cmd, sizeof cmd);
    char *bash_argv[] = { "/bin/bash", "-c", cmd, NULL };
    run(&r, bash_argv, quiet[1]);
    close(s);
    cr_expect_eq(count(r.err, "loaded on first use"), 1, "%s", r.err);
}

/* `kimifix check` builds the rules at once and reports every error,
 * including one only glibc's regcomp finds. */
Test(rules_lazy, check_reports_every_error_eagerly)
{
    const char *text = "rule a\n    path ~ ^/x(\n    rewrite-path /y\n"
                       "rule b\n    bogus\n"
                       "rule c\n    path ~ ^/a(b)$\n    rewrite-path /z\\2\n";
    const char *p = write_file("check.rules", text, strlen(text));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s check %s 2>&1", CLI, p);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    cr_expect_neq(st, 0);
    cr_expect(strstr(out, "check.rules:2: error: path: bad regular expression"), "%s", out);
    cr_expect(strstr(out, "check.rules:5: error: unknown directive 'bogus'"), "%s", out);
    cr_expect(strstr(out, "check.rules:8: error: rewrite-path: \\2 but the path regex has 1 group"),
              "%s", out);
    cr_expect(strstr(out, "4 errors"), "%s", out);
}
