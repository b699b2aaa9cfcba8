/* main.c - kimifix-relay: options, lifecycle, the workers.
 *
 *   kimifix-relay [--port PORT] [--idle SECS] [--workers N] [--log-max BYTES] [-v]
 *
 * Runs in the foreground (`kimifix relay start` daemonizes it). One relay
 * per user: an exclusive flock on RUNDIR/relay.run.lock for the process's
 * lifetime. Listens on 127.0.0.1 (and [::1] on the same port when it can),
 * then writes RUNDIR/relay.state (port, pid, token; 0600, atomically). The
 * port and token of the last relay are reused (keep.c). Exits after --idle
 * seconds without connections (default 600; 0 = never) unless a
 * proxy-carrier client is alive (lease.c), on SIGTERM/SIGINT, or on the
 * control command STOP; removes the state file.
 * The main thread only watches: the workers (one per online CPU, loop.c)
 * accept and serve; resolver threads start when a name needs resolving.
 */
#include "relay.h"
#include "tlsresume.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/rand.h>

#include "ctxtab.h" /* trust-ctx: client contexts (contract A) */
#include "kf_log.h"
#include "kf_paths.h"

#define LOG_MAX_DEFAULT (8L << 20) /* relay.log, then relay.log.1 */
#define PENDING_MAX 1024          /* pending (pre-token) connections in all */
#define LEASE_GC_TICKS 60         /* seconds between lease-file clean-ups */

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_relay.stopping, 1);
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
    /* Every client connection wants no Nagle (SSE events go out as they
     * come): set on the listener, which Linux copies into each accepted
     * socket, instead of one more system call per connection (they cost
     * several us each on a VM: bench figure 13). */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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
    fputs("usage: kimifix-relay [--port PORT] [--idle SECS] [--workers N] [--log-max BYTES] [-v]\n"
          "  (normally started by `kimifix relay start`; see docs/relay.md)\n", f);
}

/* More descriptors: each client connection holds one, its upstream one. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static unsigned pending_cap(unsigned workers)
{
    struct rlimit rl;
    unsigned cap = PENDING_MAX;
    /* A flood of pending connections must leave descriptors for real ones. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < cap)
        cap = (unsigned)(rl.rlim_cur / 4);
    cap /= workers;
    return cap ? cap : 1;
}

static int start_workers(unsigned n)
{
    g_relay.workers = calloc(n, sizeof *g_relay.workers);
    if (!g_relay.workers)
        return -1;
    g_relay.nworkers = n;
    g_relay.pending_cap = pending_cap(n);
    for (unsigned i = 0; i < n; i++)
        if (worker_init(&g_relay.workers[i], (int)i) < 0) {
            kf_log(KF_LOG_ERROR, "relay: cannot set up worker %u: %s", i, strerror(errno));
            g_relay.nworkers = 0; /* none runs: nothing to join */
            return -1;
        }
    for (unsigned i = 0; i < n; i++)
        if (worker_run(&g_relay.workers[i]) < 0) {
            kf_log(KF_LOG_ERROR, "relay: cannot start worker %u: %s", i, strerror(errno));
            g_relay.nworkers = i;
            return -1;
        }
    return 0;
}

static void stop_workers(void)
{
    atomic_store(&g_relay.stopping, 1);
    for (unsigned i = 0; i < g_relay.nworkers; i++)
        worker_join(&g_relay.workers[i]);
    resolve_stop();
    tlsresume_clear();
}

/* The log file this relay writes to, if it is one we may rotate. */
static void setup_log_cap(long max)
{
    const char *ls = secure_getenv("KIMIFIX_LOG");
    char p[4200];
    if (ls && *ls && strcmp(ls, "stderr") && strcmp(ls, "-") && strcmp(ls, "off"))
        logfile_setup(ls, max);
    else
        logfile_setup(kf_path_join(p, sizeof p, g_relay.rundir, "relay.log"), max);
}

/* Watch: stop, idle exit, rate-limited counts, memory after bursts. */
static int held_by_clients(long quiet, int *held);

static void supervise(long idle)
{
    unsigned long trimmed_at = 0;
    int quiet_ticks = 0, held = 0;
    unsigned ticks = 0;
    while (!atomic_load(&g_relay.stopping)) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL); /* a signal cuts it short */
        ratelog_flush();
        unsigned long total = atomic_load(&g_relay.total);
        /* A burst of handshakes leaves freed memory in the heaps; give it
         * back once things calm down (a quiet second after new connections). */
        quiet_ticks = total == trimmed_at ? quiet_ticks + 1 : 0;
        if (quiet_ticks == 1) {
            malloc_trim(0);
        }
        trimmed_at = total;
        long quiet = (long)time(NULL) - atomic_load(&g_relay.last_activity);
        if (++ticks % LEASE_GC_TICKS == 0)
            lease_scan(NULL, 0);
        if (idle > 0 && atomic_load(&g_relay.active) == 0 && quiet >= idle &&
            !held_by_clients(quiet, &held))
            break;
        if (quiet < idle)
            held = 0;
    }
}

/* Idle long enough, but a proxy-carrier client is alive (lease.c): it has
 * this relay's URL in its environment, so stay. Said once per idle spell. */
static int held_by_clients(long quiet, int *held)
{
    char who[64];
    unsigned n = lease_scan(who, sizeof who);
    if (!n) {
        kf_log(KF_LOG_INFO, "relay: idle for %lds: exiting", quiet);
        return 0;
    }
    if (!*held)
        kf_log(KF_LOG_INFO, "relay: idle for %lds, but %u proxy-carrier client%s alive (%s): "
               "staying", quiet, n, n == 1 ? " is" : "s are", who);
    *held = 1;
    return 1;
}

/* `kimifix relay start` hands the relay the write end of a pipe
 * (KIMIFIX_RELAY_LIFE_FD) and waits on the read end: closed once the
 * state file is written, or by the exit of a relay that could not start,
 * so the starter (and the client waiting on it) knows at once instead of
 * after its timeout. -1 when not started that way. */
static int take_life_fd(void)
{
    const char *v = getenv(KF_RELAY_LIFE_FD_ENV);
    char *end;
    long fd = v ? strtol(v, &end, 10) : -1;
    struct stat sb;
    unsetenv(KF_RELAY_LIFE_FD_ENV); /* nothing of ours inherits it */
    if (!v || *end || fd < 3 || fd > 65535 || fstat((int)fd, &sb) < 0 || !S_ISFIFO(sb.st_mode))
        return -1;
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    return (int)fd;
}

int main(int argc, char **argv)
{
    shed_preload(argv); /* may re-exec: the life fd and its variable go along */
    int life_fd = take_life_fd();
    unsigned port = 0, nworkers = 0;
    long idle = 600, log_max = LOG_MAX_DEFAULT;
    int verbose = 0;
    static const struct option opts[] = {{"port", 1, 0, 'p'}, {"idle", 1, 0, 'i'},
                                         {"workers", 1, 0, 'w'}, {"log-max", 1, 0, 'l'},
                                         {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "p:i:w:l:vh", opts, NULL)) != -1;) {
        switch (c) {
        case 'p': port = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'i': idle = strtol(optarg, NULL, 10); break;
        case 'w': nworkers = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'l': log_max = strtol(optarg, NULL, 10); break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || port > 65535 || nworkers > 256) {
        usage(stderr);
        return 2;
    }
    if (!nworkers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nworkers = n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
    }
    const char *logspec = secure_getenv("KIMIFIX_LOG");
    if (logspec && *logspec && strcmp(logspec, "off") && kf_log_open(logspec) != 0) {
        /* A refused destination (FIFO, symlink, someone else's file) must
         * not silence the relay: say so once and log to stderr. */
        int e = errno;
        kf_log_open("stderr");
        kf_log(KF_LOG_ERROR, "relay: cannot log to %s: %s; logging to stderr", logspec, strerror(e));
    } else if (!logspec || !*logspec || !strcmp(logspec, "off")) {
        kf_log_open("stderr");
    }
    kf_log_set_level(verbose ? KF_LOG_DEBUG : KF_LOG_INFO);
    kf_log_own_fds(); /* a line per rewritten request: no fstat/getpid each */
    signal(SIGPIPE, SIG_IGN);
    mallopt(M_ARENA_MAX, 2); /* few arenas: less memory held between bursts */
    raise_nofile();
    g_relay.uid = geteuid();

    if (kf_relay_dir(g_relay.rundir, sizeof g_relay.rundir, KF_RELAY_DIR_CLAIM) < 0 ||
        kf_data_dir(g_relay.datadir, sizeof g_relay.datadir, 1) < 0) {
        kf_log(KF_LOG_ERROR, "relay: private directories: %s (%s, %s)", strerror(errno),
               g_relay.rundir, g_relay.datadir);
        return 1;
    }
    setup_log_cap(log_max);
    char lockp[4200];
    kf_path_join(lockp, sizeof lockp, g_relay.rundir, "relay.run.lock");
    int lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
        kf_log(KF_LOG_ERROR, "relay: another relay is running for this user (%s)", lockp);
        return 3;
    }

    /* A broken rules file: the built-ins and one line (rules.c). */
    if (relay_rules_init() < 0 || tlsresume_init() < 0 || ca_init(g_relay.datadir, g_relay.rs) < 0 ||
        !(g_relay.srv_ctx = tlsterm_ctx()) ||
        !(g_relay.up_ctx = upstream_ctx())) {
        kf_log(KF_LOG_ERROR, "relay: cannot set up TLS (see above)");
        return 1;
    }
    /* The last relay's port and token (keep.c): proxy-carrier clients hold
     * them in their environment. An explicit --port wins. */
    unsigned kept_port = 0;
    int kept = keep_load(&kept_port, g_relay.token) == 0;
    if (!kept && RAND_bytes(g_relay.token, sizeof g_relay.token) != 1)
        return 1;
    g_relay.diag_ok = peeruid_probe();
    if (!g_relay.diag_ok)
        kf_log(KF_LOG_WARN, "relay: WARNING: the kernel does not say who owns a connecting socket "
               "(NETLINK_SOCK_DIAG / inet_diag unavailable): other local users are kept out by the "
               "token only, and each of their connections costs a pending slot for %d s",
               RELAY_PREAMBLE_MS / 1000);

    g_relay.lfd[0] = -1;
    if (!port && kept && (g_relay.lfd[0] = listen_on(AF_INET, kept_port, &g_relay.port)) < 0)
        kf_log(KF_LOG_WARN, "relay: the last relay's port %u is taken (%s): a new one; clients "
               "started with the old one cannot reach this relay", kept_port, strerror(errno));
    if (g_relay.lfd[0] < 0)
        g_relay.lfd[0] = listen_on(AF_INET, port, &g_relay.port);
    if (g_relay.lfd[0] < 0) {
        kf_log(KF_LOG_ERROR, "relay: cannot listen on 127.0.0.1 port %u: %s", port, strerror(errno));
        return 1;
    }
    g_relay.lfd[1] = listen_on(AF_INET6, g_relay.port, NULL);
    g_relay.started = (long)time(NULL);
    atomic_store(&g_relay.last_activity, g_relay.started);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* Workers and resolvers take no signals: the main thread's sleep does. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int wok = start_workers(nworkers);
    if (wok >= 0) /* trust-ctx: RUNDIR/relay.sock on its own thread (signals blocked: main's) */
        ctxtab_start(g_relay.rundir, g_relay.datadir);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (wok < 0) {
        stop_workers();
        return 1;
    }
    keep_save(g_relay.port, g_relay.token);
    kf_relay_state st = {.port = g_relay.port, .v6 = g_relay.lfd[1] >= 0, .pid = getpid(),
                         .started = g_relay.started};
    memcpy(st.token, g_relay.token, sizeof st.token);
    if (kf_relay_state_write(g_relay.rundir, &st) < 0) {
        kf_log(KF_LOG_ERROR, "relay: cannot write %s/%s: %s", g_relay.rundir, KF_RELAY_STATE_FILE,
               strerror(errno));
        stop_workers();
        return 1;
    }
    if (life_fd >= 0)
        close(life_fd); /* ready: the starter reads the state file now */
    kf_log(KF_LOG_INFO, "relay: listening on 127.0.0.1:%u%s, pid %ld, %u workers, CA %s/ca.pem for: %s",
           g_relay.port, g_relay.lfd[1] >= 0 ? " and [::1]" : "", (long)getpid(), g_relay.nworkers,
           g_relay.datadir, ca_names());

    supervise(idle);
    atomic_store(&g_relay.stopping, 1);
    /* Remove the state file only if it still names us. */
    kf_relay_state cur;
    char sp[4200];
    if (kf_relay_state_read(g_relay.rundir, &cur) == 0 && cur.pid == getpid())
        unlink(kf_path_join(sp, sizeof sp, g_relay.rundir, KF_RELAY_STATE_FILE));
    kf_relay_dir_release(g_relay.rundir); /* still holding the run lock */
    stop_workers();
    close(g_relay.lfd[0]);
    if (g_relay.lfd[1] >= 0)
        close(g_relay.lfd[1]);
    kf_log(KF_LOG_INFO, "relay: stopped");
    return 0;
}
