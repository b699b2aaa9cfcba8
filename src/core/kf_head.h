/* kf_head.h - private to the stream rewriter: parse a complete HTTP/1
 * request head into a kf_req, and write the (rewritten) head back out. */
#ifndef KF_HEAD_H
#define KF_HEAD_H

#include <stddef.h>

#include "kf_headbuf.h"
#include "kf_stream.h"

enum kf_framing {
    KF_FRAME_NONE = 0, /* no body */
    KF_FRAME_LENGTH,   /* Content-Length bytes */
    KF_FRAME_CHUNKED,  /* chunked transfer coding */
    KF_FRAME_TUNNEL    /* CONNECT, Upgrade, unknown coding: pass the rest through */
};

typedef struct kf_head_info {
    int framing;
    uint64_t length; /* KF_FRAME_LENGTH */
} kf_head_info;

/* Parse head[0..n) (a complete head ending with its empty line) into
 * hb->req and hb's line fields. Views point into `head`. Returns 0, or -1
 * when the head is malformed (it then passes through unchanged). */
int kf_head_parse(struct kf_headbuf *hb, const kf_ctx *ctx, const char *head, size_t n,
                  kf_head_info *info);

/* Parse the head at the start of in[0..n) (more bytes may follow it).
 * Returns its length when a complete, well-formed head is there; -1 when
 * it is malformed or the bytes end before it does (callers then take the
 * byte-at-a-time path, which tells the two apart). */
long kf_head_parse_prefix(struct kf_headbuf *hb, const kf_ctx *ctx, const char *in, size_t n,
                          kf_head_info *info);

/* Tests: 1 = parse with the baseline (SSE2) scans even where AVX2 is
 * there, so that both copies of the parser are exercised; 0 = choose. */
void kf_head_force_base(int on);

/* Bytes needed to write hb->req back out. */
size_t kf_head_size(const struct kf_headbuf *hb);
/* Write hb->req into out (kf_head_size bytes); returns bytes written. */
size_t kf_head_write(const struct kf_headbuf *hb, char *out);

#endif
