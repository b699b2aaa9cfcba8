/* relay_cmd.c - `kimifix relay start|stop|status|run`.
 *
 * start is idempotent and race-free: starters serialize on an flock of
 * RUNDIR/relay.start.lock, and a running relay (its own flock on
 * relay.run.lock held, its port's listener ours, answering STATUS on the
 * control channel) is reused. The relay is started detached (double fork,
 * setsid), logs to RUNDIR/relay.log (0600) unless KIMIFIX_LOG says
 * otherwise, and start returns once its state file names it.
 *
 * Every wait has a deadline (--wait-ms, default 10 s): the start lock
 * (another start may hold it; a client's shim passes its own budget of
 * under a second, docs/RELIABILITY.md finding 5) and the state file.
 */
#include "kf_clock.h"
#include "cli.h"
#include "cli_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kf_log.h"
#include "kf_paths.h"
#include "kf_proxy.h"

#define START_WAIT_MS 10000  /* `kimifix relay start` typed by the user */
#define ENSURE_WAIT_MS 3000  /* the wrapper, before it runs the client */
#define START_LOCK_BUSY 75   /* exit status: another start held the lock (the shim reads it) */

static int usage(FILE *f)
{
    fputs("usage: kimifix relay start [--port PORT] [--idle SECS] [-v] [--wait-ms MS]\n"
          "       kimifix relay stop | status\n"
          "       kimifix relay run [--port PORT] [--idle SECS] [-v]   (foreground)\n",
          f);
    return f == stdout ? 0 : 2;
}

const char *kf_relay_program(char *buf, unsigned long n)
{
    const char *env = secure_getenv("KIMIFIX_RELAY");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return access(buf, X_OK) == 0 ? buf : NULL;
    }
    return kf_cli_find_beside("kimifix-relay", X_OK, buf, n) == 0 ? buf : NULL;
}

/* Send a control command; the reply goes into out. 0 or -1. */
static int control(const kf_relay_state *st, const char *cmd, char *out, size_t n)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)st->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unsigned char pre[KF_PROXY_MAX];
    ssize_t pl = kf_proxy_encode(pre, sizeof pre, 1, NULL, NULL, NULL, st->token);
    size_t got = 0;
    if (fd < 0 || pl < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        write(fd, pre, (size_t)pl) != pl || write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (got + 1 < n && poll(&p, 1, 3000) > 0) {
        ssize_t r = read(fd, out + got, n - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    out[got] = 0;
    close(fd);
    return got ? 0 : -1;
}

/* 1 when a live relay (kf_relay_live) answers for this state. */
static int running(const char *rundir, kf_relay_state *st, char *reply, size_t n)
{
    char why[512];
    return kf_relay_state_read(rundir, st) == 0 && kf_relay_live(rundir, st, why, sizeof why) &&
           control(st, "STATUS\n", reply, n) == 0;
}

static void nap_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* The start lock, waiting at most until deadline. 0 or -1 (errno). */
static int lock_until(int fd, long deadline)
{
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (kf_mono_ms() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        nap_ms(10);
    }
}

static const char *field(const char *reply, const char *key, char *buf, size_t n)
{
    size_t kl = strlen(key);
    for (const char *p = reply; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, kl) && p[kl] == ' ') {
            size_t l = strcspn(p + kl + 1, "\n");
            snprintf(buf, n, "%.*s", (int)l, p + kl + 1);
            return buf;
        }
    snprintf(buf, n, "?");
    return buf;
}

static void exec_relay(const char *prog, int argc, char **argv)
{
    char *args[32];
    int k = 0;
    args[k++] = (char *)"kimifix-relay";
    for (int i = 0; i < argc && k < 31; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    execv(prog, args);
}

/* --wait-ms=N / --wait-ms N: ours, not the relay's; taken out of argv. */
static long take_wait(int *argc, char **argv, long dflt)
{
    long ms = dflt;
    for (int i = 0; i < *argc; i++) {
        const char *v = NULL;
        int used = 0;
        if (!strncmp(argv[i], "--wait-ms=", 10))
            v = argv[i] + 10, used = 1;
        else if (!strcmp(argv[i], "--wait-ms") && i + 1 < *argc)
            v = argv[i + 1], used = 2;
        if (!used)
            continue;
        char *end;
        long x = strtol(v, &end, 10);
        if (!*end && x > 0)
            ms = x;
        memmove(argv + i, argv + i + used, (size_t)(*argc - i - used + 1) * sizeof *argv);
        *argc -= used;
        i--;
    }
    return ms;
}

/* out: where to say what happened (NULL: nothing on stdout; errors still
 * go to stderr). */
static int cmd_start(const char *rundir, int argc, char **argv, FILE *out, long wait_ms)
{
    char prog[4096], lockp[4200], logp[4200], reply[9000], why[512];
    kf_relay_state st;
    long deadline = kf_mono_ms() + take_wait(&argc, argv, wait_ms);
    kf_path_join(lockp, sizeof lockp, rundir, "relay.start.lock");
    int lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0 || lock_until(lfd, deadline) < 0) {
        int busy = errno == ETIMEDOUT;
        fprintf(stderr, "kimifix relay: %s: %s\n", lockp,
                busy ? "another start holds it; gave up" : strerror(errno));
        if (lfd >= 0)
            close(lfd);
        return busy ? START_LOCK_BUSY : 1;
    }
    if (running(rundir, &st, reply, sizeof reply)) {
        if (out)
            fprintf(out, "kimifix relay: already running (pid %ld, port %u)\n", (long)st.pid, st.port);
        close(lfd);
        return 0;
    }
    if (!kf_relay_program(prog, sizeof prog)) {
        fprintf(stderr, "kimifix relay: cannot find the kimifix-relay program (set KIMIFIX_RELAY)\n");
        close(lfd);
        return 1;
    }
    kf_path_join(logp, sizeof logp, rundir, "relay.log");
    time_t t0 = time(NULL);
    long forked = kf_mono_ms();
    /* The relay's life pipe (src/relay/main.c: take_life_fd): EOF on
     * life[0] means it is ready or gone; without a pipe, the lock probe
     * below tells after a second. */
    int life[2] = {-1, -1};
    if (pipe2(life, O_CLOEXEC) < 0)
        life[0] = life[1] = -1;
    pid_t child = fork();
    if (child == 0) {
        if (fork() != 0)
            _exit(0);
        setsid();
        /* above 2: a starter run with stdio closed got a pipe end there,
         * which the dup2()s below would replace (and close: a false EOF) */
        int w = life[1] >= 3 ? life[1] : life[1] >= 0 ? fcntl(life[1], F_DUPFD, 3) : -1;
        if (w >= 0) {
            char v[16];
            snprintf(v, sizeof v, "%d", w);
            fcntl(w, F_SETFD, 0);
            setenv(KF_RELAY_LIFE_FD_ENV, v, 1);
        }
        int null = open("/dev/null", O_RDWR);
        /* KIMIFIX_LOG naming a file: the relay logs there; "stderr" (what
         * `kimifix -v` sets) or unset: RUNDIR/relay.log, never a terminal.
         * Started for a client (`kimifix CMD`: out == NULL), the client's
         * KIMIFIX_LOG is the client's: its lines reach it through its
         * context (docs/relay.md, "Client contexts"), and a relay that
         * serves every client keeps its own log in RUNDIR/relay.log. */
        if (!out)
            unsetenv("KIMIFIX_LOG");
        const char *ls = secure_getenv("KIMIFIX_LOG");
        int tofile = ls && *ls && strcmp(ls, "stderr") != 0;
        int log = tofile ? null : open(logp, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
        dup2(null, 0);
        dup2(null, 1);
        dup2(log >= 0 ? log : null, 2);
        close(lfd); /* the lock is the starter's, not the relay's */
        exec_relay(prog, argc, argv);
        _exit(127);
    }
    if (life[1] >= 0)
        close(life[1]);
    if (child > 0)
        waitpid(child, NULL, 0);
    int closed = 0;
    while (kf_mono_ms() < deadline) {
        if (kf_relay_state_read(rundir, &st) == 0 && st.started >= t0 - 1 &&
            kf_relay_live(rundir, &st, why, sizeof why)) {
            if (out)
                fprintf(out, "kimifix relay: started (pid %ld, port %u)\n", (long)st.pid, st.port);
            if (life[0] >= 0)
                close(life[0]);
            close(lfd);
            return 0;
        }
        /* Closed and still not live: the relay died (bad data dir, port in
         * use...). Fail now: a client may be waiting for this. Without the
         * pipe: it takes relay.run.lock first thing and holds it for life,
         * so after a second a free lock means the same. */
        if (closed || (kf_mono_ms() - forked >= 1000 && !kf_relay_run_lock_held(rundir)))
            break;
        if (life[0] >= 0) {
            struct pollfd pf = {.fd = life[0], .events = POLLIN};
            char c;
            if (poll(&pf, 1, 20) > 0 && read(life[0], &c, 1) == 0)
                closed = 1; /* one more look at the state file, then stop */
        } else {
            nap_ms(20);
        }
    }
    if (life[0] >= 0)
        close(life[0]);
    fprintf(stderr, "kimifix relay: the relay did not start%s; see %s\n",
            kf_mono_ms() >= deadline ? " in time" : "", logp);
    close(lfd);
    return 1;
}

static int cmd_stop(const char *rundir)
{
    kf_relay_state st;
    char reply[256];
    char why[512];
    if (kf_relay_state_read(rundir, &st) < 0 || !kf_relay_run_lock_held(rundir)) {
        printf("kimifix relay: not running\n");
        return 0;
    }
    /* STOP carries the token: only to a port that is ours. */
    if (!kf_relay_live(rundir, &st, why, sizeof why)) {
        fprintf(stderr, "kimifix relay: a relay holds the lock but %s; not stopping it\n", why);
        return 1;
    }
    if (control(&st, "STOP\n", reply, sizeof reply) < 0) {
        /* Not answering: SIGTERM, but only if that pid really is a relay. */
        char p[64], comm[64] = "";
        snprintf(p, sizeof p, "/proc/%ld/comm", (long)st.pid);
        FILE *f = fopen(p, "re");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = 0;
            fclose(f);
        }
        if (strncmp(comm, "kimifix-relay", 13)) {
            printf("kimifix relay: not running (stale state file)\n");
            return 0;
        }
        kill(st.pid, SIGTERM);
    }
    /* Gone when its run lock is free (its pid may be reused at once). */
    long deadline = kf_mono_ms() + START_WAIT_MS;
    while (kf_relay_run_lock_held(rundir) && kf_mono_ms() < deadline)
        nap_ms(20);
    if (kf_relay_run_lock_held(rundir)) {
        fprintf(stderr, "kimifix relay: pid %ld did not stop\n", (long)st.pid);
        return 1;
    }
    printf("kimifix relay: stopped (pid %ld)\n", (long)st.pid);
    return 0;
}

/* The relay's rules and how many requests each rule rewrote since it
 * started (STATUS `rules_*`, `rewritten`, `rule NAME COUNT` lines). */
static void print_rules(const char *reply)
{
    char v[8192];
    if (strcmp(field(reply, "rules_source", v, sizeof v), "?")) {
        printf("  rules:       %s", kf_cli_esc(strcmp(v, "builtin") ? v : "built-in rules only"));
        field(reply, "rules_reloads", v, sizeof v);
        printf(" (re-read %s time%s since start)\n", v, strcmp(v, "1") ? "s" : "");
        if (strcmp(field(reply, "rules_state", v, sizeof v), "ok"))
            printf("               %s\n", kf_cli_esc(v));
        printf("  rewritten:   %s requests since start\n", field(reply, "rewritten", v, sizeof v));
    }
    int head = 0;
    for (const char *p = reply; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, "rule ", 5))
            continue;
        int l = (int)strcspn(p + 5, "\n");
        const char *sp = memchr(p + 5, ' ', (size_t)l);
        if (!sp)
            continue;
        if (!head++)
            printf("  per rule (requests rewritten):\n");
        snprintf(v, sizeof v, "%.*s", (int)(sp - (p + 5)), p + 5);
        printf("    %-40s %.*s\n", kf_cli_esc(v), (int)(p + 5 + l - sp - 1), sp + 1);
    }
}

static int cmd_status(const char *rundir)
{
    kf_relay_state st;
    char reply[9000], v[8192], data[4096];
    if (!running(rundir, &st, reply, sizeof reply)) {
        printf("kimifix relay: not running\n");
        if (kf_data_dir(data, sizeof data, 0) == 0)
            printf("  CA: %s/ca.pem\n", data);
        return 3;
    }
    long up = atol(field(reply, "uptime", v, sizeof v));
    printf("kimifix relay: running\n");
    printf("  pid:         %ld\n", (long)st.pid);
    printf("  listening:   127.0.0.1:%u%s\n", st.port, st.v6 ? " and [::1]" : "");
    printf("  uptime:      %ldh%02ldm%02lds\n", up / 3600, up / 60 % 60, up % 60);
    printf("  connections: %s open, ", field(reply, "active", v, sizeof v));
    printf("%s since start\n", field(reply, "total", v, sizeof v));
    printf("  CA:          %s\n", field(reply, "ca", v, sizeof v));
    printf("  CA permits:  %s (X.509 nameConstraints)\n", field(reply, "names", v, sizeof v));
    printf("  state:       %s/%s\n", rundir, KF_RELAY_STATE_FILE);
    printf("  heap:        %s bytes in use\n", field(reply, "heap_in_use", v, sizeof v));
    print_rules(reply);
    return 0;
}

/* Messages of the core (a repaired or refused directory, a squatted
 * /tmp/kimifix-UID) go to stderr, like ours. */
static void log_to_stderr(void)
{
    if (kf_log_fd() >= 0)
        return;
    kf_log_open("stderr");
    kf_log_set_level(KF_LOG_INFO);
}

int kf_relay_ensure(void)
{
    char rundir[4096];
    char *none[] = { NULL };
    log_to_stderr();
    if (kf_relay_dir(rundir, sizeof rundir, 1) < 0) {
        fprintf(stderr, "kimifix: relay: runtime directory %s: %s\n", rundir, strerror(errno));
        return -1;
    }
    fflush(NULL); /* nothing buffered may be written twice by the fork */
    return cmd_start(rundir, 0, none, NULL, ENSURE_WAIT_MS) == 0 ? 0 : -1;
}

int kf_cli_relay(int argc, char **argv)
{
    char rundir[4096], prog[4096];
    if (argc < 2)
        return usage(stderr);
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help"))
        return usage(stdout);
    log_to_stderr();
    if (kf_relay_dir(rundir, sizeof rundir, 1) < 0) {
        fprintf(stderr, "kimifix relay: runtime directory %s: %s\n", rundir, strerror(errno));
        return 1;
    }
    if (!strcmp(sub, "start"))
        return cmd_start(rundir, argc - 2, argv + 2, stdout, START_WAIT_MS);
    if (!strcmp(sub, "stop"))
        return argc == 2 ? cmd_stop(rundir) : usage(stderr);
    if (!strcmp(sub, "status"))
        return argc == 2 ? cmd_status(rundir) : usage(stderr);
    if (!strcmp(sub, "run")) {
        if (!kf_relay_program(prog, sizeof prog)) {
            fprintf(stderr, "kimifix relay: cannot find the kimifix-relay program\n");
            return 1;
        }
        exec_relay(prog, argc - 2, argv + 2);
        fprintf(stderr, "kimifix relay: %s: %s\n", prog, strerror(errno));
        return 1;
    }
    return usage(stderr);
}
