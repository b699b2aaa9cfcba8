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
 *                 socket (RELIABILITY.md finding 1: the shim's kf_tab_lock
 *                 was taken again by the handler while the atfork prepare
 *                 handler of the same thread held it)
 * Connections are bounded by construction, never by the speed of the
 * machine: the fork modes' writer thread makes one connection per fork
 * round (a credit the main thread posts), every client counts its
 * connections in shared memory (children too), and the judge waits for
 * exactly that many. A watchdog ends the process after WATCHDOG_S seconds
 * without progress ("DEADLOCK"): a hang guard only.
 *   dup2 R        half a head on tracked fd A, dup2(B, A) with B another
 *                 tracked connection, the full request on A: B's
 *                 connection gets exactly HARD_WANT; A's a prefix or nothing
 *   spawn PROG    posix_spawn, vfork+execve and `sh -c "exec env ... PROG"`
 *                 of PROG (rawsend) from a process with running threads
 *   sighooks R    RELIABILITY.md finding 2: R rounds of every hooked call
 *                 on tracked sockets (gethostbyname2_r, connect, write, send,
 *                 sendto, writev, sendmsg, sendmmsg, sendfile, dup, dup2,
 *                 dup3, fcntl F_DUPFD, getpeername, close, close_range, a
 *                 non-HTTP stream) while SIGALRM fires every 100 us and its
 *                 handler connects, writes (half a request, the rest in the
 *                 next call) and closes tracked sockets of its own. Needs
 *                 rules `connect-to api.kimi.com 127.0.0.1` and
 *                 KIMIFIX_MODE=inprocess. Main connections must arrive
 *                 fixed; the handler's fixed or unchanged, never reordered.
 * Prints "hammer MODE: N passed, N failed". Exit 0 when all passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hardening/req.h"

extern char **environ;

#define WATCHDOG_S 30

static int lfd, port;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct rec {
    char *p;
    size_t n;
    int done;
    unsigned short peer; /* the client's port: port_tag[] says who made it */
} *recs;
/* Who made the connection from each local port (a letter), for the
 * watchdog's report of connections left open. */
static volatile char port_tag[65536];

static void tag_socket(int s, char tag)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    if (getsockname(s, (struct sockaddr *)&a, &l) == 0 && a.sin_family == AF_INET)
        port_tag[ntohs(a.sin_port)] = tag;
}
static int nrec, maxc, overflow;
static atomic_int open_readers;
/* Connections our clients made (this process and its forked children):
 * shared memory, so the judge knows exactly how many to wait for. */
static atomic_long *dials;

static atomic_long progress;
static const char *cur_mode = "?";

/* A deadlock must fail fast and say so, not wait for an outer timeout. */
static void *watchdog(void *arg)
{
    (void)arg; /* born with signals blocked: the storms are not ours */
    long last = -1;
    time_t since = time(NULL);
    for (;;) {
        struct timespec ts = { 0, 200 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        long p = atomic_load(&progress);
        if (p != last) {
            last = p;
            since = time(NULL);
        } else if (time(NULL) - since >= WATCHDOG_S) {
            /* straight to the kernel: the process may hold stdio or shim locks */
            char msg[512];
            if (pthread_mutex_trylock(&mu) == 0) { /* connections still open */
                for (int i = 0, k = 0; i < nrec && k < 5; i++) {
                    if (recs[i].done == 1)
                        continue;
                    char tag = port_tag[recs[i].peer];
                    int m = snprintf(msg, sizeof msg, "hammer %s: connection %d (made by %c) open, "
                                     "%zu bytes: %.*s\n", cur_mode, i, tag ? tag : '?', recs[i].n,
                                     (int)(recs[i].n < 200 ? recs[i].n : 200), recs[i].p ? recs[i].p : "");
                    if (syscall(SYS_write, 1, msg, (size_t)m) < 0)
                        _exit(4);
                    k++;
                }
                pthread_mutex_unlock(&mu);
            }
            int n = snprintf(msg, sizeof msg, "hammer %s: DEADLOCK: no progress for %d s\n"
                             "hammer %s: 0 passed, 1 failed\n", cur_mode, WATCHDOG_S, cur_mode);
            if (syscall(SYS_write, 1, msg, (size_t)n) < 0)
                _exit(4);
            _exit(3);
        }
    }
    return NULL;
}

/* A helper thread (acceptor, readers, watchdog) is born with every signal
 * blocked -- blocking them in the thread itself leaves a window in which a
 * signal storm's handler could run there, next to the client's. */
static void quiet_thread(void *(*fn)(void *), void *arg, size_t stack)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (stack)
        pthread_attr_setstacksize(&at, stack);
    while (pthread_create(&t, &at, fn, arg) != 0)
        usleep(1000);
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
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
        pthread_mutex_lock(&mu); /* published as it comes: the watchdog shows it */
        p = realloc(p, n + (size_t)r);
        memcpy(p + n, buf, (size_t)r);
        n += (size_t)r;
        recs[idx].p = p;
        recs[idx].n = n;
        pthread_mutex_unlock(&mu);
    }
    close(fd);
    pthread_mutex_lock(&mu);
    recs[idx].p = p;
    recs[idx].n = n;
    recs[idx].done = 1;
    pthread_mutex_unlock(&mu);
    atomic_fetch_sub(&open_readers, 1);
    atomic_fetch_add(&progress, 1);
    return NULL;
}

static void *acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        struct sockaddr_in pa;
        socklen_t pl = sizeof pa;
        int c = accept(lfd, (struct sockaddr *)&pa, &pl);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        pthread_mutex_lock(&mu);
        int idx = nrec < maxc ? nrec++ : -1;
        if (idx >= 0) {
            recs[idx].done = c;
            recs[idx].peer = ntohs(pa.sin_port);
            /* Counted with the record, under the same lock: judge() takes
             * "every record counted, no reader open" as the end, and a
             * reader counted only after the unlock let it judge the last
             * connection, still unread, as empty (seen once on a busy
             * machine: "connection 799 got 0 bytes"). */
            atomic_fetch_add(&open_readers, 1);
        }
        else
            overflow++; /* more than the mode can make: a bug of this test */
        pthread_mutex_unlock(&mu);
        if (idx < 0) {
            close(c);
            continue;
        }
        quiet_thread(reader, (void *)(intptr_t)idx, 64 * 1024);
    }
}

/* cap: the most connections the mode makes, by construction. */
static void server_start(int cap)
{
    maxc = cap + 16;
    recs = calloc((size_t)maxc, sizeof *recs);
    dials = mmap(NULL, sizeof *dials, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!recs || dials == MAP_FAILED) {
        perror("hammer: memory");
        exit(2);
    }
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    const char *inherited = getenv("HAMMER_LFD"); /* sighooks' re-exec */
    if (inherited) {
        lfd = atoi(inherited);
        fcntl(lfd, F_SETFD, FD_CLOEXEC);
    } else {
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    }
    if ((!inherited && (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 1024))) ||
        getsockname(lfd, (struct sockaddr *)&a, &l)) {
        perror("hammer: listen");
        exit(2);
    }
    port = ntohs(a.sin_port);
    quiet_thread(acceptor, NULL, 0);
}

/* A connected TCP socket to a (counted in dials); exits on failure. */
static int dial_to(const struct sockaddr_in *a)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    while (connect(s, (const struct sockaddr *)a, sizeof *a) != 0) {
        if (errno != EINTR) {
            perror("hammer: connect");
            exit(2);
        }
        /* EINTR: the connect goes on; wait for it */
        struct pollfd p = { .fd = s, .events = POLLOUT };
        poll(&p, 1, -1);
        break;
    }
    atomic_fetch_add(dials, 1);
    return s;
}

static int dial(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return dial_to(&a);
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

/* Wait for every connection to be read to its end, then judge them. No
 * deadline here: readers finishing count as progress for the watchdog. */
static int exact;

static int judge(const char *mode, int expect_min, int prefix_ok_from)
{
    long total = atomic_load(dials);
    if (total < expect_min)
        total = expect_min;
    for (;;) {
        pthread_mutex_lock(&mu);
        int n = nrec + overflow;
        pthread_mutex_unlock(&mu);
        if (n >= total && atomic_load(&open_readers) == 0)
            break;
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
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
    if (overflow) {
        fprintf(stderr, "hammer %s: %d connections beyond the %d this mode can make\n", mode,
                overflow, maxc);
        fail++;
    }
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
    return judge("threads", n * m, maxc) | (atomic_load(&client_errors) != 0);
}

/* ---- forkwrite / sigfork ---- */
static atomic_int stop;
static int sigsock = -1, sigpipe_w = -1, handler_tracked;

/* The writer makes one connection per credit; the main thread posts one
 * per fork round, so the writer's count is bounded by the rounds however
 * fast or slow either thread runs. */
static pthread_mutex_t credit_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t credit_cv = PTHREAD_COND_INITIALIZER;
static int credits;

static void credit_post(void)
{
    pthread_mutex_lock(&credit_mu);
    credits++;
    pthread_cond_signal(&credit_cv);
    pthread_mutex_unlock(&credit_mu);
}

/* 1 with a credit taken, 0 when stopped. */
static int credit_take(void)
{
    pthread_mutex_lock(&credit_mu);
    while (!credits && !atomic_load(&stop))
        pthread_cond_wait(&credit_cv, &credit_mu);
    int got = credits > 0 && !atomic_load(&stop);
    if (got)
        credits--;
    pthread_mutex_unlock(&credit_mu);
    return got;
}

static void credit_stop(void)
{
    pthread_mutex_lock(&credit_mu);
    atomic_store(&stop, 1);
    pthread_cond_broadcast(&credit_cv);
    pthread_mutex_unlock(&credit_mu);
}

static void *slow_writer(void *arg)
{
    (void)arg;
    static const char req[] = HARD_REQ;
    size_t n = sizeof req - 1;
    uint64_t seed = 99;
    while (credit_take()) {
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
        credit_post();
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
    credit_stop();
    pthread_join(w, NULL);
    if (child_bad || atomic_load(&client_errors))
        fprintf(stderr, "hammer %s: %d of %d children failed, %d writer errors\n", mode, child_bad,
                children, atomic_load(&client_errors));
    return judge(mode, rounds, maxc) | (child_bad != 0) | (atomic_load(&client_errors) != 0);
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
    return judge("spawn", runs + 80, maxc) | (bad != 0);
}

/* ---- sighooks: handlers that connect, write and close tracked sockets
 * while the thread is inside any hook (RELIABILITY.md finding 2) ---- */
#define H_REQ "POST /coding/v1/v1/messages HTTP/1.1\r\nX-Hammer: handler\r\n" HARD_HEAD_REST
#define H_WANT "POST /coding/v1/messages HTTP/1.1\r\nX-Hammer: handler\r\n" HARD_HEAD_REST
#define TLS_BYTES "\x16\x03\x01\x00\x05hello"
#define FILE_BYTES "KIMIFIX-HAMMER-SENDFILE\n"
#define SIGHOOKS_MAIN 5 /* connections per round */

static struct sockaddr_in srv_addr;
static int spare_fd = -1, null_fd = -1; /* a number of our own for dup3 to land on */
static volatile sig_atomic_t h_budget, h_fd = -1, h_cut, h_calls;

/* Async-signal-safe only: socket, connect, write/send/writev/sendmsg,
 * getpeername, dup, close. */
static void on_storm(int sig)
{
    (void)sig;
    int e = errno;
    static const char hreq[] = H_REQ;
    size_t n = sizeof hreq - 1;
    int k = h_calls++;
    if (h_fd >= 0) {
        int s = h_fd;
        h_fd = -1;
        put(s, hreq + h_cut, n - (size_t)h_cut, k % 4);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getpeername(s, (struct sockaddr *)&ss, &sl);
        int d = dup(s);
        if (d >= 0)
            close(d);
        close(s);
    } else if (h_budget > 0) {
        h_budget--;
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s >= 0 && connect(s, (struct sockaddr *)&srv_addr, sizeof srv_addr) == 0) {
            atomic_fetch_add(dials, 1);
            tag_socket(s, 'H');
            h_cut = 1 + k % (int)(n - 1);
            put(s, hreq, (size_t)h_cut, (k / 4) % 4);
            h_fd = s;
        } else if (s >= 0) {
            close(s);
        }
    }
    ssize_t r = write(sigsock, "x", 1); /* a long-lived tracked socket too */
    (void)r;
    errno = e;
}

/* The DNS memory's lock, without malloc: with a connect-to rule the hook
 * answers gethostbyname2_r itself, into our buffer (a handler interrupting
 * the program's own malloc is the known limit, RELIABILITY.md finding 2). */
static int dial_named(void)
{
    struct hostent he, *res = NULL;
    char buf[512];
    int herr = 0;
    if (gethostbyname2_r("api.kimi.com", AF_INET, &he, buf, sizeof buf, &res, &herr) != 0 || !res) {
        fprintf(stderr, "hammer sighooks: gethostbyname2_r: no connect-to answer (%d)\n", herr);
        exit(2);
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(443) };
    memcpy(&a.sin_addr, res->h_addr_list[0], 4);
    return dial_to(&a);
}

static int put_mmsg(int s, const char *p, size_t n)
{
    while (n) {
        struct iovec v = { (void *)p, n };
        struct mmsghdr mm = { .msg_hdr = { .msg_iov = &v, .msg_iovlen = 1 } };
        int r = sendmmsg(s, &mm, 1, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 1 || mm.msg_len == 0 || mm.msg_len > n)
            return -1;
        p += mm.msg_len;
        n -= mm.msg_len;
    }
    return 0;
}

static int put_file(int s, int file, size_t n)
{
    off_t off = 0;
    while ((size_t)off < n) {
        ssize_t r = sendfile(s, file, &off, n - (size_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
    }
    return 0;
}

/* One round: every hooked call at least once on tracked sockets. */
static int sighooks_round(int i, int file)
{
    static const char req[] = HARD_REQ, tls[] = TLS_BYTES;
    size_t n = sizeof req - 1, cut = 1 + (size_t)i % (n - 1);
    int bad = 0;
    atomic_fetch_add(&progress, 1);
    /* A: named (gethostbyname2_r + connect-to), head split over write and sendto */
    int a = dial_named();
    tag_socket(a, 'A');
    bad |= put(a, req, cut, 0);
    ssize_t r;
    size_t off = cut;
    while (off < n && ((r = sendto(a, req + off, n - off, MSG_NOSIGNAL, NULL, 0)) > 0 ||
                       (r < 0 && errno == EINTR)))
        off += r > 0 ? (size_t)r : 0;
    bad |= off != n;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    bad |= getpeername(a, (struct sockaddr *)&ss, &sl) != 0;
    int d = dup(a);
    close(d);
    /* B: by address, writev; then dup2 C over it and send C's request on
     * B's number with sendmsg, through an fcntl and a dup3 copy */
    int b = dial();
    tag_socket(b, 'B');
    bad |= put(b, req, n, 2);
    int c = dial();
    tag_socket(c, 'C');
    bad |= dup2(c, b) != b;
    close(c);
    int f = fcntl(b, F_DUPFD_CLOEXEC, 0);
    int g = f >= 0 ? dup3(f, spare_fd, O_CLOEXEC) : -1;
    bad |= f < 0 || g != spare_fd;
    bad |= put(g, req, n, 3);
    bad |= dup2(null_fd, spare_fd) != spare_fd; /* keep the number ours */
    close(f);
    close(b);
    close(a);
    /* E: not HTTP (a notice, then passthrough), sent with sendmmsg;
     * closed with close_range */
    int e = dial();
    tag_socket(e, 'E');
    bad |= put_mmsg(e, tls, sizeof tls - 1);
    bad |= close_range((unsigned)e, (unsigned)e, 0) != 0;
    /* F: sendfile */
    int s = dial();
    tag_socket(s, 'F');
    bad |= put_file(s, file, sizeof FILE_BYTES - 1);
    close(s);
    return bad;
}

static int judge_sighooks(int rounds)
{
    static const char want[] = HARD_WANT, hwant[] = H_WANT, hreq[] = H_REQ, tls[] = TLS_BYTES,
                      fb[] = FILE_BYTES;
    long total = atomic_load(dials);
    for (;;) {
        pthread_mutex_lock(&mu);
        int n = nrec + overflow;
        pthread_mutex_unlock(&mu);
        if (n >= total && atomic_load(&open_readers) == 0)
            break;
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    int fixed = 0, hfixed = 0, hplain = 0, other = 0, bad = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nrec; i++) {
        const struct rec *r = &recs[i];
#define IS(x) (r->n == sizeof(x) - 1 && !memcmp(r->p, x, r->n))
        if (IS(want))
            fixed++;
        else if (IS(hwant))
            hfixed++;
        else if (IS(hreq))
            hplain++;
        else if (IS(tls) || IS(fb))
            other++;
        else {
            size_t k = 0;
            while (k < r->n && r->p[k] == 'x')
                k++;
            if (r->n && k == r->n) {
                other++;
                continue;
            }
            if (bad++ < 5)
                fprintf(stderr, "hammer sighooks: connection %d got %zu bytes: %.*s\n", i, r->n,
                        (int)(r->n < 300 ? r->n : 300), r->p ? r->p : "");
        }
#undef IS
    }
    int n = nrec;
    pthread_mutex_unlock(&mu);
    printf("hammer sighooks: %d rounds, %d connections: %d fixed (main), handler %d fixed + %d "
           "passed through, %d other, %d bad; %d signals\n", rounds, n, fixed, hfixed, hplain,
           other, bad, (int)h_calls);
    int pass = fixed + hfixed + hplain + other, fail = bad + (overflow != 0) +
               (fixed != 3 * rounds) + (n != total);
    if (fixed != 3 * rounds)
        fprintf(stderr, "hammer sighooks: %d main requests fixed, want %d\n", fixed, 3 * rounds);
    printf("hammer sighooks: %d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}

/* The rules need the server's port (connect-to api.kimi.com:443 ->
 * 127.0.0.1:PORT) before the shim's constructor reads them: listen, write
 * the rules, and run this program again on the same listener. */
static void sighooks_reexec(char **argv)
{
    if (getenv("HAMMER_LFD"))
        return;
    char tmpl[] = "/tmp/hammer-rules.XXXXXX", env[32];
    int f = mkstemp(tmpl);
    if (f < 0)
        exit(2);
    dprintf(f, "connect-to api.kimi.com:443 127.0.0.1:%d\n", port);
    close(f);
    setenv("KIMIFIX_RULES", tmpl, 1);
    setenv("HAMMER_RULES_FILE", tmpl, 1);
    snprintf(env, sizeof env, "%d", lfd);
    setenv("HAMMER_LFD", env, 1);
    fcntl(lfd, F_SETFD, 0);
    execv("/proc/self/exe", argv);
    perror("hammer: re-exec");
    exit(2);
}

static void unlink_rules(void)
{
    const char *rf = getenv("HAMMER_RULES_FILE");
    if (rf)
        unlink(rf);
}

static int m_sighooks(int rounds)
{
    /* The shim reads its rules on first use (lazily), not in its
     * constructor: the file must outlive this run, removed at exit. */
    atexit(unlink_rules);
    srv_addr.sin_family = AF_INET;
    srv_addr.sin_port = htons((unsigned short)port);
    srv_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char tmpl[] = "/tmp/hammer-sendfile.XXXXXX";
    int file = mkstemp(tmpl);
    if (file < 0 || write(file, FILE_BYTES, sizeof FILE_BYTES - 1) != sizeof FILE_BYTES - 1) {
        perror("hammer sighooks: sendfile source");
        return 2;
    }
    unlink(tmpl);
    null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    spare_fd = dup(null_fd);
    if (null_fd < 0 || spare_fd < 0) {
        perror("hammer sighooks: /dev/null");
        return 2;
    }
    sigsock = dial();
    tag_socket(sigsock, 'S');
    fcntl(sigsock, F_SETFL, fcntl(sigsock, F_GETFL) | O_NONBLOCK);
    h_budget = 4 * rounds;
    struct sigaction sa = { .sa_handler = on_storm, .sa_flags = SA_RESTART };
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 100 }, { 0, 100 } };
    setitimer(ITIMER_REAL, &it, NULL);
    int bad = 0;
    for (int i = 0; i < rounds; i++)
        bad += sighooks_round(i, file) != 0;
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    if (h_fd >= 0) { /* the storm stopped between the halves: finish it */
        h_budget = 0;
        raise(SIGALRM);
    }
    close(sigsock);
    close(file);
    if (bad)
        fprintf(stderr, "hammer sighooks: %d rounds saw a failing call\n", bad);
    return judge_sighooks(rounds) | (bad != 0);
}

/* The most connections MODE can make with these arguments. */
static int mode_cap(const char *m, int a1, int a2)
{
    if (!strcmp(m, "threads"))
        return (a1 ? (a1 < 512 ? a1 : 512) : 16) * (a2 ? a2 : 50);
    if (!strcmp(m, "forkwrite") || !strcmp(m, "sigfork"))
        return 2 * (a1 ? a1 : 100) + 1; /* children + writer credits (+ sigsock) */
    if (!strcmp(m, "sigforktracked"))
        return 2 * (a1 ? a1 : 2000) + 1;
    if (!strcmp(m, "dup2"))
        return 2 * (a1 ? a1 : 50);
    if (!strcmp(m, "spawn"))
        return 4 * 20 + 3 * 10; /* client threads + three runs per round */
    if (!strcmp(m, "sighooks")) /* main's, the handler's budget, sigsock */
        return (SIGHOOKS_MAIN + 4) * (a1 ? a1 : 2000) + 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    const char *m = argv[1];
    int a1 = argc > 2 ? atoi(argv[2]) : 0, a2 = argc > 3 ? atoi(argv[3]) : 0;
    if (!strcmp(m, "spawn"))
        a1 = a2 = 0;
    int cap = mode_cap(m, a1, a2);
    if (!cap)
        return 2;
    server_start(cap);
    if (!strcmp(m, "sighooks"))
        sighooks_reexec(argv); /* before any thread but the acceptor does work */
    cur_mode = m;
    quiet_thread(watchdog, NULL, 0);
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
    if (!strcmp(m, "sighooks"))
        return m_sighooks(a1 ? a1 : 2000);
    return 2;
}
