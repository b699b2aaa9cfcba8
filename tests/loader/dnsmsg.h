/* dnsmsg.h - building DNS messages byte by byte, for the parser's tests,
 * its fuzz corpus and its benchmark. Nothing clever: every byte is where
 * the test puts it, so malformed messages are as easy as good ones. */
#ifndef KF_TEST_DNSMSG_H
#define KF_TEST_DNSMSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct dnsmsg {
    unsigned char b[4096];
    size_t n;
} dnsmsg;

static inline void dm_u8(dnsmsg *m, unsigned v)
{
    if (m->n < sizeof m->b)
        m->b[m->n++] = (unsigned char)v;
}

static inline void dm_u16(dnsmsg *m, unsigned v)
{
    dm_u8(m, v >> 8 & 0xff);
    dm_u8(m, v & 0xff);
}

static inline void dm_u32(dnsmsg *m, uint32_t v)
{
    dm_u16(m, v >> 16);
    dm_u16(m, v & 0xffff);
}

/* Header: flags 0x8180 is a normal recursive answer (QR, RD, RA). */
static inline void dm_header(dnsmsg *m, unsigned flags, unsigned qd, unsigned an, unsigned ns,
                             unsigned ar)
{
    m->n = 0;
    dm_u16(m, 0x1234);
    dm_u16(m, flags);
    dm_u16(m, qd);
    dm_u16(m, an);
    dm_u16(m, ns);
    dm_u16(m, ar);
}

/* A name as labels, uncompressed, ending with the root label. Returns its
 * offset (for pointers to it). */
static inline size_t dm_name(dnsmsg *m, const char *name)
{
    size_t at = m->n;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        dm_u8(m, (unsigned)l);
        for (size_t i = 0; i < l; i++)
            dm_u8(m, (unsigned char)name[i]);
        name += l + (dot ? 1 : 0);
    }
    dm_u8(m, 0);
    return at;
}

static inline void dm_ptr(dnsmsg *m, size_t off)
{
    dm_u16(m, 0xC000 | (unsigned)off);
}

static inline void dm_question(dnsmsg *m, const char *name, unsigned type)
{
    dm_name(m, name);
    dm_u16(m, type);
    dm_u16(m, 1);
}

/* Record fields after the owner name: type, class IN, TTL, rdlength. */
static inline void dm_rr_head(dnsmsg *m, unsigned type, unsigned rdlen)
{
    dm_u16(m, type);
    dm_u16(m, 1);
    dm_u32(m, 300);
    dm_u16(m, rdlen);
}

static inline void dm_a(dnsmsg *m, unsigned a, unsigned b, unsigned c, unsigned d)
{
    dm_rr_head(m, 1, 4);
    dm_u8(m, a);
    dm_u8(m, b);
    dm_u8(m, c);
    dm_u8(m, d);
}

/* The usual answer: "NAME A a.b.c.d", the owner a pointer to the question. */
static inline void dm_simple(dnsmsg *m, const char *name, unsigned a, unsigned b, unsigned c,
                             unsigned d)
{
    dm_header(m, 0x8180, 1, 1, 0, 0);
    dm_question(m, name, 1);
    dm_ptr(m, 12);
    dm_a(m, a, b, c, d);
}

#endif
