/* kf_ctxself.c - what this process registers with the relay (kf_ctxmsg.h):
 * its original trust sources, rules source, log destination and level, and
 * program identity. For the shim's first steered connection (and the
 * wrapper). Never sends a proxy: a steered client connect()ed directly, so
 * the relay goes direct for it too (the proxy carrier adds `proxy`). */
#include "kf_ctxmsg.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kf_log.h"
#include "kf_progid.h"
#include "kf_rules.h"
#include "kf_trust.h"

static int add_trust(void *ud, const char *path, const char *var)
{
    (void)var;
    kf_ctxmsg_add(ud, "trust", path); /* an unsafe name is left out */
    return 0;
}

/* Where the client's own log lines go, as the shim decided (shim.c):
 * unset = warnings to stderr, "stderr"/"-" = stderr, "off", else a file.
 * KIMIFIX_LOG=stderr hands the relay our fd 2 (`log fd`, SCM_RIGHTS) when
 * it is still the stderr the log was opened on (kf_log_stderr_fd). The
 * relay ties that fd's life to ours: it watches this process (a pidfd from
 * the socket's SO_PEERCRED) and closes its copy the moment we exit, so a
 * pipe's reader ($(...), subprocess.communicate(), a CI log) sees its end
 * when we end, not when the context expires. Unset KIMIFIX_LOG sends no
 * log: the relay's lines stay in its own log, as the shim's default says
 * only warnings of its own, and a TUI's terminal is not the place for
 * upstream statuses nobody asked to see. */
static void add_log(kf_ctxmsg_buf *b, int *pass_fd)
{
    const char *log = secure_getenv("KIMIFIX_LOG");
    const char *dbg = secure_getenv("KIMIFIX_DEBUG");
    int debug = dbg && *dbg && strcmp(dbg, "0") != 0;
    *pass_fd = -1;
    if (log && !strcmp(log, "off")) {
        kf_ctxmsg_add(b, "log", "off");
        return;
    }
    if (log && (!strcmp(log, "stderr") || !strcmp(log, "-")) && (*pass_fd = kf_log_stderr_fd()) >= 0)
        kf_ctxmsg_add(b, "log", "fd");
    if (log && *log && strcmp(log, "stderr") && strcmp(log, "-")) {
        char cwd[4096], abs[8200];
        if (log[0] == '/')
            kf_ctxmsg_add(b, "log", log);
        else if (syscall(SYS_getcwd, cwd, sizeof cwd) > 0 && /* ours, not the relay's */
                 snprintf(abs, sizeof abs, "%s/%s", cwd, log) < (int)sizeof abs)
            kf_ctxmsg_add(b, "log", abs);
    }
    kf_ctxmsg_add(b, "level", debug ? "debug" : (!log || !*log) ? "warn" : "info");
}

ssize_t kf_ctxmsg_self(char *buf, size_t cap, const char *extra_trust, int *pass_fd)
{
    kf_ctxmsg_buf b;
    char path[4096], exe[4096], id[KF_BUILDID_MAX];
    kf_ctxmsg_begin(&b, buf, cap, KF_CTXMSG_CTX);
    kf_trust_sources(add_trust, &b);
    if (extra_trust && *extra_trust)
        kf_ctxmsg_add(&b, "trust", extra_trust);
    const char *rules = kf_rules_default_path(path, sizeof path);
    kf_ctxmsg_add(&b, "rules", rules ? rules : "builtin");
    add_log(&b, pass_fd);
    if (kf_progid_self(exe, sizeof exe, id, sizeof id) == 0) {
        kf_ctxmsg_add(&b, "exe", exe);
        kf_ctxmsg_add(&b, "buildid", id);
    }
    return kf_ctxmsg_end(&b);
}
