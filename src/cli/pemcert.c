/* pemcert.c - validity dates and subject CN of the first certificate in a
 * PEM file, without OpenSSL (the kimifix CLI links only libc). A minimal,
 * bounded DER walk: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {
 * [0] version OPTIONAL, serial INTEGER, signature SEQUENCE, issuer Name,
 * validity SEQUENCE { notBefore Time, notAfter Time }, subject Name, ... }}.
 */
#include "doctor.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PEM_MAX (64u << 10)

typedef struct der {
    const unsigned char *p, *end;
} der;

/* Read one TLV; v gets its contents. 0 or -1 (malformed/out of bounds). */
static int tlv(der *d, unsigned *tag, der *v)
{
    if (d->end - d->p < 2)
        return -1;
    *tag = *d->p++;
    size_t len = *d->p++;
    if (len & 0x80) {
        unsigned nb = len & 0x7f;
        if (nb == 0 || nb > 4 || (size_t)(d->end - d->p) < nb)
            return -1;
        len = 0;
        while (nb--)
            len = len << 8 | *d->p++;
    }
    if ((size_t)(d->end - d->p) < len)
        return -1;
    v->p = d->p;
    v->end = d->p + len;
    d->p += len;
    return 0;
}

static int digits(const unsigned char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ. */
static int der_time(unsigned tag, const der *v, long long *out)
{
    size_t len = (size_t)(v->end - v->p);
    int yl = tag == 0x17 ? 2 : 4;
    if ((tag != 0x17 && tag != 0x18) || len != (size_t)yl + 11 || v->p[len - 1] != 'Z')
        return -1;
    int y = digits(v->p, yl);
    if (y < 0)
        return -1;
    if (tag == 0x17)
        y += y < 50 ? 2000 : 1900;
    const unsigned char *q = v->p + yl;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = digits(q, 2) - 1;
    tm.tm_mday = digits(q + 2, 2);
    tm.tm_hour = digits(q + 4, 2);
    tm.tm_min = digits(q + 6, 2);
    tm.tm_sec = digits(q + 8, 2);
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour < 0 ||
        tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
        return -1;
    *out = (long long)timegm(&tm);
    return 0;
}

/* The commonName (OID 2.5.4.3) of a Name, printable characters only. */
static void name_cn(der name, char *cn, size_t n)
{
    static const unsigned char oid_cn[] = {0x55, 0x04, 0x03};
    unsigned tag;
    der set, atv, oid, val;
    while (name.p < name.end && tlv(&name, &tag, &set) == 0) {
        while (set.p < set.end && tlv(&set, &tag, &atv) == 0) {
            if (tlv(&atv, &tag, &oid) != 0 || tag != 0x06 || tlv(&atv, &tag, &val) != 0)
                continue;
            if (oid.end - oid.p != 3 || memcmp(oid.p, oid_cn, 3) != 0)
                continue;
            size_t k = 0;
            for (const unsigned char *c = val.p; c < val.end && k + 1 < n; c++)
                cn[k++] = (*c >= 0x20 && *c < 0x7f) ? (char)*c : '?';
            cn[k] = 0;
            return;
        }
    }
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decode the base64 between BEGIN CERTIFICATE and END in place. */
static ssize_t pem_decode(char *text, size_t len, unsigned char *out, size_t n)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    char *b = memmem(text, len, begin, sizeof begin - 1);
    if (!b)
        return -1;
    b += sizeof begin - 1;
    char *e = memmem(b, len - (size_t)(b - text), end, sizeof end - 1);
    if (!e)
        return -1;
    size_t o = 0;
    unsigned acc = 0, bits = 0;
    for (const char *c = b; c < e; c++) {
        int v = b64val((unsigned char)*c);
        if (v < 0)
            continue; /* whitespace, '=' */
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= n)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (ssize_t)o;
}

int kf_pem_cert_info(const char *path, long long *not_before, long long *not_after, char *cn,
                     size_t cnlen, const char **why)
{
    static char text[PEM_MAX];
    static unsigned char bin[PEM_MAX];
    if (cnlen)
        cn[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *why = "cannot open";
        return -1;
    }
    ssize_t len = read(fd, text, sizeof text - 1);
    close(fd);
    if (len <= 0) {
        *why = "empty or unreadable";
        return -1;
    }
    ssize_t bl = pem_decode(text, (size_t)len, bin, sizeof bin);
    if (bl <= 0) {
        *why = "no PEM certificate in it";
        return -1;
    }
    der d = {bin, bin + bl}, cert, tbs, v;
    unsigned tag;
    *why = "malformed certificate";
    if (tlv(&d, &tag, &cert) != 0 || tag != 0x30 || tlv(&cert, &tag, &tbs) != 0 || tag != 0x30)
        return -1;
    if (tbs.p < tbs.end && *tbs.p == 0xa0 && tlv(&tbs, &tag, &v) != 0) /* [0] version */
        return -1;
    if (tlv(&tbs, &tag, &v) != 0 || tag != 0x02 ||    /* serial */
        tlv(&tbs, &tag, &v) != 0 || tag != 0x30 ||    /* signature */
        tlv(&tbs, &tag, &v) != 0 || tag != 0x30)      /* issuer */
        return -1;
    der validity, t;
    if (tlv(&tbs, &tag, &validity) != 0 || tag != 0x30)
        return -1;
    if (tlv(&validity, &tag, &t) != 0 || der_time(tag, &t, not_before) != 0 ||
        tlv(&validity, &tag, &t) != 0 || der_time(tag, &t, not_after) != 0)
        return -1;
    if (cnlen && tlv(&tbs, &tag, &v) == 0 && tag == 0x30)
        name_cn(v, cn, cnlen);
    *why = NULL;
    return 0;
}
