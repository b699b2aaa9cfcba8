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
 * stderr is NOT passed as `log fd`: a relay holding the client's stderr
 * keeps that pipe open after the client exits, and whoever waits for its
 * end (a shell's $(...), subprocess.communicate(), a CI log) hangs until
 * the context expires (measured: the e2e harness hung). The relay then
 * logs such a client's lines in its own log. Passing the fd needs its
 * life tied to the client's (issue 15). *pass_fd stays -1 until then. */
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
