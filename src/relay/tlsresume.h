/* tlsresume.h - TLS session resumption towards upstreams (tlsresume.c). */
#ifndef KF_RELAY_TLSRESUME_H
#define KF_RELAY_TLSRESUME_H

#include <openssl/ssl.h>

struct upkey;

int tlsresume_init(void);               /* once, before the first connection */
void tlsresume_ctx_setup(SSL_CTX *ctx); /* an upstream (client) SSL_CTX */
/* Before SSL_connect: offer the last session of this exact target (host,
 * port, SNI, SSL_CTX); k must outlive ssl (the upconn's key). */
void tlsresume_apply(SSL *ssl, const struct upkey *k);
void tlsresume_clear(void);             /* stopping */

#endif
