/* kf_redact.h - redacted copies of request parts for logs and `kimifix
 * explain` (kf_redact.c). Pure: the engine's side of logging; the log
 * itself (kf_log.h, I/O) is in src/common. */
#ifndef KF_REDACT_H
#define KF_REDACT_H

#include <stddef.h>

#include "kf_req.h"

/* Secret header names: Authorization, Cookie,
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
