/* shim.c - libkimifix.so: initialisation, configuration, logging callbacks,
 * fork handling.
 *
 * Environment (read with secure_getenv: nothing for setuid programs):
 *   KIMIFIX_RULES  rules file; else ~/.config/kimifix/rules, /etc/kimifix/rules
 *   KIMIFIX_LOG    "stderr" or a file (created 0600): per-request lines.
 *                  Unset: only errors and one-time warnings, to stderr.
 *                  "off": nothing at all.
 *   KIMIFIX_MODE   auto (default), inprocess (never steer to the relay),
 *                  relay (steer every rule host's connection), proxy (the
 *                  relay is the program's HTTP proxy: kf_envplan.h), off
 *
 * Rule: never break the host. A bad rules file is one log line (when the
 * rules are first needed) and the built-in rules stay in effect
 * (kf_rules_policy.h); only out of memory leaves kf_shim_rules() NULL,
 * and then every hook passes bytes through.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdtab.h"
#include "libc_dns.h"
#include "objtab.h"
#include "kf_rules_hosts.h"
#include "kf_rules_policy.h"
#include "kf_shim.h"

static pthread_once_t kf_once KF_START_DATA = PTHREAD_ONCE_INIT;
/* Tiny TLS, initial-exec: plain %fs-relative accesses, safe in a signal
 * handler (global-dynamic TLS may allocate on a thread's first access when
 * the library was dlopen()ed). */
#define KF_TLS __thread __attribute__((tls_model("initial-exec")))
static KF_TLS int kf_tl_initing; /* hooks re-entered during init (same thread) */
KF_TLS unsigned kf_tl_held;       /* shim locks this thread holds (kf_shim.h) */
static atomic_int kf_ready KF_START_DATA;
static int kf_mode KF_START_DATA = KF_MODE_AUTO;

/* ---- rules loading ---- */

/* Warnings go to the log as they come; errors are said once, in the
 * policy's one line (kf_rules_policy.h). */
static void kf_diag(void *ud, const char *line)
{
    (void)ud;
    if (!strstr(line, ": error: "))
        kf_log(KF_LOG_WARN, "%s", line);
}

/* The rules source is chosen at init (the environment as the program
 * started); the rules are built by the first hooked call that needs them
 * (kf_shim_rules), so a process that never opens a socket never parses
 * them. A broken file follows the one policy (docs/rules.md, "When the
 * rules file is broken"): the built-ins stay in effect, the file is
 * ignored, one line says so, once per process. */
static char kf_rules_path[256] KF_START_DATA; /* where the path usually fits */
static char kf_rules_path_long[4096];          /* else: a page of its own */
static const char *kf_rules_file KF_START_DATA; /* NULL: built-ins only */
/* Static: ~5 KiB, used once, under kf_rules_lazy's lock (a hook may run on
 * a small thread stack). */
static kf_rules_src kf_rules_from;

static kf_ruleset *kf_load_rules(void *ud)
{
    (void)ud;
    kf_ruleset *rs = kf_rules_load_policy(kf_rules_file, kf_diag, NULL, &kf_rules_from);
    if (!rs) {
        kf_log(KF_LOG_ERROR, "%s: out of memory loading the rules; passing everything through",
               kf_rules_file ? kf_rules_file : "built-in rules");
        return NULL;
    }
    if (kf_rules_from.fallback) {
        char line[1024];
        kf_log(KF_LOG_ERROR, "%s", kf_rules_policy_line(&kf_rules_from, line, sizeof line));
    }
    kf_log(KF_LOG_DEBUG, "rules: %u loaded on first use (built-ins%s%s)", kf_ruleset_count(rs),
           kf_rules_file && !kf_rules_from.fallback ? " and " : "",
           kf_rules_file && !kf_rules_from.fallback ? kf_rules_file : "");
    /* Immutable from here on; never freed (hooks may run at exit, and a
     * carrier may still hold the pointer). */
    return rs;
}

/* ---- TLS out of reach ---- */

/* The main program defines SSL_write itself (static OpenSSL/BoringSSL:
 * nodesource Node, Bun): its TLS calls are direct, no hook sees plaintext.
 * RTLD_DEFAULT searches the main program first, so if it exports SSL_write
 * that is what we get. */
static int kf_static_tls KF_START_DATA;

static void kf_check_static_tls(void)
{
    void *p = dlsym(RTLD_DEFAULT, "SSL_write");
    Dl_info di;
    struct link_map *lm = NULL;
    /* Our own hook (the main program has none): no dladdr1 needed. */
    kf_static_tls = p && !kf_is_own_addr(p) && dladdr1(p, &di, (void **)&lm, RTLD_DL_LINKMAP) &&
                    lm && lm->l_name && lm->l_name[0] == 0;
    if (kf_static_tls && kf_mode == KF_MODE_INPROCESS)
        kf_log(KF_LOG_WARN, "TLS is compiled into this program; with KIMIFIX_MODE=inprocess "
                            "kimifix can only fix its plain-HTTP requests (use auto or relay)");
    else if (kf_static_tls && kf_mode != KF_MODE_OFF)
        kf_log(KF_LOG_INFO, "TLS is compiled into this program: its rule hosts go through "
                            "the relay");
}

/* ---- fork ---- */

/* One-time messages: a small table of hashes of what was already said. */
#define KF_ONCE_MAX 64
static pthread_mutex_t kf_once_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long kf_once_seen[KF_ONCE_MAX];
static unsigned kf_once_n;

/* Signals stay blocked in the forking thread from the first lock taken in
 * prepare until the last one is released in parent/child: a handler that
 * write()s or close()s a tracked fd there would otherwise wait for a lock
 * its own thread holds (cwrap's signal-during-fork regression). The old
 * mask fits in 64 bits (signals 1..64 on Linux). */
static KF_TLS unsigned long long kf_fork_saved_mask;

static void kf_fork_block_signals(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    unsigned long long m = 0;
    for (int sig = 1; sig <= 64; sig++)
        if (sigismember(&old, sig) == 1)
            m |= 1ull << (sig - 1);
    kf_fork_saved_mask = m;
}

static void kf_fork_restore_signals(void)
{
    sigset_t old;
    sigemptyset(&old);
    for (int sig = 1; sig <= 64; sig++)
        if (kf_fork_saved_mask & (1ull << (sig - 1)))
            sigaddset(&old, sig);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void kf_atfork_prepare(void)
{
    kf_fork_block_signals();
    kf_rules_fork_prepare();
    kf_fdtab_prepare();
    kf_pool_lock();
    kf_dns_prepare();
    kf_resolve_lock();
    kf_steer_prepare();
    kf_objtab_prepare();
    pthread_mutex_lock(&kf_once_lock);
}

static void kf_atfork_parent(void)
{
    pthread_mutex_unlock(&kf_once_lock);
    kf_objtab_parent();
    kf_steer_parent();
    kf_resolve_unlock();
    kf_dns_parent();
    kf_pool_unlock();
    kf_fdtab_parent();
    kf_rules_fork_parent();
    kf_fork_restore_signals();
}

/* No rule match is in flight across fork() (kf_rules_fork_prepare): the
 * child keeps using the parent's ruleset. */
static void kf_atfork_child(void)
{
    kf_rules_fork_child();
    pthread_mutex_init(&kf_once_lock, NULL);
    kf_objtab_child();
    kf_steer_child();
    kf_resolve_child();
    kf_dns_child();
    kf_pool_unlock();
    kf_fdtab_child();
    kf_fork_restore_signals();
}

/* ---- init ---- */

static void kf_do_init(void)
{
    int saved = errno;
    kf_tl_initing = 1;
    /* Other libc functions are resolved by their hook's first call
     * (kf_libc_fn): a dlsym each for those a process uses, not for all
     * at every start. write() now: the log writes with it, and signal
     * handlers use it more than any other. */
    (void)kf_libc_fn(KF_LIBC_write);
    kf_log_set_writer(kf_real_write);

    const char *log = secure_getenv("KIMIFIX_LOG");
    if (!log || !*log) {
        kf_log_open("stderr");
        kf_log_set_level(KF_LOG_WARN);
    } else if (kf_log_open(log) != 0) {
        int e = errno;
        kf_log_open("stderr");
        kf_log(KF_LOG_ERROR, "cannot open log %s: %s; logging to stderr", log, strerror(e));
    }
    const char *dbg = secure_getenv("KIMIFIX_DEBUG");
    if (dbg && *dbg && strcmp(dbg, "0") != 0)
        kf_log_set_level(KF_LOG_DEBUG);

    const char *mode = secure_getenv("KIMIFIX_MODE");
    kf_mode = kf_mode_parse(mode);
    if (kf_mode == KF_MODE_PROXY) {
        kf_mode = KF_MODE_AUTO; /* proxy-carrier: kf_envplan reads the mode itself */
    } else if (kf_mode < 0) {
        kf_log(KF_LOG_ERROR, "KIMIFIX_MODE=%s: unknown mode (" KF_MODE_NAMES "); using auto", mode);
        kf_mode = KF_MODE_AUTO;
    }

    if (kf_mode != KF_MODE_OFF) {
        kf_fdtab_init();
        errno = 0;
        kf_rules_file = kf_rules_default_path(kf_rules_path, sizeof kf_rules_path);
        if (!kf_rules_file && errno == ENAMETOOLONG)
            kf_rules_file = kf_rules_default_path(kf_rules_path_long, sizeof kf_rules_path_long);
        kf_check_static_tls();
    }
    pthread_atfork(kf_atfork_prepare, kf_atfork_parent, kf_atfork_child);
    atomic_store_explicit(&kf_ready, 1, memory_order_release);
    kf_tl_initing = 0;
    errno = saved;
}

void kf_shim_init(void)
{
    if (atomic_load_explicit(&kf_ready, memory_order_acquire) || kf_tl_initing)
        return;
    pthread_once(&kf_once, kf_do_init);
}

/* Relay steering set-up needs the finished init (rules, mode) and must run
 * before the client's main (trust variables): here, once, even when a hook
 * ran the init earlier. */
__attribute__((constructor)) static void kf_shim_ctor(void)
{
    static int done KF_START_DATA;
    kf_shim_init();
    if (!done) {
        done = 1;
        int saved = errno;
        kf_steer_setup();
        errno = saved;
    }
}

const kf_ruleset *kf_shim_rules(void)
{
    if (__builtin_expect(!atomic_load_explicit(&kf_ready, memory_order_acquire), 0)) {
        if (kf_tl_initing)
            return NULL; /* a hook fired inside our own init: pass through */
        kf_shim_init();
    }
    return kf_mode == KF_MODE_OFF ? NULL : kf_rules_lazy(kf_load_rules, NULL);
}

int kf_shim_rules_name_hosts(void)
{
    if (kf_shim_mode() == KF_MODE_OFF)
        return 0;
    /* Known without parsing: only the built-ins (or a user file without a
     * single directive, which changes nothing about them). */
    if (!kf_rules_lazy_tried() &&
        (!kf_rules_file || kf_rules_file_is_blank(kf_rules_file)))
        return kf_default_rules_name_hosts;
    const kf_ruleset *rs = kf_shim_rules();
    const char *name;
    int wild;
    return rs && kf_rules_host_at(rs, 0, &name, &wild);
}

int kf_shim_tls_interposable(void)
{
    kf_shim_init();
    return !kf_static_tls;
}

int kf_shim_mode(void)
{
    kf_shim_init();
    return kf_mode;
}

/* ---- logging callbacks ---- */

static const char *kf_carrier(void *ud)
{
    return ud ? (const char *)ud : "?";
}

static void kf_host_text(const kf_req *req, char *buf, size_t n)
{
    kf_str h = req->orig_host.n ? req->orig_host : req->host;
    if (!h.n)
        h = KF_STR("(no host)");
    snprintf(buf, n, "%.*s", (int)(h.n > 255 ? 255 : h.n), h.p);
}

void kf_shim_on_head(void *ud, const kf_req *req)
{
    if (!req || (!req->nfired && !req->nskipped) || !kf_log_enabled(KF_LOG_WARN))
        return;
    int saved = errno;
    char host[256], names[256], text[1024];
    kf_host_text(req, host, sizeof host);
    if (req->nfired && kf_log_enabled(KF_LOG_INFO)) {
        kf_req_log_text(req, text, sizeof text);
        kf_log(KF_LOG_INFO, "[%s] %s: %s", kf_carrier(ud), host, text);
    }
    if (req->nskipped) {
        kf_rule_names(req->skipped, req->nskipped, names, sizeof names);
        /* Worth a warning once: the user expects a fix that cannot happen here. */
        kf_shim_warn_once(names, "[%s] %s: %s skipped: it needs to choose the upstream "
                                 "connection, which this carrier cannot do",
                          kf_carrier(ud), host, names);
    }
    errno = saved;
}


static int kf_first_time(const char *key)
{
    /* A signal handler that interrupted this thread inside this function
     * and got here (through a hook that is not async-signal-safe, such as
     * SSL_write): stay quiet rather than wait for our own lock. */
    if (kf_holding(KF_HOLD_ONCE))
        return 0;
    unsigned long h = 5381;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = h * 33 + *p;
    int first = 1;
    unsigned held = kf_lock(&kf_once_lock, KF_HOLD_ONCE);
    for (unsigned i = 0; i < kf_once_n; i++)
        if (kf_once_seen[i] == h)
            first = 0;
    if (first && kf_once_n < KF_ONCE_MAX)
        kf_once_seen[kf_once_n++] = h;
    else if (first)
        first = 0; /* table full: stay quiet rather than flood */
    kf_unlock(&kf_once_lock, held);
    return first;
}

void kf_shim_warn_once(const char *key, const char *fmt, ...)
{
    if (!kf_log_enabled(KF_LOG_WARN) || !kf_first_time(key))
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    kf_vlog(KF_LOG_WARN, fmt, ap);
    va_end(ap);
    errno = saved;
}

void kf_shim_notice(void *ud, const char *msg)
{
    if (!msg)
        return;
    char key[320];
    snprintf(key, sizeof key, "%s|%s", kf_carrier(ud), msg);
    /* INFO, not WARN: TLS records on a libc-tracked socket are normal (the
     * TLS hooks see the plaintext); only a user who asked for a log cares. */
    if (!kf_log_enabled(KF_LOG_INFO))
        return;
    if (kf_first_time(key)) {
        kf_log(KF_LOG_INFO, "[%s] %s", kf_carrier(ud), msg);
    } else if (kf_log_enabled(KF_LOG_DEBUG)) {
        kf_log(KF_LOG_DEBUG, "[%s] %s", kf_carrier(ud), msg);
    }
}
