/* kf_scan.h - private to kf_head.c (and tests/unit/test_scan.c): the two
 * byte scans a request head needs, 16 bytes at a time where the CPU has
 * SSE2 (every x86-64), one byte at a time elsewhere. Both versions are
 * always compiled; the test holds the fast one to the plain one.
 *
 *   kf_scan_ctl(p, end):  first byte < 0x20 or == 0x7f (CR, LF, HTAB, NUL,
 *                         DEL...), or end: where a field value stops.
 *   kf_scan_name(p, end): first byte not in [A-Za-z0-9.-], or end: where the
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
    return (l >= 'a' && l <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
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
/* Unsigned "byte <= lim" for 16 bytes: min(v, lim) == v (SSE2 has no
 * unsigned compare, but it has an unsigned minimum). */
static inline __m128i kf_scan_le(__m128i v, __m128i lim)
{
    return _mm_cmpeq_epi8(_mm_min_epu8(v, lim), v);
}

static inline const char *kf_scan_ctl_sse2(const char *p, const char *end)
{
    const __m128i us = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(kf_scan_le(v, us), _mm_cmpeq_epi8(v, del)));
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
    return kf_scan_ctl_plain(p, end);
}

static inline const char *kf_scan_target_sse2(const char *p, const char *end)
{
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(kf_scan_le(v, sp), _mm_cmpeq_epi8(v, del)));
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
    return kf_scan_target_plain(p, end);
}

/* Ranges with one add and one signed compare each: x + (0x80 - lo) lands
 * in [-128, -128 + len) exactly when x is in [lo, lo + len). */
static inline const char *kf_scan_name_sse2(const char *p, const char *end)
{
    const __m128i fold = _mm_set1_epi8(0x20), a_off = _mm_set1_epi8((char)(0x80 - 'a')),
                  a_lim = _mm_set1_epi8((char)(-128 + 26)), d_off = _mm_set1_epi8((char)(0x80 - '-')),
                  d_lim = _mm_set1_epi8((char)(-128 + 13)), slash = _mm_set1_epi8('/');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* letters: v | 0x20 in [a, z]; '-' '.' '/' and digits: v in [0x2d, 0x39]; minus '/' */
        __m128i letter = _mm_cmplt_epi8(_mm_add_epi8(_mm_or_si128(v, fold), a_off), a_lim);
        __m128i dash_dot_digit = _mm_cmplt_epi8(_mm_add_epi8(v, d_off), d_lim);
        __m128i good = _mm_or_si128(letter, _mm_andnot_si128(_mm_cmpeq_epi8(v, slash), dash_dot_digit));
        unsigned m = (unsigned)_mm_movemask_epi8(good) ^ 0xffffu;
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
    return kf_scan_name_plain(p, end);
}
#define kf_scan_ctl kf_scan_ctl_sse2
#define kf_scan_target kf_scan_target_sse2
#define kf_scan_name kf_scan_name_sse2

/* ---- AVX2: the same classes 32 bytes at a time, on CPUs that have it
 * (kf_scan_avx2_usable); the last bytes go through the SSE2 scans. Only
 * called from functions compiled for AVX2 (kf_head_lines.h). ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KF_SCAN_HAVE_AVX2 1
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>

#define KF_AVX2 __attribute__((target("avx2")))

static inline KF_AVX2 __m256i kf_scan_le_avx2(__m256i v, __m256i lim)
{
    return _mm256_cmpeq_epi8(_mm256_min_epu8(v, lim), v);
}

/* First byte <= lim or == DEL in 32-byte steps: the hit, or NULL with *pp
 * moved to where fewer than 32 bytes are left. */
static inline KF_AVX2 const char *kf_scan_le_del_avx2(const char **pp, const char *end, char lim)
{
    const __m256i l = _mm256_set1_epi8(lim), del = _mm256_set1_epi8(0x7f);
    const char *p = *pp;
    for (; end - p >= 32; p += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
        unsigned m = (unsigned)_mm256_movemask_epi8(
            _mm256_or_si256(kf_scan_le_avx2(v, l), _mm256_cmpeq_epi8(v, del)));
        if (m)
            return p + __builtin_ctz(m);
    }
    *pp = p;
    return NULL;
}

static inline KF_AVX2 const char *kf_scan_ctl_avx2(const char *p, const char *end)
{
    const char *hit = kf_scan_le_del_avx2(&p, end, 0x1f);
    return hit ? hit : kf_scan_ctl_sse2(p, end);
}

static inline KF_AVX2 const char *kf_scan_target_avx2(const char *p, const char *end)
{
    const char *hit = kf_scan_le_del_avx2(&p, end, 0x20);
    return hit ? hit : kf_scan_target_sse2(p, end);
}

static inline KF_AVX2 const char *kf_scan_name_avx2(const char *p, const char *end)
{
    const __m256i fold = _mm256_set1_epi8(0x20), a_off = _mm256_set1_epi8((char)(0x80 - 'a')),
                  a_lim = _mm256_set1_epi8((char)(-128 + 26)),
                  d_off = _mm256_set1_epi8((char)(0x80 - '-')),
                  d_lim = _mm256_set1_epi8((char)(-128 + 13)), slash = _mm256_set1_epi8('/');
    while (end - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
        /* as kf_scan_name_sse2; AVX2 has "greater" only: lim > x */
        __m256i letter =
            _mm256_cmpgt_epi8(a_lim, _mm256_add_epi8(_mm256_or_si256(v, fold), a_off));
        __m256i dash_dot_digit = _mm256_cmpgt_epi8(d_lim, _mm256_add_epi8(v, d_off));
        __m256i good = _mm256_or_si256(
            letter, _mm256_andnot_si256(_mm256_cmpeq_epi8(v, slash), dash_dot_digit));
        unsigned m = ~(unsigned)_mm256_movemask_epi8(good);
        if (m)
            return p + __builtin_ctz(m);
        p += 32;
    }
    return kf_scan_name_sse2(p, end);
}

/* The CPU has AVX2 and the kernel saves its registers (OSXSAVE, XCR0 bits
 * 1-2). Asked once per process (each caller's first call); no libc call. */
static inline int kf_scan_avx2_usable(void)
{
    static atomic_int have = -1;
    int h = atomic_load_explicit(&have, memory_order_relaxed);
    if (h >= 0)
        return h;
    unsigned a, b, c, d;
    h = 0;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_OSXSAVE) && (c & bit_AVX)) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        (void)hi;
        if ((lo & 6) == 6 && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX2))
            h = 1;
    }
    atomic_store_explicit(&have, h, memory_order_relaxed);
    return h;
}
#endif
#else
#define kf_scan_ctl kf_scan_ctl_plain
#define kf_scan_target kf_scan_target_plain
#define kf_scan_name kf_scan_name_plain
#endif

#endif
