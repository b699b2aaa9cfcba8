/* kf_scan.h - private to kf_head.c (and tests/unit/test_scan.c): the two
 * byte scans a request head needs, 16 bytes at a time where the CPU has
 * SSE2 (every x86-64), one byte at a time elsewhere. Both versions are
 * always compiled; the test holds the fast one to the plain one.
 *
 *   kf_scan_ctl(p, end):  first byte < 0x20 or == 0x7f (CR, LF, HTAB, NUL,
 *                         DEL...), or end: where a field value stops.
 *   kf_scan_name(p, end): first byte not in [A-Za-z0-9-], or end: where the
 *                         common part of a header name stops (the caller
 *                         checks rarer token characters itself).
 *   kf_scan_target(p, end): first byte <= 0x20 or == 0x7f, or end: where a
 *                         request target stops.
 * Neither reads at or past end.
 */
#ifndef KF_SCAN_H
#define KF_SCAN_H

#include <stddef.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline int kf_scan_is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static inline int kf_scan_is_target_end(unsigned char c)
{
    return c <= 0x20 || c == 0x7f;
}

static inline int kf_scan_is_name(unsigned char c)
{
    unsigned char l = (unsigned char)(c | 0x20);
    return (l >= 'a' && l <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static inline const char *kf_scan_ctl_plain(const char *p, const char *end)
{
    while (p < end && !kf_scan_is_ctl((unsigned char)*p))
        p++;
    return p;
}

static inline const char *kf_scan_target_plain(const char *p, const char *end)
{
    while (p < end && !kf_scan_is_target_end((unsigned char)*p))
        p++;
    return p;
}

static inline const char *kf_scan_name_plain(const char *p, const char *end)
{
    while (p < end && kf_scan_is_name((unsigned char)*p))
        p++;
    return p;
}

#if defined(__SSE2__)
static inline const char *kf_scan_ctl_sse2(const char *p, const char *end)
{
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f), zero = _mm_setzero_si128();
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* signed compares: bytes >= 0x80 are negative, so "< 0x20" needs ">= 0" too */
        __m128i ctl = _mm_andnot_si128(_mm_cmplt_epi8(v, zero), _mm_cmplt_epi8(v, sp));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(v, del)));
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
    return kf_scan_ctl_plain(p, end);
}

static inline const char *kf_scan_target_sse2(const char *p, const char *end)
{
    const __m128i sp = _mm_set1_epi8(0x21), del = _mm_set1_epi8(0x7f), zero = _mm_setzero_si128();
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i low = _mm_andnot_si128(_mm_cmplt_epi8(v, zero), _mm_cmplt_epi8(v, sp));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(low, _mm_cmpeq_epi8(v, del)));
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
    return kf_scan_target_plain(p, end);
}

static inline const char *kf_scan_name_sse2(const char *p, const char *end)
{
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i l = _mm_or_si128(v, _mm_set1_epi8(0x20)); /* letters to lower case */
        __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)),
                                       _mm_cmplt_epi8(l, _mm_set1_epi8('z' + 1)));
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                      _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
        __m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
        __m128i good = _mm_or_si128(_mm_or_si128(letter, digit), dash);
        unsigned m = ~(unsigned)_mm_movemask_epi8(good) & 0xffffu;
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
    return kf_scan_name_plain(p, end);
}
#define kf_scan_ctl kf_scan_ctl_sse2
#define kf_scan_target kf_scan_target_sse2
#define kf_scan_name kf_scan_name_sse2
#else
#define kf_scan_ctl kf_scan_ctl_plain
#define kf_scan_target kf_scan_target_plain
#define kf_scan_name kf_scan_name_plain
#endif

#endif
