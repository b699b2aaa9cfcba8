/* kf_shim.h - what the hook families of libkimifix.so share.
 *
 * Owned by src/hooks/shim.c (init, configuration, logging callbacks) and
 * src/hooks/resolve.c (finding real functions). Hook families include only
 * this header and the engine's headers.
 */
#ifndef KF_SHIM_H
#define KF_SHIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "kf_log.h"
#include "kf_req.h"
#include "kf_rules.h"
#include "kf_steer.h" /* enum kf_mode (one definition, shared with the core) */
#include "kf_startdata.h" /* KF_START_DATA, KF_START_TAIL */
#include "kf_stream.h"

/* The only symbols the library exports are hooks marked KF_EXPORT. */
#define KF_EXPORT __attribute__((visibility("default")))

/* Initialise once (constructor; also lazily from any hook, thread-safe).
 * Reads KIMIFIX_RULES, KIMIFIX_LOG, KIMIFIX_MODE with secure_getenv. */
void kf_shim_init(void);

/* The process's rules, or NULL when kimifix is off or its rules failed to
 * load (then every hook passes bytes through unchanged). Built by the first
 * call (kf_rules_lazy): call it only where rules are needed. */
const kf_ruleset *kf_shim_rules(void);
/* Could any enabled rule name a host (relay steering possible)? Answered
 * without parsing when only the built-ins apply (their build-time
 * summary); 0 when the rules do not load. For the constructor. */
int kf_shim_rules_name_hosts(void);
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
ssize_t kf_real_write_slow(int fd, const void *buf, size_t n);

/* ---- Additions (additive only; existing signatures above are stable). ---- */

/* libc functions the hooks forward to, resolved with dlsym(RTLD_NEXT) by
 * their hook's first call (write by the constructor). Never returns the
 * shim's own hook; may return NULL only if libc itself lacks the symbol,
 * so callers of KF_REAL() on optional symbols must check. */
enum kf_libc_sym {
    KF_LIBC_write, KF_LIBC_writev, KF_LIBC_send, KF_LIBC_sendto, KF_LIBC_sendmsg,
    KF_LIBC_sendmmsg, KF_LIBC_sendfile, KF_LIBC_sendfile64, KF_LIBC_connect,
    KF_LIBC_close, KF_LIBC_dup, KF_LIBC_dup2, KF_LIBC_dup3, KF_LIBC_fcntl,
    KF_LIBC_fcntl64, KF_LIBC_close_range, KF_LIBC_closefrom,
    KF_LIBC_getaddrinfo, KF_LIBC_gethostbyname, KF_LIBC_gethostbyname2,
    KF_LIBC_gethostbyname_r, KF_LIBC_gethostbyname2_r, KF_LIBC_getpeername,
    KF_LIBC_recv, KF_LIBC_recvfrom, KF_LIBC_recvmsg, KF_LIBC_dlopen, KF_LIBC_dlmopen,
    KF_LIBC_NSYMS
};
void *kf_libc_fn_slow(int sym);
/* The fast path of every libc hook: one relaxed load, inlined (a call into
 * resolve.c cost ~40 instructions per write()). */
extern _Atomic(void *) kf_libc_slots[KF_LIBC_NSYMS];
static inline void *kf_libc_fn(int sym)
{
    void *p = atomic_load_explicit(&kf_libc_slots[sym], memory_order_relaxed);
    return __builtin_expect(p != NULL, 1) ? p : kf_libc_fn_slow(sym);
}
/* Typed real function: KF_REAL(write)(fd, buf, n). `name` must be declared
 * by a libc header (its prototype gives the type). */
#define KF_REAL(name) ((__typeof__(&name))kf_libc_fn(KF_LIBC_##name))
static inline ssize_t kf_real_write(int fd, const void *buf, size_t n)
{
    void *w = atomic_load_explicit(&kf_libc_slots[KF_LIBC_write], memory_order_relaxed);
    return __builtin_expect(w != NULL, 1) ? ((ssize_t (*)(int, const void *, size_t))w)(fd, buf, n)
                                          : kf_real_write_slow(fd, buf, n);
}

/* Is this address inside libkimifix.so itself? */
int kf_is_own_addr(const void *p);

/* Logging helpers for hook families: the same message is logged once per
 * process (`key` identifies it; a string literal). */
void kf_shim_warn_once(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a fixed message ("real function not found" and the like). */
static inline void kf_warn_once(const char *msg)
{
    kf_shim_warn_once(msg, "%s", msg);
}

/* 0 when the main program carries its own TLS (static OpenSSL/BoringSSL:
 * official Node, Bun): no hook sees its plaintext. 1 otherwise. For the
 * relay steering decision (kf_steer_wanted's tls_interposable). */
int kf_shim_tls_interposable(void);

/* Relay steering (steer.c). kf_steer_setup() runs once from the
 * constructor: in auto/relay mode it finds (or starts) the user's relay and
 * sets the trust variables before the client's main. kf_steer_try() is the
 * connect() hook's part: 1 when fd was steered to the relay (connect()
 * then returns 0), 0 when the caller must connect as usual (errno kept).
 * kf_shim_fd_steered(): fd was steered (the relay rewrites it: in-process
 * carriers should leave its bytes alone and not warn about `upstream`). */
void kf_steer_setup(void);
int kf_steer_try(int fd, const struct sockaddr *dst, socklen_t dstlen, const char *host,
                 unsigned port);
int kf_shim_fd_steered(int fd);
void kf_steer_prepare(void);
void kf_steer_parent(void);
void kf_steer_child(void);

/* Proxy carrier (carrier.c; kf_envplan.h, docs/relay.md). kf_carrier_setup()
 * runs once from kf_steer_setup (constructor): the wrapper's carrier choice,
 * the relay started first when the carrier or a missing CA needs it
 * (`start` is steer.c's bounded kf_relay_start), the proxy variables set or
 * given back. kf_carrier_relay_dst(): sa is the relay's proxy port on
 * loopback (connect() leaves it alone). kf_carrier_fd_is_relay(): fd is
 * connected there (the relay rewrites its bytes, like a steered socket's). */
typedef int (*kf_relay_start_fn)(kf_relay_state *st, char *why, size_t wn);
void kf_carrier_setup(int tls_inprocess, kf_relay_start_fn start);
int kf_carrier_relay_dst(const struct sockaddr *sa);
int kf_carrier_fd_is_relay(int fd);
/* ---- Signal re-entry (docs/RELIABILITY.md, finding 2) ----
 * A signal handler may call close(), write(), connect()... (all
 * async-signal-safe) while its thread is inside one of our hooks holding a
 * shim lock; waiting for that lock again would hang the thread for good.
 * So every shim lock is held between kf_lock() and kf_unlock(), which keep
 * a per-thread set of the locks this thread holds (or is about to take),
 * and every hook checks kf_reentered() first: when it is true the hook was
 * entered from a handler that interrupted this very thread inside the shim,
 * and it takes its lock-free path (pass the bytes through, skip or defer the
 * table update) -- it never waits for a lock and never allocates. Cost: one
 * thread-local load per hook that has work to do (initial-exec TLS, a plain
 * %fs-relative access: async-signal-safe, no allocation even when the
 * library was dlopen()ed); blocking signals instead would cost two
 * rt_sigprocmask system calls per section, and would hold signals back for
 * as long as a blocking send() holds a connection. */
enum kf_hold {
    KF_HOLD_TAB = 1u << 0,    /* fdtab.c: the fd table's lock */
    KF_HOLD_CONN = 1u << 1,   /* fdtab.c: a connection's lock (held across its real send) */
    KF_HOLD_DNS = 1u << 2,    /* libc_dns.c: the address -> name memory */
    KF_HOLD_ONCE = 1u << 3,   /* shim.c: one-time messages */
    KF_HOLD_RCACHE = 1u << 4, /* resolve.c: the library-symbol cache */
    KF_HOLD_START = 1u << 5,  /* steer.c: a relay start in progress */
    KF_HOLD_ENGINE = 1u << 6, /* a TLS/libcurl carrier running the engine: it may be
                                 inside malloc or regexec (their locks are not ours
                                 to wait for either) */
    KF_HOLD_CTX = 1u << 7,    /* steer_ctx.c: this process's context registration, and
                                 its program identity's once-init */
};
extern __thread unsigned kf_tl_held __attribute__((tls_model("initial-exec")));

/* The compiler must not move these accesses across the lock calls: a
 * signal handler on this thread reads the set (signal fences: no code). */
static inline int kf_reentered(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    return kf_tl_held != 0;
}
static inline int kf_holding(unsigned bit)
{
    atomic_signal_fence(memory_order_seq_cst);
    return (kf_tl_held & bit) != 0;
}
/* Mark `bit` held; returns a token for kf_held_leave(): the bit if this
 * call set it, 0 if it was already set (a nested section of the same kind,
 * e.g. a handler that try-locks another connection: it must not clear the
 * mark of the section it interrupted). */
static inline unsigned kf_held_enter(unsigned bit)
{
    unsigned token = bit & ~kf_tl_held;
    kf_tl_held |= bit;
    atomic_signal_fence(memory_order_seq_cst);
    return token;
}
static inline void kf_held_leave(unsigned token)
{
    atomic_signal_fence(memory_order_seq_cst);
    kf_tl_held &= ~token;
}
static inline unsigned kf_lock(pthread_mutex_t *m, unsigned bit)
{
    unsigned token = kf_held_enter(bit);
    pthread_mutex_lock(m);
    return token;
}
static inline void kf_unlock(pthread_mutex_t *m, unsigned token)
{
    pthread_mutex_unlock(m);
    kf_held_leave(token);
}

/* Fork handling of resolve.c's cache (called by shim.c's atfork handlers). */
void kf_resolve_lock(void);
void kf_resolve_unlock(void);
void kf_resolve_child(void);

#endif
