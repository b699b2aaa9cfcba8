/* kf_log.h - one-line logging with secrets redacted.
 *
 * Lines look like "kimifix[PID]: message\n" and are written with a single
 * write() so concurrent writers do not interleave. The destination is
 * stderr or a file created 0600 (O_APPEND, O_CLOEXEC, O_NOFOLLOW). Nothing
 * is ever written to stdout. Until kf_log_open() succeeds, logging is off.
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
 * errno (logging stays off). */
int kf_log_open(const char *spec);
void kf_log_close(void);
void kf_log_set_level(int level);   /* default KF_LOG_INFO */
int kf_log_enabled(int level);
int kf_log_fd(void);                 /* -1 when off */

void kf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kf_vlog(int level, const char *fmt, va_list ap);

/* Redaction. Sensitive headers: Authorization, Proxy-Authorization,
 * x-api-key, api-key, Cookie, Set-Cookie, and any name containing "token",
 * "secret" or "key" after a separator. */
int kf_is_secret_header(kf_str name);
/* Copy a header value for logging: secrets become "[redacted]". */
size_t kf_redact_value(kf_str name, kf_str value, char *buf, size_t n);
/* Copy a path+query for logging: values of query parameters whose name
 * looks secret (key, token, secret, password, sig, auth, code) and any value
 * starting with "sk-" become "[redacted]". */
size_t kf_redact_target(kf_str path, kf_str query, char *buf, size_t n);

#endif
