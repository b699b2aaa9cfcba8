/* chain.h - the relay's upstream leg through the user's own proxy
 * (docs/relay.md, "Proxy carrier"). Pure: the event loop connects to the
 * proxy, sends c->req, feeds what comes back and reports I/O failures;
 * these functions say what the bytes mean. Every text they produce names
 * the proxy by host:port only, never its credentials.
 *
 * When the client's environment named a proxy (HTTPS_PROXY & co., saved by
 * the wrapper in KIMIFIX_ORIG_*, passed to the relay with the client
 * context), every upstream connection of that client, rewritten or
 * tunnelled, goes through it: CONNECT host:port with its Basic credentials
 * for TLS and tunnels, an absolute-form request for plain http:// (many
 * proxies allow CONNECT to port 443 only).
 */
#ifndef KF_CHAIN_H
#define KF_CHAIN_H

#include <stddef.h>
#include <sys/types.h>

#include "kf_envplan.h"

#define CH_HEAD_MAX (16 * 1024)

enum { CH_MORE = 0, CH_OK = 1, CH_FAIL = -1 };

/* I/O failures the event loop reports (kf_chain_io_failed). */
enum ch_io {
    CH_IO_RESOLVE = 1, /* the proxy's name does not resolve */
    CH_IO_REFUSED,     /* connect() failed (err = errno) */
    CH_IO_RESET,       /* ECONNRESET / EPIPE while talking to it */
    CH_IO_CLOSED,      /* EOF before a complete answer */
    CH_IO_TIMEOUT      /* no (complete) answer before the deadline */
};

typedef struct kf_chain {
    char req[1700];      /* the CONNECT request: send all of it */
    size_t req_len;
    char shown[300];     /* the proxy as host:port */
    char target[300];    /* host:port asked for */
    /* the answer so far */
    char line[128];      /* status line (truncated) */
    size_t line_len, seen;
    int phase;           /* 0 status line, 1 headers, 2 done */
    int eol;
    int status;          /* the proxy's status code, 0 until known */
    /* the outcome */
    int reply;           /* what the client gets on failure: 502 or 504 */
    char err[600];
} kf_chain;

/* Should the relay reach host:port through the user's proxy? 0 for
 * loopback targets (localhost, 127/8, ::1: the user's proxy cannot reach
 * this machine's loopback) and for hosts the user's NO_PROXY names (may be
 * NULL); 1 otherwise. */
int kf_chain_wanted(const char *noproxy, const char *host, unsigned port);

/* Prepare the CONNECT for host:port (an IPv6 literal without brackets is
 * bracketed) through proxy. 0, or -1 when it does not fit (c->err set). */
int kf_chain_begin(kf_chain *c, const kf_purl *proxy, const char *host, unsigned port);

/* The proxy's answer, in pieces of any size. CH_MORE: all n bytes taken,
 * send more; CH_OK: a 2xx answer ended after *used bytes (the rest of buf
 * already belongs to the tunnel); CH_FAIL: c->err and c->reply say what the
 * client is told (the proxy's status answers at once: no need to wait for
 * its body). */
int kf_chain_feed(kf_chain *c, const char *buf, size_t n, size_t *used);

/* An I/O failure while connecting or talking to the proxy: fills c->err
 * and c->reply (504 for CH_IO_TIMEOUT, else 502). err: errno or 0. */
void kf_chain_io_failed(kf_chain *c, int what, int err);

/* An origin-form request head (after the rules) for the user's proxy:
 * absolute-form target http://host[:port]/... and, when the proxy URL has
 * credentials, Proxy-Authorization: Basic. Returns the length, or -1 when
 * cap is too small (n + 1200 suffices) or the head is malformed. */
ssize_t kf_chain_absolute_head(const char *head, size_t n, const kf_purl *proxy,
                               const char *host, unsigned port, char *out, size_t cap);

#endif
