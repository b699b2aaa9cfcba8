/* test_relay_paths.c - the way from a client to the relay (RELIABILITY.md
 * finding 5): liveness is the run lock plus a listener of ours, never a
 * pid; every wait has a deadline; a squatted /tmp/kimifix-UID falls back to
 * a directory under the home; private directories are repaired or refused.
 * Same world as test_steer.c (steer_world.h).
 */
#include "steer_world.h"

#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>

#include "kf_log.h"

TestSuite(relaypaths, .timeout = 60);

static int count_all(const char *s, const char *needle)
{
    return count(s, needle);
}

/* A relay died; its pid now belongs to another process (this one) and
 * something (also this one) listens on its old port. Nobody holds its run
 * lock: the client must not send its request and the token there. */
Test(relaypaths, dead_relay_with_reused_pid_is_not_trusted)
{
    struct rec stale, up;
    rec_start(&stale);
    rec_start(&up);
    struct world w;
    world_init_at(&w, NULL, stale.port, up.port, 0);
    run(&w, "relay", 1, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&up, 1);
    cr_expect_eq(up.n, 1, "%s", w.err);
    cr_expect_str_eq(up.data[0], "hello 0\n", "not direct");
    cr_expect_eq(__atomic_load_n(&stale.accepted, __ATOMIC_SEQ_CST), 0,
                 "the stale relay's port got a connection");
    cr_expect(strstr(w.err, "no relay holds"), "%s", w.err);
    cr_expect_eq(count_all(w.err, "kimifix["), 1, "%s", w.err);
    rec_stop(&stale);
    rec_stop(&up);
    world_free(&w);
}

/* The run lock is held (the relay lives) but its state names a port that
 * another user's process listens on: not ours, nothing sent there. Needs
 * root to make a listener of another uid. */
Test(relaypaths, foreign_listener_on_the_relay_port_is_not_trusted)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to listen as another user");
    int pp[2];
    cr_assert(pipe(pp) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) { /* another user's listener: reports its port, then bytes it got */
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a test that timed out */
        if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
            _exit(1);
        struct sockaddr_in a = { .sin_family = AF_INET };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t l = sizeof a;
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 8) ||
            getsockname(s, (struct sockaddr *)&a, &l))
            _exit(1);
        int port = ntohs(a.sin_port);
        if (write(pp[1], &port, sizeof port) != sizeof port)
            _exit(1);
        for (;;) {
            int c = accept(s, NULL, NULL);
            char b[512];
            ssize_t k = c >= 0 ? read(c, b, sizeof b) : -1;
            int got = k > 0 ? (int)k : 0;
            if (write(pp[1], &got, sizeof got) != sizeof got)
                _exit(1);
            close(c);
        }
    }
    close(pp[1]);
    int port = 0;
    cr_assert(read(pp[0], &port, sizeof port) == sizeof port && port > 0);
    struct rec up;
    rec_start(&up);
    struct world w;
    world_init(&w, port, up.port); /* run lock held: only the port is wrong */
    run(&w, "relay", 1, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&up, 1);
    cr_expect_str_eq(up.data[0], "hello 0\n", "not direct:\n%s", w.err);
    cr_expect(strstr(w.err, "belongs to another user"), "%s", w.err);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int got, conns = 0;
    while (read(pp[0], &got, sizeof got) == sizeof got)
        conns++;
    cr_expect_eq(conns, 0, "the foreign listener got %d connection(s)", conns);
    close(pp[0]);
    rec_stop(&up);
    world_free(&w);
}

/* Another `relay start` holds RUNDIR/relay.start.lock (for as long as the
 * test runs). A client in relay mode must not wait for it: its constructor
 * and connect() give up after KF_RELAY_WAIT_MS, the connection goes direct,
 * one log line says why. Timing is only a hang guard (15 s for a 1 s
 * deadline); the proof is the reason in the log and the direct connection. */
static pid_t hold_start_lock(const char *rundir)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/relay.start.lock", rundir);
    int pp[2];
    cr_assert(pipe(pp) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a test that timed out */
        int fd = open(p, O_RDWR | O_CREAT, 0600);
        if (fd < 0 || flock(fd, LOCK_EX) < 0 || write(pp[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char c;
    cr_assert(read(pp[0], &c, 1) == 1, "the lock holder did not start");
    close(pp[0]);
    close(pp[1]);
    return pid;
}

Test(relaypaths, held_start_lock_goes_direct_within_the_deadline)
{
    struct rec up;
    rec_start(&up);
    struct world w;
    world_init_at(&w, NULL, -1, up.port, 0);
    char rundir[400];
    snprintf(rundir, sizeof rundir, "%s/kimifix", w.run);
    mkdir_p(rundir);
    pid_t holder = hold_start_lock(rundir);
    w.relay_prog = KF_TEST_BUILD "/kimifix-relay"; /* a real start, were the lock free */
    run(&w, "relay", 1, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&up, 1);
    cr_expect_str_eq(up.data[0], "hello 0\n", "not direct:\n%s", w.err);
    cr_expect(strstr(w.err, "holds relay.start.lock: gave up after 1000 ms"), "%s", w.err);
    cr_expect_eq(count_all(w.err, "kimifix["), 1, "%s", w.err);
    cr_expect_lt(w.secs, 15.0, "steerclient took %.1f s", w.secs);
    /* /bin/true too: its constructor (relay mode) is the only wait. */
    w.prog = "/bin/true";
    run(&w, "relay", 0, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    cr_expect_lt(w.secs, 15.0, "/bin/true took %.1f s", w.secs);
    cr_expect_leq(count_all(w.err, "kimifix["), 1, "%s", w.err);
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    rec_stop(&up);
    world_free(&w);
}

/* ---- private directories ---- */

static char logbuf[8192];

static const char *log_text(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(logbuf, 1, sizeof logbuf - 1, f) : 0;
    logbuf[n] = 0;
    if (f)
        fclose(f);
    return logbuf;
}

static unsigned mode_of(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0;
}

Test(relaypaths, private_dir_repaired_or_refused)
{
    char base[] = "/tmp/kfdirs.XXXXXX", d[128], logp[128], l[128];
    cr_assert(mkdtemp(base));
    snprintf(logp, sizeof logp, "%s/log", base);
    cr_assert(kf_log_open(logp) == 0);
    kf_log_set_level(KF_LOG_INFO);
    snprintf(d, sizeof d, "%s/d", base);
    cr_assert(mkdir(d, 0700) == 0);
    chmod(d, 0755);
    cr_expect_eq(kf_private_dir(d, 0), 0, "a 0755 directory of ours is usable");
    cr_expect_eq(mode_of(d), 0700, "mode %04o", mode_of(d));
    cr_expect(strstr(log_text(logp), "had mode 0755: repaired to 0700"), "%s", logbuf);
    chmod(d, 0777);
    errno = 0;
    cr_expect_eq(kf_private_dir(d, 0), -1, "others may write there");
    cr_expect_eq(errno, EPERM);
    cr_expect(strstr(log_text(logp), "others may write there"), "%s", logbuf);
    chmod(d, 0700);
    snprintf(l, sizeof l, "%s/link", base);
    cr_assert(symlink(d, l) == 0);
    cr_expect_eq(kf_private_dir(l, 0), -1, "a symlink");
    if (geteuid() == 0) {
        cr_assert(chown(d, 65534, 65534) == 0);
        cr_expect_eq(kf_private_dir(d, 0), -1, "another user's directory");
        cr_expect(strstr(log_text(logp), "belongs to uid 65534, not to you"), "%s", logbuf);
    }
    kf_log_close();
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    cr_expect_eq(system(cmd), 0);
}

/* A client's constructor finds the data dir 0755 (a careless chmod -R):
 * it repairs it and says so on stderr, then steers as usual. */
Test(relaypaths, data_dir_0755_repaired_by_a_client)
{
    struct rec relay, up;
    rec_start(&relay);
    rec_start(&up);
    struct world w;
    world_init(&w, relay.port, up.port);
    char dd[400];
    snprintf(dd, sizeof dd, "%s/kimifix", w.data);
    chmod(dd, 0755);
    run(&w, "relay", 1, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    cr_expect(strstr(w.err, "had mode 0755: repaired to 0700"), "%s", w.err);
    cr_expect_eq(mode_of(dd), 0700, "mode %04o", mode_of(dd));
    rec_wait(&relay, 1);
    cr_expect_eq(relay.n, 1, "not steered:\n%s", w.err);
    rec_stop(&relay);
    rec_stop(&up);
    world_free(&w);
}

/* ---- a squatted /tmp/kimifix-UID ----
 * In a private mount namespace with its own /tmp (root: unshare(NEWNS);
 * otherwise a user namespace too), /tmp/kimifix-UID is made not ours: owned
 * by uid 65534 (root) or a symlink (user namespace, where no other uid
 * exists). With no XDG_RUNTIME_DIR the runtime dir is then
 * ~/.cache/kimifix/run: kf_runtime_dir says so, and a client under the
 * shim finds the (fake) relay whose state is there. The checks run in a
 * child (it owns the namespace) and report through its exit status. */

enum { SQ_SKIP = 77 };

static int enter_private_tmp(void)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (uid != 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            return -1;
        char m[64];
        int fd = open("/proc/self/setgroups", O_WRONLY);
        if (fd >= 0) {
            if (write(fd, "deny", 4) != 4)
                return -1;
            close(fd);
        }
        snprintf(m, sizeof m, "0 %u 1", (unsigned)uid);
        fd = open("/proc/self/uid_map", O_WRONLY);
        if (fd < 0 || write(fd, m, strlen(m)) < 0)
            return -1;
        close(fd);
        snprintf(m, sizeof m, "0 %u 1", (unsigned)gid);
        fd = open("/proc/self/gid_map", O_WRONLY);
        if (fd < 0 || write(fd, m, strlen(m)) < 0)
            return -1;
        close(fd);
    } else if (unshare(CLONE_NEWNS) != 0) {
        return -1;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777") != 0)
        return -1;
    return 0;
}

static int squat(void)
{
    char p[64];
    snprintf(p, sizeof p, "/tmp/kimifix-%u", (unsigned)geteuid());
    if (geteuid() == 0 && getuid() == 0 && access("/proc/self/uid_map", F_OK) == 0) {
        FILE *f = fopen("/proc/self/uid_map", "r");
        unsigned a = 1, b = 1, c = 0;
        int full = f && fscanf(f, "%u %u %u", &a, &b, &c) == 3 && c > 1; /* real root */
        if (f)
            fclose(f);
        if (full)
            return mkdir(p, 0700) == 0 && chown(p, 65534, 65534) == 0 ? 0 : -1;
    }
    return symlink("/", p); /* user namespace: no other uid to own it */
}

Test(relaypaths, squatted_tmp_dir_falls_back_under_home, .timeout = 90)
{
    /* The child replaces /tmp with a private one: a build tree under /tmp
     * (the shim, the client) would vanish from its view. */
    if (!strncmp(KF_TEST_BUILD, "/tmp/", 5))
        cr_skip_test("the build tree %s is under /tmp, which this test replaces", KF_TEST_BUILD);
    struct rec relay, up;
    rec_start(&relay);
    rec_start(&up);
    struct world w;
    /* the world must not live in /tmp: the child mounts its own there */
    world_init_at(&w, KF_TEST_BUILD "/tests/shim", relay.port, up.port, 0);
    char want[400], errp[420];
    snprintf(want, sizeof want, "%s/.cache/kimifix/run", w.dir);
    snprintf(errp, sizeof errp, "%s/squat.txt", w.dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *o = fopen(errp, "w");
        if (!o)
            _exit(2);
        if (enter_private_tmp() != 0) {
            fprintf(o, "no private /tmp: %s\n", strerror(errno));
            fclose(o);
            _exit(SQ_SKIP);
        }
        if (squat() != 0) {
            fprintf(o, "cannot squat: %s\n", strerror(errno));
            fclose(o);
            _exit(2);
        }
        setenv("HOME", w.dir, 1);
        unsetenv("XDG_RUNTIME_DIR");
        unsetenv("XDG_CACHE_HOME");
        char got[4096];
        int bad = 0;
        if (kf_runtime_dir(got, sizeof got, 1) != 0 || strcmp(got, want) != 0) {
            fprintf(o, "runtime dir: %s, want %s\n", got, want);
            bad |= 4;
        }
        if (mode_of(want) != 0700) {
            fprintf(o, "fallback mode %04o\n", mode_of(want));
            bad |= 8;
        }
        /* the fake relay, found there by a client with no XDG_RUNTIME_DIR */
        kf_relay_state st = { .port = (unsigned)relay.port, .pid = getppid(), .started = 1 };
        memcpy(st.token, w.token, sizeof st.token);
        if (kf_relay_state_write(want, &st) != 0)
            bad |= 16;
        char lockp[500];
        snprintf(lockp, sizeof lockp, "%s/relay.run.lock", want);
        int lf = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lf < 0 || flock(lf, LOCK_EX) != 0)
            bad |= 16;
        w.unset_runtime = "yes";
        run(&w, "relay", 1, 0, NULL);
        fprintf(o, "client status %d\n%s\n", w.status, w.err);
        if (w.status != 0)
            bad |= 32;
        fclose(o);
        _exit(bad);
    }
    int st;
    waitpid(pid, &st, 0);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    const char *report = log_text(errp);
    if (code == SQ_SKIP)
        cr_skip_test("%s", report);
    cr_expect_eq(code, 0, "%s", report);
    rec_wait(&relay, 1);
    cr_expect_eq(relay.n, 1, "the client did not find the relay under ~/.cache:\n%s", report);
    cr_expect_eq(up.n, 0, "went direct:\n%s", report);
    rec_stop(&relay);
    rec_stop(&up);
    world_free(&w);
}

/* XDG_RUNTIME_DIR that is not a directory of ours (`su`/`sudo -u` keep the
 * first user's; a session without pam_systemd keeps one never made): the
 * /tmp rules apply, where the relay can start. Ours: used as before.
 * create=0: nothing is made. */
Test(relaypaths, xdg_runtime_dir_not_ours_falls_back_to_tmp)
{
    char dir[] = "/tmp/kfxdg.XXXXXX", got[4096], want[64], mine[4096], file[4096];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(want, sizeof want, "/tmp/kimifix-%u", (unsigned)geteuid());
    snprintf(file, sizeof file, "%s/afile", dir);
    close(open(file, O_WRONLY | O_CREAT, 0600));
    const char *bad[] = { "/nonexistent-kimifix-xdg", file, "/" /* root's, or not ours */ };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (i == 2 && geteuid() == 0)
            continue; /* "/" is root's own */
        setenv("XDG_RUNTIME_DIR", bad[i], 1);
        got[0] = 0;
        kf_runtime_dir(got, sizeof got, 0);
        cr_expect_str_eq(got, want, "XDG_RUNTIME_DIR=%s", bad[i]);
    }
    setenv("XDG_RUNTIME_DIR", dir, 1);
    snprintf(mine, sizeof mine, "%s/kimifix", dir);
    cr_expect_eq(kf_runtime_dir(got, sizeof got, 0), -1); /* ours, kimifix/ not made yet */
    cr_expect_str_eq(got, mine);
    cr_expect_eq(kf_runtime_dir(got, sizeof got, 1), 0);
    cr_expect_str_eq(got, mine);
    unsetenv("XDG_RUNTIME_DIR");
    rmdir(mine);
    unlink(file);
    rmdir(dir);
}
