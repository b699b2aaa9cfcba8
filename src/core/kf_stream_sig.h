/* kf_stream_sig.h - the one thing a carrier may do with a stream from a
 * signal handler that interrupted its own thread inside the carrier.
 *
 * Such a handler's write() must not wait for a lock nor allocate (the
 * thread may be inside malloc), so it cannot run the rewriter; its bytes
 * pass through. What the stream holds back (a rewritten head not yet fully
 * sent, the first bytes of an unfinished head) must still leave before
 * them, in order: kf_stream_flush_held() sends it without allocating or
 * freeing anything.
 */
#ifndef KF_STREAM_SIG_H
#define KF_STREAM_SIG_H

#include "kf_stream.h"

/* Send what s holds back: pending output first, else the bytes of an
 * unfinished head as they came (that head can no longer be rewritten: the
 * stream passes through from here). The head buffer stays attached (it is
 * released by kf_stream_reset, outside the handler). Returns 1 when nothing
 * is held any more, else the failing send's value (<= 0; the rest stays
 * held). Never calls malloc or free, takes no lock, logs nothing. */
ssize_t kf_stream_flush_held(kf_stream *s, kf_send_fn send, void *io);

#endif
