/* ctxsrv.c - the thread that serves RUNDIR/relay.sock (ctxtab.h).
 *
 * Its own small poll loop, so registrations never wait for (or slow) the
 * connection event loop. Up to CTX_PENDING_MAX requests are read at the
 * same time, each with its own deadline (CTX_REQ_MS from accept): a client
 * that stops mid-request (^Z) delays nobody else. Only our own uid may
 * talk to it (SO_PEERCRED; the 0700 runtime dir already keeps others out).
 * A request is at most KF_CTXMSG_MAX bytes; at most one fd (SCM_RIGHTS) is
 * kept per request, extra ones are closed.
 */
#include "kf_clock.h"
#include "ctxtab.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kf_log.h"
#include "kf_paths.h"

typedef struct pending {
    int fd, passed;
    pid_t pid;                 /* the sender (SO_PEERCRED), for a log fd */
    long deadline;
    size_t len;
    char buf[KF_CTXMSG_MAX];
} pending;

static struct {
    int lfd;
    atomic_int stop;
    pthread_t thread;
    int running;
    char path[4200], datadir[4096];
    ino_t ino;
    pending slot[CTX_PENDING_MAX];
} S = {.lfd = -1};

const char *ctxsrv_datadir(void)
{
    return S.datadir;
}

static void drop(pending *p)
{
    if (p->passed >= 0)
        close(p->passed);
    close(p->fd);
    p->fd = -1;
    p->passed = -1;
}

static void reply_and_drop(pending *p, const char *reply, size_t n)
{
    send(p->fd, reply, n, MSG_NOSIGNAL | MSG_DONTWAIT); /* small, into an empty buffer */
    drop(p);
}

/* Keep the first fd of a message, close any other. */
static void take_fds(pending *p, struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (p->passed < 0)
                p->passed = fd;
            else
                close(fd);
        }
    }
}

static void on_readable(pending *p)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(4 * sizeof(int))];
    } cm;
    struct iovec iov = {p->buf + p->len, sizeof p->buf - p->len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                        .msg_controllen = sizeof cm.b};
    ssize_t r = recvmsg(p->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r > 0)
        take_fds(p, &mh);
    if (r <= 0 || (mh.msg_flags & MSG_CTRUNC)) {
        drop(p); /* gone before the end of its request, or sent a pile of fds */
        return;
    }
    p->len += (size_t)r;
    kf_ctxmsg m;
    const char *why;
    ssize_t n = kf_ctxmsg_parse(p->buf, p->len, &m, &why);
    if (n == 0)
        return; /* more to come (KF_CTXMSG_MAX bounds it: parse says -1 there) */
    char reply[KF_CTXMSG_REPLY_MAX];
    int fd = p->passed;
    p->passed = -1; /* ctxtab_answer owns it now */
    reply_and_drop(p, reply, ctxtab_answer_pid(p->buf, p->len, fd, p->pid, reply, sizeof reply));
}

static int peer_is_us(int fd, pid_t *pid)
{
    struct ucred cr;
    socklen_t l = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) != 0 || cr.uid != geteuid())
        return 0;
    *pid = cr.pid;
    return 1;
}

static void on_accept(void)
{
    int fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    pid_t pid = 0;
    if (!peer_is_us(fd, &pid)) {
        kf_log(KF_LOG_WARN, "relay: %s: a process of another user connected: closed", S.path);
        close(fd);
        return;
    }
    for (unsigned i = 0; i < CTX_PENDING_MAX; i++)
        if (S.slot[i].fd < 0) {
            S.slot[i] = (pending){.fd = fd, .passed = -1, .pid = pid,
                                  .deadline = kf_mono_ms() + CTX_REQ_MS};
            return;
        }
    char reply[64];
    size_t n = kf_ctxmsg_reply(reply, sizeof reply, 0, "busy");
    send(fd, reply, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void *serve(void *arg)
{
    (void)arg;
    long next_sweep = 0;
    /* Static: the pidfds of clients whose log fd we hold (ctxlog.c). */
    static struct pollfd pf[1 + CTX_PENDING_MAX + CTX_MAX];
    while (!atomic_load(&S.stop)) {
        pending *who[1 + CTX_PENDING_MAX];
        unsigned n = 0;
        long now = kf_mono_ms(), timeout = 1000;
        pf[n++] = (struct pollfd){.fd = S.lfd, .events = POLLIN};
        for (unsigned i = 0; i < CTX_PENDING_MAX; i++) {
            pending *p = &S.slot[i];
            if (p->fd < 0)
                continue;
            if (now >= p->deadline) {
                kf_log(KF_LOG_DEBUG, "relay: %s: a request timed out", S.path);
                drop(p);
                continue;
            }
            if (p->deadline - now < timeout)
                timeout = p->deadline - now;
            who[n] = p;
            pf[n++] = (struct pollfd){.fd = p->fd, .events = POLLIN};
        }
        unsigned nw = ctxlog_watch(pf + n, CTX_MAX);
        int r = poll(pf, n + nw, (int)timeout);
        for (unsigned i = n; r > 0 && i < n + nw; i++)
            if (pf[i].revents)
                ctxlog_reap(pf[i].fd); /* that client exited: its log fd goes now */
        for (unsigned i = 1; r > 0 && i < n; i++)
            if (pf[i].revents)
                on_readable(who[i]);
        if (r > 0 && (pf[0].revents & POLLIN))
            on_accept();
        if (now >= next_sweep) {
            ctxtab_sweep(ctxtab_now());
            next_sweep = now + 1000;
        }
    }
    return NULL;
}

static void unlink_ours(void)
{
    struct stat st;
    if (S.path[0] && lstat(S.path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == S.ino)
        unlink(S.path);
}

int ctxsrv_start(const char *rundir, const char *datadir)
{
    struct sockaddr_un sa;
    int dirfd;
    atomic_store(&S.stop, 0);
    snprintf(S.datadir, sizeof S.datadir, "%s", datadir);
    kf_path_join(S.path, sizeof S.path, rundir, KF_CTX_SOCK);
    for (unsigned i = 0; i < CTX_PENDING_MAX; i++)
        S.slot[i].fd = S.slot[i].passed = -1;
    int len = kf_ctx_sockaddr(rundir, &sa, &dirfd);
    S.lfd = len < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct stat st;
    unlink(S.path); /* a stale socket of an earlier relay (we hold relay.run.lock) */
    int ok = S.lfd >= 0 && bind(S.lfd, (struct sockaddr *)&sa, (socklen_t)len) == 0 &&
             chmod(S.path, 0600) == 0 && listen(S.lfd, 64) == 0 && lstat(S.path, &st) == 0;
    int e = errno;
    if (dirfd >= 0)
        close(dirfd);
    if (ok) {
        S.ino = st.st_ino;
        /* The thread must not take the process's signals (SIGTERM). */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        ok = pthread_create(&S.thread, NULL, serve, NULL) == 0;
        e = ok ? 0 : EAGAIN;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (!ok) {
        kf_log(KF_LOG_ERROR, "relay: cannot serve %s: %s: clients get the relay's defaults "
                             "(system trust, its rules and log)", S.path, strerror(e));
        unlink_ours();
        if (S.lfd >= 0)
            close(S.lfd);
        S.lfd = -1;
        return -1;
    }
    S.running = 1;
    static int registered;
    if (!registered++)
        atexit(unlink_ours);
    return 0;
}

void ctxsrv_stop(void)
{
    if (!S.running)
        return;
    atomic_store(&S.stop, 1);
    pthread_join(S.thread, NULL); /* it wakes at least once a second */
    S.running = 0;
    for (unsigned i = 0; i < CTX_PENDING_MAX; i++)
        if (S.slot[i].fd >= 0)
            drop(&S.slot[i]);
    close(S.lfd);
    S.lfd = -1;
    unlink_ours();
}
