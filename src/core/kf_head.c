/* kf_head.c - parse one complete HTTP/1 request head, write it back out.
 *
 * picohttpparser's taste: one pass, no allocation, views into the bytes.
 * Strict where leniency could change meaning (obs-fold, bare CR, NUL,
 * conflicting lengths): such heads are reported malformed and the stream
 * passes them, and everything after them, through unchanged.
 */
#include "kf_head.h"
#include "kf_scan.h"
#include "kf_word.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

static const char tchar_map[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* Bytes allowed in a field value: HTAB, SP, visible ASCII and obs-text;
 * never NUL, CR, LF or other controls (kf_scan_ctl finds those). */

static void split_target(kf_req *req, struct kf_headbuf *hb, kf_str t)
{
    const char *p = t.p, *end = t.p + t.n;
    hb->target_prefix = (kf_str){ p, 0 };
    if (t.n && t.p[0] != '/') {
        const char *sep = memmem(p, t.n, "://", 3);
        if (!sep || !(t.n >= 7 && (strncasecmp(p, "http://", 7) == 0 ||
                                   (t.n >= 8 && strncasecmp(p, "https://", 8) == 0)))) {
            /* authority-form (CONNECT) or "*": the whole target is the path */
            req->path = t;
            req->query = (kf_str){ end, 0 };
            return;
        }
        const char *a = sep + 3;
        while (a < end && *a != '/' && *a != '?')
            a++;
        hb->target_prefix = (kf_str){ p, (size_t)(a - p) };
        p = a;
    }
    const char *q = memchr(p, '?', (size_t)(end - p));
    if (!q)
        q = end;
    req->path = (kf_str){ p, (size_t)(q - p) };
    req->query = (kf_str){ q, (size_t)(end - q) };
}

#define METHOD_MAX 32 /* as the stream's scanner (kf_stream.c) */

/* s (a header name or token) equals lit (lower case letters and '-') in
 * ASCII case? c | 0x20 folds exactly here: no other tchar folds onto a
 * lower-case letter or '-'. */
static int name_is(kf_str s, const char *lit, size_t n)
{
    if (s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s.p[i] | 0x20) != (unsigned char)lit[i])
            return 0;
    return 1;
}

#define NAME_IS(s, lit) name_is((s), (lit), sizeof(lit) - 1)

/* Last comma-separated token of a header value, trimmed. */
static kf_str last_token(kf_str v)
{
    const char *c = v.p + v.n;
    while (c > v.p && c[-1] != ',')
        c--;
    return kf_str_trim((kf_str){ c, (size_t)(v.p + v.n - c) });
}

static int has_upgrade_token(kf_str v)
{
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        if (!c)
            c = end;
        if (NAME_IS(kf_str_trim((kf_str){ p, (size_t)(c - p) }), "upgrade"))
            return 1;
        p = c + 1;
    }
    return 0;
}

static int parse_length(kf_str v, uint64_t *out)
{
    if (v.n == 0 || v.n > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    *out = n;
    return 0;
}

/* What the framing headers and Host said. Nothing here calls a function
 * while the header lines are read (the Host value and the Connection
 * tokens are looked at after the loop), so the scans keep their constants
 * in registers. */
struct framing_seen {
    int have_cl, have_te, upgrade, have_conn, host_seen;
    uint64_t cl;
    kf_str te_last;
    kf_str host;
};

/* name_is for a header name of exactly sizeof(lit) - 1 bytes (4 or more;
 * the caller checked the length), a word at a time: the last word overlaps
 * the one before it. Same folding as name_is (the name holds only tchars). */
static inline __attribute__((always_inline)) int name_is_w(const char *s, const char *lit, size_t n)
{
    if (n < 8) {
        const uint32_t f = 0x20202020u;
        return (((kf_load4(s) | f) ^ kf_load4(lit)) | ((kf_load4(s + n - 4) | f) ^ kf_load4(lit + n - 4))) == 0;
    }
    const uint64_t f = 0x2020202020202020ull;
    uint64_t diff = (kf_load8(s + n - 8) | f) ^ kf_load8(lit + n - 8);
    for (size_t i = 0; i + 8 < n; i += 8)
        diff |= (kf_load8(s + i) | f) ^ kf_load8(lit + i);
    return diff == 0;
}

#define NAME_IS_W(s, lit) name_is_w((s).p, (lit), sizeof(lit) - 1)

/* Headers that frame the body, and Host. The name's length picks the one
 * candidate before any byte is compared. */
static inline __attribute__((always_inline)) int note_header(struct framing_seen *f, kf_str name,
                                                             kf_str value)
{
    switch (name.n) {
    case 4:
        if (NAME_IS_W(name, "host")) {
            if (f->host_seen++)
                return -1;
            f->host = value;
        }
        break;
    case 7:
        f->upgrade |= NAME_IS_W(name, "upgrade");
        break;
    case 10:
        f->have_conn |= NAME_IS_W(name, "connection");
        break;
    case 14:
        if (NAME_IS_W(name, "content-length")) {
            uint64_t n;
            if (parse_length(value, &n) != 0 || (f->have_cl && n != f->cl))
                return -1;
            f->have_cl = 1;
            f->cl = n;
        }
        break;
    case 17:
        if (NAME_IS_W(name, "transfer-encoding")) {
            f->have_te = 1;
            f->te_last = last_token(value);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* An "upgrade" token in any Connection header (only asked when an Upgrade
 * header came too). */
static int conn_upgrade(const kf_req *req)
{
    for (unsigned i = 0; i < req->nhdr; i++)
        if (NAME_IS(req->hdr[i].name, "connection") && has_upgrade_token(req->hdr[i].value))
            return 1;
    return 0;
}

static void decide_framing(const kf_req *req, const struct framing_seen *f, kf_head_info *info)
{
    info->length = 0;
    if (kf_str_eq(req->method, KF_STR("CONNECT")) || (f->upgrade && f->have_conn && conn_upgrade(req)))
        info->framing = KF_FRAME_TUNNEL;
    else if (f->have_te)
        info->framing = NAME_IS(f->te_last, "chunked") ? KF_FRAME_CHUNKED : KF_FRAME_TUNNEL;
    else if (f->have_cl) {
        info->framing = f->cl ? KF_FRAME_LENGTH : KF_FRAME_NONE;
        info->length = f->cl;
    } else
        info->framing = KF_FRAME_NONE;
}

/* The empty line that ends the head at p, or junk (-1). */
static int end_of_head(struct kf_headbuf *hb, const char *p, const char *end)
{
    if (p < end && (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n'))) {
        hb->end_line = (kf_str){ p, (size_t)(*p == '\n' ? 1 : 2) };
        return 0;
    }
    return -1; /* obs-fold (meaning depends on the server), or junk */
}

/* The request line and header lines, once per instruction set: the
 * scans are inlined into each copy (kf_head_lines.h). */
#define KF_L(name) name##_base
#define KF_L_ATTR
#define KF_L_SCAN_NAME kf_scan_name
#define KF_L_SCAN_CTL kf_scan_ctl
#define KF_L_SCAN_TARGET kf_scan_target
#include "kf_head_lines.h"
#if defined(KF_SCAN_HAVE_AVX2)
#define KF_L(name) name##_avx2
#define KF_L_ATTR KF_AVX2
#define KF_L_SCAN_NAME kf_scan_name_avx2
#define KF_L_SCAN_CTL kf_scan_ctl_avx2
#define KF_L_SCAN_TARGET kf_scan_target_avx2
#include "kf_head_lines.h"
#endif

/* Tests run both copies on a machine that has AVX2. */
static int force_base;

void kf_head_force_base(int on)
{
    force_base = on;
}

long kf_head_parse_prefix(struct kf_headbuf *hb, const kf_ctx *ctx, const char *head, size_t n,
                          kf_head_info *info)
{
    kf_req *req = &hb->req;
    struct framing_seen f = { 0 };

    kf_req_init(req);
    req->tls = ctx->tls;
#if defined(KF_SCAN_HAVE_AVX2)
    const char *p = !force_base && kf_scan_avx2_usable() ? parse_lines_avx2(hb, head, head + n, &f)
                                                         : parse_lines_base(hb, head, head + n, &f);
#else
    const char *p = parse_lines_base(hb, head, head + n, &f);
#endif
    if (!p)
        return -1;
    if (f.host_seen)
        kf_req_set_host(req, f.host);
    else if (ctx->host) {
        req->host = kf_str_c(ctx->host);
        req->port = ctx->port ? ctx->port : (ctx->tls ? 443u : 80u);
    }
    decide_framing(req, &f, info);
    return (long)(p - head);
}

int kf_head_parse(struct kf_headbuf *hb, const kf_ctx *ctx, const char *head, size_t n,
                  kf_head_info *info)
{
    return kf_head_parse_prefix(hb, ctx, head, n, info) == (long)n ? 0 : -1;
}

static kf_str line_eol(kf_str line)
{
    size_t k = (line.n >= 2 && line.p[line.n - 2] == '\r') ? 2 : 1;
    return (kf_str){ line.p + line.n - k, k };
}

/* The parsed head's layout, which the writer relies on: the request line,
 * the header lines and the empty line are adjacent in the original bytes
 * (kf_head_parse_prefix takes them in one pass), so any unchanged stretch
 * of them is one copy. Only kf_rules_apply() changes a header's state, and
 * it sets KF_CHG_HEADERS whenever it does: without that bit every header
 * is original and the whole header block is one run; with it, headers
 * before req->hdr_first_change are original too. */
static const char *hdr_block(const struct kf_headbuf *hb)
{
    return hb->rl_line.p + hb->rl_line.n;
}

static const char *head_end(const struct kf_headbuf *hb)
{
    return hb->end_line.p + hb->end_line.n;
}

static int path_changed(const struct kf_headbuf *hb)
{
    return (hb->req.changed & KF_CHG_PATH) != 0;
}

/* A changed request line = the original bytes up to the path ("POST " and
 * the scheme and authority of an absolute-form target), the new path, and
 * the original bytes from the query on (" HTTP/1.1\r\n" after it): no
 * rule changes the method, the query or the version. */
static const char *rl_path_start(const struct kf_headbuf *hb)
{
    return hb->target_prefix.p + hb->target_prefix.n;
}

static size_t field_size(const kf_hdr *h, const struct kf_headbuf *hb)
{
    size_t eol = h->state == KF_HDR_ADDED ? hb->rl_eol.n : line_eol(h->line).n;
    return h->name.n + 2 + h->value.n + eol;
}

size_t kf_head_size(const struct kf_headbuf *hb)
{
    const kf_req *req = &hb->req;
    size_t n = (size_t)(head_end(hb) - hb->rl_line.p);
    if (path_changed(hb))
        n = n - hb->rl_line.n + (size_t)(rl_path_start(hb) - hb->rl_line.p) + req->path.n +
            (size_t)(hdr_block(hb) - req->query.p);
    if (!(req->changed & KF_CHG_HEADERS))
        return n;
    for (unsigned i = req->hdr_first_change; i < req->nhdr; i++) {
        const kf_hdr *h = &req->hdr[i];
        if (h->state == KF_HDR_ORIG)
            continue;
        if (h->line.p)
            n -= h->line.n; /* an original line changed or removed */
        if (h->state != KF_HDR_REMOVED)
            n += field_size(h, hb);
    }
    return n;
}

static char *put(char *o, const char *p, size_t n)
{
    memcpy(o, p, n);
    return o + n;
}

static char *put_field(char *o, const kf_hdr *h, kf_str eol)
{
    o = put(o, h->name.p, h->name.n);
    *o++ = ':';
    *o++ = ' ';
    o = put(o, h->value.p, h->value.n);
    return put(o, eol.p, eol.n);
}

size_t kf_head_write(const struct kf_headbuf *hb, char *out)
{
    const kf_req *req = &hb->req;
    char *o = out;
    const char *run = hb->rl_line.p; /* original bytes not yet copied start here */
    if (path_changed(hb)) {
        o = put(o, run, (size_t)(rl_path_start(hb) - run));
        o = put(o, req->path.p, req->path.n);
        run = req->query.p;
    }
    if (req->changed & KF_CHG_HEADERS) {
        for (unsigned i = req->hdr_first_change; i < req->nhdr; i++) {
            const kf_hdr *h = &req->hdr[i];
            if (h->state == KF_HDR_ORIG)
                continue; /* part of the current run */
            /* Added headers come after every original one (kf_req_add_header
             * appends): they go just before the empty line. */
            const char *at = h->line.p ? h->line.p : hb->end_line.p;
            if (at > run) {
                o = put(o, run, (size_t)(at - run));
                run = at;
            }
            if (h->line.p)
                run = h->line.p + h->line.n;
            if (h->state == KF_HDR_CHANGED)
                o = put_field(o, h, line_eol(h->line));
            else if (h->state == KF_HDR_ADDED)
                o = put_field(o, h, hb->rl_eol);
        }
    }
    o = put(o, run, (size_t)(head_end(hb) - run));
    return (size_t)(o - out);
}
