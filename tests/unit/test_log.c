/* test_log.c - logging (one write per line, 0600 files, refusals) and
 * redaction of secrets in header values and request targets. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_log.h"

/* ---- redaction ---- */

Test(log, secret_header_names)
{
    static const char *secret[] = { "Authorization", "proxy-authorization", "X-API-KEY", "api-key",
                                    "Cookie", "set-cookie", "x-auth-token", "X-Goog-Api-Key",
                                    "x-secret", "x_client_secret", "token", "x.session-token" };
    static const char *plain[] = { "X-Msh-Platform", "User-Agent", "Host", "x-monkey",
                                   "turkey-id", "x-msh-device-id", "content-type", "x-mytoken" };
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
    kf_log_set_writer(capture);
    cr_assert_eq(kf_log_open("stderr"), 0);
    cr_assert_eq(kf_log_fd(), 2);
    kf_log(KF_LOG_WARN, "a\r\nkimifix[1]: forged\nline");
    cr_assert_eq(nwrites, 1);
    char want[128];
    snprintf(want, sizeof want, "kimifix[%d]: a  kimifix[1]: forged line\n", (int)getpid());
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
