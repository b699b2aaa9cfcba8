/* kf_str.c - string views and their helpers (kf_str.h). */
#include "kf_str.h"

#include "kf_word.h"

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int kf_str_ieq(kf_str a, kf_str b)
{
    return a.n == b.n && kf_same_bytes_ci(a.p, b.p, a.n);
}

int kf_str_ieq_c(kf_str a, const char *b)
{
    /* No strlen: most compares fail on the first byte. */
    size_t i = 0;
    for (; i < a.n; i++)
        if (!b[i] || lower((unsigned char)a.p[i]) != lower((unsigned char)b[i]))
            return 0;
    return b[i] == 0;
}

kf_str kf_str_c(const char *s)
{
    return (kf_str){ s, s ? strlen(s) : 0 };
}

/* Iterative glob with single-star backtracking: linear in practice, no
 * recursion, so a hostile pattern cannot blow the stack. */
static int glob(const char *pat, kf_str s, int ci)
{
    size_t pi = 0, si = 0;
    size_t star_p = (size_t)-1, star_s = 0;
    size_t pn = strlen(pat);
    while (si < s.n) {
        if (pi < pn && pat[pi] == '*') {
            star_p = pi++;
            star_s = si;
        } else if (pi < pn &&
                   (pat[pi] == '?' ||
                    (ci ? lower((unsigned char)pat[pi]) == lower((unsigned char)s.p[si])
                        : pat[pi] == s.p[si]))) {
            pi++;
            si++;
        } else if (star_p != (size_t)-1) {
            pi = star_p + 1;
            si = ++star_s;
        } else {
            return 0;
        }
    }
    while (pi < pn && pat[pi] == '*')
        pi++;
    return pi == pn;
}

int kf_glob(const char *pat, kf_str s) { return glob(pat, s, 0); }
int kf_glob_ci(const char *pat, kf_str s) { return glob(pat, s, 1); }

int kf_cat3(char *buf, size_t n, const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    if (la + lb + lc >= n) {
        if (n)
            buf[0] = 0;
        return -1;
    }
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb);
    memcpy(buf + la + lb, c ? c : "", lc + 1);
    return (int)(la + lb + lc);
}

char *kf_utoa(unsigned v, char out[11])
{
    char t[11];
    int k = 0;
    do
        t[k++] = (char)('0' + v % 10);
    while ((v /= 10) && k < 10);
    for (int i = 0; i < k; i++)
        out[i] = t[k - 1 - i];
    out[k] = 0;
    return out;
}

int kf_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
