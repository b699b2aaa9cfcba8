/* kf_word.h - private to the engine: byte compares and searches a machine
 * word at a time, for the short strings a request head is made of (header
 * names, path prefixes, paths). Unaligned loads through memcpy (one
 * instruction on x86-64); nothing is read outside the bytes given. */
#ifndef KF_WORD_H
#define KF_WORD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t kf_load8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint32_t kf_load4(const char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/* a[0..n) == b[0..n): memcmp without the call, for short n. The last word
 * overlaps the one before it. */
static inline int kf_same_bytes(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        uint64_t d = kf_load8(a + n - 8) ^ kf_load8(b + n - 8);
        for (size_t i = 0; i + 8 < n; i += 8)
            d |= kf_load8(a + i) ^ kf_load8(b + i);
        return d == 0;
    }
    if (n >= 4)
        return ((kf_load4(a) ^ kf_load4(b)) | (kf_load4(a + n - 4) ^ kf_load4(b + n - 4))) == 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* ASCII lower case of 8 bytes at once, exactly as a byte loop with
 * (c >= 'A' && c <= 'Z') ? c + 32 : c: per byte (its low 7 bits), +0x3f
 * sets bit 7 from 'A' up and +0x25 from '[' up, no carry leaves a byte;
 * bytes >= 0x80 are left alone. */
static inline uint64_t kf_lower8(uint64_t x)
{
    const uint64_t hi = 0x8080808080808080ull, lo7 = ~hi;
    uint64_t from_a = (x & lo7) + 0x3f3f3f3f3f3f3f3full;
    uint64_t past_z = (x & lo7) + 0x2525252525252525ull;
    uint64_t upper = from_a & ~past_z & ~x & hi;
    return x | (upper >> 2);
}

/* a[0..n) and b[0..n) equal in ASCII case (the byte loop's meaning). */
static inline int kf_same_bytes_ci(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        /* the same spelling (the common case) needs no folding */
        for (size_t i = 0;; i += 8) {
            if (i + 8 > n)
                i = n - 8;
            uint64_t x = kf_load8(a + i), y = kf_load8(b + i);
            if (x != y && kf_lower8(x) != kf_lower8(y))
                return 0;
            if (i + 8 == n)
                return 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        x = (unsigned char)(x >= 'A' && x <= 'Z' ? x + 32 : x);
        y = (unsigned char)(y >= 'A' && y <= 'Z' ? y + 32 : y);
        if (x != y)
            return 0;
    }
    return 1;
}

/* Does p[0..n) hold two '/' in a row? Eight bytes at a time: the bytes
 * equal to '/' become zero, an exact zero-byte mask marks them (no carry
 * crosses a byte), and two adjacent marks are a hit. Windows step by 7 so
 * that a pair across two windows is inside one of them. */
static inline int kf_has_double_slash(const char *p, size_t n)
{
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full, slash = 0x2f2f2f2f2f2f2f2full;
    if (n < 8) {
        for (size_t i = 1; i < n; i++)
            if (p[i] == '/' && p[i - 1] == '/')
                return 1;
        return 0;
    }
    for (size_t i = 0;; i += 7) {
        if (i + 8 > n)
            i = n - 8;
        uint64_t w = kf_load8(p + i) ^ slash;
        uint64_t zero = ~(((w & lo7) + lo7) | w | lo7); /* 0x80 in each byte that was '/' */
        if (zero & (zero >> 8))
            return 1;
        if (i + 8 == n)
            return 0;
    }
}

#endif
