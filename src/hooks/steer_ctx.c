/* steer_ctx.c - client contexts and trust both ways, the shim's side
 * (steer_ctx.h). Everything here runs either in the constructor or on a
 * steered connect() (rule hosts only), never on a libc fast path; sockets
 * and files are reached with raw system calls (kf_ctxcall.c,
 * kf_distrust.c) so no hook of ours is re-entered.
 */
#include "kf_clock.h"
#include "steer_ctx.h"

#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kf_ctxmsg.h"
#include "kf_distrust.h"
#include "kf_progid.h"
#include "kf_shim.h"
#include "kf_trust.h"
#include "kf_trustjava.h"

#define CTX_REUSE_S 300   /* re-register an id unused this long */
#define CTX_RETRY_S 10    /* after a failed registration */

/* ---- Java ---- */

static char kf_java_src[4096]; /* the JVM's own store: a trust source too */

struct kf_jli {
    char dir[4096];
    int found;
};

static int kf_jli_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct kf_jli *j = data;
    const char *n = info->dlpi_name, *b = n ? strrchr(n, '/') : NULL;
    if (!b || strcmp(b + 1, "libjli.so"))
        return 0;
    snprintf(j->dir, sizeof j->dir, "%.*s", (int)(b - n), n);
    j->found = 1;
    return 1;
}

/* /proc/self/cmdline, raw (the java launcher's -D options). */
static size_t kf_cmdline(char *buf, size_t n)
{
    long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    long r = syscall(SYS_read, fd, buf, n);
    syscall(SYS_close, fd);
    return r > 0 ? (size_t)r : 0;
}

/* The option that wins, in the JVM's order: JAVA_TOOL_OPTIONS <
 * JDK_JAVA_OPTIONS < command line < _JAVA_OPTIONS. Ours goes where the
 * user's store option won (the command line: _JAVA_OPTIONS), else into
 * JAVA_TOOL_OPTIONS. */
static const char *kf_java_target(char *store, size_t sn, char *pass, size_t pn)
{
    static char args[16384];
    const char *target = "JAVA_TOOL_OPTIONS";
    store[0] = pass[0] = 0;
    size_t an = kf_cmdline(args, sizeof args);
    for (int i = 0; i < 4; i++) {
        static const char *const vars[4] = {"JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", NULL,
                                            "_JAVA_OPTIONS"};
        const char *v = vars[i] ? secure_getenv(vars[i]) : NULL;
        int s = vars[i] ? kf_java_opt(v, KF_JAVA_OPT_STORE, store, sn)
                        : kf_java_opt_argv(args, an, KF_JAVA_OPT_STORE, store, sn);
        if (vars[i])
            kf_java_opt(v, KF_JAVA_OPT_PASS, pass, pn);
        else
            kf_java_opt_argv(args, an, KF_JAVA_OPT_PASS, pass, pn);
        if (s == 1)
            target = vars[i] ? vars[i] : "_JAVA_OPTIONS";
    }
    return target;
}

/* Ask the relay for the store (it has OpenSSL; we do not). */
static int kf_java_ask(kf_relay_ensure_fn ensure, const char *src, const char *pass, char *out,
                       size_t n, char *why, size_t wn)
{
    char msg[KF_CTXMSG_MAX], run[4096];
    kf_relay_state st;
    kf_ctxmsg_buf b;
    kf_ctxmsg_begin(&b, msg, sizeof msg, KF_CTXMSG_JAVA);
    kf_ctxmsg_add(&b, "cacerts", src);
    if (*pass)
        kf_ctxmsg_add(&b, "storepass", pass);
    ssize_t len = kf_ctxmsg_end(&b);
    if (len < 0 || kf_relay_dir(run, sizeof run, 0) < 0) {
        snprintf(why, wn, "no runtime dir");
        return -1;
    }
    if (ensure(&st, why, wn) < 0)
        return -1;
    return kf_ctx_call(run, msg, (size_t)len, -1, KF_CTX_TIMEOUT_MS, out, n, why, wn) == 1 ? 0 : -1;
}

static int kf_steer_ctx_java_store(kf_relay_ensure_fn ensure, const struct kf_jli *j);

int kf_steer_ctx_java(kf_relay_ensure_fn ensure)
{
    struct kf_jli j = {.found = 0};
    dl_iterate_phdr(kf_jli_cb, &j);
    return j.found ? kf_steer_ctx_java_store(ensure, &j) : 0;
}

/* A JVM: its own frame (38 KiB of buffers), so that every other process
 * start does not push its stack that deep (a fresh page costs ~10 us on a
 * VM: bench figure 6). */
__attribute__((noinline)) static int kf_steer_ctx_java_store(kf_relay_ensure_fn ensure,
                                                             const struct kf_jli *j)
{
    char user[4096], pass[1024], data[4096], store[4200], opts[16384], why[512] = "";
    const char *target = kf_java_target(user, sizeof user, pass, sizeof pass);
    const char *cur = secure_getenv(target);
    if (kf_data_dir(data, sizeof data, 0) < 0)
        return -1;
    if (cur && strstr(cur, data) && strstr(cur, "/" KF_JAVA_DIR "/trust-"))
        return 1; /* ours already (a parent under kimifix, or the launcher re-exec'ed) */
    if (user[0])
        snprintf(kf_java_src, sizeof kf_java_src, "%s", user);
    else if (kf_java_default_store(j->dir, kf_java_src, sizeof kf_java_src) < 0)
        snprintf(why, sizeof why, "no cacerts near %.400s", j->dir);
    struct stat sb;
    int have = kf_java_src[0] && kf_java_store_path(data, kf_java_src, store, sizeof store) == 0 &&
               stat(store, &sb) == 0;
    if (!why[0] && !have && kf_java_ask(ensure, kf_java_src, pass, store, sizeof store, why,
                                        sizeof why) == 0)
        have = 1;
    if (!have || kf_java_opts_with(cur, store, opts, sizeof opts) < 0) {
        kf_log(KF_LOG_WARN, "relay: this Java will not trust the kimifix CA (%s): its TLS "
                            "connections to rule hosts go direct, unfixed",
               why[0] ? why : "store path unusable in JVM options");
        return -1;
    }
    char orig[64];
    snprintf(orig, sizeof orig, KF_TRUST_ORIG_PREFIX "%s", target);
    if (!secure_getenv(orig))
        setenv(orig, cur ? cur : "", 1);
    setenv(target, opts, 1);
    kf_log(KF_LOG_DEBUG, "relay: Java: %s adds trust store %s (%s + the kimifix CA)", target,
           store, kf_java_src);
    return 1;
}

/* ---- the context ---- */

static pthread_mutex_t kf_ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int have;
    unsigned char id[KF_CTX_ID_LEN];
    pid_t relay_pid;
    long relay_started;
    long used_ms, failed_ms;
    char msg[KF_CTXMSG_MAX], reply[KF_CTXMSG_REPLY_MAX];
} kf_cctx;

/* 0 registered; -1 failed (why); -2 the relay serves no contexts (an
 * older relay, or its context server could not start: it logged why). */
static int kf_ctx_register(const kf_relay_state *st, char *why, size_t wn)
{
    char run[4096];
    int fd;
    ssize_t n = kf_ctxmsg_self(kf_cctx.msg, sizeof kf_cctx.msg, kf_java_src, &fd);
    if (n < 0 || kf_relay_dir(run, sizeof run, 0) < 0) {
        snprintf(why, wn, n < 0 ? "registration too long" : "no runtime dir");
        return -1;
    }
    int r = kf_ctx_call(run, kf_cctx.msg, (size_t)n, fd, KF_CTX_TIMEOUT_MS, kf_cctx.reply,
                        sizeof kf_cctx.reply, why, wn);
    if (r == 0)
        snprintf(why, wn, "the relay said: %.200s", kf_cctx.reply);
    if (r != 1 || kf_ctx_id_parse((kf_str){kf_cctx.reply, strlen(kf_cctx.reply)}, kf_cctx.id) < 0) {
        if (r == 1)
            snprintf(why, wn, "malformed id");
        return r == -2 ? -2 : -1;
    }
    kf_cctx.relay_pid = st->pid;
    kf_cctx.relay_started = st->started;
    return 0;
}

int kf_steer_ctx_id(const kf_relay_state *st, unsigned char id[16])
{
    char why[512] = "";
    int ok = 0, rc = 0;
    /* kf_lock: a signal handler's connect() on this thread sees
     * kf_reentered() and never comes here (steer.c), so never waits for it. */
    unsigned tok = kf_lock(&kf_ctx_lock, KF_HOLD_CTX);
    long now = kf_mono_ms();
    if (kf_cctx.have && kf_cctx.relay_pid == st->pid && kf_cctx.relay_started == st->started &&
        now - kf_cctx.used_ms < CTX_REUSE_S * 1000L) {
        ok = 1;
    } else if (!kf_cctx.failed_ms || now - kf_cctx.failed_ms >= CTX_RETRY_S * 1000L) {
        rc = kf_ctx_register(st, why, sizeof why);
        ok = rc == 0;
        kf_cctx.have = ok;
        kf_cctx.failed_ms = ok ? 0 : now;
    }
    if (ok) {
        kf_cctx.used_ms = now;
        memcpy(id, kf_cctx.id, KF_CTX_ID_LEN);
    }
    kf_unlock(&kf_ctx_lock, tok);
    if (why[0] && rc == -2) /* a relay without contexts: its defaults, quietly */
        kf_log(KF_LOG_DEBUG, "relay: no client context (%s): the relay's defaults", why);
    else if (why[0])
        kf_shim_warn_once("ctx-fail", "relay: no client context (%s): connections through the "
                                      "relay use its defaults (system trust store only)", why);
    return ok;
}

void kf_steer_ctx_child(void)
{
    pthread_mutex_init(&kf_ctx_lock, NULL);
}

/* ---- learned distrust ---- */

static atomic_int kf_distrust_state = -1; /* -1 not known yet, 0, 1 */
static atomic_long kf_distrust_at;
static char kf_self_exe[4096], kf_self_id[KF_BUILDID_MAX];
static pthread_once_t kf_self_once = PTHREAD_ONCE_INIT;

static void kf_self_init(void)
{
    if (kf_progid_self(kf_self_exe, sizeof kf_self_exe, kf_self_id, sizeof kf_self_id) < 0)
        kf_self_exe[0] = 0;
}

int kf_steer_ctx_distrusted(void)
{
    long now = kf_mono_ms();
    int s = atomic_load(&kf_distrust_state);
    if (s >= 0 && now - atomic_load(&kf_distrust_at) < 1000)
        return s;
    /* Held while the once-init runs: a handler's connect() on this thread
     * sees kf_reentered() and goes direct instead of waiting for it. */
    unsigned tok = kf_held_enter(KF_HOLD_CTX);
    pthread_once(&kf_self_once, kf_self_init);
    kf_held_leave(tok);
    char data[4096];
    kf_distrust_rec r;
    int d = kf_self_exe[0] && kf_data_dir(data, sizeof data, 0) == 0 &&
            kf_distrust_check(data, kf_self_exe, kf_self_id, &r);
    atomic_store(&kf_distrust_at, now);
    atomic_store(&kf_distrust_state, d);
    if (d)
        kf_shim_warn_once("ctx-distrust", "relay: %s refused the kimifix CA before (TLS alert %s "
                                          "on %s): its connections go direct, unfixed (see "
                                          "`kimifix doctor %s`)",
                          kf_self_exe, r.alert, r.host, kf_self_exe);
    return d;
}
