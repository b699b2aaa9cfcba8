/* carrier.c - the shim's side of the proxy carrier (kf_envplan.h,
 * docs/relay.md "Proxy carrier").
 *
 *   kf_carrier_setup()     from the constructor (one call in kf_steer_setup):
 *                          the carrier choice `kimifix CMD` makes, so that a
 *                          plain `LD_PRELOAD=libkimifix.so CMD` behaves the
 *                          same, from the very first run on a fresh account
 *                          (the relay, which makes the CA, is started before
 *                          any trust or proxy variable is set), with the same
 *                          lease (kf_lease.h) when this process is the first
 *                          to make the relay its proxy;
 *   kf_carrier_relay_dst() connect() to the relay's own proxy port: left
 *                          alone (never tracked, never steered);
 *   kf_carrier_fd_is_relay() a socket connected there: its bytes are the
 *                          relay's to rewrite (the TLS hooks stand down, as
 *                          for steered sockets: kf_shim_fd_steered).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kf_envplan.h"
#include "kf_lease.h"
#include "kf_shim.h"

/* The relay port the process's proxy variables name (0: none). Set once
 * in the constructor, read by connect() and the TLS hooks. */
static atomic_uint kf_proxy_port KF_START_DATA;

/* 24 KiB: static, the constructor runs once. */
static kf_envplan kf_plan;

/* The client-context id for the relay URL: a parent's (inherited: it holds
 * the lease, and a moved relay keeps finding the file), else a lease of
 * this process's own (kf_lease.h), as the wrapper takes one. "" when none. */
static void lease_id(const kf_carrier_choice *c, char *id, size_t n)
{
    char rundir[4096];
    if (kf_env_relay_ctxid(secure_getenv, id, n) && kf_lease_id_ok(id))
        return;
    id[0] = 0;
    if (c->inherited || kf_relay_dir(rundir, sizeof rundir, 0) < 0 ||
        kf_lease_write(rundir, getpid(), c->up.usable ? c->up.url : NULL,
                       kf_noproxy_env(secure_getenv), id) < 0) {
        if (!c->inherited)
            kf_log(KF_LOG_DEBUG, "carrier: cannot write a lease with the relay (%m)");
        id[0] = 0;
    }
}

/* The relay could not be found: start it (bounded by start). Its own
 * frame, as the rare branches below: kf_carrier_setup runs in every
 * process start, and every KiB of its frame pushes its callees onto
 * stack pages the start would not touch otherwise (bench figure 6). */
__attribute__((noinline)) static int start_relay(const kf_carrier_choice *c, kf_relay_start_fn start,
                                                 kf_relay_state *st)
{
    char why[512] = "";
    int relay = start(st, why, sizeof why) == 0;
    if (!relay && c->carrier == KF_CARRIER_PROXY)
        kf_log(KF_LOG_WARN, "carrier: the relay is not running (%s): this program keeps its "
                            "own proxy settings, unfixed where its TLS is out of reach", why);
    return relay;
}

/* The proxy variables name the relay, with this program's lease. */
__attribute__((noinline)) static void plan_relay_proxy(const kf_carrier_choice *c,
                                                       const kf_relay_state *st)
{
    char url[300], id[KF_LEASE_ID_HEX + 1];
    lease_id(c, id, sizeof id);
    if (kf_relay_proxy_url(st, id, url, sizeof url) == 0)
        kf_envplan_proxy(&kf_plan, secure_getenv, url);
}

/* Set what the plan says, and say so. */
__attribute__((noinline)) static void apply_plan(const kf_carrier_choice *c, unsigned port)
{
    if (!kf_plan.n)
        return;
    if (kf_envplan_apply(&kf_plan, setenv, unsetenv) < 0)
        kf_log(KF_LOG_WARN, "carrier: cannot set the proxy variables (%m)");
    else if (c->carrier == KF_CARRIER_PROXY)
        kf_log(c->inherited ? KF_LOG_DEBUG : KF_LOG_INFO, "carrier: proxy -- %s (relay port %u)",
               c->why, port);
    else
        kf_log(KF_LOG_DEBUG, "carrier: shim -- %s: your proxy variables are back", c->why);
}

void kf_carrier_setup(int tls_inprocess, kf_relay_start_fn start)
{
    kf_carrier_in in = {.get = secure_getenv, .no_preload = 0, .tls_inprocess = tls_inprocess};
    kf_carrier_choice c;
    kf_carrier_choose(&in, &c);
    kf_relay_state st = {0};
    int relay = 0;
    /* A fresh account has no CA until the relay's first start: start it
     * now (bounded by `start`), or the trust variables set after this call
     * would be missing for this whole process. Otherwise the relay is
     * looked up only when the carrier needs its port (a process start
     * under the shim costs no more than before). */
    if ((c.carrier == KF_CARRIER_PROXY || !kf_envplan_ca_exists()) &&
        !(relay = kf_relay_lookup(&st, NULL, 0) == 0))
        relay = start_relay(&c, start, &st);
    /* The plan is touched only when something may change: most starts
     * (the shim carrier, nothing to restore) leave its pages alone. */
    int proxy = c.carrier == KF_CARRIER_PROXY && relay;
    if (proxy || c.restore || (c.carrier == KF_CARRIER_PROXY && c.inherited)) {
        kf_envplan_init(&kf_plan);
        if (proxy)
            plan_relay_proxy(&c, &st);
        else /* In-process after all, or a relay named by a parent that is
              * gone and cannot be started: the user's own proxy, never a
              * dead one. */
            kf_envplan_restore(&kf_plan, secure_getenv);
        apply_plan(&c, st.port);
    }
    atomic_store(&kf_proxy_port, kf_env_relay_port(secure_getenv));
}

/* Is sa loopback on the relay's proxy port? */
static int kf_relay_addr(const struct sockaddr *sa, unsigned port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return ntohs(a->sin_port) == port && (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        const unsigned char *b = a->sin6_addr.s6_addr;
        return ntohs(a->sin6_port) == port &&
               (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) || (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && b[12] == 127));
    }
    return 0;
}

int kf_carrier_relay_dst(const struct sockaddr *sa)
{
    unsigned port = atomic_load_explicit(&kf_proxy_port, memory_order_relaxed);
    return port && kf_relay_addr(sa, port);
}

int kf_carrier_fd_is_relay(int fd)
{
    unsigned port = atomic_load_explicit(&kf_proxy_port, memory_order_relaxed);
    if (!port)
        return 0;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    return KF_REAL(getpeername)(fd, (struct sockaddr *)&ss, &len) == 0 &&
           kf_relay_addr((struct sockaddr *)&ss, port);
}
