/* tlsrec.h - a small recording TLS server for the TLS hook tests.
 *
 * Runs in threads of the test process (never under the shim). Every
 * accepted connection is recorded: the SNI the client sent, the ALPN
 * selected, every plaintext byte received and the number of TLS
 * application-data records they came in (TLSREC_PLAIN: plain TCP).
 * Each complete HTTP/1 request (head + Content-Length or chunked body)
 * gets a tiny 200 answer; when h2 was selected nothing is answered (bytes
 * are only recorded).
 */
#ifndef TLSREC_H
#define TLSREC_H

#include <stddef.h>

#define TLSREC_H2 0x1   /* select h2 when the client offers it */
#define TLSREC_SLOW 0x2 /* small receive buffer, read slowly (1 KiB per 2 ms) */
#define TLSREC_SLOW_HANDSHAKE 0x4 /* wait 100 ms before answering the ClientHello */
#define TLSREC_PLAIN 0x8 /* no TLS: plain TCP (sni, alpn and records stay empty) */

struct tlsrec_conn {
    char sni[256];
    char alpn[32]; /* "" when none was negotiated */
    char *data;
    size_t len;
    int records; /* TLS application-data records received (counted as they arrive) */
    int done;    /* the client closed (or the connection failed) */
};

typedef struct tlsrec tlsrec;

/* Listen on 127.0.0.1 (ephemeral port) with certdir/cert.pem + key.pem. */
tlsrec *tlsrec_start(const char *certdir, int flags);
int tlsrec_port(const tlsrec *r);
/* Wait until n connections are done; returns how many are (timeout in ms). */
int tlsrec_wait(tlsrec *r, int n, int timeout_ms);
int tlsrec_count(tlsrec *r);
/* Connection i in accept order (valid until tlsrec_stop). */
const struct tlsrec_conn *tlsrec_conn(tlsrec *r, int i);
void tlsrec_stop(tlsrec *r);

#endif
