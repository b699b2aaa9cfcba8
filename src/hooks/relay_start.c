/* relay_start.c - start the user's relay from inside a client (steer.c),
 * without ever waiting longer than KF_RELAY_WAIT_MS.
 *
 * `kimifix relay start` does the work: it serializes starters on an flock
 * of RUNDIR/relay.start.lock, reuses a running relay, and detaches the
 * relay with a double fork (never our child). We give it our remaining
 * budget (--wait-ms) and watch it with WNOHANG; should it still run at the
 * deadline (blocked on a start lock somebody holds, a relay slow to come
 * up), it is killed -- the relay it may have forked goes on without it --
 * and the client goes direct this time.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kf_clock.h"
#include "kf_shim.h"
#include "kf_steer.h"
#include "steer_int.h"

extern char **environ;

static pthread_mutex_t kf_start_lock = PTHREAD_MUTEX_INITIALIZER;
static time_t kf_start_last;

void kf_relay_start_child(void)
{
    pthread_mutex_init(&kf_start_lock, NULL);
}

static void kf_nap_ms(long ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

/* The `kimifix` program that belongs to this library: beside it in a build
 * tree, ../bin/kimifix when installed as PREFIX/lib/libkimifix.so (`make
 * install`), ../../bin/kimifix as /usr/lib/MULTIARCH/libkimifix.so (the
 * .deb) or in an older install's PREFIX/lib/kimifix/. */
static int kf_find_cli(char *out, size_t n)
{
    Dl_info di;
    if (!dladdr((void *)kf_relay_start, &di) || !di.dli_fname || di.dli_fname[0] != '/')
        return -1;
    const char *slash = strrchr(di.dli_fname, '/');
    int dl = (int)(slash - di.dli_fname);
    static const char *const rel[] = { "kimifix", "../bin/kimifix", "../../bin/kimifix" };
    struct stat st;
    for (unsigned i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        /* A regular file: beside an installed library, "kimifix" is the
         * relay's private directory (PREFIX/lib/kimifix/). */
        if (snprintf(out, n, "%.*s/%s", dl, di.dli_fname, rel[i]) < (int)n &&
            stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

/* The environment for `kimifix relay start`: ours without libkimifix in
 * LD_PRELOAD (the relay must not run under the shim; it would also re-exec
 * itself to shed it), KIMIFIX_MODE=off, and KIMIFIX_LOG dropped: the
 * relay serves every client and logs to RUNDIR/relay.log; this client's
 * lines reach its own log through its context (`log`, docs/relay.md). */
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
        if (!strncmp(e, "KIMIFIX_LOG=", 12))
            continue; /* the client's: its lines reach it through its context */
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

static pid_t kf_spawn_start(const char *cli, long budget_ms, char *why, size_t wn)
{
    char preload[4200], wait[32];
    snprintf(wait, sizeof wait, "--wait-ms=%ld", budget_ms);
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
    char *argv[] = { (char *)cli, (char *)"relay", (char *)"start", wait, NULL };
    pid_t pid = -1;
    int e = env ? posix_spawn(&pid, cli, &fa, &at, argv, env) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    if (e) {
        snprintf(why, wn, "cannot run %.200s relay start: %s", cli, strerror(e));
        return -1;
    }
    return pid;
}

/* Until the child exits or the deadline passes (then kill and reap it).
 * Returns its exit status, -1 when it was killed at the deadline, -2 when
 * the program reaped it first (a SIGCHLD handler, SIG_IGN: the state file
 * tells the rest). */
static int kf_wait_start(pid_t pid, long deadline)
{
    for (;;) {
        int ws;
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid)
            return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
        if (r < 0 && errno != EINTR)
            return -2;
        if (kf_mono_ms() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        kf_nap_ms(5);
    }
}

/* Append "; what" to why (which says why no relay was found). */
static void kf_why_add(char *why, size_t wn, const char *what)
{
    size_t l = strnlen(why, wn);
    if (l + 3 < wn)
        snprintf(why + l, wn - l, "%s%s", l ? "; " : "", what);
}

int kf_relay_start(kf_relay_state *st, char *why, size_t wn)
{
    char cli[4096], msg[512];
    long deadline = kf_mono_ms() + KF_RELAY_WAIT_MS;
    unsigned held = kf_lock(&kf_start_lock, KF_HOLD_START);
    time_t now = time(NULL);
    if (kf_start_last && now - kf_start_last < 10) {
        kf_unlock(&kf_start_lock, held);
        kf_why_add(why, wn, "a start was tried less than 10 s ago");
        return -1;
    }
    kf_start_last = now;
    int rc = -1;
    if (kf_find_cli(cli, sizeof cli) < 0) {
        kf_why_add(why, wn, "cannot find the kimifix program beside the library");
    } else {
        /* The command gets a little less than our budget: it should give
         * up and exit by itself before we have to kill it. */
        long left = deadline - kf_mono_ms();
        pid_t pid = kf_spawn_start(cli, left > 300 ? left - 200 : 100, msg, sizeof msg);
        int code = pid > 0 ? kf_wait_start(pid, deadline) : 0;
        char last[512] = "";
        /* Worth waiting for: started (0), another start under way (its
         * lock was busy), or unknown (-2: the program reaped our child).
         * A start that failed (the relay could not run) has said so. */
        int hope = code == 0 || code == -2 || code == KF_START_LOCK_BUSY;
        while (pid > 0 && (rc = kf_relay_lookup(st, last, sizeof last)) < 0 && hope &&
               kf_mono_ms() < deadline)
            kf_nap_ms(10);
        if (pid > 0 && rc < 0 && (code == -1 || code == KF_START_LOCK_BUSY))
            snprintf(msg, sizeof msg, "another `kimifix relay start` holds relay.start.lock: "
                                      "gave up after %d ms", KF_RELAY_WAIT_MS);
        else if (pid > 0 && rc < 0)
            snprintf(msg, sizeof msg, "`kimifix relay start` did not start it (see relay.log)");
        if (rc < 0)
            kf_why_add(why, wn, msg);
    }
    kf_unlock(&kf_start_lock, held);
    return rc;
}
