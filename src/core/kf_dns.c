/* kf_dns.c - reading DNS answers (see kf_dns.h). One pass to check the
 * answer section's shape, then the CNAME chain and the addresses from a
 * small table of its records. Every bound is explicit:
 *   - a compression pointer must point strictly below every pointer the
 *     same name followed before (and below the name's start): no loops;
 *   - at most KF_DNS_HOPS pointers and 255 bytes per name (RFC 1035);
 *   - at most KF_DNS_MAXRR answer records (a larger count: not read).
 */
#include "kf_dns.h"

#include <stdint.h>
#include <sys/socket.h>

#define KF_DNS_HDR 12
#define KF_DNS_HOPS 128  /* a 255-byte name has at most 127 labels */
#define KF_DNS_MAXRR 64  /* real answers carry a handful */

static unsigned rd16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* A cursor over one name's labels, following compression pointers. */
typedef struct kf_dn {
    const unsigned char *m;
    size_t n, pos, floor;
    unsigned total, hops;
} kf_dn;

static void dn_init(kf_dn *d, const unsigned char *m, size_t n, size_t pos)
{
    d->m = m;
    d->n = n;
    d->pos = pos;
    d->floor = pos;
    d->total = 0;
    d->hops = 0;
}

/* The next label: its length (0 = the root, end of name) with *lab at its
 * bytes, or -1 when the name is malformed. */
static int dn_next(kf_dn *d, const unsigned char **lab)
{
    for (;;) {
        if (d->pos >= d->n)
            return -1;
        unsigned c = d->m[d->pos];
        if ((c & 0xC0) == 0xC0) {
            if (d->pos + 1 >= d->n || ++d->hops > KF_DNS_HOPS)
                return -1;
            size_t to = (size_t)(c & 0x3F) << 8 | d->m[d->pos + 1];
            /* Why strictly below the last target, not just below the
             * pointer: labels read forward from a target may run over the
             * pointer itself and reach it again (a loop). */
            if (to >= d->floor)
                return -1;
            d->floor = d->pos = to;
            continue;
        }
        if (c & 0xC0) /* 0x40, 0x80: obsolete extended label types */
            return -1;
        if (d->pos + 1 + c > d->n)
            return -1;
        if (c == 0) { /* the root: its byte is the "+ 1" below */
            d->pos++;
            return 0;
        }
        d->total += c + 1;
        if (d->total + 1 > 255)
            return -1;
        *lab = d->m + d->pos + 1;
        d->pos += 1 + c;
        return (int)c;
    }
}

/* Where the name at pos ends in the record stream (after its root label
 * or its first pointer), without following pointers. 0 or -1. */
static int dn_end(const unsigned char *m, size_t n, size_t pos, size_t *end)
{
    while (pos < n) {
        unsigned c = m[pos];
        if ((c & 0xC0) == 0xC0) {
            if (pos + 2 > n)
                return -1;
            *end = pos + 2;
            return 0;
        }
        if (c & 0xC0)
            return -1;
        if (c == 0) {
            *end = pos + 1;
            return 0;
        }
        pos += 1 + c;
    }
    return -1;
}

/* Validate the whole name at pos and hash it (case-insensitive). */
static int dn_hash(const unsigned char *m, size_t n, size_t pos, uint32_t *h)
{
    kf_dn d;
    const unsigned char *lab;
    int l;
    uint32_t x = 2166136261u;
    dn_init(&d, m, n, pos);
    while ((l = dn_next(&d, &lab)) > 0) {
        x = (x ^ (uint32_t)l) * 16777619u;
        for (int i = 0; i < l; i++)
            x = (x ^ lower(lab[i])) * 16777619u;
    }
    *h = x;
    return l;
}

static int dn_eq(const unsigned char *m, size_t n, size_t a, size_t b)
{
    kf_dn x, y;
    dn_init(&x, m, n, a);
    dn_init(&y, m, n, b);
    for (;;) {
        const unsigned char *la, *lb;
        int na = dn_next(&x, &la), nb = dn_next(&y, &lb);
        if (na < 0 || na != nb)
            return 0;
        if (na == 0)
            return 1;
        for (int i = 0; i < na; i++)
            if (lower(la[i]) != lower(lb[i]))
                return 0;
    }
}

/* The name at pos as text: lower case, dots, no trailing dot. Host names
 * only: a label with a dot, a control byte, a space or a non-ASCII byte
 * cannot name a rule host, so such names are refused (-1). Returns the
 * length (at most 253: the wire name is at most 255 bytes). */
static int dn_text(const unsigned char *m, size_t n, size_t pos, char *out)
{
    kf_dn d;
    const unsigned char *lab;
    size_t o = 0;
    int l;
    dn_init(&d, m, n, pos);
    while ((l = dn_next(&d, &lab)) > 0) {
        if (o)
            out[o++] = '.';
        for (int i = 0; i < l; i++) {
            unsigned c = lab[i];
            if (c - 0x21u > 0x7eu - 0x21u || c == '.')
                return -1;
            out[o++] = (char)(c - 'A' < 26u ? c | 0x20u : c);
        }
    }
    if (l < 0 || o == 0)
        return -1;
    out[o] = 0;
    return (int)o;
}

int kf_dns_question(const unsigned char *msg, size_t n, char *qname, size_t *qend)
{
    if (!msg || n < KF_DNS_HDR)
        return 0;
    unsigned flags = rd16(msg + 2);
    if (!(flags & 0x8000) || (flags >> 11 & 0xF) != 0 || (flags & 0x0200) || (flags & 0xF))
        return 0; /* a query, another opcode, truncated (the TCP retry comes), an error */
    if (rd16(msg + 4) != 1)
        return 0;
    size_t end;
    if (dn_end(msg, n, KF_DNS_HDR, &end) || end + 4 > n)
        return 0;
    unsigned qtype = rd16(msg + end), qclass = rd16(msg + end + 2);
    if (qclass != 1 || (qtype != KF_DNS_A && qtype != KF_DNS_AAAA))
        return 0;
    int len = dn_text(msg, n, KF_DNS_HDR, qname);
    if (len <= 0)
        return 0;
    *qend = end + 4;
    return len;
}

/* One answer record, as the table keeps it. */
struct kf_rr {
    uint32_t owner_hash;
    uint16_t owner, type, rdata, rdlen;
    uint8_t in;
};

/* Parse the record at *pos; 0 or -1. */
static int rr_read(const unsigned char *m, size_t n, size_t *pos, struct kf_rr *rr)
{
    size_t p;
    if (dn_end(m, n, *pos, &p) || dn_hash(m, n, *pos, &rr->owner_hash) || p + 10 > n)
        return -1;
    unsigned rdlen = rd16(m + p + 8);
    if (p + 10 + rdlen > n)
        return -1;
    rr->owner = (uint16_t)*pos;
    rr->type = (uint16_t)rd16(m + p);
    rr->in = rd16(m + p + 2) == 1;
    rr->rdata = (uint16_t)(p + 10);
    rr->rdlen = (uint16_t)rdlen;
    if (rr->type == KF_DNS_CNAME) {
        size_t e;
        uint32_t h;
        /* The target fills the data exactly and is a valid name. */
        if (dn_end(m, n, rr->rdata, &e) || e != (size_t)rr->rdata + rdlen ||
            dn_hash(m, n, rr->rdata, &h))
            return -1;
    }
    *pos = p + 10 + rdlen;
    return 0;
}

struct kf_chain {
    uint16_t off[KF_DNS_MAXCHAIN];
    uint32_t hash[KF_DNS_MAXCHAIN];
    int n;
};

static int in_chain(const unsigned char *m, size_t n, const struct kf_chain *c, uint32_t h,
                    size_t off)
{
    for (int i = 0; i < c->n; i++)
        if (c->hash[i] == h && dn_eq(m, n, c->off[i], off))
            return 1;
    return 0;
}

/* Add CNAME targets of chain members until nothing changes (the records
 * may come in any order). Each round adds a name or ends: bounded. */
static void follow_cnames(const unsigned char *m, size_t n, const struct kf_rr *rr, int nrr,
                          struct kf_chain *c)
{
    for (int grew = 1; grew && c->n < KF_DNS_MAXCHAIN;) {
        grew = 0;
        for (int i = 0; i < nrr && c->n < KF_DNS_MAXCHAIN; i++) {
            if (rr[i].type != KF_DNS_CNAME || !rr[i].in ||
                !in_chain(m, n, c, rr[i].owner_hash, rr[i].owner))
                continue;
            uint32_t h;
            (void)dn_hash(m, n, rr[i].rdata, &h); /* valid: rr_read checked it */
            if (in_chain(m, n, c, h, rr[i].rdata))
                continue;
            c->off[c->n] = rr[i].rdata;
            c->hash[c->n++] = h;
            grew = 1;
        }
    }
}

int kf_dns_answers(const unsigned char *msg, size_t n, size_t qend, kf_dns_addr *out, int max)
{
    if (!msg || n < KF_DNS_HDR || n > KF_DNS_MSGMAX || qend > n)
        return -1;
    unsigned an = rd16(msg + 6);
    if (an > KF_DNS_MAXRR)
        return -1;
    struct kf_rr rr[KF_DNS_MAXRR];
    size_t pos = qend;
    for (unsigned i = 0; i < an; i++)
        if (rr_read(msg, n, &pos, &rr[i]))
            return -1;

    struct kf_chain c;
    c.n = 1;
    c.off[0] = KF_DNS_HDR;
    if (dn_hash(msg, n, KF_DNS_HDR, &c.hash[0]))
        return -1;
    follow_cnames(msg, n, rr, (int)an, &c);

    int k = 0;
    for (unsigned i = 0; i < an && k < max; i++) {
        const struct kf_rr *r = &rr[i];
        int fam = r->type == KF_DNS_A && r->rdlen == 4      ? AF_INET
                  : r->type == KF_DNS_AAAA && r->rdlen == 16 ? AF_INET6
                                                              : 0;
        if (!fam || !r->in || !in_chain(msg, n, &c, r->owner_hash, r->owner))
            continue;
        out[k].family = fam;
        for (unsigned j = 0; j < 16; j++)
            out[k].a[j] = j < r->rdlen ? msg[r->rdata + j] : 0;
        k++;
    }
    return k;
}
