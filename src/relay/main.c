/* main.c - kimifix-relay: options, lifecycle, accept loop.
 *
 *   kimifix-relay [--port PORT] [--idle SECS] [-v]
 *
 * Runs in the foreground (`kimifix relay start` daemonizes it). One relay
 * per user: an exclusive flock on RUNDIR/relay.run.lock for the process's
 * lifetime. Listens on 127.0.0.1 (and [::1] on the same port when it can),
 * then writes RUNDIR/relay.state (port, pid, token; 0600, atomically). Exits
 * after --idle seconds without connections (default 600; 0 = never), on
 * SIGTERM/SIGINT, or on the control command STOP; removes the state file.
 */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/rand.h>

#include "ctxtab.h" /* trust-ctx: client contexts (contract A) */
#include "kf_log.h"
#include "kf_paths.h"

#define THREAD_STACK (256 * 1024)

relay_globals g_relay;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_relay.stopping, 1);
}

static void diag(void *ud, const char *line)
{
    (void)ud;
    kf_log(KF_LOG_WARN, "relay: rules: %s", line);
}

static int listen_on(int family, unsigned port, unsigned *bound)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
        close(fd);
        return -1;
    }
    if (bound) {
        getsockname(fd, (struct sockaddr *)&ss, &len);
        *bound = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

static void accept_one(int lfd, pthread_attr_t *attr)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    atomic_fetch_add(&g_relay.active, 1);
    atomic_fetch_add(&g_relay.total, 1);
    atomic_store(&g_relay.last_activity, (long)time(NULL));
    pthread_t t;
    if (pthread_create(&t, attr, conn_thread, (void *)(intptr_t)fd) != 0) {
        kf_log(KF_LOG_ERROR, "relay: cannot create a thread: dropping a connection");
        close(fd);
        atomic_fetch_sub(&g_relay.active, 1);
    }
}

/* The relay must never run under the shim: its upstream connections would
 * be steered back into itself. A relay started from a wrapped process
 * inherits LD_PRELOAD; drop libkimifix from it and re-exec (the preload is
 * already mapped in this process). KIMIFIX_MODE=off covers what is left. */
static void shed_preload(char **argv)
{
    const char *pre = getenv("LD_PRELOAD");
    setenv("KIMIFIX_MODE", "off", 1);
    if (!pre || !strstr(pre, "libkimifix"))
        return;
    char keep[4096] = "";
    size_t used = 0;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", pre);
    char *save;
    for (char *w = strtok_r(tmp, " :", &save); w; w = strtok_r(NULL, " :", &save)) {
        if (strstr(w, "libkimifix"))
            continue;
        int n = snprintf(keep + used, sizeof keep - used, "%s%s", used ? ":" : "", w);
        if (n > 0 && (size_t)n < sizeof keep - used)
            used += (size_t)n;
    }
    if (used)
        setenv("LD_PRELOAD", keep, 1);
    else
        unsetenv("LD_PRELOAD");
    execv("/proc/self/exe", argv);
    fprintf(stderr, "kimifix-relay: cannot re-exec without the preload: %s\n", strerror(errno));
    _exit(1);
}

static void usage(FILE *f)
{
    fputs("usage: kimifix-relay [--port PORT] [--idle SECS] [-v]\n"
          "  (normally started by `kimifix relay start`; see docs/relay.md)\n", f);
}

int main(int argc, char **argv)
{
    shed_preload(argv);
    unsigned port = 0;
    long idle = 600;
    int verbose = 0;
    static const struct option opts[] = {{"port", 1, 0, 'p'}, {"idle", 1, 0, 'i'},
                                         {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "p:i:vh", opts, NULL)) != -1;) {
        switch (c) {
        case 'p': port = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'i': idle = strtol(optarg, NULL, 10); break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || port > 65535) {
        usage(stderr);
        return 2;
    }
    const char *logspec = secure_getenv("KIMIFIX_LOG");
    kf_log_open(logspec && *logspec && strcmp(logspec, "off") ? logspec : "stderr");
    kf_log_set_level(verbose ? KF_LOG_DEBUG : KF_LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    mallopt(M_ARENA_MAX, 2); /* 200 threads must not mean 16 malloc arenas */

    if (kf_runtime_dir(g_relay.rundir, sizeof g_relay.rundir, 1) < 0 ||
        kf_data_dir(g_relay.datadir, sizeof g_relay.datadir, 1) < 0) {
        kf_log(KF_LOG_ERROR, "relay: private directories: %s (%s, %s)", strerror(errno),
               g_relay.rundir, g_relay.datadir);
        return 1;
    }
    char lockp[4200];
    kf_path_join(lockp, sizeof lockp, g_relay.rundir, "relay.run.lock");
    int lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
        kf_log(KF_LOG_ERROR, "relay: another relay is running for this user (%s)", lockp);
        return 3;
    }

    char rpath[4096];
    const char *rp = kf_rules_default_path(rpath, sizeof rpath);
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load(rp, diag, NULL, &nerr);
    if (!rs) {
        kf_log(KF_LOG_ERROR, "relay: %s: %d error(s): using the built-in rules only",
               rp ? rp : "rules", nerr);
        rs = kf_ruleset_builtin();
    }
    g_relay.rs = rs;
    if (!rs || ca_init(g_relay.datadir, rs) < 0 || !(g_relay.srv_ctx = tlsterm_ctx()) ||
        !(g_relay.up_ctx = upstream_ctx())) {
        kf_log(KF_LOG_ERROR, "relay: cannot set up TLS (see above)");
        return 1;
    }
    if (RAND_bytes(g_relay.token, sizeof g_relay.token) != 1)
        return 1;
    ctxtab_start(g_relay.rundir, g_relay.datadir); /* trust-ctx: RUNDIR/relay.sock, upstream trust */

    int lfd[2];
    lfd[0] = listen_on(AF_INET, port, &g_relay.port);
    if (lfd[0] < 0) {
        kf_log(KF_LOG_ERROR, "relay: cannot listen on 127.0.0.1 port %u: %s", port, strerror(errno));
        return 1;
    }
    lfd[1] = listen_on(AF_INET6, g_relay.port, NULL);
    g_relay.started = (long)time(NULL);
    atomic_store(&g_relay.last_activity, g_relay.started);
    kf_relay_state st = {.port = g_relay.port, .v6 = lfd[1] >= 0, .pid = getpid(),
                         .started = g_relay.started};
    memcpy(st.token, g_relay.token, sizeof st.token);
    if (kf_relay_state_write(g_relay.rundir, &st) < 0) {
        kf_log(KF_LOG_ERROR, "relay: cannot write %s/%s: %s", g_relay.rundir, KF_RELAY_STATE_FILE,
               strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    kf_log(KF_LOG_INFO, "relay: listening on 127.0.0.1:%u%s, pid %ld, CA %s/ca.pem for: %s",
           g_relay.port, lfd[1] >= 0 ? " and [::1]" : "", (long)getpid(), g_relay.datadir,
           ca_names());

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    unsigned long trimmed_at = 0;
    while (!atomic_load(&g_relay.stopping)) {
        struct pollfd pf[2] = {{.fd = lfd[0], .events = POLLIN}, {.fd = lfd[1], .events = POLLIN}};
        int r = poll(pf, lfd[1] >= 0 ? 2 : 1, 1000);
        for (int i = 0; r > 0 && i < 2; i++)
            if (pf[i].revents & POLLIN)
                accept_one(lfd[i], &attr);
        /* A burst of handshakes leaves freed memory in the heaps; give it
         * back once things calm down (a quiet second after new connections). */
        if (r == 0 && atomic_load(&g_relay.total) != trimmed_at) {
            trimmed_at = atomic_load(&g_relay.total);
            malloc_trim(0);
        }
        long quiet = (long)time(NULL) - atomic_load(&g_relay.last_activity);
        if (idle > 0 && atomic_load(&g_relay.active) == 0 && quiet >= idle) {
            kf_log(KF_LOG_INFO, "relay: idle for %lds: exiting", quiet);
            break;
        }
    }
    atomic_store(&g_relay.stopping, 1);
    /* Remove the state file only if it still names us. */
    kf_relay_state cur;
    char sp[4200];
    if (kf_relay_state_read(g_relay.rundir, &cur) == 0 && cur.pid == getpid())
        unlink(kf_path_join(sp, sizeof sp, g_relay.rundir, KF_RELAY_STATE_FILE));
    close(lfd[0]);
    if (lfd[1] >= 0)
        close(lfd[1]);
    for (int i = 0; i < 30 && atomic_load(&g_relay.active) > 0; i++)
        usleep(100000); /* connections see `stopping` within a second */
    kf_log(KF_LOG_INFO, "relay: stopped");
    return 0;
}
