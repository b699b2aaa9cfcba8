/* kf_pump.c - send a stream's output in as few real calls as the caller
 * made, and keep the caller's accounting exact.
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
 *    already taken;
 *  - one caller call leaves in one real call where it could (kf_pump.h).
 *
 * A call is served in batches. A batch runs the state machine over the
 * caller's bytes and collects what one real call will carry: the stage
 * (engine output, plus body bytes copied behind it when the carrier has no
 * vector call) and then "direct" pieces (caller bytes sent by reference;
 * for each, the stream as it was before the piece advanced it). After the
 * call, the stage's unsent rest becomes pending output and the stream is
 * rolled back over direct bytes that did not go out.
 */
#include "kf_pump.h"
#include "kf_stream_int.h"

#include <string.h>

/* ---- the caller's bytes: an iovec array and a position in it ---- */

struct cursor {
    const struct iovec *iov;
    int cnt, i;
    size_t off; /* into iov[i] */
};

static void cur_norm(struct cursor *c)
{
    while (c->i < c->cnt && c->off >= c->iov[c->i].iov_len) {
        c->i++;
        c->off = 0;
    }
}

static void cur_advance(struct cursor *c, size_t n)
{
    for (;;) {
        cur_norm(c);
        if (n == 0 || c->i >= c->cnt)
            return;
        size_t left = c->iov[c->i].iov_len - c->off;
        size_t k = n < left ? n : left;
        c->off += k;
        n -= k;
    }
}

/* ---- pending output (from an earlier call or a short batch) ---- */

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
 * reserved when the head was taken in place (finish_head). Staged output
 * never needs this: it is in obuf already. */
static void detach_pending(kf_stream *s)
{
    struct kf_headbuf *hb = s->hb;
    if (!kf_stream_has_pending(s) || hb->out == hb->obuf || hb->out == hb->in)
        return;
    size_t n = hb->out_len - hb->out_off;
    memmove(hb->obuf, hb->out + hb->out_off, n);
    hb->out = hb->obuf;
    hb->out_off = 0;
    hb->out_len = n;
}

/* ---- a batch: what one real call carries ---- */

struct batch {
    struct kf_headbuf *stage; /* stage->obuf[0..slen) is ours to send */
    size_t slen;
    size_t taken; /* caller bytes taken for good (absorbed or staged) */
    int nd;       /* direct pieces, in v[1..nd]; v[0] is the stage */
    struct iovec v[1 + KF_PUMP_DIRECT_MAX];
    kf_stream snap[KF_PUMP_DIRECT_MAX]; /* the stream before piece k advanced it */
    struct cursor dcur;                  /* the caller's position at piece 0 */
};

static int busy(const struct batch *b)
{
    return b->slen || b->nd;
}

/* Undo a feed step that cannot join this batch (the bytes are fed again
 * later). Only steps that started no earlier than this batch's data are
 * undone, so a head buffer the step took is a fresh one. */
static void undo_step(kf_stream *s, const kf_stream *before)
{
    if (s->hb && s->hb != before->hb)
        kf_headbuf_put(s->hb);
    *s = *before;
}

static int stage_room(struct batch *b, size_t need)
{
    if (!b->stage && !(b->stage = kf_headbuf_get()))
        return 0;
    return kf_headbuf_reserve_out(b->stage, need) == 0;
}

/* Engine output joins the stage. The first one becomes the stage where it
 * is: its head buffer leaves the stream (which has no more use for it). */
static int stage_emit(struct batch *b, kf_stream *s, const kf_feed *f)
{
    struct kf_headbuf *hb = s->hb;
    if (!b->stage) {
        if (f->out == hb->in) { /* a head kept from earlier writes: swap, do not copy */
            char *t = hb->in;
            size_t tc = hb->in_cap;
            hb->in = hb->obuf;
            hb->in_cap = hb->obuf_cap;
            hb->in_len = 0;
            hb->obuf = t;
            hb->obuf_cap = tc;
        } else if (f->out != hb->obuf) { /* in the caller's buffer (room reserved) */
            if (kf_headbuf_reserve_out(hb, f->out_len) != 0)
                return 0;
            memcpy(hb->obuf, f->out, f->out_len);
        }
        hb->out = NULL;
        hb->out_len = hb->out_off = 0;
        s->hb = NULL;
        b->stage = hb;
        b->slen = f->out_len;
        return 1;
    }
    if (!stage_room(b, b->slen + f->out_len))
        return 0;
    memcpy(b->stage->obuf + b->slen, f->out, f->out_len);
    b->slen += f->out_len;
    kf_stream_emitted(s);
    return 1;
}

/* A head follows the direct pieces: it can only go behind them, so they
 * are copied into the stage. 0 when they do not fit (end the batch). */
static int stage_directs(struct batch *b)
{
    size_t n = 0;
    for (int k = 1; k <= b->nd; k++)
        n += b->v[k].iov_len;
    if (n == 0)
        return 1;
    if (b->slen + n > KF_PUMP_STAGE || !stage_room(b, b->slen + n))
        return 0;
    for (int k = 1; k <= b->nd; k++) {
        memcpy(b->stage->obuf + b->slen, b->v[k].iov_base, b->v[k].iov_len);
        b->slen += b->v[k].iov_len;
    }
    b->taken += n;
    b->nd = 0;
    return 1;
}

static void add_direct(struct batch *b, kf_stream *s, struct cursor *c, const char *p, size_t k)
{
    if (b->nd == 0)
        b->dcur = *c;
    b->snap[b->nd] = *s;
    b->v[1 + b->nd].iov_base = (void *)p;
    b->v[1 + b->nd].iov_len = k;
    b->nd++;
    kf_stream_advance_pass(s, p, k);
    cur_advance(c, k);
}

/* Copy body bytes behind the stage, up to a record boundary. */
static size_t stage_pass(struct batch *b, kf_stream *s, struct cursor *c, const char *p, size_t k)
{
    size_t lim = KF_PUMP_STAGE;
    if (b->slen > lim) /* a head made it longer: fill up to the next boundary */
        lim = (b->slen + KF_PUMP_STAGE - 1) / KF_PUMP_STAGE * KF_PUMP_STAGE;
    size_t take = k < lim - b->slen ? k : lim - b->slen;
    if (take == 0 || !stage_room(b, b->slen + take))
        return 0;
    memcpy(b->stage->obuf + b->slen, p, take);
    b->slen += take;
    b->taken += take;
    kf_stream_advance_pass(s, p, take);
    cur_advance(c, take);
    return take;
}

/* A PASS step of k bytes at p, n bytes left in this piece. 1 = go on. */
static int take_pass(struct batch *b, kf_stream *s, struct cursor *c, const char *p, size_t n,
                     size_t k, int vec)
{
    if (vec) { /* writev: by reference behind the stage */
        if (b->nd == KF_PUMP_DIRECT_MAX)
            return 0;
        add_direct(b, s, c, p, k);
        return 1;
    }
    /* One buffer per real call (TLS). The caller's own bytes go by
     * reference when nothing is staged and they are its last bytes or whole
     * records; else they are copied behind the stage. */
    int last = k == n && c->i == c->cnt - 1;
    if (!busy(b) && (last || k >= KF_PUMP_STAGE)) {
        add_direct(b, s, c, p, last ? k : k - k % KF_PUMP_STAGE);
        return 0;
    }
    size_t took = stage_pass(b, s, c, p, k);
    if (took == 0 && !busy(b)) { /* no memory for a stage: by reference */
        add_direct(b, s, c, p, k);
        return 0;
    }
    return took == k;
}

static void batch_build(struct batch *b, kf_stream *s, const kf_ctx *ctx, struct cursor *c, int vec)
{
    for (;;) {
        cur_norm(c);
        if (c->i >= c->cnt)
            return;
        const char *p = (const char *)c->iov[c->i].iov_base + c->off;
        size_t n = c->iov[c->i].iov_len - c->off;
        int had = busy(b);
        /* A new head behind data: stage what is before it, within bounds. */
        if (had && s->state == ST_IDLE && (b->slen >= KF_PUMP_STAGE || !stage_directs(b)))
            return;
        kf_stream before = *s;
        kf_feed f;
        kf_stream_feed(s, ctx, p, n, &f);
        if (f.kind == KF_FEED_PASS) {
            if (!take_pass(b, s, c, p, n, f.consumed, vec))
                return;
            continue;
        }
        int staged = f.kind == KF_FEED_EMIT && stage_emit(b, s, &f);
        if (had && !staged) {
            /* An unfinished head cannot wait behind data that may not all
             * go out (the stream holds one buffer), and output that finds
             * no room waits too: both are fed again after this call. */
            undo_step(s, &before);
            return;
        }
        b->taken += f.consumed;
        cur_advance(c, f.consumed);
        if (f.kind == KF_FEED_EMIT && !staged)
            return; /* no memory: it stays the stream's pending output */
    }
}

static void batch_drop(struct batch *b)
{
    if (b->stage && b->slen == 0) {
        kf_headbuf_put(b->stage);
        b->stage = NULL;
    }
}

/* One real call for the batch, then the accounting: *dsent = caller bytes
 * of direct pieces that went out; returns the call's result, and *whole
 * says whether everything went. */
static ssize_t batch_send(struct batch *b, kf_stream *s, struct cursor *c, kf_send_fn send,
                          kf_sendv_fn sendv, void *io, size_t *dsent, int *whole)
{
    struct iovec *v = b->v + (b->slen ? 0 : 1);
    int cnt = b->nd + (b->slen ? 1 : 0);
    if (b->slen) {
        b->v[0].iov_base = b->stage->obuf;
        b->v[0].iov_len = b->slen;
    }
    ssize_t r = cnt == 1 ? send(io, v[0].iov_base, v[0].iov_len) : sendv(io, v, cnt);
    size_t ok = r > 0 ? (size_t)r : 0;
    size_t staged = ok < b->slen ? ok : b->slen;
    ok -= staged;
    *whole = staged == b->slen;
    *dsent = 0;
    for (int k = 0; k < b->nd; k++) {
        size_t len = b->v[1 + k].iov_len;
        if (*whole && ok >= len) {
            ok -= len;
            *dsent += len;
            continue;
        }
        /* Roll back over what did not go out, keep what did. */
        size_t part = *whole ? ok : 0;
        *s = b->snap[k];
        if (part)
            kf_stream_advance_pass(s, b->v[1 + k].iov_base, part);
        *dsent += part;
        *whole = 0;
        break;
    }
    if (b->nd) {
        *c = b->dcur;
        cur_advance(c, *dsent);
    }
    if (b->stage && staged < b->slen) { /* the rest is pending: same pointer on retry */
        struct kf_headbuf *hb = b->stage;
        hb->out = hb->obuf;
        hb->out_len = b->slen;
        hb->out_off = staged;
        s->hb = hb;
    } else if (b->stage) {
        kf_headbuf_put(b->stage);
    }
    b->stage = NULL;
    return r;
}

/* ---- the pump ---- */

static ssize_t pump(kf_stream *s, const kf_ctx *ctx, struct cursor *c, size_t len, int mode,
                    kf_send_fn send, kf_sendv_fn sendv, void *io)
{
    size_t done = 0;
    ssize_t r = 0;

    if (len == 0)
        return 0;
    if (s->carry) {
        done = s->carry < len ? s->carry : len;
        s->carry = 0;
        cur_advance(c, done);
    }
    for (;;) {
        if (kf_stream_has_pending(s) && (r = flush_pending(s, send, io)) <= 0)
            goto fail;
        if (done == len)
            return (ssize_t)done;
        struct batch b;
        b.stage = NULL;
        b.slen = b.taken = 0;
        b.nd = 0;
        batch_build(&b, s, ctx, c, sendv != NULL);
        done += b.taken;
        if (!busy(&b)) {
            batch_drop(&b);
            if (b.taken == 0 && !kf_stream_has_pending(s)) {
                /* Cannot happen by construction; never spin in a write. */
                if (ctx->notice)
                    ctx->notice(ctx->ud, "internal: no progress in the write pump; passing through");
                s->state = ST_PASS;
            }
            continue;
        }
        size_t dsent;
        int whole;
        r = batch_send(&b, s, c, send, sendv, io, &dsent, &whole);
        done += dsent;
        if (r <= 0)
            goto fail;
        if (!whole && mode == KF_WR_PARTIAL) {
            /* A short write: answer it as the kernel would, in caller bytes
             * (never "all taken" while output is pending). */
            size_t ret = done;
            if (kf_stream_has_pending(s) && ret == len)
                ret--;
            if (ret > 0) {
                s->carry = ret < done ? 1 : 0;
                return (ssize_t)ret;
            }
        }
    }
fail:
    detach_pending(s);
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

/* Bytes certain to pass verbatim (a body within its Content-Length, a
 * tunnel): one send, nothing to stage, as pump() would do it but without
 * its batch. In all-or-nothing mode a short send is followed by the next,
 * and a failure after some progress leaves it in s->carry, as in pump(). */
static ssize_t pass_through(kf_stream *s, const char *p, size_t len, int mode, kf_send_fn send,
                            void *io)
{
    size_t done = 0;
    for (;;) {
        ssize_t r = send(io, p + done, len - done);
        if (r <= 0) {
            if (mode == KF_WR_ALL_OR_NOTHING) {
                s->carry = (uint32_t)done;
                return r;
            }
            return done ? (ssize_t)done : r;
        }
        kf_stream_passed(s, (uint64_t)r);
        done += (size_t)r;
        if (done == len || mode == KF_WR_PARTIAL)
            return (ssize_t)done;
    }
}

ssize_t kf_stream_write(kf_stream *s, const kf_ctx *ctx, const void *buf, size_t len, int mode,
                        kf_send_fn send, void *io)
{
    /* kf_stream_pass_budget() for the common case, without the call: a
     * body within its length, nothing pending or carried */
    if (len && !s->carry && (s->state == ST_BODY ? s->remaining >= len : s->state == ST_PASS) &&
        !kf_stream_has_pending(s))
        return pass_through(s, buf, len, mode, send, io);
    struct iovec one = { (void *)buf, len };
    struct cursor c = { &one, 1, 0, 0 };
    return pump(s, ctx, &c, len, mode, send, NULL, io);
}

ssize_t kf_stream_writev(kf_stream *s, const kf_ctx *ctx, const struct iovec *iov, int iovcnt,
                         kf_send_fn send, kf_sendv_fn sendv, void *io)
{
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (sendv && (total == 0 || kf_stream_pass_budget(s) >= total)) {
        ssize_t r = iovcnt == 1 ? send(io, iov[0].iov_base, iov[0].iov_len) : sendv(io, iov, iovcnt);
        if (r > 0)
            kf_stream_passed(s, (uint64_t)r);
        return r;
    }
    struct cursor c = { iov, iovcnt, 0, 0 };
    return pump(s, ctx, &c, (size_t)total, KF_WR_PARTIAL, send, sendv, io);
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
