/* alpn.h - ALPN wire lists (OpenSSL form: length-prefixed names), shared by
 * the OpenSSL and GnuTLS families: a client that offers h2 to a rule host
 * is made to offer HTTP/1.1 only, so its requests stay rewritable. */
#ifndef KF_ALPN_H
#define KF_ALPN_H

#include <stddef.h>

/* Does `p` offer "h2"? (malformed: no) */
int kf_alpn_has_h2(const unsigned char *p, size_t n);

/* Copy `p` into `out` (room for cap bytes) without "h2", keeping the
 * order; an empty result becomes "http/1.1". Returns the output length, 0
 * when it does not fit or `p` is malformed. */
size_t kf_alpn_drop_h2(const unsigned char *p, size_t n, unsigned char *out, size_t cap);

#endif
