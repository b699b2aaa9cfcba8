/* kf_shim.h - what the hook families of libkimifix.so share.
 *
 * Owned by src/hooks/shim.c (init, configuration, logging callbacks) and
 * src/hooks/resolve.c (finding real functions). Hook families include only
 * this header and the engine's headers.
 */
#ifndef KF_SHIM_H
#define KF_SHIM_H

#include <stddef.h>
#include <sys/types.h>

#include "kf_log.h"
#include "kf_req.h"
#include "kf_rules.h"
#include "kf_stream.h"

/* The only symbols the library exports are hooks marked KF_EXPORT. */
#define KF_EXPORT __attribute__((visibility("default")))

enum kf_mode { KF_MODE_OFF = 0, KF_MODE_AUTO, KF_MODE_INPROCESS, KF_MODE_RELAY };

/* Initialise once (constructor; also lazily from any hook, thread-safe).
 * Reads KIMIFIX_RULES, KIMIFIX_LOG, KIMIFIX_MODE with secure_getenv. */
void kf_shim_init(void);

/* The process's rules, or NULL when kimifix is off or its rules failed to
 * load (then every hook passes bytes through unchanged). */
const kf_ruleset *kf_shim_rules(void);
int kf_shim_mode(void);

/* Engine callbacks every carrier passes in its kf_ctx: log the rewritten
 * request (one line, rules named, secrets redacted) / a one-time notice.
 * `ud` is a const char * naming the carrier ("openssl", "libc", ...). */
void kf_shim_on_head(void *ud, const kf_req *req);
void kf_shim_notice(void *ud, const char *msg);

/* Real function of a library the shim does not link (libssl, GnuTLS,
 * libcurl): from the object that called the hook (dladdr on `caller`, then
 * dlopen(RTLD_NOLOAD) + dlsym), then RTLD_NEXT, then every loaded object.
 * Never returns the shim's own hook. Returns NULL only when no loaded
 * object defines it: callers must then fail safely, never call NULL. */
void *kf_real_lib(const char *symbol, const void *caller);

/* libc functions the engine and the hooks call without re-entering hooks. */
ssize_t kf_real_write(int fd, const void *buf, size_t n);

#endif
