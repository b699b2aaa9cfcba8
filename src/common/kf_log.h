/* kf_log.h - one-line logging with secrets redacted.
 *
 * Lines look like "kimifix[PID]: message\n" and are written with a single
 * write() so concurrent writers do not interleave. Secrets in the message
 * are masked and control bytes escaped (kf_mask.h). The destination is
 * stderr, or a file that is a regular file of the user's created 0600, or
 * a character device (the user's tty, /dev/null); a logging write never
 * blocks the host and never raises SIGPIPE in it (kf_log.c). Nothing is
 * ever written to stdout. Until kf_log_open() succeeds, logging is off.
 */
#ifndef KF_LOG_H
#define KF_LOG_H

#include <stdarg.h>
#include <sys/types.h>

#include "kf_redact.h" /* what log lines are made of: redacted copies */

enum kf_log_level { KF_LOG_ERROR = 0, KF_LOG_WARN = 1, KF_LOG_INFO = 2, KF_LOG_DEBUG = 3 };

/* The write function used for log lines (the shim passes its real_write so
 * logging never re-enters its own hooks). Default: write(2). */
typedef ssize_t (*kf_write_fn)(int fd, const void *buf, size_t n);
void kf_log_set_writer(kf_write_fn w);

/* spec: "stderr" (or "-"), "off", or a file path. Returns 0, or -1 with
 * errno (logging stays off): EPERM a file of another user or one others
 * may read or write, or another user's terminal; ELOOP a symbolic link;
 * ENOTSUP a FIFO, socket or block device; EISDIR a directory. */
int kf_log_open(const char *spec);
void kf_log_close(void);
void kf_log_set_level(int level);   /* default KF_LOG_INFO */
int kf_log_enabled(int level);
int kf_log_fd(void);                 /* -1 when off */
/* For a process that owns its descriptors and does not fork (the relay):
 * the log fd is not re-checked before every line (a host may close and
 * reuse it under the shim, never under the relay), and the pid in each
 * line is read once. */
void kf_log_own_fds(void);

/* fd 2 when the log goes to stderr and fd 2 is still the file it was
 * when the log was opened (a host that closed stderr and reused the
 * number must not have it handed on), else -1. The shim passes it to the
 * relay as its `log fd` (kf_ctxself.c). */
int kf_log_stderr_fd(void);

/* For a log of someone else's (the relay writing a client's lines):
 *  - kf_log_open_file: open a log file path with every check kf_log_open
 *    makes (O_NOFOLLOW|O_NONBLOCK|O_APPEND, created 0600, the user's own
 *    regular file or a character device); the fd (its identity in *dev,
 *    *ino, may be NULL), or -1 with errno.
 *  - kf_log_format: "kimifix[PID]: " + the message masked and escaped +
 *    '\n' into line (at most cap, <= 1024 used); its length.
 *  - kf_log_emit: a formatted line to this process's log, if level is on.
 *  - kf_log_write_to: a formatted line to fd without ever blocking (a
 *    regular file: write; a pipe, socket or terminal: RWF_NOWAIT or poll
 *    first, SIGPIPE consumed; the fd's flags untouched): 0 written, -1
 *    dropped. */
int kf_log_open_file(const char *path, dev_t *dev, ino_t *ino);
size_t kf_log_format(char *line, size_t cap, const char *fmt, va_list ap);
void kf_log_emit(int level, const char *line, size_t n);
int kf_log_write_to(int fd, const char *line, size_t n);

void kf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kf_vlog(int level, const char *fmt, va_list ap);

#endif
