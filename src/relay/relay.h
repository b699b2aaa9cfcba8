/* relay.h - kimifix-relay internals shared by the files in src/relay/.
 *
 *   main.c      options, lifecycle (locks, state file, idle exit), accept loop
 *   ca.c        the per-user name-constrained CA, leaf minting and cache
 *   tlsterm.c   client-facing TLS: SNI -> leaf, ALPN http/1.1
 *   upstream.c  resolve, connect, TLS to the real server (verification on)
 *   conn.c      one thread per client: preamble, first head, upstream, 502s
 *   pump.c      the bidirectional byte pump (non-blocking, back-pressure)
 *   resp_tap.c  watches responses for the log (status, error.message)
 */
#ifndef KF_RELAY_H
#define KF_RELAY_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "kf_proxy.h"
#include "kf_rules.h"

typedef struct relay_globals {
    const kf_ruleset *rs;
    SSL_CTX *srv_ctx;             /* client-facing (tlsterm.c) */
    SSL_CTX *up_ctx;              /* upstream (upstream.c) */
    unsigned char token[KF_PROXY_TOKEN_LEN];
    unsigned port;
    char datadir[4096];
    char rundir[4096];
    long started;
    atomic_int active;            /* open client connections */
    atomic_ulong total;           /* accepted since start */
    atomic_long last_activity;    /* epoch seconds of the last accept/close */
    atomic_int stopping;
} relay_globals;

extern relay_globals g_relay;

/* ca.c */
int ca_init(const char *datadir, const kf_ruleset *rs);
/* Leaf certificate for host (lower case, validated), minted or cached; the
 * caller owns one reference. NULL on failure. */
X509 *ca_leaf_for(const char *host);
EVP_PKEY *ca_leaf_key(void);
const char *ca_names(void);   /* "api.kimi.com .example.org ..." */

/* tlsterm.c */
SSL_CTX *tlsterm_ctx(void);
/* Per-connection data the SNI callback needs. */
typedef struct tlsterm_info {
    const char *authority;        /* from PROXY TLV, "" if none */
    unsigned port;                /* original destination port */
    char host[256];               /* chosen: SNI, else authority */
    char why[640];                /* reason when refused */
} tlsterm_info;
int tlsterm_ex_index(void);

/* upstream.c */
SSL_CTX *upstream_ctx(void);
/* Connect to dst (when non-NULL) or to host:port by name (connect-to rules,
 * then getaddrinfo). Returns a connected blocking fd or -1 with err. */
int upstream_connect(const struct sockaddr *dst, const char *host, unsigned port,
                     char *err, size_t errn);
/* TLS client handshake on fd with SNI and verification for host. */
SSL *upstream_tls(int fd, const char *host, char *err, size_t errn);

/* conn.c */
void *conn_thread(void *arg);     /* arg: (intptr_t) client fd */

/* I/O endpoint: a socket, with or without TLS, non-blocking, with an
 * output queue (so TLS writes are retried with the same buffer). */
#define EP_QCAP 8192
typedef struct endpoint {
    int fd;
    SSL *ssl;
    int want;                    /* POLLIN/POLLOUT this endpoint waits for */
    int rd_eof, rd_unclean;      /* peer finished sending (cleanly or not) */
    int wr_shut;                 /* we sent our FIN / close_notify */
    int err;
    char *q;                     /* output queue */
    size_t qoff, qlen;
} endpoint;

/* pump.c */
ssize_t ep_read(endpoint *e, void *buf, size_t n);   /* >0, 0 EOF, -1 again, -2 error */
ssize_t ep_flush(endpoint *e);                       /* 1 empty, 0 again, -2 error */
size_t ep_room(const endpoint *e);
size_t ep_queue(endpoint *e, const void *buf, size_t n);
void ep_shutdown(endpoint *e);
/* Blocking-ish helper with a deadline for the early phase. */
int ep_write_all(endpoint *e, const void *buf, size_t n, int timeout_ms);

struct resp_tap;
struct kf_stream;
struct kf_ctx;
/* Run until both directions are finished. Client->server bytes go through
 * the stream s (rewriting); server->client through tap (observing). */
void pump_run(endpoint *c, endpoint *u, struct kf_stream *s, const struct kf_ctx *ctx,
              struct resp_tap *tap);

/* resp_tap.c */
#define TAP_LINE_MAX 768
typedef struct resp_tap resp_tap;
resp_tap *tap_new(const char *host);
void tap_free(resp_tap *t);
/* A request head went upstream: its log line (without status) and method. */
void tap_request(resp_tap *t, const char *line, int is_head, int log_always);
void tap_feed(resp_tap *t, const char *buf, size_t n);
/* Between responses, or in a body that ends at close (or not following):
 * an upstream EOF without close_notify here loses nothing. */
int tap_at_boundary(const resp_tap *t);
/* Connection over: log what is still waiting ("no response"). */
void tap_finish(resp_tap *t);
/* Extract error.message (or message) from a JSON text; 1 if found. */
int tap_json_message(const char *body, size_t n, char *out, size_t outn);

#endif
