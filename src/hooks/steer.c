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
#include <link.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdtab.h"
#include "kf_ctxmsg.h"
#include "kf_rules_hosts.h"
#include "kf_shim.h"
#include "kf_steer.h"
#include "kf_trust.h"
#include "steer_ctx.h"
#include "steer_int.h"

static int kf_steer_on KF_START_DATA; /* set once by kf_steer_setup (constructor) */

/* ---- is the process's TLS visible to the in-process hooks? ---- */

/* Which hooked libraries are loaded: bits only ever get set (a library may
 * be dlopen'ed late, e.g. Python's _ssl; once seen it counts as there). */
enum { KF_LIB_SSL = 1, KF_LIB_GNUTLS = 2, KF_LIB_CURL = 4 };
static atomic_int kf_libs_seen KF_START_DATA;

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

/* ---- constructor ---- */

/* Set when the trust variables point at the kimifix CA (or already did):
 * only then may a TLS connection be steered (else the client would refuse
 * the relay's certificate: worse than going direct). */
static int kf_trust_ok KF_START_DATA;
/* A JVM that could not be given a trust store holding the kimifix CA: it
 * honours no CA variable, so none of its TLS is steered (trust-ctx). */
static int kf_java_refuses KF_START_DATA;

static void kf_set_trust(void)
{
    /* static, not on the stack: the constructor runs once, and a plan
     * touches only the bytes it writes (kf_trust.h) */
    static kf_trust_plan plan KF_START_TAIL;
    const kf_trust_var *v = plan.v;
    int n = kf_trust_env(&plan);
    if (n < 0)
        return;
    kf_trust_ok = 1;
    /* No call per variable unless the line is wanted: kf_log's page is
     * not one a start touches otherwise. */
    for (int i = 0; kf_log_enabled(KF_LOG_DEBUG) && i < KF_TRUST_NVARS; i++)
        if (v[i].value[0])
            kf_log(KF_LOG_DEBUG, "relay: %s=%s%s", v[i].name, v[i].value,
                   v[i].combined ? " (yours + the kimifix CA)" : "");
    /* Contract C: the user's value saved in KIMIFIX_ORIG_V first (a parent
     * kimifix's kept): the client's trust sources for the relay (steer_ctx). */
    kf_trust_apply(&plan, setenv);
}

/* Constructor, after init. Steering is possible when a rule names a host.
 * The relay is started here only for a process that needs it for all its
 * rule hosts (relay mode, TLS compiled in); others (an interposable
 * process whose rules need `upstream` for some host) use the relay that
 * the wrapper started, or start it at connect() time. Either way, when the
 * kimifix CA exists the trust variables are set now, before main. */
void kf_steer_setup(void)
{
    int mode = kf_shim_mode();
    if (mode != KF_MODE_AUTO && mode != KF_MODE_RELAY)
        return;
    /* The relay and the CLI that starts it never steer (the relay sheds the
     * preload and sets KIMIFIX_MODE=off; this covers the moment before). */
    if (!strcmp(program_invocation_short_name, "kimifix-relay") ||
        !strcmp(program_invocation_short_name, "kimifix"))
        return;
    /* Without parsing the rules when only the built-ins apply (shim.c) */
    if (!kf_shim_rules_name_hosts())
        return; /* no rule names a host (or no rules): nothing can ever be steered */
    kf_steer_on = 1;
    if (mode == KF_MODE_RELAY || !kf_shim_tls_interposable()) {
        kf_relay_state st;
        char why[512] = "";
        /* Same key as connect()'s message: one line per process. */
        if (kf_relay_lookup(&st, why, sizeof why) < 0 && kf_relay_start(&st, why, sizeof why) < 0)
            kf_shim_warn_once("steer-norelay", "relay: not running (%s); TLS connections to rule "
                                               "hosts will go direct, unfixed", why);
    }
    /* proxy-carrier (issue 11): the carrier `kimifix CMD` would choose, its
     * proxy variables, and on a fresh account the relay (which makes the
     * CA) started before the trust variables below (src/hooks/carrier.c). */
    kf_carrier_setup(kf_shim_tls_interposable() && kf_libs() != 0, kf_relay_start);
    /* Trust before main: Node reads NODE_EXTRA_CA_CERTS at start-up. The CA
     * outlives the relay (data dir), so a relay started later still works. */
    kf_set_trust();
    /* trust-ctx: a JVM trusts only its key store: JAVA_TOOL_OPTIONS (or the
     * variable that wins) gets one with its own entries + the kimifix CA. */
    if (kf_trust_ok && kf_steer_ctx_java(kf_relay_start) < 0)
        kf_java_refuses = 1;
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
    kf_relay_start_child();
    kf_steer_ctx_child();
}

int kf_shim_fd_steered(int fd)
{
    /* proxy-carrier: a socket to the relay's proxy port is the relay's too. */
    return (kf_fd_peek(fd) && kf_fd_steered(fd, NULL, NULL)) || kf_carrier_fd_is_relay(fd);
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
    /* trust-ctx: a program that will not trust the relay's certificate
     * (a JVM without our store; learned: it refused the kimifix CA once)
     * keeps working unfixed rather than failing. */
    if (port != 80 && (kf_java_refuses || kf_steer_ctx_distrusted())) {
        kf_log(KF_LOG_DEBUG, "[libc] %s:%u not steered: this program does not trust the "
                             "kimifix CA", host, port);
        errno = saved;
        return 0;
    }
    kf_relay_state st;
    char why[512] = "";
    if (kf_relay_lookup(&st, why, sizeof why) < 0 && kf_relay_start(&st, why, sizeof why) < 0) {
        kf_shim_warn_once("steer-norelay", "relay: not running (%s): %s:%u goes direct, unfixed",
                          why, host, port);
        errno = saved;
        return 0;
    }
    /* trust-ctx: this process's context (its trust sources, program), once
     * per relay; none (the relay's defaults) when it cannot be had in 1 s. */
    unsigned char ctx[KF_CTX_ID_LEN];
    int have_ctx = kf_steer_ctx_id(&st, ctx);
    /* Marked steered before the relay sees a byte: in-process carriers
     * must never rewrite it too, and getpeername() must answer dst. */
    if (kf_fd_track_steered(fd, host, port, dst, dstlen) < 0) {
        kf_shim_warn_once("steer-track", "relay: cannot remember a steered socket (fd %d): "
                                         "%s:%u goes direct, unfixed", fd, host, port);
        errno = saved;
        return 0;
    }
    kf_steer_io io = { KF_REAL(connect), kf_real_write };
    if (kf_steer_connect_ctx(fd, dst, dstlen, host, &st, &io, have_ctx ? ctx : NULL) < 0) {
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

static int kf_getpeername(int fd, __SOCKADDR_ARG arg, socklen_t *len)
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

KF_EXPORT int getpeername(int fd, __SOCKADDR_ARG arg, socklen_t *len)
{
    return kf_getpeername(fd, arg, len);
}
