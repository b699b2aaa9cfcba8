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

#include "kf_req.h"

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

void kf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kf_vlog(int level, const char *fmt, va_list ap);

/* Redaction (kf_redact.c). Secret header names: Authorization, Cookie,
 * x-api-key, Kong's apikey, and names containing token, secret, password,
 * passwd, credential, cookie, authoriz, authentic, a word "auth", or a word
 * containing "key" (with the false positives listed in kf_redact.c left
 * out: monkey, Idempotency-Key, x-ratelimit-*-tokens...). */
int kf_is_secret_header(kf_str name);
/* Copy a header value for logging: secrets become "[redacted]"; other
 * values have what looks like a key masked (kf_mask.h). */
size_t kf_redact_value(kf_str name, kf_str value, char *buf, size_t n);
/* Copy a path+query for logging: the query splits on '&' and ';'; values
 * of parameters whose percent-decoded name looks secret (key, token,
 * secret, password, passwd, sig, auth, code, credential) and any value or
 * path segment starting with "sk-" (decoded) become "[redacted]"; keys in
 * other values are masked by their look (kf_mask.h). */
size_t kf_redact_target(kf_str path, kf_str query, char *buf, size_t n);

#endif
