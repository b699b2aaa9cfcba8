/* test_log.c - logging (one write per line, 0600 files, refusals) and
 * redaction of secrets in header values and request targets. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "kf_log.h"

/* ---- redaction ---- */

Test(log, secret_header_names)
{
    static const char *secret[] = { "Authorization", "proxy-authorization", "X-API-KEY", "api-key",
                                    "Cookie", "set-cookie", "x-auth-token", "X-Goog-Api-Key",
                                    "x-secret", "x_client_secret", "token", "x.session-token",
                                    /* issue 10.7: Kong's key-auth, X-Auth, *-Auth-*, *token*,
                                     * *secret*, *key* */
                                    "apikey", "ApiKey", "X-Auth", "x-foo-auth-bar", "Auth",
                                    "x-mytoken", "xsecretx", "accesskey", "X-AccessKey-Id",
                                    "x-password", "X-Authentication", "X-Authorization",
                                    "x-credentials", "x-cookie2", "monkeykey" };
    /* the false positives a plain substring match would make (kf_redact.c) */
    static const char *plain[] = { "X-Msh-Platform", "User-Agent", "Host", "x-monkey",
                                   "turkey-id", "x-msh-device-id", "content-type", "keep-alive",
                                   "Connection", "Idempotency-Key", "Sec-WebSocket-Key",
                                   "x-ratelimit-remaining-tokens", "anthropic-ratelimit-tokens-limit",
                                   "X-Author", "x-keyboard-layout", "keyword", "x-stainless-os",
                                   "anthropic-version", "x-app" };
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        cr_assert(kf_is_secret_header(kf_str_c(secret[i])), "%s should be secret", secret[i]);
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        cr_assert_not(kf_is_secret_header(kf_str_c(plain[i])), "%s should not be secret", plain[i]);
}

Test(log, redact_value)
{
    char b[64];
    cr_assert_eq(kf_redact_value(KF_STR("Authorization"), KF_STR("Bearer sk-kimi-abc"), b, sizeof b), 10);
    cr_assert_str_eq(b, "[redacted]");
    kf_redact_value(KF_STR("cookie"), KF_STR("a=b"), b, sizeof b);
    cr_assert_str_eq(b, "[redacted]");
    kf_redact_value(KF_STR("X-Msh-Platform"), KF_STR("kimi_cli"), b, sizeof b);
    cr_assert_str_eq(b, "kimi_cli");
    char small[4];
    cr_assert_eq(kf_redact_value(KF_STR("a"), KF_STR("abcdef"), small, sizeof small), 3);
    cr_assert_str_eq(small, "abc");
}

Test(log, redact_target)
{
    char b[256];
    kf_redact_target(KF_STR("/coding/v1/messages"), KF_STR("?beta=true"), b, sizeof b);
    cr_assert_str_eq(b, "/coding/v1/messages?beta=true");
    kf_redact_target(KF_STR("/v1/x"),
                     KF_STR("?api_key=k1&access_token=t&client_secret=s&password=p&sig=z&auth=a&code=c&x=sk-live&ok=1&flag"),
                     b, sizeof b);
    cr_assert_str_eq(b, "/v1/x?api_key=[redacted]&access_token=[redacted]&client_secret=[redacted]"
                        "&password=[redacted]&sig=[redacted]&auth=[redacted]&code=[redacted]"
                        "&x=[redacted]&ok=1&flag");
    kf_redact_target(KF_STR("/keys/sk-abc/x"), KF_STR(""), b, sizeof b);
    cr_assert_str_eq(b, "/keys/[redacted]/x");
    kf_redact_target(KF_STR("/"), KF_STR("?Key=&sk-bare&a=b=c"), b, sizeof b);
    cr_assert_str_eq(b, "/?Key=&[redacted]&a=b=c");
    /* issue 10.7: ';' separates too, names are percent-decoded first */
    kf_redact_target(KF_STR("/v1"), KF_STR("?x=1;key=SECRET1&%6Bey=SECRET2;%54oken=SECRET3"), b,
                     sizeof b);
    cr_assert_str_eq(b, "/v1?x=1;key=[redacted]&%6Bey=[redacted];%54oken=[redacted]");
    kf_redact_target(KF_STR("/v1"), KF_STR("?a=sk%2Dkimi-SECRET4&q=hello%20world&k%65y"), b, sizeof b);
    cr_assert_str_eq(b, "/v1?a=[redacted]&q=hello%20world&k%65y");
    /* a key under an innocent name is still masked by its look */
    kf_redact_target(KF_STR("/v1"), KF_STR("?q=x,sk-kimi-SECRET5abcdef&b=Bearer%20x"), b, sizeof b);
    cr_assert_str_eq(b, "/v1?q=x,sk-kimi-[redacted]&b=Bearer%20x");
    cr_assert_null(strstr(b, "SECRET"));
    char small[8];
    cr_assert_eq(kf_redact_target(KF_STR("/abcdefghij"), KF_STR(""), small, sizeof small), 7);
    cr_assert_str_eq(small, "/abcdef");
}

/* ---- the log itself ---- */

static char tmpdir[] = "/tmp/kf-log-XXXXXX";
static char path[256];

static void setup(void)
{
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(path, sizeof path, "%s/log", tmpdir);
}

static void teardown(void)
{
    kf_log_close();
    unlink(path);
    rmdir(tmpdir);
}

static char *slurp(const char *p)
{
    static char buf[8192];
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(log, file_is_0600_and_lines_have_pid, .init = setup, .fini = teardown)
{
    umask(0);
    cr_assert_eq(kf_log_open(path), 0);
    cr_assert_geq(kf_log_fd(), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    int fl = fcntl(kf_log_fd(), F_GETFD);
    cr_assert(fl & FD_CLOEXEC);
    kf_log(KF_LOG_INFO, "hello %s %d", "world", 42);
    kf_log(KF_LOG_DEBUG, "not at the default level");
    kf_log_set_level(KF_LOG_DEBUG);
    kf_log(KF_LOG_DEBUG, "now it is");
    kf_log_close();
    kf_log(KF_LOG_ERROR, "after close: dropped");
    char want[256];
    snprintf(want, sizeof want, "kimifix[%d]: hello world 42\nkimifix[%d]: now it is\n", (int)getpid(),
             (int)getpid());
    cr_assert_str_eq(slurp(path), want);
    /* reopening an existing 0600 file appends */
    cr_assert_eq(kf_log_open(path), 0);
    kf_log(KF_LOG_INFO, "again");
    kf_log_close();
    cr_assert(strstr(slurp(path), "kimifix["), "appended");
    cr_assert_eq(strstr(slurp(path), "]: again\n") != NULL, 1);
}

Test(log, refuses_group_or_world_accessible_file, .init = setup, .fini = teardown)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    cr_assert_geq(fd, 0);
    fchmod(fd, 0644);
    close(fd);
    errno = 0;
    cr_assert_eq(kf_log_open(path), -1);
    cr_assert_eq(errno, EPERM);
    cr_assert_eq(kf_log_fd(), -1, "logging stays off");
    cr_assert_not(kf_log_enabled(KF_LOG_ERROR));
    struct stat st;
    stat(path, &st);
    cr_assert_eq(st.st_mode & 0777, 0644, "the file is not chmod-ed behind the user's back");
}

Test(log, refuses_symlink, .init = setup, .fini = teardown)
{
    char target[300];
    snprintf(target, sizeof target, "%s/target", tmpdir);
    cr_assert_eq(symlink(target, path), 0);
    errno = 0;
    cr_assert_eq(kf_log_open(path), -1);
    cr_assert_eq(errno, ELOOP);
    cr_assert_eq(access(target, F_OK), -1, "nothing created through the link");
}

static char captured[4096];
static size_t ncaptured;
static int nwrites;

static ssize_t capture(int fd, const void *buf, size_t n)
{
    (void)fd;
    nwrites++;
    memcpy(captured + ncaptured, buf, n);
    ncaptured += n;
    captured[ncaptured] = '\0';
    return (ssize_t)n;
}

Test(log, one_write_per_line_no_injection_bounded)
{
    /* stderr a regular file: lines go through the writer (a pipe or a
     * terminal takes the no-wait path, tested below) */
    char errp[] = "/tmp/kf-log-stderr-XXXXXX";
    int efd = mkstemp(errp);
    cr_assert_geq(efd, 0);
    unlink(errp);
    dup2(efd, 2);
    kf_log_set_writer(capture);
    cr_assert_eq(kf_log_open("stderr"), 0);
    cr_assert_eq(kf_log_fd(), 2);
    kf_log(KF_LOG_WARN, "a\r\nkimifix[1]: forged\nline \033]0;title\007");
    cr_assert_eq(nwrites, 1);
    char want[128];
    snprintf(want, sizeof want, "kimifix[%d]: a\\x0d\\x0akimifix[1]: forged\\x0aline \\x1b]0;title\\x07\n",
             (int)getpid());
    cr_assert_str_eq(captured, want);
    ncaptured = 0;
    nwrites = 0;
    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    kf_log(KF_LOG_ERROR, "%s", big);
    cr_assert_eq(nwrites, 1);
    cr_assert_eq(ncaptured, 1024, "line bounded by the stack buffer");
    cr_assert_eq(memcmp(captured + 1024 - 4, "...\n", 4), 0);
    kf_log_close();
    cr_assert_eq(kf_log_open("-"), 0);
    cr_assert_eq(kf_log_fd(), 2);
    cr_assert_eq(kf_log_open("off"), 0);
    cr_assert_eq(kf_log_fd(), -1);
    kf_log_set_writer(NULL);
}

/* ---- issue 10.4: where a log may go, and never blocking the host ---- */

static void guard(void)
{
    alarm(60); /* hang guard only: a blocked open or write kills the test */
}

Test(log, refuses_fifo_without_blocking, .init = setup, .fini = teardown)
{
    guard();
    cr_assert_eq(mkfifo(path, 0666), 0);
    errno = 0;
    cr_assert_eq(kf_log_open(path), -1, "no reader: must not block, must refuse");
    cr_assert_eq(errno, ENOTSUP);
    /* with a reader (another user capturing the log): still refused, and
     * the reader gets nothing */
    int rd = open(path, O_RDONLY | O_NONBLOCK);
    cr_assert_geq(rd, 0);
    cr_assert_eq(kf_log_open(path), -1);
    kf_log(KF_LOG_ERROR, "must not reach the FIFO");
    char b[64];
    cr_assert_leq(read(rd, b, sizeof b), 0);
    close(rd);
    cr_assert_eq(kf_log_fd(), -1);
}

Test(log, accepts_dev_null_refuses_socket_and_dir, .init = setup, .fini = teardown)
{
    cr_assert_eq(kf_log_open("/dev/null"), 0);
    kf_log(KF_LOG_ERROR, "into the sink");
    int fl = fcntl(kf_log_fd(), F_GETFL);
    cr_assert(fl & O_NONBLOCK, "opened O_NONBLOCK");
    kf_log_close();
    errno = 0;
    cr_assert_eq(kf_log_open(tmpdir), -1);
    cr_assert_eq(errno, EISDIR);
}

Test(log, refuses_a_file_of_another_user, .init = setup, .fini = teardown)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to become another user");
    int fd = open(path, O_CREAT | O_WRONLY, 0600); /* root's, 0600 */
    close(fd);
    chmod(tmpdir, 0777);
    cr_assert_eq(setresuid(65534, 65534, 65534), 0);
    errno = 0;
    cr_assert_eq(kf_log_open(path), -1);
    cr_assert(errno == EPERM || errno == EACCES, "errno %d", errno);
}

Test(log, stops_when_the_host_reuses_the_fd, .init = setup, .fini = teardown)
{
    cr_assert_eq(kf_log_open(path), 0);
    int fd = kf_log_fd();
    close(fd); /* the host closes every fd... */
    char other[300];
    snprintf(other, sizeof other, "%s/other", tmpdir);
    int o = open(other, O_CREAT | O_WRONLY | O_TRUNC, 0600); /* ...and reuses the number */
    cr_assert_eq(o, fd);
    kf_log(KF_LOG_ERROR, "must not land in the host's file");
    struct stat st;
    fstat(o, &st);
    cr_assert_eq(st.st_size, 0);
    cr_assert_eq(kf_log_fd(), -1, "logging stopped");
    close(o);
    unlink(other);
}

/* stderr is a pipe nobody reads, and full: the line is dropped; a plain
 * write() would block the host forever. */
Test(log, full_stderr_pipe_does_not_block)
{
    guard();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    char junk[4096] = { 0 };
    while (write(p[1], junk, sizeof junk) > 0)
        ;
    int tail = 0;
    while (write(p[1], junk, 1) > 0) /* fill the last page to the byte */
        tail++;
    fcntl(p[1], F_SETFL, 0); /* the host's description: blocking, as it was */
    dup2(p[1], 2);
    cr_assert_eq(kf_log_open("stderr"), 0);
    kf_log(KF_LOG_ERROR, "dropped, not blocking");
    cr_assert_eq(fcntl(2, F_GETFL) & O_NONBLOCK, 0, "the host's flags are untouched");
    /* drain: logging resumes */
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    char b[65536];
    while (read(p[0], b, sizeof b) > 0)
        ;
    kf_log(KF_LOG_ERROR, "after the drain");
    ssize_t n = read(p[0], b, sizeof b - 1);
    cr_assert_gt(n, 0);
    b[n] = 0;
    cr_assert(strstr(b, "after the drain"), "%s", b);
    cr_assert_null(strstr(b, "dropped"));
}

static volatile sig_atomic_t npipe;
static void on_pipe(int sig)
{
    (void)sig;
    npipe++;
}

/* stderr is a pipe whose reader is gone: our line must not kill the host
 * with SIGPIPE, nor eat or hide a SIGPIPE that belongs to the host. */
Test(log, closed_stderr_pipe_no_sigpipe)
{
    guard();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    dup2(p[1], 2);
    signal(SIGPIPE, SIG_DFL);
    cr_assert_eq(kf_log_open("stderr"), 0);
    kf_log(KF_LOG_ERROR, "reader gone"); /* SIG_DFL: a SIGPIPE here would kill us */
    sigset_t cur, pend;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    cr_assert_not(sigismember(&cur, SIGPIPE), "mask restored");
    sigpending(&pend);
    cr_assert_not(sigismember(&pend, SIGPIPE), "our SIGPIPE consumed");
    /* the host's own write still gets its SIGPIPE */
    signal(SIGPIPE, on_pipe);
    cr_assert_eq(write(2, "x", 1), -1);
    cr_assert_eq(npipe, 1);
    /* a SIGPIPE the host has pending (blocked) survives our logging */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    cr_assert_eq(write(2, "x", 1), -1);
    kf_log(KF_LOG_ERROR, "reader still gone");
    sigpending(&pend);
    cr_assert(sigismember(&pend, SIGPIPE), "the host's pending SIGPIPE is kept");
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    cr_assert_eq(npipe, 2);
}
