/* kf_log.c - one-line logging that never blocks its host (kf_log.h).
 *
 * Every line is formatted into a stack buffer, masked and escaped
 * (kf_mask.c) and written with one write() so lines from several threads
 * or processes sharing the file do not interleave (O_APPEND makes each
 * write land at the end). Nothing here allocates, and nothing ever goes to
 * stdout: we run inside other people's programs, whose stdout may be a
 * pipe someone parses.
 *
 * Where a line may go, and why (docs/RELIABILITY.md, finding 4):
 *  - a KIMIFIX_LOG path: a regular file owned by the user and not
 *    accessible to others (created 0600), or a character device that is
 *    the user's own (their tty) or a sink (/dev/null, /dev/zero, /dev/full,
 *    /dev/tty). Opened O_NONBLOCK|O_NOFOLLOW|O_NOCTTY|O_CLOEXEC: a FIFO
 *    planted at the path by another user neither blocks the open (no
 *    reader: ENXIO) nor gets a line (refused after fstat). O_NONBLOCK
 *    stays set: it is meaningless for a regular file and makes a stopped
 *    tty drop a line instead of freezing the host.
 *  - stderr: the host's own file description. We must not change its
 *    flags (O_NONBLOCK is shared with the host), so a pipe or socket is
 *    written with pwritev2(RWF_NOWAIT) (a full pipe nobody reads: the line
 *    is dropped, where a plain write() would block the host forever), or,
 *    for a terminal or on kernels without RWF_NOWAIT for pipes, only after
 *    poll() says it is writable; SIGPIPE is blocked around the write and a
 *    SIGPIPE our write raised is consumed, so a closed reader costs a line,
 *    not the host.
 *    The host's own writes to stderr behave exactly as before.
 *  - either: before each line we check that the fd still names the file
 *    we opened (a host that closes "all fds" and reuses the number must not
 *    get our lines in its socket); if not, logging stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "kf_sys.h"
#include "kf_log.h"
#include "kf_mask.h"
#include "kf_startdata.h"

#define KF_LOG_LINE 1024

/* KF_START_DATA: every start of the shim writes these (kf_log_open). */
static int log_fd = -1;
static int log_owned KF_START_DATA; /* we opened log_fd and must close it */
static dev_t log_dev KF_START_DATA; /* identity of what we opened (owned fds) */
static ino_t log_ino KF_START_DATA;
static int log_level = KF_LOG_INFO;
static int err_known KF_START_DATA; /* fd 2 when the log was opened on it: what it was */
static dev_t err_dev KF_START_DATA;
static ino_t err_ino KF_START_DATA;
static kf_write_fn log_write = kf_sys_write;

void kf_log_set_writer(kf_write_fn w)
{
    log_write = w ? w : kf_sys_write;
}

void kf_log_close(void)
{
    if (log_owned && log_fd >= 0)
        kf_sys_close(log_fd);
    log_fd = -1;
    log_owned = 0;
}

/* 0 when a log may go to this file, else the errno to refuse it with. */
static int acceptable(const struct stat *st)
{
    if (S_ISREG(st->st_mode))
        /* A log holds request summaries: refuse a regular file others can
         * read or write (we do not silently chmod a file somebody else set
         * up), and one owned by another user. */
        return (st->st_mode & 077) || st->st_uid != geteuid() ? EPERM : 0;
    if (S_ISCHR(st->st_mode)) {
        unsigned ma = major(st->st_rdev), mi = minor(st->st_rdev);
        int sink = ma == 1 && (mi == 3 || mi == 5 || mi == 7); /* null, zero, full */
        int own_tty = ma == 5 && mi == 0;                      /* /dev/tty: our terminal */
        /* Another user's terminal (mesg y) would show them our log. */
        return st->st_uid == geteuid() || sink || own_tty ? 0 : EPERM;
    }
    if (S_ISLNK(st->st_mode))
        return ELOOP;
    if (S_ISDIR(st->st_mode))
        return EISDIR;
    return ENOTSUP; /* FIFO, socket, block device */
}

int kf_log_open_file(const char *spec, dev_t *dev, ino_t *ino)
{
    struct stat before, st;
    int had = lstat(spec, &before) == 0;
    int e = had ? acceptable(&before) : 0;
    if (e) { /* refuse without even opening it: opening a FIFO wakes its reader */
        errno = e;
        return -1;
    }
    int fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
                  0600);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0)
        e = errno;
    else if (had && (st.st_dev != before.st_dev || st.st_ino != before.st_ino))
        e = EAGAIN; /* swapped under us between lstat and open: try again later */
    else
        e = acceptable(&st);
    if (e) {
        kf_sys_close(fd);
        errno = e;
        return -1;
    }
    if (dev)
        *dev = st.st_dev;
    if (ino)
        *ino = st.st_ino;
    return fd;
}

static int open_path(const char *spec)
{
    int fd = kf_log_open_file(spec, &log_dev, &log_ino);
    if (fd < 0)
        return -1;
    log_fd = fd;
    log_owned = 1;
    return 0;
}

int kf_log_open(const char *spec)
{
    kf_log_close();
    if (!spec || !*spec || strcmp(spec, "off") == 0)
        return 0;
    if (strcmp(spec, "stderr") == 0 || strcmp(spec, "-") == 0) {
        struct stat st;
        log_fd = 2;
        err_known = fstat(2, &st) == 0;
        err_dev = st.st_dev;
        err_ino = st.st_ino;
        return 0;
    }
    return open_path(spec);
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

int kf_log_stderr_fd(void)
{
    struct stat st;
    if (log_fd != 2 || !err_known || fstat(2, &st) != 0 || st.st_dev != err_dev ||
        st.st_ino != err_ino)
        return -1; /* not logging to stderr, or fd 2 is something else now */
    return 2;
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

static ssize_t write_retry(int fd, const char *p, size_t n)
{
    ssize_t w;
    do {
        w = log_write(fd, p, n);
    } while (w < 0 && errno == EINTR);
    return w;
}

/* A line to the host's stderr when it is a pipe, socket or terminal:
 * never block, never die of SIGPIPE (see the top of the file). */
static ssize_t write_nowait(int fd, const char *p, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    struct iovec iov = { (void *)p, n };
    ssize_t w;
    do {
        w = pwritev2(fd, &iov, 1, -1, RWF_NOWAIT);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)) {
        /* No RWF_NOWAIT here (ttys; pipes before Linux 5.x). A line is
         * under PIPE_BUF, so a pipe that polls writable takes it whole. */
        struct pollfd pf = { fd, POLLOUT, 0 };
        if (poll(&pf, 1, 0) == 1 && (pf.revents & POLLOUT) && !(pf.revents & (POLLERR | POLLHUP)))
            w = write_retry(fd, p, n);
    }
    if (w < 0 && errno == EPIPE && !was_pending) {
        /* SIGPIPE for a write is sent to the writing thread: ours. */
        struct timespec zero = { 0, 0 };
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return w;
}

int kf_log_write_to(int fd, const char *p, size_t n)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return -1;
    int saved = errno;
    ssize_t w = S_ISREG(st.st_mode) ? write_retry(fd, p, n) : write_nowait(fd, p, n);
    errno = saved;
    return w == (ssize_t)n ? 0 : -1;
}

/* kf_log_own_fds(): this process owns its descriptors and does not fork
 * (the relay). Its log fd is checked once, not once per line, and its pid
 * read once: two system calls fewer per rewritten request. */
static int log_own_fds;
static pid_t log_pid;
static atomic_int log_kind = -1; /* fd * 2 + (regular file), -1: not known */

void kf_log_own_fds(void)
{
    log_pid = getpid();
    log_own_fds = 1;
}

static void write_owned(int fd, const char *p, size_t n)
{
    int kind = atomic_load_explicit(&log_kind, memory_order_relaxed);
    if (kind < 0 || kind / 2 != fd) {
        struct stat st;
        if (fstat(fd, &st) != 0)
            return;
        kind = fd * 2 + !!S_ISREG(st.st_mode);
        atomic_store_explicit(&log_kind, kind, memory_order_relaxed);
    }
    if (kind & 1)
        write_retry(fd, p, n);
    else
        write_nowait(fd, p, n);
}

static void write_line(const char *p, size_t n)
{
    int fd = log_fd;
    struct stat st;
    if (fd >= 0 && log_own_fds) {
        write_owned(fd, p, n);
        return;
    }
    if (fd < 0 || fstat(fd, &st) != 0)
        return; /* closed under us (a host closing every fd): drop */
    if (log_owned) {
        if (st.st_dev != log_dev || st.st_ino != log_ino) {
            log_fd = -1; /* the number is the host's now: never write there */
            log_owned = 0;
            return;
        }
        write_retry(fd, p, n);
    } else if (S_ISREG(st.st_mode)) {
        write_retry(fd, p, n);
    } else {
        write_nowait(fd, p, n);
    }
}

size_t kf_log_format(char *line, size_t cap, const char *fmt, va_list ap)
{
    char raw[KF_LOG_LINE];
    size_t n = 0;
    if (cap < 64)
        return 0;
    if (cap > KF_LOG_LINE)
        cap = KF_LOG_LINE;
    memcpy(line, "kimifix[", 8);
    n = 8;
    n += put_uint(line + n, (unsigned long)(log_own_fds ? log_pid : getpid()));
    memcpy(line + n, "]: ", 3);
    n += 3;
    int k = vsnprintf(raw, sizeof raw, fmt, ap);
    size_t rn = k < 0 ? 0 : (size_t)k < sizeof raw ? (size_t)k : sizeof raw - 1;
    /* One event, one line: a CR or LF smuggled in through a header value
     * or a file name must not forge a second log line, nor an escape
     * sequence drive the terminal of whoever reads the log; keys an
     * upstream echoes in its error message are masked. */
    size_t room = cap - n - 1; /* keep one byte for '\n' */
    const unsigned how = KF_MASK_SECRETS | KF_MASK_ESCAPE;
    size_t body = kf_mask_text(raw, rn, line + n, room + 1, NULL, 0, how);
    if (body > room || k >= (int)sizeof raw) { /* cut: say so, whole escapes only */
        kf_mask_text(raw, rn, line + n, room - 3 + 1, NULL, 0, how);
        body = strlen(line + n);
        memcpy(line + n + body, "...", 3);
        body += 3;
    }
    n += body;
    line[n++] = '\n';
    return n;
}

void kf_log_emit(int level, const char *line, size_t n)
{
    if (!kf_log_enabled(level))
        return;
    int saved = errno;
    write_line(line, n);
    errno = saved;
}

void kf_vlog(int level, const char *fmt, va_list ap)
{
    if (!kf_log_enabled(level))
        return;
    char line[KF_LOG_LINE];
    int saved = errno;
    size_t n = kf_log_format(line, sizeof line, fmt, ap);
    write_line(line, n);
    errno = saved;
}

void kf_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kf_vlog(level, fmt, ap);
    va_end(ap);
}
