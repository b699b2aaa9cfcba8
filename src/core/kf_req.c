/* kf_req.c - the request model: views, header lookup, scratch, summary.
 *
 * Nothing here allocates: every string is a view into bytes owned by the
 * caller (the client's head), the ruleset, or req->scratch.
 */
#include <stdio.h>
#include <string.h>

#include "kf_redact.h"
#include "kf_mask.h"
#include "kf_req.h"
#include "kf_rules.h"
#include "kf_word.h"

void kf_req_init(kf_req *req)
{
    /* hdr[] and scratch are left as they are: only the counters matter. */
    req->method = req->path = req->query = req->version = req->host = (kf_str){ NULL, 0 };
    req->port = 0;
    req->tls = 0;
    req->nhdr = 0;
    req->orig_path = req->orig_host = req->upstream_host = (kf_str){ NULL, 0 };
    req->upstream_port = 0;
    req->changed = 0;
    req->hdr_first_change = ~0u;
    req->nfired = 0;
    req->nskipped = 0;
    req->scratch_used = 0;
}

int kf_req_add_header(kf_req *req, kf_str name, kf_str value, kf_str line)
{
    if (req->nhdr >= KF_MAX_HEADERS)
        return -1;
    kf_hdr *h = &req->hdr[req->nhdr++];
    h->name = name;
    h->value = value;
    h->orig_value = value;
    h->line = line;
    h->state = KF_HDR_ORIG;
    return 0;
}


int kf_req_find_header(const kf_req *req, kf_str name, unsigned from)
{
    if (name.n == 0)
        return -1; /* no header has an empty name */
    /* Length, then the first byte folded (| 0x20 never makes two letters
     * equal that differ in more than case; a false candidate is caught by
     * the full compare), then the whole name. */
    unsigned char c0 = (unsigned char)(name.p[0] | 0x20);
    for (const kf_hdr *h = req->hdr + from, *e = req->hdr + req->nhdr; h < e; h++) {
        if (h->name.n != name.n)
            continue; /* most headers: one compare */
        if ((unsigned char)(h->name.p[0] | 0x20) == c0 && h->state != KF_HDR_REMOVED &&
            kf_same_bytes_ci(h->name.p, name.p, name.n))
            return (int)(h - req->hdr);
    }
    return -1;
}

kf_str kf_req_store(kf_req *req, const char *p, size_t n)
{
    if (n > KF_SCRATCH - req->scratch_used)
        return (kf_str){ NULL, 0 };
    char *dst = req->scratch + req->scratch_used;
    if (n)
        memmove(dst, p, n);
    req->scratch_used += n;
    return (kf_str){ dst, n };
}

/* Parse "h", "h:p", "[v6]", "[v6]:p"; a trailing dot on a name is dropped
 * so "api.kimi.com." matches like "api.kimi.com". */
void kf_req_set_host(kf_req *req, kf_str hp)
{
    hp = kf_str_trim(hp);
    kf_str h = hp;
    kf_str port = { NULL, 0 };
    if (hp.n && hp.p[0] == '[') {
        const char *close = memchr(hp.p, ']', hp.n);
        if (close) {
            h = (kf_str){ hp.p + 1, (size_t)(close - hp.p - 1) };
            size_t rest = hp.n - (size_t)(close - hp.p) - 1;
            if (rest >= 1 && close[1] == ':')
                port = (kf_str){ close + 2, rest - 1 };
        }
    } else {
        const char *colon = memchr(hp.p ? hp.p : "", ':', hp.n);
        if (colon) {
            h = (kf_str){ hp.p, (size_t)(colon - hp.p) };
            port = (kf_str){ colon + 1, hp.n - h.n - 1 };
        }
    }
    if (h.n > 1 && h.p[h.n - 1] == '.')
        h.n--;
    req->host = h;
    unsigned v = 0;
    int ok = port.n > 0 && port.n <= 5;
    for (size_t i = 0; ok && i < port.n; i++) {
        if (port.p[i] < '0' || port.p[i] > '9')
            ok = 0;
        else
            v = v * 10 + (unsigned)(port.p[i] - '0');
    }
    if (ok && v > 0 && v <= 65535)
        req->port = v;
    else
        req->port = req->tls ? 443 : 80;
}

kf_str kf_req_api_key(const kf_req *req)
{
    static const kf_str auth = KF_STR("Authorization");
    static const kf_str xkey = KF_STR("x-api-key");
    for (int i = kf_req_find_header(req, auth, 0); i >= 0;
         i = kf_req_find_header(req, auth, (unsigned)i + 1)) {
        kf_str v = kf_str_trim(req->hdr[i].value);
        if (v.n > 7 && kf_str_ieq_c((kf_str){ v.p, 6 }, "bearer") &&
            (v.p[6] == ' ' || v.p[6] == '\t'))
            return kf_str_trim((kf_str){ v.p + 7, v.n - 7 });
    }
    int i = kf_req_find_header(req, xkey, 0);
    if (i >= 0)
        return kf_str_trim(req->hdr[i].value);
    return (kf_str){ NULL, 0 };
}

/* ---- summary ---- */

typedef struct sbuf {
    char *p;
    size_t n, len;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->n == 0)
        return;
    size_t room = b->n - 1 - b->len;
    if (n > room)
        n = room;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, kf_str s) { sb_put(b, s.p, s.n); }
static void sb_c(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_target(sbuf *b, kf_str path, kf_str query)
{
    char t[1024];
    size_t n = kf_redact_target(path, query, t, sizeof t);
    sb_put(b, t, n);
}

static void sb_value(sbuf *b, kf_str name, kf_str value)
{
    char t[512];
    size_t n = kf_redact_value(name, value, t, sizeof t);
    sb_put(b, t, n);
}

size_t kf_req_summary(const kf_req *req, char *buf, size_t n)
{
    sbuf b = { buf, n, 0 };
    if (n)
        buf[0] = '\0';
    sb_str(&b, req->method);
    sb_c(&b, " ");
    int path_changed = req->orig_path.p && !kf_str_eq(req->orig_path, req->path);
    sb_target(&b, path_changed ? req->orig_path : req->path, req->query);
    if (path_changed) {
        sb_c(&b, " -> ");
        sb_target(&b, req->path, req->query);
    }
    for (unsigned i = 0; i < req->nhdr; i++) {
        const kf_hdr *h = &req->hdr[i];
        switch (h->state) {
        case KF_HDR_CHANGED:
            sb_c(&b, "; ");
            sb_str(&b, h->name);
            sb_c(&b, ": ");
            sb_value(&b, h->name, h->orig_value);
            sb_c(&b, " -> ");
            sb_value(&b, h->name, h->value);
            break;
        case KF_HDR_ADDED:
            sb_c(&b, "; +");
            sb_str(&b, h->name);
            sb_c(&b, ": ");
            sb_value(&b, h->name, h->value);
            break;
        case KF_HDR_REMOVED:
            if (!h->line.p)
                break; /* added then removed again: nothing on the wire */
            sb_c(&b, "; -");
            sb_str(&b, h->name);
            break;
        default:
            break;
        }
    }
    if (req->upstream_host.n) {
        sb_c(&b, "; upstream ");
        int v6 = memchr(req->upstream_host.p, ':', req->upstream_host.n) != NULL;
        if (v6)
            sb_c(&b, "[");
        sb_str(&b, req->upstream_host);
        if (v6)
            sb_c(&b, "]");
        if (req->upstream_port) {
            char pb[8];
            unsigned p = req->upstream_port;
            size_t k = sizeof pb;
            do {
                pb[--k] = (char)('0' + p % 10);
                p /= 10;
            } while (p && k > 1);
            pb[--k] = ':';
            sb_put(&b, pb + k, sizeof pb - k);
        }
    }
    return b.len;
}

size_t kf_rule_names(const struct kf_rule *const *r, unsigned nr, char *buf, size_t n)
{
    if (n == 0)
        return 0;
    int w = snprintf(buf, n, "rule%s ", nr == 1 ? "" : "s");
    size_t used = w > 0 && (size_t)w < n ? (size_t)w : 0;
    for (unsigned i = 0; i < nr && used + 1 < n; i++) {
        w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", kf_rule_name(r[i]));
        if (w < 0)
            break;
        used += (size_t)w < n - used ? (size_t)w : n - used - 1;
    }
    return used;
}

/* The values of the request's secret headers (as received and as sent):
 * "Authorization: Bearer K", "x-api-key: K", "apikey: K"... A client may
 * repeat its key elsewhere (a query value, a header a rule copies it to),
 * and an upstream may echo it. kf_redact_*() and every log line mask noted
 * keys: the summary needs no key list of its own (and so stays a function
 * of the request's non-secret bytes, as fuzz_relay_head checks). */
void kf_req_note_keys(const kf_req *req)
{
    unsigned noted = 0;
    for (unsigned i = 0; i < req->nhdr && noted < 8; i++) {
        const kf_hdr *h = &req->hdr[i];
        if (!kf_is_secret_header(h->name))
            continue;
        kf_mask_note_key(h->orig_value); /* skips "Bearer " and keys under 8 bytes */
        if (h->value.p != h->orig_value.p)
            kf_mask_note_key(h->value);
        noted++;
    }
}

size_t kf_req_log_text(const kf_req *req, char *buf, size_t n)
{
    /* This request is being logged: from now on its keys are masked in any
     * line this process logs (an upstream's error message may echo them;
     * the relay logs it: resp_tap.c). */
    kf_req_note_keys(req);
    size_t used = req->nfired ? kf_rule_names(req->fired, req->nfired, buf, n) : 0;
    if (used && used + 2 < n) {
        buf[used++] = ':';
        buf[used++] = ' ';
    }
    return used + kf_req_summary(req, buf + used, n - used);
}
