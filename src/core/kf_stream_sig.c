/* kf_stream_sig.c - flush a stream's held bytes from a signal handler
 * (kf_stream_sig.h). Mirrors kf_stream_flush() (kf_pump.c) minus the part
 * that returns the head buffer to the pool (which may call free()). */
#include "kf_stream_sig.h"
#include "kf_stream_int.h"

static ssize_t send_pending(kf_stream *s, kf_send_fn send, void *io)
{
    struct kf_headbuf *hb = s->hb;
    while (kf_stream_has_pending(s)) {
        ssize_t r = send(io, hb->out + hb->out_off, hb->out_len - hb->out_off);
        if (r <= 0)
            return r;
        hb->out_off += (size_t)r;
    }
    return 1;
}

ssize_t kf_stream_flush_held(kf_stream *s, kf_send_fn send, void *io)
{
    struct kf_headbuf *hb = s->hb;
    if (!hb)
        return 1;
    /* Output first: a rewritten head (in_len then holds its original bytes,
     * which must never be sent). */
    ssize_t r = send_pending(s, send, io);
    if (r <= 0)
        return r;
    if (s->state == ST_HEAD && hb->in_len && s->carry == 0) {
        /* An unfinished head: it goes out as it came, and the stream
         * passes through from here. */
        hb->out = hb->in;
        hb->out_len = hb->in_len;
        hb->out_off = 0;
        s->state = ST_PASS;
        if ((r = send_pending(s, send, io)) <= 0)
            return r;
    }
    /* Like a buffer fresh from the pool (kf_headbuf.c), but kept attached. */
    hb->in_len = 0;
    hb->rl_phase = hb->rl_count = 0;
    hb->eol_state = 0;
    hb->out = NULL;
    hb->out_len = hb->out_off = 0;
    return 1;
}
