/* doctor_self.c - the state of kimifix itself: the shim the wrapper would
 * preload, the rules, the relay, the kimifix CA, the environment. */
#include "doctor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_relay.h"
#include "kf_mode.h"
#include "kf_paths.h"
#include "cli.h"
#include "kf_rules.h"
#include "kf_rules_policy.h"

/* Where the wrapper finds the library (kf_cli_find_beside). */
int dr_shim_path(char *out, size_t n)
{
    return kf_cli_find_beside("libkimifix.so", R_OK, out, n);
}

static int libc_family(const char *name)
{
    static const char *const ok[] = {"libc.so", "libdl.so", "libpthread.so", "librt.so",
                                     "ld-linux", "libm.so"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strncmp(name, ok[i], strlen(ok[i])))
            return 1;
    return 0;
}

static void check_shim(dr_report *r)
{
    char shim[PATH_MAX];
    if (dr_shim_path(shim, sizeof shim) != 0) {
        dr_fact_add(r, 1, "shim", "libkimifix.so not found beside %s or in its ../lib directories",
                    shim);
        return;
    }
    ef_elf *e = malloc(sizeof *e);
    if (!e || ef_open(e, shim) != 0) {
        dr_fact_add(r, 1, "shim", "%s: not a readable ELF library", shim);
        free(e);
        return;
    }
    char bad[DR_VAL_MAX] = "", all[DR_VAL_MAX] = "";
    for (unsigned i = 0; i < e->nneeded; i++) {
        char *dst = libc_family(e->needed[i]) ? all : bad;
        size_t l = strlen(dst);
        snprintf(dst + l, DR_VAL_MAX - l, "%s%s", l ? ", " : "", e->needed[i]);
    }
    if (bad[0])
        dr_fact_add(r, 1, "shim", "%s needs %s: it must link only the libc family", shim, bad);
    else
        dr_fact_add(r, 0, "shim", "%s (needs %s: libc family only)", shim, all[0] ? all : "nothing");
    ef_close(e);
    free(e);
}

/* ---- rules ---- */

typedef struct diag_acc {
    dr_report *r;
    unsigned n;
} diag_acc;

static void diag(void *ud, const char *line)
{
    diag_acc *a = ud;
    int err = strstr(line, ": error:") != NULL;
    if (a->n++ < 10)
        dr_fact_add(a->r, err, "rules", "%s", line);
}

static void check_rules(dr_report *r, int brief)
{
    char buf[PATH_MAX], line[5200];
    const char *file = kf_rules_default_path(buf, sizeof buf);
    diag_acc acc = {r, 0};
    kf_rules_src src;
    /* The policy every carrier follows (kf_rules_policy.h): a broken file
     * is ignored as a whole, the built-ins stay in effect. */
    kf_ruleset *rs = kf_rules_load_policy(file, diag, &acc, &src);
    if (!rs) {
        dr_fact_add(r, 1, "rules", "cannot load even the built-in rules (out of memory)");
        return;
    }
    if (src.fallback) {
        dr_fact_add(r, 1, "rules", "%s", kf_rules_policy_line(&src, line, sizeof line));
        file = NULL;
    }
    unsigned builtin = 0, user = 0, off = 0, n = kf_ruleset_count(rs);
    char disabled[DR_VAL_MAX] = "";
    for (unsigned i = 0; i < n; i++) {
        const kf_rule *ru = kf_ruleset_rule(rs, i);
        if (!strncmp(kf_rule_origin(ru), "builtin:", 8))
            builtin++;
        else
            user++;
        if (!kf_rule_enabled(ru)) {
            size_t l = strlen(disabled);
            snprintf(disabled + l, sizeof disabled - l, "%s%s", off++ ? ", " : "", kf_rule_name(ru));
        }
    }
    dr_fact_add(r, 0, "rules", "%s: %u built-in, %u from the file, %u disabled%s%s",
                file ? file : src.fallback ? "in effect (built-ins only)"
                            : "no rules file (built-ins only)", builtin, user, off,
                off ? ": " : "", disabled);
    const char *host, *addr;
    unsigned port, aport;
    for (unsigned i = 0; !brief && kf_rules_connect_to_at(rs, i, &host, &port, &addr, &aport); i++) {
        char hp[300];
        dr_fmt(hp, sizeof hp, port ? "%s:%u" : "%s", host, port);
        dr_fact_add(r, 0, "connect-to", "%s -> %s:%u", hp, addr, aport);
    }
    kf_ruleset_free(rs);
}

/* ---- relay ---- */

/* Can the relay make directory path (it does mkdir -p)? 1, or 0 with why:
 * the nearest existing ancestor must be a directory we may write. */
static int can_make(const char *path, char *why, size_t wn)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *slash; (slash = strrchr(p, '/')) && p[1];) {
        slash[slash == p] = 0; /* the parent; "/" stays "/" */
        struct stat st;
        if (lstat(p, &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue; /* up to what exists */
            snprintf(why, wn, "%s: %s", p, strerror(errno));
            return 0;
        }
        if (!S_ISDIR(st.st_mode)) {
            snprintf(why, wn, "%s is not a directory", p);
            return 0;
        }
        if (access(p, W_OK | X_OK) != 0) {
            snprintf(why, wn, "%s: %s", p, strerror(errno));
            return 0;
        }
        return 1;
    }
    snprintf(why, wn, "no existing parent directory");
    return 0;
}

/* This network namespace's relay is not the runtime dir's own (kf_relay_dir):
 * say whose that is, as a relay there cannot serve us. */
static void say_other_netns(dr_report *r, const char *reldir)
{
    char run[PATH_MAX], owner[64], me[64];
    if (kf_runtime_dir(run, sizeof run, 0) != 0 || !strcmp(run, reldir))
        return;
    kf_relay_net_owner(run, owner, me);
    dr_fact_add(r, 0, "relay dir", "%s: %s belongs to network namespace %s, this is %s (a relay "
                "listens on loopback, which each namespace has its own of)", reldir, run, owner, me);
}

static void check_relay(dr_report *r)
{
    char rundir[PATH_MAX], prog[PATH_MAX];
    kf_relay_state st;
    if (!kf_relay_program(prog, sizeof prog))
        dr_fact_add(r, 1, "relay", "the kimifix-relay program is not found (set KIMIFIX_RELAY): "
                                   "clients with compiled-in TLS cannot be fixed");
    rundir[0] = 0;
    if (kf_relay_dir(rundir, sizeof rundir, 0) != 0) {
        /* Missing is normal (made on the first start) only where it can be made. */
        char why[PATH_MAX + 64];
        snprintf(why, sizeof why, "%s", strerror(errno));
        if (errno == ENOENT ? can_make(rundir, why, sizeof why) : 0)
            dr_fact_add(r, 0, "relay", "not running (no runtime dir %s yet; started on demand)", rundir);
        else
            dr_fact_add(r, 1, "relay", "cannot start: runtime dir %s: %s (clients with compiled-in "
                        "TLS go direct, unfixed; set XDG_RUNTIME_DIR to a directory of yours)",
                        rundir[0] ? rundir : "(none)", why);
        return;
    }
    say_other_netns(r, rundir);
    if (kf_relay_state_read(rundir, &st) != 0) {
        dr_fact_add(r, 0, "relay", "not running (started on demand; state would be %s/%s)", rundir,
                    KF_RELAY_STATE_FILE);
        return;
    }
    char why[512];
    if (!kf_relay_live(rundir, &st, why, sizeof why)) {
        dr_fact_add(r, 0, "relay", "not running: stale state file %s/%s (%s); "
                    "restarted on demand", rundir, KF_RELAY_STATE_FILE, why);
        return;
    }
    long up = st.started ? (long)(time(NULL) - st.started) : -1;
    dr_fact_add(r, 0, "relay", "running: pid %ld, 127.0.0.1:%u%s, up %lds (%s/%s)", (long)st.pid,
                st.port, st.v6 ? " and [::1]" : "", up, rundir, KF_RELAY_STATE_FILE);
}

/* ---- CA ---- */

static void check_mode(dr_report *r, const char *key, const char *path, unsigned want, int dir)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    unsigned mode = st.st_mode & 07777;
    int bad = (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) || (mode & ~want) ||
              st.st_uid != geteuid();
    dr_fact_add(r, bad, key, "%s mode %04o%s%s", path, mode, bad ? ", should be " : "",
                bad ? (dir ? "a 0700 directory of yours" : "a 0600 file of yours") : "");
}

static void check_ca(dr_report *r, int brief)
{
    char dir[PATH_MAX], pem[PATH_MAX], key[PATH_MAX], names[PATH_MAX];
    /* Its mode before kf_data_dir repairs a 0755 one (kf_paths.c): said. */
    struct stat pre;
    int had = kf_data_dir_path(dir, sizeof dir) == 0 && lstat(dir, &pre) == 0 && S_ISDIR(pre.st_mode) &&
              pre.st_uid == geteuid() && (pre.st_mode & 077) && !(pre.st_mode & 022);
    dir[0] = 0;
    struct stat ds;
    /* missing (ENOENT, or ENOTDIR: a file where a parent should be) */
    if (kf_data_dir(dir, sizeof dir, 0) != 0 &&
        (errno == ENOENT || (errno == ENOTDIR && lstat(dir, &ds) != 0))) {
        char why[PATH_MAX + 64];
        if (!dir[0])
            dr_fact_add(r, 1, "CA", "no data dir: neither XDG_DATA_HOME nor HOME is set (the relay "
                                    "cannot make its CA; clients with compiled-in TLS go direct)");
        else if (!can_make(dir, why, sizeof why))
            dr_fact_add(r, 1, "CA", "cannot be made in %s: %s (the relay cannot start; clients with "
                                    "compiled-in TLS go direct; set XDG_DATA_HOME)", dir, why);
        else
            dr_fact_add(r, 0, "CA", "not made yet (the relay makes it in %s on first start)", dir);
        return;
    }
    kf_path_join(pem, sizeof pem, dir, "ca.pem");
    kf_path_join(key, sizeof key, dir, "ca.key");
    kf_path_join(names, sizeof names, dir, "ca.names");
    struct stat cur;
    if (had && lstat(dir, &cur) == 0 && (cur.st_mode & 07777) == 0700)
        dr_fact_add(r, 0, "data dir", "%s had mode %04o: repaired to 0700", dir,
                    (unsigned)(pre.st_mode & 07777));
    else if (!brief)
        check_mode(r, "data dir", dir, 0700, 1);
    long long nb, na;
    char cn[128];
    const char *why = NULL;
    if (access(pem, F_OK) != 0) {
        dr_fact_add(r, 0, "CA", "%s not made yet (the relay makes it on first start)", pem);
        return;
    }
    if (kf_pem_cert_info(pem, &nb, &na, cn, sizeof cn, &why) != 0) {
        dr_fact_add(r, 1, "CA", "%s: %s", pem, why);
    } else {
        long long now = (long long)time(NULL), days = (na - now) / 86400;
        char exp[32];
        time_t t = (time_t)na;
        struct tm tm;
        strftime(exp, sizeof exp, "%Y-%m-%d", gmtime_r(&t, &tm));
        dr_fact_add(r, na < now || nb > now, "CA", "%s (%s), %s %s%s%lld days)", pem,
                    cn[0] ? cn : "no CN", na < now ? "EXPIRED on" : "valid until", exp,
                    na < now ? " (" : " (in ", na < now ? -days : days);
    }
    if (access(key, F_OK) == 0)
        check_mode(r, "CA key", key, 0600, 0);
    else
        dr_fact_add(r, 1, "CA key", "%s is missing: the relay will make a new CA", key);
    char buf[512];
    FILE *f = brief ? NULL : fopen(names, "re");
    if (f) {
        size_t l = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[l] = 0;
        for (char *c = buf; *c; c++)
            if (*c == '\n' || *c == '\r' || *c == '\t')
                *c = ' ';
        while (l && buf[l - 1] == ' ')
            buf[--l] = 0;
        dr_fact_add(r, 0, "CA names", "%s", buf);
    }
}

/* ---- environment ---- */

static void check_env(dr_report *r)
{
    static const char *const vars[] = {"KIMIFIX_MODE",        "KIMIFIX_LOG",   "KIMIFIX_RULES",
                                       "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v)
            dr_fact_add(r, 0, "env", "%s=%s", vars[i], v);
        else if (i < 2)
            dr_fact_add(r, 0, "env", "%s unset (%s)", vars[i], i == 0 ? "auto" : "no log");
    }
    const char *mode = getenv("KIMIFIX_MODE");
    if (kf_mode_parse(mode) < 0)
        dr_fact_add(r, 1, "env", "KIMIFIX_MODE=%s: expected one of " KF_MODE_NAMES, mode);
    const char *pre = getenv("LD_PRELOAD");
    if (pre && *pre)
        dr_fact_add(r, 0, "env", "LD_PRELOAD=%s%s", pre,
                    strstr(pre, "libkimifix.so") ? " (kimifix is already preloaded here)"
                                                 : " (kept: kimifix goes first)");
    else
        dr_fact_add(r, 0, "env", "LD_PRELOAD unset");
}

unsigned dr_self(dr_report *r, int brief)
{
    unsigned before = r->nproblems;
    check_shim(r);
    check_rules(r, brief);
    check_relay(r);
    check_ca(r, brief);
    if (!brief)
        check_env(r);
    return r->nproblems - before;
}
