/* kf_stream.c - HTTP/1 request stream: framing state machine and the pump.
 *
 * The machine follows request framing (head, Content-Length or chunked
 * body, next head) so that only heads are ever rewritten. Anything that is
 * not a well-formed HTTP/1 request head switches the connection to
 * passthrough for good: bytes then go out exactly as written.
 *
 * PASS steps do not change state until kf_stream_feed's caller knows how
 * many bytes were really sent (advance_pass); ABSORB and EMIT change state
 * at once because their bytes are safe in the head buffer.
 */
#include "kf_head.h"
#include "kf_stream_int.h"

#include <string.h>

enum chunk_sub {
    CH_SIZE0 = 0, /* first hex digit of a chunk size */
    CH_SIZE,      /* more hex digits */
    CH_EXT,       /* extensions up to LF */
    CH_DATA,      /* chunk data: s->remaining bytes */
    CH_DATA_END,  /* CR or LF after data */
    CH_DATA_LF,   /* LF after data CR */
    CH_TRL_START, /* start of a trailer line (or the final empty line) */
    CH_TRL_LINE,  /* inside a trailer line */
    CH_TRL_CR     /* CR of the final empty line */
};

enum rl_phase { RL_METHOD = 0, RL_TARGET, RL_VERSION, RL_EOL, RL_LF, RL_DONE };

enum scan_result { SCAN_MORE, SCAN_DONE, SCAN_BAD };
enum chunk_result { CHUNK_MORE, CHUNK_DONE, CHUNK_BAD };

#define METHOD_MAX 32 /* also in kf_head.c's parse_request_line */

void kf_stream_init(kf_stream *s)
{
    memset(s, 0, sizeof(*s));
}

void kf_stream_reset(kf_stream *s)
{
    kf_headbuf_put(s->hb);
    kf_stream_init(s);
}


int kf_stream_is_passthrough(const kf_stream *s)
{
    return s->state == ST_PASS && !kf_stream_has_pending(s) && s->carry == 0;
}

int kf_stream_at_boundary(const kf_stream *s)
{
    return s->state == ST_IDLE && !kf_stream_has_pending(s) && s->carry == 0 && !s->held;
}

uint64_t kf_stream_pass_budget(const kf_stream *s)
{
    if (kf_stream_has_pending(s) || s->carry)
        return 0;
    if (s->state == ST_PASS)
        return UINT64_MAX;
    if (s->state == ST_BODY)
        return s->remaining;
    return 0;
}

void kf_stream_passed(kf_stream *s, uint64_t n)
{
    if (s->state == ST_BODY) {
        s->remaining -= n < s->remaining ? n : s->remaining;
        if (s->remaining == 0)
            s->state = ST_IDLE;
    }
}

static void notice(const kf_ctx *ctx, const char *msg)
{
    if (ctx->notice)
        ctx->notice(ctx->ud, msg);
}

static void go_pass(kf_stream *s)
{
    s->state = ST_PASS;
}

/* ---- chunked bodies ------------------------------------------------ */

/* Run the chunk machine over p[0..n). *used gets the bytes that belong to
 * the body (all n unless the body ended or turned out malformed). */
static int chunk_scan(uint8_t *sub, uint64_t *rem, const char *p, size_t n, size_t *used)
{
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        switch (*sub) {
        case CH_DATA: {
            uint64_t take = *rem < n - i ? *rem : n - i;
            i += take;
            *rem -= take;
            if (*rem == 0)
                *sub = CH_DATA_END;
            continue;
        }
        case CH_SIZE0:
            if (kf_hexval(c) < 0)
                goto bad;
            *rem = (uint64_t)kf_hexval(c);
            *sub = CH_SIZE;
            break;
        case CH_SIZE:
            if (kf_hexval(c) >= 0) {
                if (*rem >> 60)
                    goto bad;
                *rem = *rem * 16 + (uint64_t)kf_hexval(c);
                break;
            }
            *sub = CH_EXT;
            continue; /* re-examine c as part of the extension/line end */
        case CH_EXT: {
            const char *lf = memchr(p + i, '\n', n - i);
            if (!lf) {
                i = n;
                continue;
            }
            i = (size_t)(lf - p);
            *sub = *rem ? CH_DATA : CH_TRL_START;
            break;
        }
        case CH_DATA_END:
            if (c == '\r')
                *sub = CH_DATA_LF;
            else if (c == '\n')
                *sub = CH_SIZE0;
            else
                goto bad;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                goto bad;
            *sub = CH_SIZE0;
            break;
        case CH_TRL_START:
            if (c == '\n') {
                *used = i + 1;
                return CHUNK_DONE;
            }
            *sub = c == '\r' ? CH_TRL_CR : CH_TRL_LINE;
            break;
        case CH_TRL_CR:
            if (c != '\n')
                goto bad;
            *used = i + 1;
            return CHUNK_DONE;
        case CH_TRL_LINE: {
            const char *lf = memchr(p + i, '\n', n - i);
            if (!lf) {
                i = n;
                continue;
            }
            i = (size_t)(lf - p);
            *sub = CH_TRL_START;
            break;
        }
        default:
            goto bad;
        }
        i++;
    }
    *used = n;
    return CHUNK_MORE;
bad:
    *used = i;
    return CHUNK_BAD;
}

void kf_stream_advance_pass(kf_stream *s, const char *in, size_t r)
{
    if (s->state == ST_BODY) {
        kf_stream_passed(s, r);
    } else if (s->state == ST_CHUNK) {
        size_t used;
        int st = chunk_scan(&s->sub, &s->remaining, in, r, &used);
        if (st == CHUNK_DONE) {
            s->state = ST_IDLE;
            s->remaining = 0;
        } else if (st == CHUNK_BAD)
            go_pass(s);
    }
}

/* ---- heads ----------------------------------------------------------- */

static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Request-line validation, one byte at a time, so a connection that is not
 * HTTP/1 is recognised at its first wrong byte and never held back waiting
 * for a line end that will not come. */
static int scan_request_line(struct kf_headbuf *hb, unsigned char c)
{
    static const char version[] = "HTTP/1.";
    switch (hb->rl_phase) {
    case RL_METHOD:
        if (c == ' ' && hb->rl_count > 0) {
            hb->rl_phase = RL_TARGET;
            hb->rl_count = 0;
        } else if (is_tchar(c) && hb->rl_count < METHOD_MAX)
            hb->rl_count++;
        else
            return -1;
        return 0;
    case RL_TARGET:
        if (c == ' ' && hb->rl_count > 0) {
            hb->rl_phase = RL_VERSION;
            hb->rl_count = 0;
        } else if (c > 0x20 && c != 0x7f)
            hb->rl_count = 1;
        else
            return -1;
        return 0;
    case RL_VERSION:
        if (hb->rl_count < 7 ? c != (unsigned char)version[hb->rl_count] : (c < '0' || c > '9'))
            return -1;
        if (++hb->rl_count == 8)
            hb->rl_phase = RL_EOL;
        return 0;
    case RL_EOL:
        if (c == '\r')
            hb->rl_phase = RL_LF;
        else if (c == '\n')
            hb->rl_phase = RL_DONE;
        else
            return -1;
        return 0;
    case RL_LF:
        if (c != '\n')
            return -1;
        hb->rl_phase = RL_DONE;
        return 0;
    }
    return -1;
}

/* Continue scanning a head over p[0..n): validate the request line, then
 * look for the empty line that ends the head. */
static int scan_head(struct kf_headbuf *hb, const char *p, size_t n, size_t *end)
{
    size_t i = 0;
    while (i < n && hb->rl_phase != RL_DONE) {
        if (scan_request_line(hb, (unsigned char)p[i++]) != 0)
            return SCAN_BAD;
        if (hb->rl_phase == RL_DONE)
            hb->eol_state = 1;
    }
    while (i < n) {
        char c = p[i];
        if (hb->eol_state == 0) {
            const char *lf = memchr(p + i, '\n', n - i);
            if (!lf)
                return SCAN_MORE;
            i = (size_t)(lf - p) + 1;
            hb->eol_state = 1;
            continue;
        }
        if (c == '\n') {
            *end = i + 1;
            return SCAN_DONE;
        }
        hb->eol_state = (hb->eol_state == 1 && c == '\r') ? 2 : 0;
        i++;
    }
    return SCAN_MORE;
}

static void set_emit(kf_stream *s, kf_feed *f, const char *out, size_t n, size_t consumed)
{
    s->hb->out = out;
    s->hb->out_len = n;
    s->hb->out_off = 0;
    f->kind = KF_FEED_EMIT;
    f->out = out;
    f->out_len = n;
    f->consumed = consumed;
}

static void set_pass(kf_feed *f, size_t n)
{
    f->kind = KF_FEED_PASS;
    f->consumed = n;
    f->out = NULL;
    f->out_len = 0;
}

/* Give up on this connection: bytes taken so far go out as they came. */
static void give_up(kf_stream *s, const kf_ctx *ctx, const char *why, size_t len, kf_feed *f)
{
    if (why)
        notice(ctx, why);
    go_pass(s);
    if (s->hb && s->hb->in_len) {
        set_emit(s, f, s->hb->in, s->hb->in_len, 0);
        return;
    }
    kf_headbuf_put(s->hb);
    s->hb = NULL;
    set_pass(f, len);
}

static void enter_body(kf_stream *s, const kf_head_info *info)
{
    s->sub = 0;
    s->remaining = 0;
    switch (info->framing) {
    case KF_FRAME_LENGTH:
        s->state = ST_BODY;
        s->remaining = info->length;
        break;
    case KF_FRAME_CHUNKED:
        s->state = ST_CHUNK;
        s->sub = CH_SIZE0;
        break;
    case KF_FRAME_TUNNEL:
        s->state = ST_PASS;
        break;
    default:
        s->state = ST_IDLE;
    }
}

/* A parsed head: apply the rules, emit. */
static void rewrite_head(kf_stream *s, const kf_ctx *ctx, const char *head, size_t hn,
                         size_t consumed, const kf_head_info *info, kf_feed *f)
{
    struct kf_headbuf *hb = s->hb;
    /* CONNECT names an authority, not a resource: no rule applies to it. */
    if (ctx->rs && !kf_str_eq(hb->req.method, KF_STR("CONNECT")))
        kf_rules_apply(ctx->rs, &hb->req, ctx->caps);
    if (ctx->on_head)
        ctx->on_head(ctx->ud, &hb->req);
    enter_body(s, info);
    if (hb->req.nfired == 0) {
        set_emit(s, f, head, hn, consumed);
        return;
    }
    size_t need = kf_head_size(hb);
    if (hb->obuf_cap < need && kf_headbuf_reserve_out(hb, need) != 0) {
        notice(ctx, "out of memory: request head sent unchanged");
        set_emit(s, f, head, hn, consumed);
        return;
    }
    set_emit(s, f, hb->obuf, kf_head_write(hb, hb->obuf), consumed);
}

/* An in-place head may have to outlive the caller's buffer if it cannot be
 * sent at once: make sure there is room to keep it. */
static int keep_room(kf_stream *s, const kf_ctx *ctx, size_t hn, kf_feed *f)
{
    if (s->hb->obuf_cap >= hn || kf_headbuf_reserve_out(s->hb, hn) == 0)
        return 0;
    give_up(s, ctx, "out of memory: passing this connection through unchanged", hn, f);
    return -1;
}

/* A complete head: parse, apply the rules, emit. `consumed` = bytes of the
 * current input that belong to it; `in_place` = head points into that input. */
static void finish_head(kf_stream *s, const kf_ctx *ctx, const char *head, size_t hn,
                        size_t consumed, int in_place, kf_feed *f)
{
    kf_head_info info;
    if (in_place && keep_room(s, ctx, hn, f) != 0)
        return;
    if (kf_head_parse(s->hb, ctx, head, hn, &info) != 0) {
        notice(ctx, "malformed HTTP/1 request head: passing this connection through unchanged");
        go_pass(s);
        set_emit(s, f, head, hn, consumed);
        return;
    }
    rewrite_head(s, ctx, head, hn, consumed, &info, f);
}

static void feed_head(kf_stream *s, const kf_ctx *ctx, const char *in, size_t len, kf_feed *f)
{
    if (s->state == ST_IDLE) {
        /* Fast exit for TLS records, HTTP/2 frames and binary protocols. */
        if (in[0] < 'A' || in[0] > 'Z' || !ctx->rs) {
            go_pass(s);
            set_pass(f, len);
            return;
        }
        if (!s->hb && !(s->hb = kf_headbuf_get())) {
            give_up(s, ctx, "out of memory: passing this connection through unchanged", len, f);
            return;
        }
        s->state = ST_HEAD;
        /* The common case, a whole head at the start of one write: one
         * parsing pass. Anything else (a partial, malformed or oversized
         * head) takes the byte-at-a-time scanner below, which decides. */
        kf_head_info info;
        long hn = s->hb->in_len == 0 && s->hb->rl_phase == RL_METHOD
                      ? kf_head_parse_prefix(s->hb, ctx, in, len, &info)
                      : -1;
        if (hn > 0 && hn <= KF_HEAD_MAX) {
            if (keep_room(s, ctx, (size_t)hn, f) == 0)
                rewrite_head(s, ctx, in, (size_t)hn, (size_t)hn, &info, f);
            return;
        }
    }
    struct kf_headbuf *hb = s->hb;
    size_t end = 0;
    int st = scan_head(hb, in, len, &end);
    if (st == SCAN_BAD) {
        int h2 = hb->in_len == 0 && len >= 4 && memcmp(in, "PRI ", 4) == 0;
        give_up(s, ctx, h2 ? "HTTP/2 with prior knowledge: cannot rewrite, passing through" : NULL,
                len, f);
        return;
    }
    size_t take = st == SCAN_DONE ? end : len;
    if (hb->in_len + take > KF_HEAD_MAX) {
        give_up(s, ctx, "request head larger than 64 KiB: passing this connection through unchanged",
                len, f);
        return;
    }
    if (st == SCAN_DONE && hb->in_len == 0) {
        finish_head(s, ctx, in, end, end, 1, f);
        return;
    }
    if (kf_headbuf_reserve_in(hb, hb->in_len + take) != 0) {
        give_up(s, ctx, "out of memory: passing this connection through unchanged", len, f);
        return;
    }
    memcpy(hb->in + hb->in_len, in, take);
    hb->in_len += take;
    if (st == SCAN_DONE) {
        finish_head(s, ctx, hb->in, hb->in_len, end, 0, f);
        return;
    }
    f->kind = KF_FEED_ABSORB;
    f->consumed = len;
    f->out = NULL;
    f->out_len = 0;
}

void kf_stream_feed(kf_stream *s, const kf_ctx *ctx, const char *in, size_t len, kf_feed *f)
{
    switch (s->state) {
    case ST_PASS:
        set_pass(f, len);
        return;
    case ST_BODY:
        set_pass(f, s->remaining < len ? (size_t)s->remaining : len);
        return;
    case ST_CHUNK: {
        uint8_t sub = s->sub;
        uint64_t rem = s->remaining;
        size_t used;
        if (chunk_scan(&sub, &rem, in, len, &used) == CHUNK_BAD) {
            notice(ctx, "malformed chunked body: passing the rest of this connection through");
            go_pass(s);
            used = len;
        }
        set_pass(f, used);
        return;
    }
    default:
        feed_head(s, ctx, in, len, f);
    }
}

void kf_stream_emitted(kf_stream *s)
{
    if (!s->hb)
        return;
    s->hb->out = NULL;
    s->hb->out_len = s->hb->out_off = 0;
    if (s->state != ST_HEAD) {
        kf_headbuf_put(s->hb);
        s->hb = NULL;
    }
}

void kf_stream_external(kf_stream *s, const kf_ctx *ctx, uint64_t n)
{
    if (n == 0 || s->state == ST_PASS)
        return;
    if (s->state == ST_BODY && n <= s->remaining) {
        kf_stream_passed(s, n);
        return;
    }
    /* Bytes we could not see where framing needs them (a head, chunk sizes,
     * past the end of a body): follow no more, change nothing. */
    notice(ctx, "bytes sent with sendfile() outside a plain body: passing this connection through");
    go_pass(s);
}
