/* kf_str.h - string views (pointer + length, never NUL-terminated) and
 * the few helpers the engine needs on them (kf_str.c). Pure: no
 * allocation, no I/O. */
#ifndef KF_STR_H
#define KF_STR_H

#include <stddef.h>
#include <string.h>

typedef struct kf_str {
    const char *p;
    size_t n;
} kf_str;

int kf_str_ieq(kf_str a, kf_str b);         /* ASCII case-insensitive */
int kf_str_ieq_c(kf_str a, const char *b);  /* against a C string */
kf_str kf_str_c(const char *s);

int kf_hexval(char c);                     /* 0..15, or -1 */
/* Two C strings equal but for ASCII case. Not strcasecmp: that follows the
 * host program's locale (in tr_TR "I" is not "i"), and host names match
 * the same way everywhere (the engine compares with kf_str_ieq). */
static inline int kf_ascii_ieq(const char *a, const char *b)
{
    return kf_str_ieq(kf_str_c(a), kf_str_c(b));
}
/* buf = a + b + c (c may be NULL): its length, or -1 (buf = "") when it
 * does not fit in n. No printf: the shim's constructor builds its paths
 * with these, so a process start touches none of libc's printf code
 * (each first touch of a page costs ~10 us on a VM: bench figure 6). */
int kf_cat3(char *buf, size_t n, const char *a, const char *b, const char *c);
/* v in decimal into out (room for 11 bytes); returns out. */
char *kf_utoa(unsigned v, char out[11]);
int kf_glob(const char *pat, kf_str s);     /* '*' and '?' glob, case-sensitive */
int kf_glob_ci(const char *pat, kf_str s);  /* same, ASCII case-insensitive */

/* Exact (inline: every head compares its method, paths and values; a
 * constant operand's memcmp becomes a few loads). */
static inline int kf_str_eq(kf_str a, kf_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Strip SP/HTAB at both ends (inline: the head parser calls it per field). */
static inline kf_str kf_str_trim(kf_str s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

#endif
