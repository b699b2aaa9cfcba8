/* kf_stream.h - the HTTP/1.x request stream rewriter.
 *
 * One kf_stream per client connection (client -> server direction only).
 * Bytes go in as the client writes them, in pieces of any size; only the
 * request line and header block of each request may change, bodies and any
 * non-HTTP/1 protocol pass through untouched.
 *
 * Two layers:
 *  - kf_stream_feed(): the pure state machine. It says, for a prefix of
 *    the input, "send these bytes as they are" (PASS), "I kept them"
 *    (ABSORB: part of an unfinished head), or "send this instead" (EMIT: a
 *    completed head, rewritten or not).
 *  - kf_stream_write(): the pump carriers call from a write hook. It sends
 *    through a callback and keeps the caller's byte accounting exact: the
 *    return value is always in the caller's bytes, a rewritten head that
 *    could not be sent completely is finished before any later byte.
 *
 * Idle state is small (see sizeof(kf_stream)); a head buffer is taken from
 * a pool while a head is in flight and returned when it has been sent.
 */
#ifndef KF_STREAM_H
#define KF_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "kf_req.h"
#include "kf_rules.h"

#define KF_HEAD_MAX (64 * 1024) /* longer heads pass through unchanged */

struct kf_headbuf;

typedef struct kf_stream {
    uint8_t state;      /* enum kf_sstate (kf_stream.c) */
    uint8_t sub;        /* chunked-body sub-state */
    uint8_t flags;
    uint8_t held;       /* caller bytes held back until pending output is sent */
    uint32_t carry;     /* all-or-nothing mode: bytes of the retried buffer already taken */
    uint64_t remaining; /* body bytes left (Content-Length or current chunk) */
    struct kf_headbuf *hb; /* head in flight / pending output; NULL when idle */
} kf_stream;

/* Per-connection context the carrier supplies with every call. */
typedef struct kf_ctx {
    const kf_ruleset *rs; /* NULL: pass everything through */
    const char *host;     /* SNI or the connect target's name: the host when a head has no Host */
    unsigned port;        /* destination port, 0 = unknown */
    int tls;              /* 1 when the carrier is below TLS (default port 443) */
    unsigned caps;        /* KF_CAP_* */
    /* Called once per complete request head after the rules ran (also when
     * nothing changed: check req->nfired / req->nskipped). May be NULL. */
    void (*on_head)(void *ud, const kf_req *req);
    /* Called once for each event worth one log line (oversized head,
     * malformed head, non-HTTP protocol on a relevant connection). May be NULL. */
    void (*notice)(void *ud, const char *msg);
    void *ud;
} kf_ctx;

void kf_stream_init(kf_stream *s);
/* Free the head buffer, if any (back to the pool). Safe to call twice. */
void kf_stream_reset(kf_stream *s);

/* True when every further byte passes through verbatim for good (non-HTTP
 * protocol, Upgrade, CONNECT, malformed or oversized head). Carriers may
 * then forget the connection. */
int kf_stream_is_passthrough(const kf_stream *s);

/* True between requests: no head or body in progress and nothing pending
 * (the relay returns an upstream connection to its pool only here). */
int kf_stream_at_boundary(const kf_stream *s);

/* How many next bytes are certain to pass through verbatim without any
 * state but a counter changing (body with known length, passthrough).
 * Lets a carrier forward a whole iovec array in one real call. */
uint64_t kf_stream_pass_budget(const kf_stream *s);
/* Account for `n` bytes forwarded under kf_stream_pass_budget(). */
void kf_stream_passed(kf_stream *s, uint64_t n);

enum kf_feed_kind { KF_FEED_PASS, KF_FEED_ABSORB, KF_FEED_EMIT };

typedef struct kf_feed {
    int kind;
    size_t consumed;  /* input bytes this step covers */
    const char *out;  /* KF_FEED_EMIT: bytes to send in place of the head */
    size_t out_len;
} kf_feed;

/* One step of the state machine over `in[0..len)` (len > 0). For EMIT, the
 * output stays valid until kf_stream_emitted() is called. */
void kf_stream_feed(kf_stream *s, const kf_ctx *ctx, const char *in, size_t len, kf_feed *f);
/* The carrier has sent (or dropped) the EMIT output: release it. */
void kf_stream_emitted(kf_stream *s);

/* Sending callback: send up to len bytes, return the count sent (> 0), or
 * <= 0 on failure leaving the failure readable where the carrier expects it
 * (errno, SSL_get_error, ...). The pump returns that value unchanged when it
 * has to report the failure. */
typedef ssize_t (*kf_send_fn)(void *io, const void *buf, size_t len);

enum kf_write_mode {
    /* libc write/send, GnuTLS: a short count is a valid answer. */
    KF_WR_PARTIAL = 0,
    /* OpenSSL SSL_write: success means all of buf; on failure the caller
     * retries with the same arguments, and the pump skips what it took. */
    KF_WR_ALL_OR_NOTHING = 1
};

/* Feed buf through the stream and send the result. Returns the number of
 * caller bytes consumed (> 0), or the failing send's return value (<= 0)
 * when none could be consumed. len == 0 returns 0 without sending. */
ssize_t kf_stream_write(kf_stream *s, const kf_ctx *ctx, const void *buf, size_t len,
                        int mode, kf_send_fn send, void *io);

/* Same over an iovec array (writev, sendmsg). `sendv` forwards a whole
 * array in one real call (may be NULL: then segments go through `send`). */
typedef ssize_t (*kf_sendv_fn)(void *io, const struct iovec *iov, int iovcnt);
ssize_t kf_stream_writev(kf_stream *s, const kf_ctx *ctx, const struct iovec *iov, int iovcnt,
                         kf_send_fn send, kf_sendv_fn sendv, void *io);

/* Bytes about to be sent behind the stream's back (sendfile, splice): first
 * send whatever is pending (returns <= 0 on failure, 1 when done), then,
 * after the real call, account for the `n` bytes it sent. Body bytes keep
 * the framing; anything else switches the stream to passthrough. */
ssize_t kf_stream_flush(kf_stream *s, const kf_ctx *ctx, kf_send_fn send, void *io);
void kf_stream_external(kf_stream *s, const kf_ctx *ctx, uint64_t n);

/* Head-buffer pool around fork(): lock in prepare, unlock in parent/child. */
void kf_pool_lock(void);
void kf_pool_unlock(void);

#endif
