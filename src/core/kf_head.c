/* kf_head.c - parse one complete HTTP/1 request head, write it back out.
 *
 * picohttpparser's taste: one pass, no allocation, views into the bytes.
 * Strict where leniency could change meaning (obs-fold, bare CR, NUL,
 * conflicting lengths): such heads are reported malformed and the stream
 * passes them, and everything after them, through unchanged.
 */
#include "kf_head.h"

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
 * never NUL, CR, LF or other controls. */
static const char vchar_map[256] = { ['\t'] = 1, [0x20 ... 0x7e] = 1, [0x80 ... 0xff] = 1 };

static int is_token(kf_str s)
{
    if (s.n == 0)
        return 0;
    for (size_t i = 0; i < s.n; i++)
        if (!tchar_map[(unsigned char)s.p[i]])
            return 0;
    return 1;
}

static int is_target(kf_str s)
{
    if (s.n == 0)
        return 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c <= 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* One line [p, end): returns the LF position or NULL; sets the content end
 * (before CR LF / LF). A CR anywhere else in the line is malformed. */
static const char *line_end(const char *p, const char *end, const char **content_end)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    if (!lf)
        return NULL;
    const char *ce = (lf > p && lf[-1] == '\r') ? lf - 1 : lf;
    if (memchr(p, '\r', (size_t)(ce - p)))
        return NULL;
    *content_end = ce;
    return lf;
}

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

static int parse_request_line(struct kf_headbuf *hb, const char *p, const char *end,
                              const char **next)
{
    kf_req *req = &hb->req;
    const char *ce, *lf = line_end(p, end, &ce);
    if (!lf)
        return -1;
    hb->rl_line = (kf_str){ p, (size_t)(lf + 1 - p) };
    hb->rl_eol = (kf_str){ ce, (size_t)(lf + 1 - ce) };
    const char *sp1 = memchr(p, ' ', (size_t)(ce - p));
    if (!sp1)
        return -1;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(ce - sp1 - 1));
    if (!sp2)
        return -1;
    req->method = (kf_str){ p, (size_t)(sp1 - p) };
    kf_str target = { sp1 + 1, (size_t)(sp2 - sp1 - 1) };
    req->version = (kf_str){ sp2 + 1, (size_t)(ce - sp2 - 1) };
    if (!is_token(req->method) || !is_target(target))
        return -1;
    if (req->version.n != 8 || memcmp(req->version.p, "HTTP/1.", 7) != 0 ||
        req->version.p[7] < '0' || req->version.p[7] > '9')
        return -1;
    split_target(req, hb, target);
    *next = lf + 1;
    return 0;
}

/* Last comma-separated token of a header value, trimmed. */
static kf_str last_token(kf_str v)
{
    const char *c = v.p + v.n;
    while (c > v.p && c[-1] != ',')
        c--;
    return kf_str_trim((kf_str){ c, (size_t)(v.p + v.n - c) });
}

static int has_token_ci(kf_str v, const char *tok)
{
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        if (!c)
            c = end;
        if (kf_str_ieq_c(kf_str_trim((kf_str){ p, (size_t)(c - p) }), tok))
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

struct framing_seen {
    int have_cl, have_te, upgrade, conn_upgrade;
    uint64_t cl;
    kf_str te_last;
};

#define NAME_IS(name, lit) ((name).n == sizeof(lit) - 1 && kf_str_ieq_c((name), (lit)))

static int note_framing(struct framing_seen *f, kf_str name, kf_str value)
{
    if (NAME_IS(name, "content-length")) {
        uint64_t n;
        if (parse_length(value, &n) != 0 || (f->have_cl && n != f->cl))
            return -1;
        f->have_cl = 1;
        f->cl = n;
    } else if (NAME_IS(name, "transfer-encoding")) {
        f->have_te = 1;
        f->te_last = last_token(value);
    } else if (NAME_IS(name, "upgrade")) {
        f->upgrade = 1;
    } else if (NAME_IS(name, "connection")) {
        f->conn_upgrade |= has_token_ci(value, "upgrade");
    }
    return 0;
}

static void decide_framing(const kf_req *req, const struct framing_seen *f, kf_head_info *info)
{
    info->length = 0;
    if (kf_str_eq(req->method, KF_STR("CONNECT")) || (f->upgrade && f->conn_upgrade))
        info->framing = KF_FRAME_TUNNEL;
    else if (f->have_te)
        info->framing = kf_str_ieq_c(f->te_last, "chunked") ? KF_FRAME_CHUNKED : KF_FRAME_TUNNEL;
    else if (f->have_cl) {
        info->framing = f->cl ? KF_FRAME_LENGTH : KF_FRAME_NONE;
        info->length = f->cl;
    } else
        info->framing = KF_FRAME_NONE;
}

int kf_head_parse(struct kf_headbuf *hb, const kf_ctx *ctx, const char *head, size_t n,
                  kf_head_info *info)
{
    kf_req *req = &hb->req;
    const char *p = head, *end = head + n;
    struct framing_seen f = { 0 };
    int host_seen = 0;

    kf_req_init(req);
    req->tls = ctx->tls;
    if (parse_request_line(hb, p, end, &p) != 0)
        return -1;
    for (;;) {
        if (p >= end)
            return -1;
        if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
            hb->end_line = (kf_str){ p, (size_t)(end - p) };
            if (hb->end_line.n != (size_t)(*p == '\n' ? 1 : 2))
                return -1;
            break;
        }
        if (*p == ' ' || *p == '\t')
            return -1; /* obs-fold: meaning depends on the server; don't touch */
        /* One pass over the line: token name, ':', value bytes, CR LF or LF. */
        const char *q = p;
        while (q < end && tchar_map[(unsigned char)*q])
            q++;
        if (q == p || q >= end || *q != ':')
            return -1;
        kf_str name = { p, (size_t)(q - p) };
        const char *v = ++q;
        while (q < end && vchar_map[(unsigned char)*q])
            q++;
        const char *ce = q, *lf;
        if (q < end && *q == '\n')
            lf = q;
        else if (q + 1 < end && q[0] == '\r' && q[1] == '\n')
            lf = q + 1;
        else
            return -1; /* NUL, bare CR, other controls, or no line end */
        kf_str value = kf_str_trim((kf_str){ v, (size_t)(ce - v) });
        if (kf_req_add_header(req, name, value, (kf_str){ p, (size_t)(lf + 1 - p) }) != 0)
            return -1;
        if (note_framing(&f, name, value) != 0)
            return -1;
        if (NAME_IS(name, "host")) {
            if (host_seen++)
                return -1;
            kf_req_set_host(req, value);
        }
        p = lf + 1;
    }
    if (!host_seen && ctx->host) {
        req->host = kf_str_c(ctx->host);
        req->port = ctx->port ? ctx->port : (ctx->tls ? 443u : 80u);
    }
    decide_framing(req, &f, info);
    return 0;
}

static kf_str line_eol(kf_str line)
{
    size_t k = (line.n >= 2 && line.p[line.n - 2] == '\r') ? 2 : 1;
    return (kf_str){ line.p + line.n - k, k };
}

static int path_changed(const struct kf_headbuf *hb)
{
    return (hb->req.changed & KF_CHG_PATH) != 0;
}

size_t kf_head_size(const struct kf_headbuf *hb)
{
    const kf_req *req = &hb->req;
    size_t n;
    if (path_changed(hb))
        n = req->method.n + 1 + hb->target_prefix.n + req->path.n + req->query.n + 1 +
            req->version.n + hb->rl_eol.n;
    else
        n = hb->rl_line.n;
    for (unsigned i = 0; i < req->nhdr; i++) {
        const kf_hdr *h = &req->hdr[i];
        switch (h->state) {
        case KF_HDR_ORIG: n += h->line.n; break;
        case KF_HDR_CHANGED: n += h->name.n + 2 + h->value.n + line_eol(h->line).n; break;
        case KF_HDR_ADDED: n += h->name.n + 2 + h->value.n + hb->rl_eol.n; break;
        default: break;
        }
    }
    return n + hb->end_line.n;
}

static char *put(char *o, kf_str s)
{
    memcpy(o, s.p, s.n);
    return o + s.n;
}

static char *put_field(char *o, const kf_hdr *h, kf_str eol)
{
    o = put(o, h->name);
    *o++ = ':';
    *o++ = ' ';
    o = put(o, h->value);
    return put(o, eol);
}

size_t kf_head_write(const struct kf_headbuf *hb, char *out)
{
    const kf_req *req = &hb->req;
    char *o = out;
    if (path_changed(hb)) {
        o = put(o, req->method);
        *o++ = ' ';
        o = put(o, hb->target_prefix);
        o = put(o, req->path);
        o = put(o, req->query);
        *o++ = ' ';
        o = put(o, req->version);
        o = put(o, hb->rl_eol);
    } else
        o = put(o, hb->rl_line);
    for (unsigned i = 0; i < req->nhdr; i++) {
        const kf_hdr *h = &req->hdr[i];
        switch (h->state) {
        case KF_HDR_ORIG: o = put(o, h->line); break;
        case KF_HDR_CHANGED: o = put_field(o, h, line_eol(h->line)); break;
        case KF_HDR_ADDED: o = put_field(o, h, hb->rl_eol); break;
        default: break;
        }
    }
    o = put(o, hb->end_line);
    return (size_t)(o - out);
}
