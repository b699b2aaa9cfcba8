/* kf_log.c - one-line logging with secrets redacted.
 *
 * Every line is formatted into a stack buffer and written with one write()
 * so lines from several threads or processes sharing the file do not
 * interleave (O_APPEND makes each write land at the end). Nothing here
 * allocates, and nothing ever goes to stdout: we run inside other people's
 * programs, whose stdout may be a pipe someone parses.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_log.h"

#define KF_LOG_LINE 1024

static int log_fd = -1;
static int log_owned; /* we opened log_fd and must close it */
static int log_level = KF_LOG_INFO;
static kf_write_fn log_write = write;

void kf_log_set_writer(kf_write_fn w)
{
    log_write = w ? w : write;
}

void kf_log_close(void)
{
    if (log_owned && log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    log_owned = 0;
}

int kf_log_open(const char *spec)
{
    kf_log_close();
    if (!spec || !*spec || strcmp(spec, "off") == 0)
        return 0;
    if (strcmp(spec, "stderr") == 0 || strcmp(spec, "-") == 0) {
        log_fd = 2;
        return 0;
    }
    int fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    /* A log holds request summaries: refuse a regular file others can read
     * or write (we do not silently chmod a file somebody else set up), and
     * one owned by another user. Devices such as /dev/null are fine. */
    if (S_ISREG(st.st_mode) && ((st.st_mode & 077) || st.st_uid != geteuid())) {
        close(fd);
        errno = EPERM;
        return -1;
    }
    log_fd = fd;
    log_owned = 1;
    return 0;
}

void kf_log_set_level(int level)
{
    log_level = level;
}

int kf_log_enabled(int level)
{
    return log_fd >= 0 && level <= log_level;
}

int kf_log_fd(void)
{
    return log_fd;
}

static size_t put_uint(char *p, unsigned long v)
{
    char t[24];
    size_t k = 0;
    do {
        t[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < k; i++)
        p[i] = t[k - 1 - i];
    return k;
}

void kf_vlog(int level, const char *fmt, va_list ap)
{
    if (!kf_log_enabled(level))
        return;
    char line[KF_LOG_LINE];
    size_t n = 0;
    memcpy(line, "kimifix[", 8);
    n = 8;
    n += put_uint(line + n, (unsigned long)getpid());
    memcpy(line + n, "]: ", 3);
    n += 3;
    size_t room = sizeof line - n - 1; /* keep one byte for '\n' */
    int k = vsnprintf(line + n, room + 1, fmt, ap);
    if (k < 0)
        k = 0;
    size_t body = (size_t)k;
    if (body > room) {
        body = room;
        memcpy(line + n + body - 3, "...", 3);
    }
    /* One event, one line: a CR or LF smuggled in through a header value
     * or a file name must not forge a second log line. */
    for (size_t i = n; i < n + body; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    n += body;
    line[n++] = '\n';
    int saved = errno;
    ssize_t w;
    do {
        w = log_write(log_fd, line, n);
    } while (w < 0 && errno == EINTR);
    errno = saved;
}

void kf_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kf_vlog(level, fmt, ap);
    va_end(ap);
}

/* ---- redaction ---- */

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Does `word` occur in s (case-insensitive) at the start or right after a
 * separator ('-', '_', '.')? */
static int has_word_after_sep(kf_str s, const char *word)
{
    size_t wn = strlen(word);
    for (size_t i = 0; i + wn <= s.n; i++) {
        if (i > 0 && s.p[i - 1] != '-' && s.p[i - 1] != '_' && s.p[i - 1] != '.')
            continue;
        size_t j = 0;
        while (j < wn && lower((unsigned char)s.p[i + j]) == (unsigned char)word[j])
            j++;
        if (j == wn)
            return 1;
    }
    return 0;
}

static int contains_ci(kf_str s, const char *word)
{
    size_t wn = strlen(word);
    for (size_t i = 0; i + wn <= s.n; i++) {
        size_t j = 0;
        while (j < wn && lower((unsigned char)s.p[i + j]) == (unsigned char)word[j])
            j++;
        if (j == wn)
            return 1;
    }
    return 0;
}

int kf_is_secret_header(kf_str name)
{
    static const char *const exact[] = { "authorization", "proxy-authorization", "x-api-key",
                                         "api-key",       "cookie",              "set-cookie" };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (kf_str_ieq_c(name, exact[i]))
            return 1;
    return has_word_after_sep(name, "token") || has_word_after_sep(name, "secret") ||
           has_word_after_sep(name, "key");
}

static size_t copy_out(char *buf, size_t n, size_t at, const char *s, size_t k)
{
    if (n == 0 || at >= n - 1)
        return at;
    if (k > n - 1 - at)
        k = n - 1 - at;
    memcpy(buf + at, s, k);
    buf[at + k] = '\0';
    return at + k;
}

static const char redacted[] = "[redacted]";

size_t kf_redact_value(kf_str name, kf_str value, char *buf, size_t n)
{
    if (n)
        buf[0] = '\0';
    if (kf_is_secret_header(name))
        return copy_out(buf, n, 0, redacted, sizeof redacted - 1);
    return copy_out(buf, n, 0, value.p, value.n);
}

static int secret_param(kf_str name, kf_str value)
{
    static const char *const words[] = { "key", "token", "secret", "password", "sig", "auth", "code" };
    if (value.n >= 3 && memcmp(value.p, "sk-", 3) == 0)
        return 1;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (contains_ci(name, words[i]))
            return 1;
    return 0;
}

size_t kf_redact_target(kf_str path, kf_str query, char *buf, size_t n)
{
    size_t at = 0;
    if (n)
        buf[0] = '\0';
    /* Path segments that are keys ("/sk-...") are redacted too. */
    size_t i = 0;
    while (i < path.n) {
        size_t j = i;
        while (j < path.n && path.p[j] != '/')
            j++;
        kf_str seg = { path.p + i, j - i };
        if (seg.n >= 3 && memcmp(seg.p, "sk-", 3) == 0)
            at = copy_out(buf, n, at, redacted, sizeof redacted - 1);
        else
            at = copy_out(buf, n, at, seg.p, seg.n);
        if (j < path.n)
            at = copy_out(buf, n, at, "/", 1);
        i = j + 1;
    }
    if (query.n == 0)
        return at;
    /* query: "?a=b&c=d" */
    size_t q = 0;
    if (query.p[0] == '?') {
        at = copy_out(buf, n, at, "?", 1);
        q = 1;
    }
    while (q <= query.n) {
        size_t e = q;
        while (e < query.n && query.p[e] != '&')
            e++;
        kf_str param = { query.p + q, e - q };
        const char *eq = memchr(param.p, '=', param.n);
        if (eq) {
            kf_str pname = { param.p, (size_t)(eq - param.p) };
            kf_str pval = { eq + 1, param.n - pname.n - 1 };
            at = copy_out(buf, n, at, pname.p, pname.n + 1);
            if (pval.n && secret_param(pname, pval))
                at = copy_out(buf, n, at, redacted, sizeof redacted - 1);
            else
                at = copy_out(buf, n, at, pval.p, pval.n);
        } else if (param.n >= 3 && memcmp(param.p, "sk-", 3) == 0) {
            at = copy_out(buf, n, at, redacted, sizeof redacted - 1);
        } else {
            at = copy_out(buf, n, at, param.p, param.n);
        }
        if (e >= query.n)
            break;
        at = copy_out(buf, n, at, "&", 1);
        q = e + 1;
    }
    return at;
}
