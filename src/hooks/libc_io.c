/* libc_io.c - the write family: write, writev, send, sendto, sendmsg,
 * sendmmsg, sendfile, sendfile64.
 *
 * Untracked fds (every pipe, file and socket we do not care about) take the
 * fast path: kf_fd_peek() and the real function, nothing else. Tracked TCP
 * client sockets go through the engine's vector pump (kf_stream_writev, one
 * iovec for write/send/sendto) with send callbacks that call the real
 * function with the caller's flags: a rewritten head and the body bytes of
 * the same call leave in one writev/sendmsg (docs/pump.md); the pump keeps
 * the return value in the caller's bytes.
 * sendfile's bytes bypass us: flush what is pending first, then account for
 * what the kernel sent (kf_stream_external), so body framing holds.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dnsfd.h"
#include "fdtab.h"
#include "kf_shim.h"

enum { KF_OP_WRITE, KF_OP_SEND, KF_OP_SENDTO, KF_OP_SENDMSG };

struct kf_io {
    int fd, op, flags, err;
    const struct sockaddr *to; /* sendto/sendmsg address (ignored by TCP, kept) */
    socklen_t tolen;
    const struct msghdr *msg; /* sendmsg: the caller's header (raw path) */
};

static ssize_t kf_io_send(void *p, const void *buf, size_t n)
{
    struct kf_io *io = p;
    ssize_t r;
    switch (io->op) {
    case KF_OP_WRITE:
        r = kf_real_write(io->fd, buf, n);
        break;
    case KF_OP_SEND:
        r = KF_REAL(send)(io->fd, buf, n, io->flags);
        break;
    default: {
        struct iovec v = { (void *)buf, n };
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_name = (void *)io->to;
        m.msg_namelen = io->tolen;
        m.msg_iov = &v;
        m.msg_iovlen = 1;
        r = KF_REAL(sendmsg)(io->fd, &m, io->flags);
        break;
    }
    }
    if (r < 0)
        io->err = errno;
    return r;
}

static ssize_t kf_io_sendv(void *p, const struct iovec *iov, int cnt)
{
    struct kf_io *io = p;
    ssize_t r;
    if (io->op == KF_OP_WRITE) {
        r = KF_REAL(writev)(io->fd, iov, cnt);
    } else {
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_name = (void *)io->to;
        m.msg_namelen = io->tolen;
        m.msg_iov = (struct iovec *)iov;
        m.msg_iovlen = (size_t)cnt;
        r = KF_REAL(sendmsg)(io->fd, &m, io->flags);
    }
    if (r < 0)
        io->err = errno;
    return r;
}

static void kf_conn_ctx(const struct kf_conn *c, kf_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->rs = kf_shim_rules();
    ctx->host = c->host[0] ? c->host : NULL;
    ctx->port = c->port;
    ctx->tls = 0;
    ctx->caps = 0;
    ctx->on_head = kf_shim_on_head;
    ctx->notice = kf_shim_notice;
    ctx->ud = (void *)"libc";
}

/* errno after a pump call: the failing send's, else what the caller had. */
static ssize_t kf_io_done(ssize_t r, const struct kf_io *io, int saved)
{
    errno = (r < 0 && io->err) ? io->err : saved;
    return r;
}

/* ---- write / send / sendto ---- */

static ssize_t kf_send_common(int fd, const void *buf, size_t n, struct kf_io *io,
                              ssize_t (*raw)(const struct kf_io *, const void *, size_t))
{
    int saved = errno;
    struct kf_conn *c = kf_fd_acquire(fd);
    if (!c) {
        errno = saved;
        return raw(io, buf, n);
    }
    kf_ctx ctx;
    kf_conn_ctx(c, &ctx);
    errno = saved;
    /* Through the vector pump: a rewritten head and the body bytes behind
     * it leave in one writev/sendmsg, as they came in one call. */
    struct iovec one = { (void *)buf, n };
    ssize_t r = kf_stream_writev(&c->st, &ctx, &one, 1, kf_io_send, kf_io_sendv, io);
    kf_fd_release(fd, c);
    return kf_io_done(r, io, saved);
}

static ssize_t kf_raw_write(const struct kf_io *io, const void *buf, size_t n)
{
    return kf_real_write(io->fd, buf, n);
}

static ssize_t kf_raw_send(const struct kf_io *io, const void *buf, size_t n)
{
    return KF_REAL(send)(io->fd, buf, n, io->flags);
}

static ssize_t kf_raw_sendto(const struct kf_io *io, const void *buf, size_t n)
{
    return KF_REAL(sendto)(io->fd, buf, n, io->flags, io->to, io->tolen);
}

KF_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1))
        return kf_real_write(fd, buf, n);
    struct kf_io io = { fd, KF_OP_WRITE, 0, 0, NULL, 0, NULL };
    return kf_send_common(fd, buf, n, &io, kf_raw_write);
}

KF_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1))
        return KF_REAL(send)(fd, buf, n, flags);
    struct kf_io io = { fd, KF_OP_SEND, flags, 0, NULL, 0, NULL };
    return kf_send_common(fd, buf, n, &io, kf_raw_send);
}

KF_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG arg,
                         socklen_t tolen)
{
    const struct sockaddr *to = KF_SA(arg);
    if (to)
        kf_dnsfd_sendto(fd, to, tolen); /* to port 53: a resolver's socket (libc_recv.c) */
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1))
        return KF_REAL(sendto)(fd, buf, n, flags, to, tolen);
    /* Tracked fds are connected TCP sockets: the kernel ignores `to`. */
    struct kf_io io = { fd, KF_OP_SENDTO, flags, 0, to, tolen, NULL };
    return kf_send_common(fd, buf, n, &io, kf_raw_sendto);
}

/* ---- writev / sendmsg ---- */

static ssize_t kf_sendv_common(int fd, const struct iovec *iov, int cnt, struct kf_io *io,
                               ssize_t (*raw)(const struct kf_io *, const struct iovec *, int))
{
    int saved = errno;
    struct kf_conn *c = kf_fd_acquire(fd);
    if (!c) {
        errno = saved;
        return raw(io, iov, cnt);
    }
    kf_ctx ctx;
    kf_conn_ctx(c, &ctx);
    errno = saved;
    ssize_t r = kf_stream_writev(&c->st, &ctx, iov, cnt, kf_io_send, kf_io_sendv, io);
    kf_fd_release(fd, c);
    return kf_io_done(r, io, saved);
}

static ssize_t kf_raw_writev(const struct kf_io *io, const struct iovec *iov, int cnt)
{
    return KF_REAL(writev)(io->fd, iov, cnt);
}

KF_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1) || cnt <= 0)
        return KF_REAL(writev)(fd, iov, cnt);
    struct kf_io io = { fd, KF_OP_WRITE, 0, 0, NULL, 0, NULL };
    return kf_sendv_common(fd, iov, cnt, &io, kf_raw_writev);
}

/* sendmsg with control data (ancillary data rides on the first byte we
 * send): let the kernel send it as it is and account for the bytes. */
static ssize_t kf_sendmsg_external(int fd, const struct msghdr *msg, int flags)
{
    int saved = errno;
    struct kf_conn *c = kf_fd_acquire(fd);
    if (!c) {
        errno = saved;
        return KF_REAL(sendmsg)(fd, msg, flags);
    }
    kf_ctx ctx;
    kf_conn_ctx(c, &ctx);
    struct kf_io io = { fd, KF_OP_SENDMSG, flags, 0, NULL, 0, NULL };
    ssize_t r = kf_stream_flush(&c->st, &ctx, kf_io_send, &io);
    if (r <= 0) {
        kf_fd_release(fd, c);
        errno = io.err ? io.err : EAGAIN;
        return -1;
    }
    errno = saved;
    r = KF_REAL(sendmsg)(fd, msg, flags);
    int e = errno;
    if (r > 0)
        kf_stream_external(&c->st, &ctx, (uint64_t)r);
    kf_fd_release(fd, c);
    errno = e;
    return r;
}

static ssize_t kf_raw_sendmsg(const struct kf_io *io, const struct iovec *iov, int cnt)
{
    (void)iov;
    (void)cnt;
    return KF_REAL(sendmsg)(io->fd, io->msg, io->flags);
}

KF_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (msg && msg->msg_name)
        kf_dnsfd_sendto(fd, msg->msg_name, msg->msg_namelen); /* as in sendto */
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1) || !msg || msg->msg_iovlen == 0 ||
        msg->msg_iovlen > INT_MAX)
        return KF_REAL(sendmsg)(fd, msg, flags);
    if (msg->msg_controllen)
        return kf_sendmsg_external(fd, msg, flags);
    struct kf_io io = { fd, KF_OP_SENDMSG, flags, 0, msg->msg_name, msg->msg_namelen, msg };
    return kf_sendv_common(fd, msg->msg_iov, (int)msg->msg_iovlen, &io, kf_raw_sendmsg);
}

/* ---- sendmmsg: rare on TCP; pass through, keep the accounting ---- */

KF_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1))
        return KF_REAL(sendmmsg)(fd, vec, vlen, flags);
    int saved = errno;
    struct kf_conn *c = kf_fd_acquire(fd);
    if (!c) {
        errno = saved;
        return KF_REAL(sendmmsg)(fd, vec, vlen, flags);
    }
    kf_ctx ctx;
    kf_conn_ctx(c, &ctx);
    struct kf_io io = { fd, KF_OP_SEND, flags, 0, NULL, 0, NULL };
    if (kf_stream_flush(&c->st, &ctx, kf_io_send, &io) <= 0) {
        kf_fd_release(fd, c);
        errno = io.err ? io.err : EAGAIN;
        return -1;
    }
    errno = saved;
    int r = KF_REAL(sendmmsg)(fd, vec, vlen, flags);
    int e = errno;
    for (int i = 0; i < r; i++)
        kf_stream_external(&c->st, &ctx, vec[i].msg_len);
    kf_fd_release(fd, c);
    errno = e;
    return r;
}

/* ---- sendfile ---- */

/* Flush pending output before the kernel sends file bytes. 1 = go on. */
static int kf_pre_external(int fd, struct kf_conn *c, kf_ctx *ctx)
{
    struct kf_io io = { fd, KF_OP_WRITE, 0, 0, NULL, 0, NULL };
    if (kf_stream_flush(&c->st, ctx, kf_io_send, &io) > 0)
        return 1;
    errno = io.err ? io.err : EAGAIN;
    return 0;
}

KF_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
    if (__builtin_expect(kf_fd_peek(out) == NULL, 1))
        return KF_REAL(sendfile)(out, in, off, count);
    int saved = errno;
    struct kf_conn *c = kf_fd_acquire(out);
    if (!c) {
        errno = saved;
        return KF_REAL(sendfile)(out, in, off, count);
    }
    kf_ctx ctx;
    kf_conn_ctx(c, &ctx);
    if (!kf_pre_external(out, c, &ctx)) {
        int e = errno;
        kf_fd_release(out, c);
        errno = e;
        return -1;
    }
    errno = saved;
    ssize_t r = KF_REAL(sendfile)(out, in, off, count);
    int e = errno;
    if (r > 0)
        kf_stream_external(&c->st, &ctx, (uint64_t)r);
    kf_fd_release(out, c);
    errno = e;
    return r;
}

KF_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t count)
{
    __typeof__(&sendfile64) real = KF_REAL(sendfile64);
    if (!real) /* off_t is 64-bit here: same call */
        return sendfile(out, in, (off_t *)off, count);
    if (__builtin_expect(kf_fd_peek(out) == NULL, 1))
        return real(out, in, off, count);
    int saved = errno;
    struct kf_conn *c = kf_fd_acquire(out);
    if (!c) {
        errno = saved;
        return real(out, in, off, count);
    }
    kf_ctx ctx;
    kf_conn_ctx(c, &ctx);
    if (!kf_pre_external(out, c, &ctx)) {
        int e = errno;
        kf_fd_release(out, c);
        errno = e;
        return -1;
    }
    errno = saved;
    ssize_t r = real(out, in, off, count);
    int e = errno;
    if (r > 0)
        kf_stream_external(&c->st, &ctx, (uint64_t)r);
    kf_fd_release(out, c);
    errno = e;
    return r;
}
