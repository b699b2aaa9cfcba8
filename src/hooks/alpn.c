/* alpn.c - ALPN wire lists (alpn.h). Pure: no hooks, no allocation. */
#include "alpn.h"

#include <string.h>

int kf_alpn_has_h2(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = p[i];
        if (l == 0 || i + 1 + l > n)
            return 0; /* malformed: leave it alone */
        if (l == 2 && p[i + 1] == 'h' && p[i + 2] == '2')
            return 1;
        i += 1 + l;
    }
    return 0;
}

size_t kf_alpn_drop_h2(const unsigned char *p, size_t n, unsigned char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t l = p[i];
        if (l == 0 || i + 1 + l > n)
            return 0;
        if (!(l == 2 && p[i + 1] == 'h' && p[i + 2] == '2')) {
            if (o + 1 + l > cap)
                return 0;
            memcpy(out + o, p + i, 1 + l);
            o += 1 + l;
        }
        i += 1 + l;
    }
    if (o == 0) {
        static const unsigned char h11[] = "\x08http/1.1";
        if (cap < sizeof h11 - 1)
            return 0;
        memcpy(out, h11, sizeof h11 - 1);
        o = sizeof h11 - 1;
    }
    return o;
}
