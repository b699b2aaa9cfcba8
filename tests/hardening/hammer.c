/* hammer.c - process and thread torture for libkimifix.so (run under
 * LD_PRELOAD by tests/hardening/run.sh and check-tsan).
 *
 *   hammer MODE [ARGS]
 *
 * The process runs its own recording server on loopback (accepted sockets
 * are never tracked by the shim; only connect()ed ones are), sends
 * hardening/req.h's HARD_REQ on tracked sockets and checks that every
 * connection delivered exactly HARD_WANT (the built-ins' fix), or for the
 * modes that cut a connection, a prefix of it.
 *
 *   threads N M   N threads x M connections, each request split at random
 *                 points over write/send/writev/sendmsg
 *   forkwrite R   a thread writes heads in two halves while the main thread
 *                 forks R times; each child sends its own request and exits
 *   sigfork R     SIGALRM every 200 us whose handler write()s to a pipe
 *                 (cwrap's regression), while a thread writes requests on
 *                 tracked sockets and the main thread forks R times
 *   sigforktracked R  the same, the handler also writes to a tracked
 *                 socket (KNOWN BUG, see docs/RELIABILITY.md: the shim's
 *                 kf_tab_lock is taken again by the handler while the
 *                 atfork prepare handler of the same thread holds it)
 * A watchdog ends the process after 10 s without progress ("DEADLOCK").
 *   dup2 R        half a head on tracked fd A, dup2(B, A) with B another
 *                 tracked connection, the full request on A: B's
 *                 connection gets exactly HARD_WANT; A's a prefix or nothing
 *   spawn PROG    posix_spawn, vfork+execve and `sh -c "exec env ... PROG"`
 *                 of PROG (rawsend) from a process with running threads
 * Prints "hammer MODE: N passed, N failed". Exit 0 when all passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hardening/req.h"

extern char **environ;

#define MAXC 20000

static int lfd, port;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct rec {
    char *p;
    size_t n;
    int done;
} recs[MAXC];
static int nrec;
static atomic_int open_readers;

static atomic_long progress;
static const char *cur_mode = "?";

/* A deadlock must fail fast and say so, not wait for an outer timeout. */
static void *watchdog(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the SIGALRM storm is not ours */
    long last = -1;
    time_t since = time(NULL);
    for (;;) {
        struct timespec ts = { 0, 200 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        long p = atomic_load(&progress);
        if (p != last) {
            last = p;
            since = time(NULL);
        } else if (time(NULL) - since >= 10) {
            /* straight to the kernel: the process may hold stdio or shim locks */
            char msg[256];
            int n = snprintf(msg, sizeof msg, "hammer %s: DEADLOCK: no progress for 10 s\n"
                             "hammer %s: 0 passed, 1 failed\n", cur_mode, cur_mode);
            if (syscall(SYS_write, 1, msg, (size_t)n) < 0)
                _exit(4);
            _exit(3);
        }
    }
    return NULL;
}

static void *reader(void *arg)
{
    int idx = (int)(intptr_t)arg;
    int fd;
    pthread_mutex_lock(&mu);
    fd = recs[idx].done; /* the fd was parked here */
    recs[idx].done = 0;
    pthread_mutex_unlock(&mu);
    char buf[8192];
    char *p = NULL;
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR)) {
        if (r < 0)
            continue;
        p = realloc(p, n + (size_t)r);
        memcpy(p + n, buf, (size_t)r);
        n += (size_t)r;
    }
    close(fd);
    pthread_mutex_lock(&mu);
    recs[idx].p = p;
    recs[idx].n = n;
    recs[idx].done = 1;
    pthread_mutex_unlock(&mu);
    atomic_fetch_sub(&open_readers, 1);
    return NULL;
}

static void *acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        pthread_mutex_lock(&mu);
        int idx = nrec < MAXC ? nrec++ : -1;
        if (idx >= 0)
            recs[idx].done = c;
        pthread_mutex_unlock(&mu);
        if (idx < 0) {
            close(c);
            continue;
        }
        atomic_fetch_add(&open_readers, 1);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 64 * 1024);
        while (pthread_create(&t, &at, reader, (void *)(intptr_t)idx) != 0)
            usleep(1000);
        pthread_attr_destroy(&at);
    }
}

static void server_start(void)
{
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 1024) ||
        getsockname(lfd, (struct sockaddr *)&a, &l)) {
        perror("hammer: listen");
        exit(2);
    }
    port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, acceptor, NULL);
    pthread_detach(t);
}

static int dial(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINTR) {
            perror("hammer: connect");
            exit(2);
        }
        /* EINTR: the connect goes on; wait for it */
        struct pollfd p = { .fd = s, .events = POLLOUT };
        poll(&p, 1, 1000);
        break;
    }
    return s;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s ? *s : 88172645463325252ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Send p[0..n) with one of four calls, completely (EINTR, short counts). */
static int put(int s, const char *p, size_t n, int how)
{
    while (n) {
        ssize_t r;
        if (how == 0)
            r = write(s, p, n);
        else if (how == 1)
            r = send(s, p, n, MSG_NOSIGNAL);
        else {
            size_t h = n / 2;
            struct iovec iov[2] = { { (void *)p, h }, { (void *)(p + h), n - h } };
            if (how == 2)
                r = writev(s, iov, 2);
            else {
                struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
                r = sendmsg(s, &m, MSG_NOSIGNAL);
            }
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (size_t)r > n)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int send_req(uint64_t *seed)
{
    atomic_fetch_add(&progress, 1);
    static const char req[] = HARD_REQ;
    size_t n = sizeof req - 1;
    int s = dial();
    size_t cut1 = (size_t)(rnd(seed) % n), cut2 = cut1 + (size_t)(rnd(seed) % (n - cut1));
    int rc = put(s, req, cut1, (int)(rnd(seed) % 4)) | put(s, req + cut1, cut2 - cut1, (int)(rnd(seed) % 4)) |
             put(s, req + cut2, n - cut2, (int)(rnd(seed) % 4));
    close(s);
    return rc;
}

/* Wait for every connection to be read to its end, then judge them. */
static int exact;

static int judge(const char *mode, int expect_min, int prefix_ok_from)
{
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&mu);
        int n = nrec;
        pthread_mutex_unlock(&mu);
        if (n >= expect_min && atomic_load(&open_readers) == 0)
            break;
        usleep(10000);
    }
    static const char want[] = HARD_WANT;
    int pass = 0, fail = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nrec; i++) {
        int ok = recs[i].done && recs[i].n == sizeof want - 1 && !memcmp(recs[i].p, want, recs[i].n);
        exact += ok;
        if (!ok && recs[i].done && i >= prefix_ok_from && recs[i].n <= sizeof want - 1 &&
            (!recs[i].n || !memcmp(recs[i].p, want, recs[i].n)))
            ok = 1;
        if (!ok && recs[i].done && recs[i].n) {
            size_t k = 0;
            while (k < recs[i].n && recs[i].p[k] == 'x')
                k++;
            ok = k == recs[i].n; /* the signal handler's socket: only its own bytes */
        }
        if (!ok && fail < 5)
            fprintf(stderr, "hammer %s: connection %d got %zu bytes: %.*s\n", mode, i, recs[i].n,
                    (int)(recs[i].n < 300 ? recs[i].n : 300), recs[i].p ? recs[i].p : "");
        ok ? pass++ : fail++;
    }
    int n = nrec;
    pthread_mutex_unlock(&mu);
    if (n < expect_min) {
        fprintf(stderr, "hammer %s: %d connections, expected at least %d\n", mode, n, expect_min);
        fail++;
    }
    printf("hammer %s: %d passed, %d failed\n", mode, pass, fail);
    return fail ? 1 : 0;
}

/* ---- threads ---- */
static int per_thread;
static atomic_int client_errors;

static void *client(void *arg)
{
    uint64_t seed = (uint64_t)(intptr_t)arg * 7919 + 17;
    for (int i = 0; i < per_thread; i++)
        if (send_req(&seed))
            atomic_fetch_add(&client_errors, 1);
    return NULL;
}

static int m_threads(int n, int m)
{
    per_thread = m;
    pthread_t th[512];
    for (long i = 0; i < n && i < 512; i++)
        pthread_create(&th[i], NULL, client, (void *)i);
    for (int i = 0; i < n && i < 512; i++)
        pthread_join(th[i], NULL);
    if (atomic_load(&client_errors))
        fprintf(stderr, "hammer threads: %d client errors\n", atomic_load(&client_errors));
    return judge("threads", n * m, MAXC) | (atomic_load(&client_errors) != 0);
}

/* ---- forkwrite / sigfork ---- */
static atomic_int stop;
static int sigsock = -1, sigpipe_w = -1, handler_tracked;

static void *slow_writer(void *arg)
{
    (void)arg;
    static const char req[] = HARD_REQ;
    size_t n = sizeof req - 1;
    uint64_t seed = 99;
    while (!atomic_load(&stop)) {
        int s = dial();
        size_t cut = 1 + (size_t)(rnd(&seed) % (n - 1));
        if (put(s, req, cut, (int)(rnd(&seed) % 4)) == 0) {
            usleep(200);
            if (put(s, req + cut, n - cut, (int)(rnd(&seed) % 4)) != 0)
                atomic_fetch_add(&client_errors, 1);
        } else {
            atomic_fetch_add(&client_errors, 1);
        }
        close(s);
    }
    return NULL;
}

static void on_alarm(int sig)
{
    (void)sig;
    int e = errno;
    ssize_t r = write(sigpipe_w, "x", 1);
    if (handler_tracked && sigsock >= 0)
        r = write(sigsock, "x", 1);
    (void)r;
    errno = e;
}

static int m_forks(const char *mode, int rounds, int with_signals)
{
    pthread_t w;
    if (with_signals) {
        int pp[2];
        if (pipe2(pp, O_CLOEXEC | O_NONBLOCK))
            return 2;
        sigpipe_w = pp[1];
        if (handler_tracked) {
            sigsock = dial();
            fcntl(sigsock, F_SETFL, fcntl(sigsock, F_GETFL) | O_NONBLOCK);
        }
        struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval it = { { 0, 200 }, { 0, 200 } };
        setitimer(ITIMER_REAL, &it, NULL);
    }
    pthread_create(&w, NULL, slow_writer, NULL);
    int children = 0, child_bad = 0;
    for (int i = 0; i < rounds; i++) {
        atomic_fetch_add(&progress, 1);
        pid_t p = fork();
        if (p == 0) {
            struct itimerval off = { { 0, 0 }, { 0, 0 } };
            setitimer(ITIMER_REAL, &off, NULL);
            uint64_t seed = (uint64_t)i + 5;
            _exit(send_req(&seed) ? 1 : 0);
        }
        if (p < 0) {
            child_bad++;
            continue;
        }
        int st;
        while (waitpid(p, &st, 0) < 0 && errno == EINTR)
            ;
        children++;
        child_bad += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    if (with_signals) {
        struct itimerval off = { { 0, 0 }, { 0, 0 } };
        setitimer(ITIMER_REAL, &off, NULL);
        if (sigsock >= 0)
            close(sigsock);
    }
    atomic_store(&stop, 1);
    pthread_join(w, NULL);
    if (child_bad || atomic_load(&client_errors))
        fprintf(stderr, "hammer %s: %d of %d children failed, %d writer errors\n", mode, child_bad,
                children, atomic_load(&client_errors));
    return judge(mode, rounds, MAXC) | (child_bad != 0) | (atomic_load(&client_errors) != 0);
}

/* ---- dup2 onto a tracked fd with half a head pending ---- */
static int m_dup2(int rounds)
{
    static const char req[] = HARD_REQ;
    size_t n = sizeof req - 1;
    for (int i = 0; i < rounds; i++) {
        int a = dial();
        if (put(a, req, 10 + (size_t)i % 60, 0)) /* part of the head: held by the shim */
            return 2;
        int b = dial();
        if (dup2(b, a) != a)
            return 2;
        close(b);
        if (put(a, req, n, i % 4))
            return 2;
        close(a);
    }
    /* A's connections: a prefix or nothing; B's: exact. */
    int r = judge("dup2", 2 * rounds, 0);
    if (exact < rounds) {
        printf("hammer dup2: only %d of %d connections exact\n", exact, rounds);
        r = 1;
    }
    return r;
}

/* ---- exec chains from a threaded process ---- */
/* vfork in a function of its own: nothing of the caller's to clobber. */
__attribute__((noinline)) static int vfork_exec(const char *prog, char **av)
{
    pid_t p = vfork();
    if (p == 0) {
        execve(prog, av, environ);
        _exit(127);
    }
    int st = 0;
    if (p < 0 || waitpid(p, &st, 0) != p)
        return 1;
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int m_spawn(const char *prog)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    per_thread = 20;
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, client, (void *)i);
    int bad = 0, runs = 0;
    for (int i = 0; i < 10; i++) {
        char *av[] = { (char *)prog, ps, "-", (char *)(i & 1 ? "pieces" : "one"), NULL };
        pid_t p;
        int st;
        if (posix_spawn(&p, prog, NULL, NULL, av, environ) == 0) {
            waitpid(p, &st, 0);
            bad += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
            runs++;
        }
        bad += vfork_exec(prog, av);
        runs++;
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "exec env HARD_CHAIN=%d sh -c 'exec \"%s\" %s - bytes'", i, prog, ps);
        char *sv[] = { "/bin/sh", "-c", cmd, NULL };
        if (posix_spawn(&p, "/bin/sh", NULL, NULL, sv, environ) == 0) {
            waitpid(p, &st, 0);
            bad += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
            runs++;
        }
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    if (bad)
        fprintf(stderr, "hammer spawn: %d of %d children failed\n", bad, runs);
    return judge("spawn", runs + 80, MAXC) | (bad != 0);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    server_start();
    const char *m = argv[1];
    cur_mode = m;
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    pthread_detach(wd);
    int a1 = argc > 2 ? atoi(argv[2]) : 0, a2 = argc > 3 ? atoi(argv[3]) : 0;
    if (!strcmp(m, "threads"))
        return m_threads(a1 ? a1 : 16, a2 ? a2 : 50);
    if (!strcmp(m, "forkwrite"))
        return m_forks("forkwrite", a1 ? a1 : 100, 0);
    if (!strcmp(m, "sigfork"))
        return m_forks("sigfork", a1 ? a1 : 100, 1);
    if (!strcmp(m, "sigforktracked")) {
        handler_tracked = 1;
        return m_forks("sigforktracked", a1 ? a1 : 2000, 1);
    }
    if (!strcmp(m, "dup2"))
        return m_dup2(a1 ? a1 : 50);
    if (!strcmp(m, "spawn") && argc > 2)
        return m_spawn(argv[2]);
    return 2;
}
