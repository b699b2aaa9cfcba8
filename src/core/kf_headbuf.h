/* kf_headbuf.h - private to the stream rewriter: the buffer a head lives in
 * while it is being collected, parsed, rewritten and sent. Pooled, so a
 * connection in steady state does not allocate per request. */
#ifndef KF_HEADBUF_H
#define KF_HEADBUF_H

#include <stddef.h>
#include <stdint.h>

#include "kf_req.h"

struct kf_headbuf {
    struct kf_headbuf *next; /* pool link */

    /* Bytes of an unfinished head taken from earlier writes. */
    char *in;
    size_t in_len, in_cap;

    /* Scanner state over the head so far (see scan_head in kf_stream.c). */
    uint8_t rl_phase;  /* request-line phase */
    uint8_t rl_count;  /* chars seen in the current request-line phase */
    uint8_t eol_state; /* 0 mid-line, 1 at line start, 2 line start + CR */

    /* Output waiting to be sent: out[out_off..out_len). `out` points at
     * obuf, at in, or (only during one pump call) into the caller's buffer. */
    const char *out;
    size_t out_len, out_off;
    char *obuf;
    size_t obuf_cap;

    /* Parse results the serializer needs besides the request. */
    kf_str target_prefix; /* "scheme://authority" of an absolute-form target */
    kf_str rl_eol;        /* the request line's line ending */
    kf_str end_line;      /* the final empty line ("\r\n" or "\n") */
    kf_str rl_line;       /* the whole original request line incl. ending */

    kf_req req;
};

struct kf_headbuf *kf_headbuf_get(void);
void kf_headbuf_put(struct kf_headbuf *hb);
/* Make room for `need` bytes in in / obuf; 0 on success, -1 out of memory. */
int kf_headbuf_reserve_in(struct kf_headbuf *hb, size_t need);
int kf_headbuf_reserve_out(struct kf_headbuf *hb, size_t need);

#endif
