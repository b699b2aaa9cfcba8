/* kf_ctxcall.c - the client side of RUNDIR/relay.sock (kf_ctxmsg.h).
 *
 * Raw system calls only (syscall(2)): the shim calls this from its
 * connect() hook and from its constructor, where the libc functions it
 * interposes (connect, sendmsg, recv, close, fcntl) must not be re-entered.
 * One non-blocking socket, one deadline for the whole exchange: a relay
 * that is busy, stopped or hung costs the client at most KF_CTX_TIMEOUT_MS,
 * and the answer is then "no context" (the relay's defaults).
 */
#include "kf_clock.h"
#include "kf_ctxmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void raw_close(int fd)
{
    if (fd >= 0)
        syscall(SYS_close, fd);
}

/* Wait for ev on fd until deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short ev, long deadline)
{
    for (;;) {
        long left = deadline - kf_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = ev};
        struct timespec ts = {left / 1000, (left % 1000) * 1000000L};
        long r = syscall(SYS_ppoll, &p, 1UL, &ts, NULL, (size_t)8);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

int kf_ctx_sockaddr(const char *rundir, struct sockaddr_un *sa, int *dirfd)
{
    *dirfd = -1;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    int n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", rundir, KF_CTX_SOCK);
    if (n > 0 && (size_t)n < sizeof sa->sun_path)
        return (int)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
    /* A long runtime dir (deep XDG_RUNTIME_DIR): reach it through an fd. */
    long fd = syscall(SYS_openat, AT_FDCWD, rundir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%ld/%s", fd, KF_CTX_SOCK);
    *dirfd = (int)fd;
    return (int)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
}

static int fail(char *why, size_t wn, const char *what, int e)
{
    snprintf(why, wn, "%s: %s", what, e ? strerror(e) : "timed out");
    return -1;
}

static int do_connect(const char *rundir, long deadline, char *why, size_t wn)
{
    struct sockaddr_un sa;
    int dirfd;
    int len = kf_ctx_sockaddr(rundir, &sa, &dirfd);
    if (len < 0)
        return fail(why, wn, "runtime dir", errno);
    long fd = syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        raw_close(dirfd);
        return fail(why, wn, "socket", e);
    }
    long r;
    while ((r = syscall(SYS_connect, (int)fd, &sa, (socklen_t)len)) < 0 && errno == EINTR &&
           kf_mono_ms() < deadline)
        ;
    int e = errno;
    raw_close(dirfd);
    if (r < 0) {
        /* EAGAIN: the relay's backlog is full; a busy relay is no relay. */
        raw_close((int)fd);
        fail(why, wn, "connect " KF_CTX_SOCK, e);
        return e == ENOENT || e == ECONNREFUSED ? -2 : -1;
    }
    return (int)fd;
}

static int send_all(int fd, const char *msg, size_t n, int pass_fd, long deadline, char *why,
                    size_t wn)
{
    size_t off = 0;
    while (off < n) {
        struct iovec iov = {(void *)(msg + off), n - off};
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int))];
        } cm;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (off == 0 && pass_fd >= 0) { /* the fd travels with the first byte */
            memset(&cm, 0, sizeof cm);
            mh.msg_control = cm.b;
            mh.msg_controllen = sizeof cm.b;
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
        }
        long w = syscall(SYS_sendmsg, fd, &mh, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline) > 0)
            continue;
        return fail(why, wn, "send", w < 0 && errno != EAGAIN ? errno : 0);
    }
    return 0;
}

/* Read up to the reply's newline. Returns the bytes read, -1 on failure. */
static ssize_t read_reply(int fd, char *buf, size_t cap, long deadline, char *why, size_t wn)
{
    size_t got = 0;
    while (got < cap && !memchr(buf, '\n', got)) {
        long r = syscall(SYS_recvfrom, fd, buf + got, cap - got, 0, NULL, NULL);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            return fail(why, wn, "reply", ECONNRESET);
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN || wait_fd(fd, POLLIN, deadline) <= 0) {
            return fail(why, wn, "reply", errno != EAGAIN ? errno : 0);
        }
    }
    return (ssize_t)got;
}

int kf_ctx_call(const char *rundir, const char *msg, size_t n, int pass_fd, int timeout_ms,
                char *reply, size_t rcap, char *why, size_t wn)
{
    int saved = errno, rc = -1;
    char buf[KF_CTXMSG_REPLY_MAX];
    if (timeout_ms <= 0 || timeout_ms > KF_CTX_TIMEOUT_MS)
        timeout_ms = KF_CTX_TIMEOUT_MS;
    long deadline = kf_mono_ms() + timeout_ms;
    if (rcap)
        reply[0] = 0;
    why[0] = 0;
    int fd = do_connect(rundir, deadline, why, wn);
    if (fd == -2)
        rc = -2;
    if (fd >= 0 && send_all(fd, msg, n, pass_fd, deadline, why, wn) == 0) {
        ssize_t got = read_reply(fd, buf, sizeof buf, deadline, why, wn);
        kf_str v;
        int r = got > 0 ? kf_ctxmsg_parse_reply(buf, (size_t)got, &v) : -2;
        if (r == 0) {
            snprintf(why, wn, "reply: too long");
        } else if (r == 1 || (r == -1 && v.n)) {
            snprintf(reply, rcap, "%.*s", (int)v.n, v.p);
            rc = r == 1 ? 1 : 0;
        } else if (r == -1) {
            snprintf(why, wn, "reply: malformed");
        }
    }
    raw_close(fd);
    errno = saved;
    return rc;
}
