/* carrier.c - `kimifix CMD` picks the carrier (kf_envplan.h, docs/relay.md
 * "Proxy carrier") and sets up its environment before exec:
 *
 *   proxy  when no preload carries CMD (static, Go, musl: doctor's ELF
 *          analysis), when a proxy is set in the environment (connect()
 *          steering would only see that proxy), or KIMIFIX_MODE=proxy:
 *          the proxy variables name the relay, the trust variables the
 *          kimifix CA, the user's values are saved in KIMIFIX_ORIG_*;
 *   shim   otherwise (LD_PRELOAD alone, as before).
 * LD_PRELOAD is set either way (plan.c): interposable children keep their
 * in-process fixes, and the shim in CMD makes the same choice for itself.
 * The variables go into a plan (kf_envplan.h) that `kimifix CMD` applies
 * before exec and `kimifix shell` prints as shell code.
 * A setuid/setgid program is refused: no preload reaches it, and kimifix
 * gives a privileged program no proxy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "doctor.h"
#include "kf_envplan.h"
#include "kf_lease.h"
#include "kf_log.h"
#include "kf_steer.h"

/* Can a preload carry CMD? DR_SHIM_* (DR_SHIM_OK when CMD cannot be
 * resolved: execvp will say why). */
static int reach(const char *cmd, char *exe, size_t en, char *why, size_t wn)
{
    dr_report *r = calloc(1, sizeof *r);
    int rc = DR_SHIM_OK;
    exe[0] = 0;
    if (r && dr_resolve(r, cmd) == 0) {
        snprintf(exe, en, "%s", r->exe);
        rc = dr_shim_reach(r->exe, why, wn);
    }
    free(r);
    return rc;
}

/* The wrapper's log: KIMIFIX_LOG as the shim reads it (unset: stderr,
 * warnings only; `kimifix -v` sets "stderr": this line shows). */
static void open_log(void)
{
    const char *log = getenv("KIMIFIX_LOG");
    if (!log || !*log) {
        kf_log_open("stderr");
        kf_log_set_level(KF_LOG_WARN);
    } else if (kf_log_open(log) != 0) {
        kf_log_open("stderr");
    }
}

/* This process (CMD after exec: the same pid) takes a lease with the
 * relay (kf_lease.h): the relay stays while it lives, and learns the
 * user's proxy and NO_PROXY for its upstream connections. id: "" when it
 * could not be written (then the relay chains nothing for CMD). */
static void take_lease(const kf_carrier_choice *c, char *id)
{
    char rundir[4096];
    id[0] = 0;
    if (kf_relay_dir(rundir, sizeof rundir, 0) == 0 &&
        kf_lease_write(rundir, getpid(), c->up.usable ? c->up.url : NULL, kf_noproxy_env(getenv),
                       id) == 0)
        return;
    id[0] = 0;
    kf_log(KF_LOG_WARN, "carrier: cannot write this program's lease with the relay (%m): the relay "
           "may exit while it runs%s", c->up.usable ? ", and it goes direct, not through your proxy" : "");
}

/* The proxy carrier's variables (into plan): the relay as the proxy, the
 * kimifix CA trusted. Nothing when the relay does not run. lease: CMD runs
 * as this process (`kimifix CMD`); `kimifix shell` takes none (it exits at
 * once; each later command's shim takes its own). */
static void proxy_env(const kf_carrier_choice *c, kf_envplan *plan, int lease)
{
    kf_relay_state st;
    char url[300], id[KF_LEASE_ID_HEX + 1] = "";
    if (kf_relay_lookup(&st, NULL, 0) < 0) {
        kf_log(KF_LOG_WARN, "carrier: proxy wanted (%s), but the relay is not running: %s",
               c->why, "the program goes direct, unfixed");
        return;
    }
    if (lease)
        take_lease(c, id);
    if (kf_relay_proxy_url(&st, id[0] ? id : NULL, url, sizeof url) == 0)
        kf_envplan_proxy(plan, getenv, url);
    if (kf_envplan_trust(plan, getenv) < 0)
        kf_log(KF_LOG_WARN, "carrier: no kimifix CA yet: the program will not trust the relay");
    kf_log(KF_LOG_INFO, "carrier: proxy -- %s (relay port %u)", c->why, st.port);
}

int kf_cli_carrier(const char *cmd, kf_envplan *plan, kf_carrier_choice *c)
{
    char exe[4096] = "", why[1024] = "";
    /* No CMD (`kimifix shell`): the shell's later commands, each of which
     * loads the shim and makes its own choice in its constructor. */
    int b = cmd ? reach(cmd, exe, sizeof exe, why, sizeof why) : DR_SHIM_OK;
    if (b == DR_SHIM_SECURE) {
        fprintf(stderr, "kimifix: %s: %s: refusing to run it under kimifix\n", exe, why);
        return 126;
    }
    open_log();
    kf_carrier_in in = {.get = getenv, .no_preload = b == DR_SHIM_NONE, .tls_inprocess = 0};
    kf_carrier_choose(&in, c);
    if (c->carrier == KF_CARRIER_PROXY) {
        proxy_env(c, plan, cmd != NULL);
        return 0;
    }
    if (c->carrier == KF_CARRIER_NONE && in.no_preload)
        kf_log(KF_LOG_WARN, "carrier: none for %s -- %s; %s", exe, why, c->why);
    else
        kf_log(KF_LOG_INFO, "carrier: %s -- %s", kf_carrier_name(c->carrier), c->why);
    if (c->restore)
        kf_envplan_restore(plan, getenv);
    return 0;
}
