/* test_scan.c - the head parser's byte scans (src/core/kf_scan.h): the
 * 16-bytes-at-a-time versions stop exactly where the plain ones do, for
 * every start and end offset over buffers full of the bytes that matter
 * (controls, DEL, obs-text, separators, letters of both cases). */
#include <criterion/criterion.h>
#include <string.h>

#include "kf_scan.h"
#include "stream_util.h"

static const unsigned char interesting[] = {
    0x00, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x21, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x39, 0x3a, 0x40,
    0x41, 0x5a, 0x5b, 0x5f, 0x60, 0x61, 0x7a, 0x7b, 0x7e, 0x7f, 0x80, 0x9f, 0xa0, 0xc3, 0xff,
};

/* Mostly bytes a scan goes past, so that runs cross 16-byte blocks. */
static void fill(unsigned char *b, size_t n, uint64_t *rng, int name)
{
    for (size_t i = 0; i < n; i++) {
        unsigned r = (unsigned)(tu_rand(rng) % 64);
        if (r < 2)
            b[i] = interesting[tu_rand(rng) % sizeof interesting];
        else if (name)
            b[i] = (unsigned char)"abcXYZ019-"[r % 10];
        else
            b[i] = (unsigned char)(0x20 + r % 0x5f); /* visible ASCII and SP */
    }
}

Test(scan, fast_scans_stop_where_plain_ones_do)
{
#if defined(__SSE2__)
#if defined(KF_SCAN_HAVE_AVX2)
    int avx2 = kf_scan_avx2_usable(); /* else only the SSE2 scans can be checked here */
#endif
    uint64_t rng = 0x5ca9u;
    unsigned char buf[200];
    for (int round = 0; round < 400; round++) {
        for (int name = 0; name < 2; name++) {
            fill(buf, sizeof buf, &rng, name);
            const char *b = (const char *)buf;
            for (size_t s = 0; s < 40; s++)
                for (size_t e = s; e < sizeof buf; e += 1 + (e % 7)) {
                    cr_assert_eq(kf_scan_ctl_sse2(b + s, b + e), kf_scan_ctl_plain(b + s, b + e),
                                 "ctl round %d [%zu,%zu)", round, s, e);
                    cr_assert_eq(kf_scan_target_sse2(b + s, b + e),
                                 kf_scan_target_plain(b + s, b + e), "target round %d [%zu,%zu)",
                                 round, s, e);
                    cr_assert_eq(kf_scan_name_sse2(b + s, b + e), kf_scan_name_plain(b + s, b + e),
                                 "name round %d [%zu,%zu)", round, s, e);
#if defined(KF_SCAN_HAVE_AVX2)
                    if (avx2) {
                        cr_assert_eq(kf_scan_ctl_avx2(b + s, b + e), kf_scan_ctl_plain(b + s, b + e),
                                     "avx2 ctl round %d [%zu,%zu)", round, s, e);
                        cr_assert_eq(kf_scan_target_avx2(b + s, b + e),
                                     kf_scan_target_plain(b + s, b + e),
                                     "avx2 target round %d [%zu,%zu)", round, s, e);
                        cr_assert_eq(kf_scan_name_avx2(b + s, b + e), kf_scan_name_plain(b + s, b + e),
                                     "avx2 name round %d [%zu,%zu)", round, s, e);
                    }
#endif
                }
        }
    }
#else
    cr_skip_test("no SSE2: only the plain scans are built");
#endif
}

/* Every byte value, alone in a block: each class is exactly what the
 * parser needs (value controls, target ends, name characters). */
Test(scan, each_byte_classified)
{
    for (int c = 0; c < 256; c++) {
        char b[32];
        memset(b, 'a', sizeof b);
        b[5] = (char)c;
        int ctl = c < 0x20 || c == 0x7f;
        int tend = c <= 0x20 || c == 0x7f;
        /* '.' too: a tchar the fast class takes (one range with '-' and digits) */
        int nm = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '.';
        cr_expect_eq(kf_scan_ctl(b, b + sizeof b) == b + 5, ctl, "ctl 0x%02x", c);
        cr_expect_eq(kf_scan_target(b, b + sizeof b) == b + 5, tend, "target 0x%02x", c);
        cr_expect_eq(kf_scan_name(b, b + sizeof b) == b + 5, !nm, "name 0x%02x", c);
    }
}

/* kf_word.h: word-at-a-time compares and the "//" search against their
 * byte-at-a-time meaning, every length and offset, differences and slash
 * pairs at every position (window edges included). */
#include "kf_word.h"

Test(scan, word_helpers_match_bytewise)
{
    uint64_t rng = 0x77u;
    char a[64], b[64];
    for (int round = 0; round < 3000; round++) {
        for (size_t i = 0; i < sizeof a; i++)
            a[i] = "/a/x//"[tu_rand(&rng) % (round % 2 ? 6 : 3)];
        size_t off = tu_rand(&rng) % 8, n = tu_rand(&rng) % (sizeof a - off);
        int plain = 0;
        for (size_t i = 1; i < n; i++)
            plain |= a[off + i] == '/' && a[off + i - 1] == '/';
        cr_assert_eq(kf_has_double_slash(a + off, n), plain, "round %d off %zu n %zu", round, off, n);
        memcpy(b, a, sizeof a);
        if (n && tu_rand(&rng) % 2)
            b[off + tu_rand(&rng) % n] ^= (char)(1 << (tu_rand(&rng) % 8));
        cr_assert_eq(kf_same_bytes(a + off, b + off, n), memcmp(a + off, b + off, n) == 0,
                     "round %d off %zu n %zu", round, off, n);
    }
}

/* kf_lower8 / kf_same_bytes_ci: exactly the byte loop's ASCII folding
 * (only A-Z fold; '@' '[' '`' '{' and bytes >= 0x80 do not). */
Test(scan, case_folding_words_match_bytewise)
{
    uint64_t rng = 0x99u;
    static const unsigned char edge[] = { '@', 'A', 'Z', '[', '`', 'a', 'z', '{', 0x80, 0xc1, 0xda, 0xe1,
                                          0xff, 0x00, '-', '0', 'M', 'm', 0x40, 0x5b };
    for (int round = 0; round < 20000; round++) {
        char a[24], b[24];
        size_t n = tu_rand(&rng) % 20;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = edge[tu_rand(&rng) % sizeof edge];
            a[i] = (char)c;
            unsigned char l = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            unsigned char u = (unsigned char)(c >= 'a' && c <= 'z' ? c - 32 : c);
            unsigned r = (unsigned)(tu_rand(&rng) % 8);
            b[i] = (char)(r < 3 ? l : r < 6 ? u : edge[tu_rand(&rng) % sizeof edge]);
        }
        int plain = 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
            if ((x >= 'A' && x <= 'Z' ? x + 32 : x) != (y >= 'A' && y <= 'Z' ? y + 32 : y))
                plain = 0;
        }
        cr_assert_eq(kf_same_bytes_ci(a, b, n), plain, "round %d n %zu", round, n);
    }
}
