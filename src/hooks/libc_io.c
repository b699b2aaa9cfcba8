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
#include <stdint.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dnsfd.h"
#include "fdtab.h"
#include "kf_shim.h"

enum { KF_OP_WRITE, KF_OP_SEND, KF_OP_SENDTO, KF_OP_WRITEV, KF_OP_SENDMSG };

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
    case KF_OP_WRITEV:
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
    if (io->op == KF_OP_WRITE || io->op == KF_OP_WRITEV) {
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

/* ---- one call with the connection held ----
 *
 * Every tracked call does the same: acquire the connection (none: the real
 * call as made), build the engine context, then either pump the caller's
 * bytes through the engine (kf_io_pump) or -- for bytes the kernel sends
 * without us seeing them (sendmsg with control data, sendmmsg, sendfile) --
 * flush what is pending, make the real call and account for what it sent
 * (kf_io_external); then release, with errno as the failing send left it
 * or as the caller had it. */

struct kf_call {
    struct kf_io io;
    const struct iovec *iov; /* the caller's bytes (pump) */
    int cnt;
    /* the real call as the caller made it: untracked, and the external call */
    ssize_t (*real)(struct kf_call *k);
    /* external calls: the bytes the real call's result r sent (else NULL: pump) */
    uint64_t (*sent)(const struct kf_call *k, ssize_t r);
    void *arg; /* the call's own arguments (external calls) */
};

static ssize_t kf_io_pump(struct kf_conn *c, kf_ctx *ctx, struct kf_call *k, int saved)
{
    /* A rewritten head and the body bytes behind it leave in one
     * writev/sendmsg, as they came in one call. */
    errno = saved;
    ssize_t r = kf_stream_writev(&c->st, ctx, k->iov, k->cnt, kf_io_send, kf_io_sendv, &k->io);
    errno = (r < 0 && k->io.err) ? k->io.err : saved;
    return r;
}

static ssize_t kf_io_external(struct kf_conn *c, kf_ctx *ctx, struct kf_call *k, int saved)
{
    struct kf_io fl = k->io; /* the flush: a plain send with the caller's flags */
    fl.to = NULL, fl.tolen = 0, fl.err = 0;
    if (kf_stream_flush(&c->st, ctx, kf_io_send, &fl) <= 0) {
        errno = fl.err ? fl.err : EAGAIN;
        return -1;
    }
    errno = saved;
    ssize_t r = k->real(k);
    int e = errno;
    if (r > 0)
        kf_stream_external(&c->st, ctx, k->sent(k, r));
    errno = e;
    return r;
}

static ssize_t kf_io_held(struct kf_call *k)
{
    int saved = errno;
    struct kf_conn *c = kf_fd_acquire(k->io.fd);
    if (!c) {
        errno = saved;
        return k->real(k);
    }
    kf_ctx ctx;
    kf_conn_ctx(c, &ctx);
    ssize_t r = k->sent ? kf_io_external(c, &ctx, k, saved) : kf_io_pump(c, &ctx, k, saved);
    int e = errno;
    kf_fd_release(k->io.fd, c);
    errno = e;
    return r;
}

/* ---- the real calls, as made ---- */

static ssize_t kf_real_call(struct kf_call *k)
{
    const struct kf_io *io = &k->io;
    switch (io->op) {
    case KF_OP_WRITE:
        return kf_real_write(io->fd, k->iov[0].iov_base, k->iov[0].iov_len);
    case KF_OP_SEND:
        return KF_REAL(send)(io->fd, k->iov[0].iov_base, k->iov[0].iov_len, io->flags);
    case KF_OP_SENDTO:
        return KF_REAL(sendto)(io->fd, k->iov[0].iov_base, k->iov[0].iov_len, io->flags, io->to,
                               io->tolen);
    case KF_OP_WRITEV:
        return KF_REAL(writev)(io->fd, k->iov, k->cnt);
    default: /* KF_OP_SENDMSG */
        return KF_REAL(sendmsg)(io->fd, io->msg, io->flags);
    }
}

static uint64_t kf_sent_bytes(const struct kf_call *k, ssize_t r)
{
    (void)k;
    return (uint64_t)r;
}

/* ---- write / send / sendto / writev / sendmsg: through the pump ---- */

static ssize_t kf_io_call(int fd, int op, int flags, const struct sockaddr *to, socklen_t tolen,
                          const struct msghdr *msg, const struct iovec *iov, int cnt)
{
    struct kf_call k = { { fd, op, flags, 0, to, tolen, msg }, iov, cnt, kf_real_call, NULL, NULL };
    return kf_io_held(&k);
}

KF_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1))
        return kf_real_write(fd, buf, n);
    struct iovec one = { (void *)buf, n };
    return kf_io_call(fd, KF_OP_WRITE, 0, NULL, 0, NULL, &one, 1);
}

KF_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1))
        return KF_REAL(send)(fd, buf, n, flags);
    struct iovec one = { (void *)buf, n };
    return kf_io_call(fd, KF_OP_SEND, flags, NULL, 0, NULL, &one, 1);
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
    struct iovec one = { (void *)buf, n };
    return kf_io_call(fd, KF_OP_SENDTO, flags, to, tolen, NULL, &one, 1);
}

KF_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1) || cnt <= 0)
        return KF_REAL(writev)(fd, iov, cnt);
    return kf_io_call(fd, KF_OP_WRITEV, 0, NULL, 0, NULL, iov, cnt);
}

KF_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (msg && msg->msg_name)
        kf_dnsfd_sendto(fd, msg->msg_name, msg->msg_namelen); /* as in sendto */
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1) || !msg || msg->msg_iovlen == 0 ||
        msg->msg_iovlen > INT_MAX)
        return KF_REAL(sendmsg)(fd, msg, flags);
    struct kf_call k = { { fd, KF_OP_SENDMSG, flags, 0, msg->msg_name, msg->msg_namelen, msg },
                         msg->msg_iov, (int)msg->msg_iovlen, kf_real_call, NULL, NULL };
    /* With control data (ancillary data rides on the first byte we send):
     * the kernel sends it as it is, we account for the bytes. */
    if (msg->msg_controllen)
        k.sent = kf_sent_bytes;
    return kf_io_held(&k);
}

/* ---- sendmmsg (rare on TCP), sendfile: the kernel's bytes, accounted ---- */

static ssize_t kf_real_sendmmsg(struct kf_call *k)
{
    return KF_REAL(sendmmsg)(k->io.fd, k->arg, (unsigned)k->cnt, k->io.flags);
}

static uint64_t kf_sent_mmsg(const struct kf_call *k, ssize_t r)
{
    const struct mmsghdr *vec = k->arg;
    uint64_t n = 0;
    for (ssize_t i = 0; i < r; i++)
        n += vec[i].msg_len;
    return n;
}

KF_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    if (__builtin_expect(kf_fd_peek(fd) == NULL, 1) || vlen > INT_MAX)
        return KF_REAL(sendmmsg)(fd, vec, vlen, flags);
    struct kf_call k = { { fd, KF_OP_SEND, flags, 0, NULL, 0, NULL }, NULL, (int)vlen,
                         kf_real_sendmmsg, kf_sent_mmsg, vec };
    return (int)kf_io_held(&k);
}

struct kf_sendfile_args {
    int in;
    void *off;
    size_t count;
    int wide; /* sendfile64 */
};

static ssize_t kf_real_sendfile(struct kf_call *k)
{
    const struct kf_sendfile_args *a = k->arg;
    if (a->wide)
        return KF_REAL(sendfile64)(k->io.fd, a->in, a->off, a->count);
    return KF_REAL(sendfile)(k->io.fd, a->in, a->off, a->count);
}

static ssize_t kf_sendfile_any(int out, struct kf_sendfile_args *a)
{
    struct kf_call k = { { out, KF_OP_WRITE, 0, 0, NULL, 0, NULL }, NULL, 0, kf_real_sendfile,
                         kf_sent_bytes, a };
    if (__builtin_expect(kf_fd_peek(out) == NULL, 1))
        return kf_real_sendfile(&k);
    return kf_io_held(&k);
}

KF_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
    struct kf_sendfile_args a = { in, off, count, 0 };
    return kf_sendfile_any(out, &a);
}

KF_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t count)
{
    /* No sendfile64 in this libc: off_t is 64-bit here, the same call. */
    struct kf_sendfile_args a = { in, off, count, KF_REAL(sendfile64) != NULL };
    return kf_sendfile_any(out, &a);
}
