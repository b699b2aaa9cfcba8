/* kfclient.c - a plain-HTTP client the shim tests run under LD_PRELOAD.
 *
 *   kfclient MODE PORT [ARG]
 *
 * It talks to a test server on 127.0.0.1:PORT (or to a name resolved through
 * the shim's connect-to) and checks its own side: return values in its own
 * bytes, untouched bytes on untracked fds. It never writes to stdout (the
 * tests assert stdout stays empty). Exit 0 = its own checks passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static int port;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kfclient: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (errno %d %s)\n", errno, strerror(errno));
    va_end(ap);
    exit(1);
}

static int dial(int sndbuf)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        die("socket");
    if (sndbuf && setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0)
        die("SO_SNDBUF");
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect");
    return s;
}

/* Blocking write of everything; checks every return is in our bytes. */
static void put(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (size_t)r > n)
            die("write returned %zd for %zu", r, n);
        p += r;
        n -= (size_t)r;
    }
}

static size_t request(char *buf, size_t n, long body, size_t pad, unsigned seed)
{
    size_t h = kf_t_head(buf, n, body, pad, 0);
    if (body > 0) {
        kf_t_body(buf + h, (size_t)body, seed);
        h += (size_t)body;
    }
    return h;
}

/* (1) one write */
static int m_one(void)
{
    char buf[4096];
    int s = dial(0);
    put(s, buf, request(buf, sizeof buf, 5, 0, 1));
    close(s);
    return 0;
}

/* (2) the request split in two writes at every position; alternate write
 * and send for the second half. One connection per split. */
static int m_split(void)
{
    char buf[4096];
    size_t n = request(buf, sizeof buf, 5, 0, 1);
    for (size_t k = 1; k < n; k++) {
        int s = dial(0);
        put(s, buf, k);
        size_t rest = n - k;
        const char *p = buf + k;
        while (rest) {
            ssize_t r = (k & 1) ? send(s, p, rest, MSG_NOSIGNAL) : write(s, p, rest);
            if (r <= 0 || (size_t)r > rest)
                die("split %zu: %zd", k, r);
            p += r;
            rest -= (size_t)r;
        }
        close(s);
    }
    return 0;
}

/* Send an iovec array completely with writev (odd) or sendmsg (even). */
static void putv(int s, struct iovec *iov, int cnt, int use_sendmsg)
{
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    while (total) {
        ssize_t r;
        if (use_sendmsg) {
            struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
            r = sendmsg(s, &m, MSG_NOSIGNAL);
        } else {
            r = writev(s, iov, cnt);
        }
        if (r <= 0 || (size_t)r > total)
            die("writev/sendmsg returned %zd of %zu", r, total);
        total -= (size_t)r;
        while (cnt && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt) {
            iov->iov_base = (char *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
}

/* (3) node's pattern: head in iovecs [260, 6, rest] plus the body. */
static int m_writev(void)
{
    char buf[4096];
    for (int v = 0; v < 2; v++) {
        size_t h = kf_t_head(buf, sizeof buf, 20, 286, 0);
        kf_t_body(buf + h, 20, 3);
        struct iovec iov[4] = {
            { buf, 260 }, { buf + 260, 6 }, { buf + 266, h - 266 }, { buf + h, 20 }
        };
        int s = dial(0);
        putv(s, iov, 4, v);
        close(s);
    }
    return 0;
}

/* (4) non-blocking, tiny SO_SNDBUF, slow reader: 8 keep-alive requests;
 * small heads in tiny pieces, big heads in one write right after a body
 * filled the socket buffer (so the rewritten head cannot all be sent),
 * bodies in mixed sizes; EAGAIN waited out with poll. Every return must be
 * within what was asked, and their sum exact. */
static size_t nb_eagain;

static void nb_put(int s, const char *p, size_t n, const size_t *sizes, size_t nsizes)
{
    size_t off = 0, i = 0;
    while (off < n) {
        size_t want = nsizes ? sizes[i % nsizes] : n - off;
        if (want > n - off)
            want = n - off;
        ssize_t r = (i & 1) ? write(s, p + off, want) : send(s, p + off, want, 0);
        if (r < 0 && errno == EAGAIN) {
            nb_eagain++;
            struct pollfd pf = { s, POLLOUT, 0 };
            poll(&pf, 1, 1000);
            continue; /* same size again */
        }
        if (r <= 0 || (size_t)r > want)
            die("nonblock write returned %zd of %zu at %zu", r, want, off);
        off += (size_t)r;
        i++;
    }
}

static int m_nonblock(void)
{
    size_t n = kf_t_nb_stream(NULL, 0);
    char *buf = malloc(n);
    kf_t_nb_stream(buf, 0);
    int s = dial(2048);
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    static const size_t tiny[] = { 1, 3, 1, 17, 2, 100 };
    static const size_t mixed[] = { 4096, 1, 65536, 333, 7 };
    size_t off = 0;
    for (int i = 0; i < KF_T_NB_REQS; i++) {
        long body = (i & 1) ? 5 : 65536;
        char h[8192];
        size_t hl = kf_t_head(h, sizeof h, body, (i & 1) ? 3000 : 0, 0);
        if (i & 1)
            nb_put(s, buf + off, hl, NULL, 0);
        else
            nb_put(s, buf + off, hl, tiny, sizeof tiny / sizeof tiny[0]);
        nb_put(s, buf + off + hl, (size_t)body, mixed, sizeof mixed / sizeof mixed[0]);
        off += hl + (size_t)body;
    }
    if (off != n || !nb_eagain)
        die("nonblock: %zu of %zu bytes, %zu EAGAIN: the test did not test anything", off, n,
            nb_eagain);
    close(s);
    free(buf);
    return 0;
}

/* (5) sendfile body after a rewritten head, then a second request on the
 * same connection (its head must be found: the framing held). */
static int m_sendfile(const char *path)
{
    struct stat st;
    int f = open(path, O_RDONLY);
    if (f < 0 || fstat(f, &st) != 0)
        die("open %s", path);
    char buf[4096];
    int s = dial(0);
    put(s, buf, kf_t_head(buf, sizeof buf, (long)st.st_size, 0, 0));
    off_t o = 0;
    while (o < st.st_size) {
        ssize_t r = sendfile(s, f, &o, (size_t)(st.st_size - o));
        if (r <= 0)
            die("sendfile");
    }
    put(s, buf, request(buf, sizeof buf, 5, 0, 1));
    close(s);
    close(f);
    return 0;
}

/* (6) keep-alive: sized body, chunked body, then a head in three writes. */
static int m_keepalive(void)
{
    char buf[4096];
    int s = dial(0);
    put(s, buf, request(buf, sizeof buf, 5, 0, 1));
    size_t h = kf_t_head(buf, sizeof buf, -1, 0, 0);
    put(s, buf, h);
    put(s, "5\r\nhello\r\n", 10);
    put(s, "0\r\n\r\n", 5);
    size_t n = request(buf, sizeof buf, 5, 0, 2);
    put(s, buf, 10);
    put(s, buf + 10, 30);
    put(s, buf + 40, n - 40);
    close(s);
    return 0;
}

/* (7) untracked fds: pipe, file, AF_UNIX socketpair; byte-exact. */
static int m_untracked(void)
{
    char buf[4096], back[4096];
    size_t n = request(buf, sizeof buf, 5, 0, 1);
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    put(p[1], buf, n);
    if (read(p[0], back, sizeof back) != (ssize_t)n || memcmp(buf, back, n))
        die("pipe bytes changed");
    char tmpl[] = "/tmp/kfclient.XXXXXX";
    int f = mkstemp(tmpl);
    struct iovec iov[2] = { { buf, 7 }, { buf + 7, n - 7 } };
    if (f < 0 || writev(f, iov, 2) != (ssize_t)n)
        die("file writev");
    if (pread(f, back, sizeof back, 0) != (ssize_t)n || memcmp(buf, back, n))
        die("file bytes changed");
    unlink(tmpl);
    close(f);
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0)
        die("socketpair");
    if (send(sp[0], buf, n, 0) != (ssize_t)n || recv(sp[1], back, sizeof back, 0) != (ssize_t)n ||
        memcmp(buf, back, n))
        die("socketpair bytes changed");
    return 0;
}

/* (8) connect to a name: getaddrinfo / gethostbyname, then one request. */
static int m_connect_to(const char *name, int ghbn)
{
    int s = -1;
    if (ghbn) {
        struct hostent *h = gethostbyname(name);
        if (!h)
            die("gethostbyname %s", name);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(80) };
        memcpy(&a.sin_addr, h->h_addr_list[0], 4);
        s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof a) != 0)
            die("connect (gethostbyname)");
    } else {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
        int rc = getaddrinfo(name, "80", &hints, &res);
        if (rc)
            die("getaddrinfo %s: %s", name, gai_strerror(rc));
        s = socket(res->ai_family, SOCK_STREAM, 0);
        if (connect(s, res->ai_addr, res->ai_addrlen) != 0)
            die("connect (getaddrinfo)");
        freeaddrinfo(res);
    }
    char buf[4096];
    put(s, buf, request(buf, sizeof buf, 5, 0, 1));
    close(s);
    return 0;
}

/* (9) fork from a multi-threaded process while another thread writes, with
 * a signal handler that calls write() (cwrap's fork regression). */
static int sig_pipe[2];
static void on_alarm(int sig)
{
    (void)sig;
    int e = errno;
    char c = 'x';
    (void)!write(sig_pipe[1], &c, 1);
    errno = e;
}

static void *writer(void *arg)
{
    (void)arg;
    char buf[4096];
    int s = dial(0);
    for (int i = 0; i < 200; i++) {
        size_t n = request(buf, sizeof buf, 5, 0, 1);
        put(s, buf, 17);
        put(s, buf + 17, n - 17);
    }
    close(s);
    return NULL;
}

static void *drain(void *arg)
{
    (void)arg;
    char b[4096];
    while (read(sig_pipe[0], b, sizeof b) > 0)
        ;
    return NULL;
}

static int m_fork(int nchildren)
{
    if (pipe(sig_pipe) != 0)
        die("pipe");
    fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
    pthread_t w, d;
    pthread_create(&d, NULL, drain, NULL);
    struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 200 }, { 0, 200 } };
    setitimer(ITIMER_REAL, &it, NULL);
    pthread_create(&w, NULL, writer, NULL);
    for (int i = 0; i < nchildren; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            char buf[4096];
            int s = dial(0);
            put(s, buf, request(buf, sizeof buf, 5, 0, 1));
            close(s);
            _exit(0);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st))
            die("child %d failed", i);
    }
    pthread_join(w, NULL);
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    return 0;
}

/* (10) dup2 onto a tracked fd, closes, fd reuse, and a close we cannot
 * see (fclose of an fdopen'd socket) followed by a file on the same fd. */
static int m_dup(void)
{
    char buf[4096], back[4096];
    size_t n = request(buf, sizeof buf, 5, 0, 1);
    int s = dial(0);
    int d = dup2(s, 100);
    if (d != 100)
        die("dup2");
    put(s, buf, 20);
    close(s);            /* 100 still holds the connection and its stream */
    put(d, buf + 20, n - 20);
    int e = fcntl(d, F_DUPFD_CLOEXEC, 200);
    put(e, buf, n);      /* second request through the F_DUPFD copy */
    close(d);
    close(e);

    /* s's number is free again: a file there is untouched. */
    char tmpl[] = "/tmp/kfclient.XXXXXX";
    int f = mkstemp(tmpl);
    put(f, buf, n);
    if (pread(f, back, sizeof back, 0) != (ssize_t)n || memcmp(buf, back, n))
        die("file on a reused fd changed");
    close(f);

    /* dup2 of a plain file onto a tracked fd: the fd becomes untracked. */
    int t = dial(0);
    int f2 = open(tmpl, O_RDWR | O_TRUNC);
    if (dup2(f2, t) != t)
        die("dup2 file");
    put(t, buf, n);
    if (pread(f2, back, sizeof back, 0) != (ssize_t)n || memcmp(buf, back, n))
        die("file dup2'd over a socket changed");
    close(t);
    close(f2);

    /* fclose() closes inside libc, where no hook sees it. */
    int u = dial(0);
    FILE *fp = fdopen(u, "w");
    fclose(fp);
    int f3 = open(tmpl, O_RDWR | O_TRUNC);
    if (f3 != u)
        die("expected fd reuse (%d != %d)", f3, u);
    put(f3, buf, n);
    if (pread(f3, back, sizeof back, 0) != (ssize_t)n || memcmp(buf, back, n))
        die("file on an fd closed by fclose changed");
    close(f3);
    unlink(tmpl);
    return 0;
}

/* (10b) a vfork() child closing fds before exec (CPython's subprocess with
 * close_fds=True does this) runs in our memory: the parent's connection
 * must stay tracked and be rewritten afterwards. */
static int m_vfork(void)
{
    char buf[4096];
    size_t n = request(buf, sizeof buf, 5, 0, 1);
    int s = dial(0);
    put(s, buf, 9); /* a head in flight */
    pid_t pid = vfork();
    if (pid == 0) {
        close(s);
        close_range(3, ~0u, 0);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    put(s, buf + 9, n - 9);
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: kfclient MODE PORT [ARG]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    const char *m = argv[1];
    port = atoi(argv[2]);
    if (!strcmp(m, "one"))
        return m_one();
    if (!strcmp(m, "split"))
        return m_split();
    if (!strcmp(m, "writev"))
        return m_writev();
    if (!strcmp(m, "nonblock"))
        return m_nonblock();
    if (!strcmp(m, "sendfile") && argc > 3)
        return m_sendfile(argv[3]);
    if (!strcmp(m, "keepalive"))
        return m_keepalive();
    if (!strcmp(m, "untracked"))
        return m_untracked();
    if (!strcmp(m, "connect-to") && argc > 3)
        return m_connect_to(argv[3], 0);
    if (!strcmp(m, "connect-to-ghbn") && argc > 3)
        return m_connect_to(argv[3], 1);
    if (!strcmp(m, "fork"))
        return m_fork(argc > 3 ? atoi(argv[3]) : 50);
    if (!strcmp(m, "dup"))
        return m_dup();
    if (!strcmp(m, "vfork"))
        return m_vfork();
    fprintf(stderr, "kfclient: unknown mode %s\n", m);
    return 2;
}
