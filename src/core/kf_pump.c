/* kf_pump.c - send a stream's output and keep the caller's accounting exact.
 *
 * The caller writes N bytes and must be told how many of *its* bytes were
 * taken, although what goes on the wire differs (a head grew or shrank, a
 * partial head was kept back). Invariants:
 *  - output that was produced but not sent ("pending") goes out before any
 *    later byte;
 *  - while pending output remains, the caller is never told that its whole
 *    buffer was taken: it would stop writing (and wait for a response that
 *    cannot come). In KF_WR_PARTIAL mode the last byte is reported unsent
 *    and remembered in s->carry; the caller writes it again and the pump
 *    skips it. In KF_WR_ALL_OR_NOTHING mode (SSL_write) the failure is
 *    returned and s->carry remembers how much of the retried buffer was
 *    already taken.
 */
#include "kf_stream_int.h"

#include <string.h>


static ssize_t flush_pending(kf_stream *s, kf_send_fn send, void *io)
{
    struct kf_headbuf *hb = s->hb;
    while (hb->out_off < hb->out_len) {
        ssize_t r = send(io, hb->out + hb->out_off, hb->out_len - hb->out_off);
        if (r <= 0)
            return r;
        hb->out_off += (size_t)r;
    }
    kf_stream_emitted(s);
    return 1;
}

/* Pending output that still points into the caller's buffer must be copied
 * before we return: the buffer is the caller's again afterwards. Room was
 * reserved when the head was taken in place (finish_head). */
static void detach_pending(kf_stream *s, const char *buf, size_t len)
{
    struct kf_headbuf *hb = s->hb;
    if (hb->out < buf || hb->out >= buf + len || hb->out == hb->obuf)
        return;
    size_t n = hb->out_len - hb->out_off;
    memmove(hb->obuf, hb->out + hb->out_off, n);
    hb->out = hb->obuf;
    hb->out_off = 0;
    hb->out_len = n;
}

ssize_t kf_stream_write(kf_stream *s, const kf_ctx *ctx, const void *buf, size_t len, int mode,
                        kf_send_fn send, void *io)
{
    const char *in = buf;
    size_t done = 0;
    ssize_t r;

    if (len == 0)
        return 0;
    if (s->carry) {
        done = s->carry < len ? s->carry : len;
        s->carry = 0;
    }
    for (;;) {
        if (kf_stream_has_pending(s) && (r = flush_pending(s, send, io)) <= 0)
            goto fail;
        if (done == len)
            return (ssize_t)done;
        kf_feed f;
        kf_stream_feed(s, ctx, in + done, len - done, &f);
        if (f.kind != KF_FEED_PASS) {
            done += f.consumed;
            continue;
        }
        if ((r = send(io, in + done, f.consumed)) <= 0)
            goto fail;
        kf_stream_advance_pass(s, in + done, (size_t)r);
        done += (size_t)r;
        if ((size_t)r < f.consumed && mode == KF_WR_PARTIAL)
            return (ssize_t)done;
    }
fail:
    if (kf_stream_has_pending(s))
        detach_pending(s, in, len);
    if (mode == KF_WR_ALL_OR_NOTHING) {
        s->carry = (uint32_t)done;
        return r;
    }
    if (kf_stream_has_pending(s) && done == len) {
        s->carry = 1;
        done--;
    }
    return done ? (ssize_t)done : r;
}

ssize_t kf_stream_writev(kf_stream *s, const kf_ctx *ctx, const struct iovec *iov, int iovcnt,
                         kf_send_fn send, kf_sendv_fn sendv, void *io)
{
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (sendv && (total == 0 || kf_stream_pass_budget(s) >= total)) {
        ssize_t r = sendv(io, iov, iovcnt);
        if (r > 0)
            kf_stream_passed(s, (uint64_t)r);
        return r;
    }
    ssize_t done = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        ssize_t r = kf_stream_write(s, ctx, iov[i].iov_base, iov[i].iov_len, KF_WR_PARTIAL, send, io);
        if (r <= 0)
            return done ? done : r;
        done += r;
        if ((size_t)r < iov[i].iov_len)
            break;
    }
    return done;
}

ssize_t kf_stream_flush(kf_stream *s, const kf_ctx *ctx, kf_send_fn send, void *io)
{
    if (!kf_stream_has_pending(s) && s->hb && s->hb->in_len && s->carry == 0) {
        /* A head begun with write() and continued by sendfile(): it can no
         * longer be rewritten; send what we kept, as it came. */
        if (ctx->notice)
            ctx->notice(ctx->ud, "request head continued outside write(): passing through");
        s->state = ST_PASS;
        s->hb->out = s->hb->in;
        s->hb->out_len = s->hb->in_len;
        s->hb->out_off = 0;
    }
    if (kf_stream_has_pending(s)) {
        ssize_t r = flush_pending(s, send, io);
        if (r <= 0)
            return r;
    }
    return 1;
}
