/* kf_head_lines.h - private to kf_head.c, included once per instruction
 * set: the request line and the header lines of a head, in one pass, with
 * the byte scans of kf_scan.h inlined. Before each inclusion kf_head.c
 * defines
 *   KF_L(name)        the copy's name for a function (name_base, name_avx2)
 *   KF_L_ATTR         its target attribute (empty, or AVX2)
 *   KF_L_SCAN_NAME, KF_L_SCAN_CTL, KF_L_SCAN_TARGET   the scans to use
 * and this file undefines them at its end. No include guard: by design.
 */

/* Past the tchars at q (letters, digits and '-' fast; the rest, like '_'
 * or '.', one at a time). Inlined: it runs once per header line. */
static inline __attribute__((always_inline)) KF_L_ATTR const char *KF_L(skip_tchars)(const char *q,
                                                                           const char *end)
{
    for (;;) {
        q = KF_L_SCAN_NAME(q, end);
        if (q == end || !tchar_map[(unsigned char)*q])
            return q;
        q++;
    }
}

/* The request line: METHOD SP TARGET SP HTTP/1.d (CR) LF. 0, or -1
 * (malformed or incomplete). Exactly the rules of the stream's
 * byte-at-a-time scanner, so that either may decide. */
static KF_L_ATTR int KF_L(parse_request_line)(struct kf_headbuf *hb, const char *p, const char *end,
                                              const char **next)
{
    kf_req *req = &hb->req;
    const char *m = KF_L(skip_tchars)(p, end);
    if (m == p || m >= end || *m != ' ' || m - p > METHOD_MAX)
        return -1;
    const char *t = m + 1, *te = KF_L_SCAN_TARGET(t, end);
    if (te == t || te >= end || *te != ' ')
        return -1;
    const char *v = te + 1;
    if (end - v < 9 || memcmp(v, "HTTP/1.", 7) != 0 || v[7] < '0' || v[7] > '9')
        return -1;
    const char *ce = v + 8, *lf;
    if (*ce == '\n')
        lf = ce;
    else if (*ce == '\r' && ce + 1 < end && ce[1] == '\n')
        lf = ce + 1;
    else
        return -1;
    req->method = (kf_str){ p, (size_t)(m - p) };
    req->version = (kf_str){ v, 8 };
    hb->rl_line = (kf_str){ p, (size_t)(lf + 1 - p) };
    hb->rl_eol = (kf_str){ ce, (size_t)(lf + 1 - ce) };
    split_target(req, hb, (kf_str){ t, (size_t)(te - t) });
    *next = lf + 1;
    return 0;
}

/* The value of a header line from v (just after the ':'): bytes up to CR LF
 * or LF, trimmed. Returns the next line, or NULL (malformed, or the bytes
 * end first). The scan runs from v itself: the value's bytes, OWS
 * included, are then all >= SP or HTAB, so "<= SP" is "SP or HTAB" when
 * trimming. */
static inline __attribute__((always_inline)) KF_L_ATTR const char *KF_L(header_value)(const char *v,
                                                                                   const char *end,
                                                                                   kf_str *value)
{
    const char *ce = v, *lf;
    for (;;) {
        ce = KF_L_SCAN_CTL(ce, end);
        if (ce + 1 < end && ce[0] == '\r' && ce[1] == '\n') {
            lf = ce + 1;
            break;
        }
        if (ce == end)
            return NULL; /* no line end */
        if (*ce == '\n') {
            lf = ce;
            break;
        }
        if (*ce != '\t')
            return NULL; /* NUL, bare CR, other controls */
        ce++; /* HTAB: allowed in a value */
    }
    while (v < ce && (unsigned char)*v <= ' ')
        v++;
    while (ce > v && (unsigned char)ce[-1] <= ' ')
        ce--;
    *value = (kf_str){ v, (size_t)(ce - v) };
    return lf + 1;
}

/* The request line and the header lines from head up to end: the byte
 * after the head's empty line, or NULL (malformed, or it ends first).
 * Fills hb, hb->req's views and *f. */
static KF_L_ATTR const char *KF_L(parse_lines)(struct kf_headbuf *hb, const char *p,
                                              const char *end, struct framing_seen *f)
{
    kf_req *req = &hb->req;
    if (KF_L(parse_request_line)(hb, p, end, &p) != 0)
        return NULL;
    for (;;) {
        /* One pass over the line: token name, ':', value bytes, CR LF or LF.
         * The name usually stops at its ':' after the fast scan. */
        const char *q = KF_L_SCAN_NAME(p, end);
        if (__builtin_expect(q == end || *q != ':' || q == p, 0)) {
            if (q < end && *q != ':')
                q = KF_L(skip_tchars)(q, end); /* a rarer tchar ('_', '!'...): go on */
            if (q == p || q >= end || *q != ':') {
                if (q != p || end_of_head(hb, p, end) != 0)
                    return NULL;
                return p + hb->end_line.n;
            }
        }
        kf_str name = { p, (size_t)(q - p) }, value;
        const char *next = KF_L(header_value)(q + 1, end, &value);
        if (!next || req->nhdr >= KF_MAX_HEADERS)
            return NULL;
        kf_hdr *h = &req->hdr[req->nhdr++];
        h->name = name;
        h->value = h->orig_value = value;
        h->line = (kf_str){ p, (size_t)(next - p) };
        h->state = KF_HDR_ORIG;
        if (note_header(f, name, value) != 0)
            return NULL;
        p = next;
    }
}

#undef KF_L
#undef KF_L_ATTR
#undef KF_L_SCAN_NAME
#undef KF_L_SCAN_CTL
#undef KF_L_SCAN_TARGET
