/* kf_stream_int.h - private between kf_stream.c (state machine) and
 * kf_pump.c (sending). */
#ifndef KF_STREAM_INT_H
#define KF_STREAM_INT_H

#include "kf_headbuf.h"
#include "kf_stream.h"

enum kf_sstate { ST_IDLE = 0, ST_HEAD, ST_BODY, ST_CHUNK, ST_PASS };

/* State change for r bytes of a PASS step that were really sent. */
void kf_stream_advance_pass(kf_stream *s, const char *in, size_t r);

static inline int kf_stream_has_pending(const kf_stream *s)
{
    return s->hb && s->hb->out && s->hb->out_off < s->hb->out_len;
}

#endif
