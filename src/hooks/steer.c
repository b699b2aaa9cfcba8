/* steer.c - the shim's side of the relay (docs/relay.md): find or start the
 * user's relay, set the trust variables before the client's main, steer
 * connect() to the relay, and answer getpeername() with the original
 * destination for steered sockets (kept in the fd table, fdtab.c).
 *
 * Decisions, per connection (kf_steer_wanted in the core):
 *   - only hosts an enabled rule names explicitly, only TCP, only when the
 *     resolver hook told us the name the address came from;
 *   - relay mode: always; auto: when no in-process hook can see the
 *     plaintext (TLS compiled into the program, or no shared libssl /
 *     GnuTLS / libcurl loaded at connect() time; port 80 is plaintext the
 *     libc hooks see) or a rule for the host needs `upstream`;
 *   - inprocess/off: never.
 * When the relay cannot be reached the connection goes direct, and the log
 * says why, once.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdtab.h"
#include "kf_rules_hosts.h"
#include "kf_shim.h"
#include "kf_steer.h"
#include "kf_trust.h"

extern char **environ;

static int kf_steer_on; /* set once by kf_steer_setup (constructor) */

/* ---- is the process's TLS visible to the in-process hooks? ---- */

/* Which hooked libraries are loaded: bits only ever get set (a library may
 * be dlopen'ed late, e.g. Python's _ssl; once seen it counts as there). */
enum { KF_LIB_SSL = 1, KF_LIB_GNUTLS = 2, KF_LIB_CURL = 4 };
static atomic_int kf_libs_seen;

static int kf_libs_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    int *bits = data;
    const char *n = info->dlpi_name, *b = n ? strrchr(n, '/') : NULL;
    b = b ? b + 1 : n;
    if (!b || !*b)
        return 0;
    if (!strncmp(b, "libssl.so", 9))
        *bits |= KF_LIB_SSL;
    else if (!strncmp(b, "libgnutls.so", 12))
        *bits |= KF_LIB_GNUTLS;
    else if (!strncmp(b, "libcurl.so", 10) || !strncmp(b, "libcurl-gnutls.so", 17))
        *bits |= KF_LIB_CURL;
    return 0;
}

static int kf_libs(void)
{
    int bits = atomic_load_explicit(&kf_libs_seen, memory_order_relaxed);
    if ((bits & (KF_LIB_SSL | KF_LIB_CURL)) == (KF_LIB_SSL | KF_LIB_CURL))
        return bits;
    dl_iterate_phdr(kf_libs_cb, &bits);
    atomic_fetch_or(&kf_libs_seen, bits);
    return bits;
}

/* 1 when a hook can see this connection's plaintext: port 80 (the libc
 * write hooks), or a shared libssl/GnuTLS/libcurl is loaded and the
 * program does not carry its own TLS. 0: TLS compiled into the program
 * (static OpenSSL/BoringSSL), or no TLS library we hook (Go, rustls, a
 * bundled OpenSSL with hidden symbols). */
static int kf_plaintext_visible(unsigned port)
{
    if (port == 80)
        return 1;
    return kf_shim_tls_interposable() && kf_libs() != 0;
}

/* Auto mode, plaintext visible, a rule for the host needs `upstream`: is
 * the relay the right carrier? Not when libcurl is loaded (its hook honours
 * `upstream` by rewriting the URL), nor over TLS for a GnuTLS-only program
 * (wget): GnuTLS reads no CA variable, so it would refuse the relay's
 * certificate and a connection that works today would break. */
static int kf_upstream_via_relay(unsigned port)
{
    int libs = kf_libs();
    if (libs & KF_LIB_CURL)
        return 0;
    return port == 80 || (libs & KF_LIB_SSL);
}

/* ---- starting the relay ---- */

/* The `kimifix` program that belongs to this library: beside it in a build
 * tree, ../../bin/kimifix when installed as PREFIX/lib/kimifix/. */
static int kf_find_cli(char *out, size_t n)
{
    Dl_info di;
    if (!dladdr((void *)kf_steer_setup, &di) || !di.dli_fname || di.dli_fname[0] != '/')
        return -1;
    const char *slash = strrchr(di.dli_fname, '/');
    int dl = (int)(slash - di.dli_fname);
    static const char *const rel[] = { "kimifix", "../../bin/kimifix" };
    for (unsigned i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        if (snprintf(out, n, "%.*s/%s", dl, di.dli_fname, rel[i]) < (int)n &&
            access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

/* The environment for `kimifix relay start`: ours without libkimifix in
 * LD_PRELOAD (the relay must not run under the shim; it would also re-exec
 * itself to shed it), KIMIFIX_MODE=off, and KIMIFIX_LOG dropped when it is
 * not a file (the relay then logs to RUNDIR/relay.log). */
static char **kf_relay_env(char *preload, size_t plen)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc((n + 3) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = environ[i];
        if (!strncmp(e, "KIMIFIX_MODE=", 13))
            continue;
        if (!strncmp(e, "KIMIFIX_LOG=", 12) && (!strcmp(e + 12, "stderr") || !strcmp(e + 12, "off")))
            continue;
        if (!strncmp(e, "LD_PRELOAD=", 11)) {
            size_t used = snprintf(preload, plen, "LD_PRELOAD=");
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s", e + 11);
            char *save = NULL;
            for (char *w = strtok_r(tmp, " :", &save); w; w = strtok_r(NULL, " :", &save)) {
                if (strstr(w, "libkimifix"))
                    continue;
                int m = snprintf(preload + used, plen - used, "%s%s", used > 11 ? ":" : "", w);
                if (m > 0 && (size_t)m < plen - used)
                    used += (size_t)m;
            }
            if (used > 11)
                env[k++] = preload;
            continue;
        }
        env[k++] = (char *)e;
    }
    env[k++] = (char *)"KIMIFIX_MODE=off";
    env[k] = NULL;
    return env;
}

static pthread_mutex_t kf_start_lock = PTHREAD_MUTEX_INITIALIZER;
static time_t kf_start_last;

/* Run `kimifix relay start` (idempotent and race-free: it serializes on
 * RUNDIR/relay.start.lock and reuses a running relay; the relay is detached
 * with a double fork, so it is never our child) and wait for it. At most
 * one attempt per 10 s per process. 0 when a relay is now running. */
static int kf_relay_start(kf_relay_state *st, char *why, size_t wn)
{
    char cli[4096], preload[4200];
    unsigned held = kf_lock(&kf_start_lock, KF_HOLD_START);
    time_t now = time(NULL);
    if (kf_start_last && now - kf_start_last < 10) {
        kf_unlock(&kf_start_lock, held);
        snprintf(why, wn, "a start was tried less than 10 s ago");
        return kf_relay_lookup(st);
    }
    kf_start_last = now;
    int rc = -1;
    if (kf_relay_lookup(st) == 0) {
        rc = 0;
    } else if (kf_find_cli(cli, sizeof cli) < 0) {
        snprintf(why, wn, "cannot find the kimifix program beside the library");
    } else {
        char **env = kf_relay_env(preload, sizeof preload);
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        for (int fd = 0; fd < 3; fd++)
            posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_RDWR, 0);
        posix_spawnattr_init(&at);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &all);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        char *argv[] = { cli, (char *)"relay", (char *)"start", NULL };
        pid_t pid = -1;
        int e = env ? posix_spawn(&pid, cli, &fa, &at, argv, env) : ENOMEM;
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        free(env);
        if (e) {
            snprintf(why, wn, "cannot run %.200s relay start: %s", cli, strerror(e));
        } else {
            int ws;
            while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
                ;
            /* ECHILD: the program reaped it (SIGCHLD handler); the state
             * file is the truth either way. */
            for (int i = 0; i < 50 && (rc = kf_relay_lookup(st)) < 0; i++)
                usleep(20000);
            if (rc < 0)
                snprintf(why, wn, "`%.200s relay start` did not start it (see its relay.log)", cli);
        }
    }
    kf_unlock(&kf_start_lock, held);
    return rc;
}

/* ---- constructor ---- */

/* Set when the trust variables point at the kimifix CA (or already did):
 * only then may a TLS connection be steered (else the client would refuse
 * the relay's certificate: worse than going direct). */
static int kf_trust_ok;

static void kf_set_trust(void)
{
    kf_trust_var v[KF_TRUST_NVARS];
    int n = kf_trust_env(v);
    if (n < 0)
        return;
    kf_trust_ok = 1;
    for (int i = 0; i < KF_TRUST_NVARS; i++)
        if (v[i].value[0]) {
            setenv(v[i].name, v[i].value, 1);
            kf_log(KF_LOG_DEBUG, "relay: %s=%s%s", v[i].name, v[i].value,
                   v[i].combined ? " (yours + the kimifix CA)" : "");
        }
}

/* Constructor, after init. Steering is possible when a rule names a host.
 * The relay is started here only for a process that needs it for all its
 * rule hosts (relay mode, TLS compiled in); others (an interposable
 * process whose rules need `upstream` for some host) use the relay that
 * the wrapper started, or start it at connect() time. Either way, when the
 * kimifix CA exists the trust variables are set now, before main. */
void kf_steer_setup(void)
{
    const kf_ruleset *rs = kf_shim_rules();
    int mode = kf_shim_mode();
    if (!rs || (mode != KF_MODE_AUTO && mode != KF_MODE_RELAY))
        return;
    /* The relay and the CLI that starts it never steer (the relay sheds the
     * preload and sets KIMIFIX_MODE=off; this covers the moment before). */
    if (!strcmp(program_invocation_short_name, "kimifix-relay") ||
        !strcmp(program_invocation_short_name, "kimifix"))
        return;
    const char *name;
    int wild;
    if (!kf_rules_host_at(rs, 0, &name, &wild))
        return; /* no rule names a host: nothing can ever be steered */
    kf_steer_on = 1;
    if (mode == KF_MODE_RELAY || !kf_shim_tls_interposable()) {
        kf_relay_state st;
        char why[512] = "";
        if (kf_relay_lookup(&st) < 0 && kf_relay_start(&st, why, sizeof why) < 0)
            kf_log(KF_LOG_WARN, "relay: not running (%s); TLS connections to rule hosts "
                                "will go direct, unfixed", why);
    }
    /* Trust before main: Node reads NODE_EXTRA_CA_CERTS at start-up. The CA
     * outlives the relay (data dir), so a relay started later still works. */
    kf_set_trust();
}

/* ---- steered sockets ---- */

/* Steered sockets live in the fd table (fdtab.c), marked steered, with
 * their original destination: as many as there are fds, shared by dup(),
 * forgotten by close(). The fork handlers only reset the start lock: a
 * start in flight in another thread belongs to the parent. */
void kf_steer_prepare(void) {}
void kf_steer_parent(void) {}
void kf_steer_child(void)
{
    pthread_mutex_init(&kf_start_lock, NULL);
}

int kf_shim_fd_steered(int fd)
{
    return kf_fd_peek(fd) && kf_fd_steered(fd, NULL, NULL);
}

/* ---- connect() ---- */

int kf_steer_try(int fd, const struct sockaddr *dst, socklen_t dstlen, const char *host,
                 unsigned port)
{
    if (!kf_steer_on || !host || !*host || kf_reentered())
        return 0;
    int saved = errno;
    const kf_ruleset *rs = kf_shim_rules();
    int mode = kf_shim_mode(), visible = kf_plaintext_visible(port);
    if (!kf_steer_wanted(rs, host, port, mode, visible) ||
        (mode == KF_MODE_AUTO && visible && !kf_upstream_via_relay(port))) {
        errno = saved;
        return 0;
    }
    if (!kf_trust_ok && port != 80) {
        kf_shim_warn_once("steer-notrust", "relay: no kimifix CA when this program started "
                                           "(run it under `kimifix`, or `kimifix relay start` "
                                           "first): %s:%u goes direct, unfixed", host, port);
        errno = saved;
        return 0;
    }
    kf_relay_state st;
    char why[512] = "";
    if (kf_relay_lookup(&st) < 0 && kf_relay_start(&st, why, sizeof why) < 0) {
        kf_shim_warn_once("steer-norelay", "relay: not running (%s): %s:%u goes direct, unfixed",
                          why, host, port);
        errno = saved;
        return 0;
    }
    /* Marked steered before the relay sees a byte: in-process carriers
     * must never rewrite it too, and getpeername() must answer dst. */
    if (kf_fd_track_steered(fd, host, port, dst, dstlen) < 0) {
        kf_shim_warn_once("steer-track", "relay: cannot remember a steered socket (fd %d): "
                                         "%s:%u goes direct, unfixed", fd, host, port);
        errno = saved;
        return 0;
    }
    kf_steer_io io = { KF_REAL(connect), kf_real_write };
    if (kf_steer_connect(fd, dst, dstlen, host, &st, &io) < 0) {
        int e = errno;
        kf_fd_forget(fd);
        kf_shim_warn_once("steer-fail", "relay: cannot reach it on port %u (%s): %s:%u goes "
                                        "direct, unfixed", st.port, strerror(e), host, port);
        errno = saved;
        return 0;
    }
    kf_log(KF_LOG_DEBUG, "[libc] %s:%u steered to the relay (port %u)", host, port, st.port);
    errno = saved;
    return 1;
}

KF_EXPORT int getpeername(int fd, __SOCKADDR_ARG arg, socklen_t *len)
{
    struct sockaddr *sa = KF_SA(arg);
    socklen_t cap = len ? *len : 0; /* the caller's buffer, before the real call says */
    int rc = KF_REAL(getpeername)(fd, arg, len);
    struct sockaddr_storage d;
    socklen_t dl;
    if (rc == 0 && sa && len && kf_fd_peek(fd) && kf_fd_steered(fd, &d, &dl)) {
        int saved = errno;
        memcpy(sa, &d, dl < cap ? dl : cap);
        *len = dl; /* like the kernel: the full size, even if truncated */
        errno = saved;
    }
    return rc;
}
