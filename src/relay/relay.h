/* relay.h - kimifix-relay internals shared by the files in src/relay/.
 *
 * An event loop: one worker thread per online CPU, each with its own epoll
 * set, timer heap, upstream pool and pending list; they share the listening
 * sockets (EPOLLEXCLUSIVE). Every phase of a connection is a non-blocking
 * state machine step run when its socket is ready or its timer fires.
 *
 *   main.c      options, lifecycle (locks, state file, idle exit), workers
 *   loop.c      a worker: epoll loop, dispatch, run-again list, stop
 *   timer.c     per-worker deadline heap
 *   accept.c    accept, EMFILE back-off, foreign uids, the pending cap
 *   peeruid.c   owner of the peer's socket (NETLINK_SOCK_DIAG)
 *   front.c     the front door: first bytes -> PROXY v2 / HTTP proxy / drop;
 *               preamble, token, control channel (STATUS/STOP)
 *   proxyfront.c the HTTP proxy front end: head, credentials, CONNECT to a
 *               rule host (-> like a steered connection), absolute form
 *   tunnel.c    CONNECT to any other host: a blind byte tunnel
 *   chainhop.c  an upstream connection through the user's own proxy
 *   lease.c     proxy-carrier clients alive (no idle exit), their lease files
 *   keep.c      port and token kept across restarts (RUNDIR/relay.keep)
 *   conn.c      a client connection: TLS or plain, first head, upstream
 *               choice, 502s, teardown
 *   pump.c      the bytes both ways (back-pressure, half-close, retry)
 *   rio.c       socket I/O with or without TLS; lazily allocated queues
 *   upconn.c    an upstream connection: resolve, connect, [proxy hop], TLS
 *   resolve.c   name resolution off the workers (small thread pool)
 *   pool.c      idle upstream connections, keyed, bounded, expiring
 *   upstream.c  the upstream SSL_CTX (verification on)
 *   tlsterm.c   client-facing TLS: SNI -> leaf, ALPN http/1.1
 *   resp_tap.c  watches responses: log lines, response boundaries
 *   ctx.c       per-connection client context (contract B), defaults
 *   rules.c     the relay's own rules: followed when the file changes,
 *               per-rule counters
 *   ctxrules.c  each client's rules (its context's `rules`), cached by file
 *               identity
 *   ctxlog.c    each client's own log (its context's `log`, `level`)
 *   logfile.c   relay.log size cap (rotate once), rate-limited warnings
 *   ca.c        the per-user name-constrained CA, leaf minting and cache
 */
#ifndef KF_RELAY_H
#define KF_RELAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "kf_proxy.h"
#include "kf_rules.h"
#include "kf_stream.h"

/* ---- deadlines (ms) ------------------------------------------------- */
#define RELAY_PREAMBLE_MS 5000     /* pre-token: PROXY v2 header */
#define RELAY_FIRST_BYTE_MS 30000  /* after the preamble */
#define RELAY_HANDSHAKE_MS 15000   /* client TLS, upstream TLS */
#define RELAY_FIRST_HEAD_MS 120000 /* clients may open a connection before they need it */
#define RELAY_CONNECT_MS 10000     /* per upstream address (and the resolution) */
#define RELAY_IDLE_MS 3600000L     /* no byte either way for an hour */
#define RELAY_LINGER_MS 30000      /* one side finished, the other still open */
#define RELAY_CLOSE_MS 5000        /* flushing a 502 or a control reply */
#define RELAY_POOL_IDLE_MS 30000   /* idle upstream connection kept this long */
#define RELAY_BACKOFF_MS 100       /* EMFILE: listener paused this long */
#define RELAY_PROXY_HEAD_MS 10000  /* an HTTP proxy request head, from accept (408) */
#define RELAY_PROXY_HOP_MS 15000   /* the user's proxy answering our CONNECT (504) */

/* ---- contract B: per-connection client context ------------------------
 * NULL = defaults. A registered client context (ctxtab.h, contract A),
 * found from PROXY TLV 0xE1 (steered) or the proxy user name's lease id
 * (proxy carrier); everything the core needs goes through these accessors. */
typedef struct relay_ctx relay_ctx;
typedef struct relay_rules relay_rules;
relay_ctx *relay_ctx_for_conn(const kf_proxy_info *pi); /* a reference, or NULL */
void relay_ctx_put(relay_ctx *ctx);                      /* drop that reference */
/* The connection's rules: the client's own source (`rules`), else the
 * relay's current set; a reference (relay_rules_put). A broken client file
 * is told to that client's log once per set. */
relay_rules *relay_ctx_rules(relay_ctx *ctx);
/* The upstream SSL_CTX for the context's trust (system store + its sources,
 * never the kimifix CA; KIMIFIX_UPSTREAM_CA replaces all): a NEW reference
 * (SSL_CTX_free it; upkey holders do: conn_close, upconn_free), or NULL. */
SSL_CTX *relay_ctx_upstream_ssl_ctx(const relay_ctx *ctx);
/* A failed upstream handshake as text: a verification failure names the
 * host, OpenSSL's reason and the trust sources used (paths only). */
void relay_ctx_tls_error(const relay_ctx *ctx, SSL *ssl, const char *host, char *err, size_t n);
/* The client's executable and build id (distrust learning), or NULL. */
const char *relay_ctx_exe(const relay_ctx *ctx);
const char *relay_ctx_buildid(const relay_ctx *ctx);
/* The user's upstream proxy as an identity string (pool key), NULL = direct.
 * It is the proxy's URL, credentials included: never log it. */
const char *relay_ctx_proxy(const relay_ctx *ctx);
/* The user's NO_PROXY for the relay's own upstream connections, or NULL. */
const char *relay_ctx_noproxy(const relay_ctx *ctx);
/* A proxy-carrier connection's context from the id in its proxy user name
 * (`kimifix-ID`, 32 hex chars; "" = none): a reference, or NULL (none,
 * unknown or expired: defaults). */
relay_ctx *relay_ctx_for_id(const char *hexid);
/* The proxy for an upstream connection to host:port: relay_ctx_proxy()
 * unless kf_chain_wanted() says direct (loopback, NO_PROXY), NULL = direct. */
const char *relay_ctx_proxy_for(const relay_ctx *ctx, const char *host, unsigned port);
/* Per-connection log lines: the relay's log, and the client's own
 * (`log fd`/`log PATH` of its context, at its level; ctxlog.c). */
void relay_log(const relay_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A line for the client's log only (the relay's already has it). */
void relay_log_client(const relay_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- rules.c: the relay's own rules ------------------------------------
 * A refcounted set: the user's file as the relay's environment names it
 * (kf_rules_policy.h when broken), re-read when its (path, dev, ino, size,
 * mtime) changed since the current set was built (checked by every
 * relay_rules_get()). Connections without rules of their own take one
 * reference for their lifetime (conn_rules()). */
int relay_rules_init(void);             /* main: first load, sets g_relay.rs */
relay_rules *relay_rules_get(void);     /* the current set (file checked), a reference */
void relay_rules_put(relay_rules *r);   /* NULL: nothing */
relay_rules *relay_rules_ref(relay_rules *r); /* another reference on a held set */
const kf_ruleset *relay_rules_set(const relay_rules *r);
/* Count the rules that rewrote req (atomic adds, no lock). */
void relay_rules_hit(const relay_rules *r, const kf_req *req);
/* STATUS lines: rules_source, rules_state, rules_reloads, rewritten, and
 * `rule NAME COUNT` per rule. Returns the length written. */
size_t relay_rules_status(char *out, size_t n);
/* A set of its own for a rules source (path NULL: the built-ins), loaded
 * by the one policy, counted in the same per-name counters; a reference.
 * NULL: out of memory. */
relay_rules *relay_rules_load(const char *path);
int relay_rules_is_own(const char *path);    /* the relay's own source ("" built-ins) */
const char *relay_rules_state(const relay_rules *r); /* the policy line, or NULL */
unsigned long relay_rules_gen(const relay_rules *r);
unsigned relay_rules_enabled(const relay_rules *r);

/* ---- ctxrules.c: each client's rules ------------------------------------
 * The set for a client's rules source (contract A's `rules PATH|builtin`):
 * the relay's own when it is the same source, else a cached set keyed by
 * (path, dev, ino, size, mtime), at most CTXRULES_MAX (least recently used
 * dropped; refcounted, so a connection keeps the set it took). A changed
 * file is a new key: the next connection loads it. A reference. */
#define CTXRULES_MAX 8
relay_rules *relay_rules_for(const char *src, const relay_ctx *ctx);
unsigned relay_rules_cached(void); /* client sets in the cache (STATUS) */

/* ---- globals -------------------------------------------------------- */
typedef struct relay_globals {
    /* The rules the relay started with (its CA is made for them; never
     * freed). Connections take their set through conn_rules(). */
    const kf_ruleset *rs;
    SSL_CTX *srv_ctx;             /* client-facing (tlsterm.c) */
    SSL_CTX *up_ctx;              /* upstream (upstream.c) */
    unsigned char token[KF_PROXY_TOKEN_LEN];
    unsigned port;
    char datadir[4096];
    char rundir[4096];
    long started;
    int lfd[2];                   /* listeners: 127.0.0.1, [::1] (or -1) */
    unsigned nworkers;
    struct worker *workers;
    unsigned pending_cap;         /* per worker */
    atomic_int active;            /* client connections (incl. pending) */
    atomic_ulong total;           /* accepted since start */
    atomic_long last_activity;    /* epoch seconds of the last accept/close */
    atomic_int stopping;
    atomic_int resolvers;         /* resolver threads started */
    int diag_ok;                  /* peeruid_probe() passed */
    uid_t uid;                    /* ours (geteuid) */
    /* counters for STATUS and the docs' figures */
    atomic_ulong n_foreign, n_badtoken, n_nopreamble, n_pending_dropped, n_emfile;
    atomic_ulong n_up_new, n_up_reused, n_up_retried;
    atomic_ulong n_px_ok, n_px_refused, n_tunnels, n_chained, n_chain_failed;
    atomic_uint leases;           /* proxy-carrier clients alive (last scan) */
} relay_globals;

extern relay_globals g_relay;

long relay_now_ms(void); /* CLOCK_MONOTONIC */

/* ---- timer.c: a min-heap of deadlines per worker ----------------------- */
struct worker;
typedef struct rtimer {
    long due;        /* ms, CLOCK_MONOTONIC; 0 = not armed */
    int idx;         /* position in the heap, -1 when not armed */
    void (*fire)(struct worker *w, struct rtimer *t);
} rtimer;
typedef struct theap {
    rtimer **v;
    int n, cap;
} theap;
void timer_init(rtimer *t, void (*fire)(struct worker *, rtimer *));
int timer_arm(struct worker *w, rtimer *t, long due); /* -1: no memory */
void timer_cancel(struct worker *w, rtimer *t);
int timer_next_ms(struct worker *w);        /* epoll timeout: -1 none */
void timer_run(struct worker *w);           /* fire everything due */

/* ---- epoll handles: the first member of every object in an epoll set -- */
enum { H_LISTEN = 1, H_WAKE, H_CONN, H_UP };
typedef struct rhandle {
    uint8_t kind;
    uint8_t dead;               /* closed: skip its events, free after the batch */
    struct rhandle *grave;      /* the worker's list of objects to free */
} rhandle;
/* Why deferred: one epoll_wait batch may hold events for an object that an
 * earlier event of the same batch closed (a pending connection dropped for
 * a new one, an upstream closed with its client). */
void worker_bury(struct worker *w, rhandle *h);

/* ---- rio.c: one socket, with or without TLS, edge-triggered ----------- */
#define RIO_IN 1u
#define RIO_OUT 2u
typedef struct rio {
    int fd;
    SSL *ssl;
    uint8_t ready;     /* RIO_IN/RIO_OUT edges not used up yet */
    uint8_t rd_need;   /* what the last read waited for (RIO_IN, or RIO_OUT for TLS) */
    uint8_t wr_need;
    uint8_t rd_eof, rd_unclean, wr_shut, err;
    uint8_t hup;       /* the peer shut its side (EPOLLRDHUP): a peek cannot tell */
    uint8_t gone;      /* both directions are down (EPOLLHUP/EPOLLERR: a reset) */
    uint8_t sock_short; /* TLS: the socket's last read got less than asked (rio.c) */
} rio;
void rio_init(rio *r, int fd);
/* Drive r's TLS on ssl (its socket BIO already set on r->fd): r watches
 * the socket's reads so a short one can stand for EAGAIN (rio.c). */
void rio_set_ssl(rio *r, SSL *ssl);
void rio_event(rio *r, uint32_t ev);   /* an epoll edge: ready bits */
/* >0 bytes, 0 EOF (rd_eof set; rd_unclean when not clean), -1 would block. */
ssize_t rio_read(rio *r, void *buf, size_t n);
/* >=0 bytes taken (maybe fewer than n), -1 error (err set). */
ssize_t rio_write(rio *r, const void *buf, size_t n);
int rio_can_read(const rio *r);
void rio_shutdown(rio *r);  /* close_notify (TLS) + FIN, once */
void rio_close(rio *r);     /* SSL_free + close */
/* An idle TLS connection keeps no record buffers (released when empty). */
void rio_trim(rio *r);

/* A byte queue that owns memory only while bytes are waiting. */
typedef struct rbuf {
    char *p;
    uint32_t off, len, cap;
} rbuf;
static inline size_t rbuf_used(const rbuf *b) { return b->len - b->off; }
int rbuf_add(rbuf *b, const void *d, size_t n);   /* 0, or -1 (ENOMEM) */
int rbuf_prepend(rbuf *b, const void *d, size_t n);
void rbuf_take(rbuf *b, size_t n);                /* frees when empty */
void rbuf_free(rbuf *b);
/* Write the queue's bytes to r; 1 emptied, 0 bytes remain, -1 error. */
int rio_flush(rio *r, rbuf *q);
/* Write to r now (r NULL: not yet) unless bytes wait in q, queue the rest;
 * *sent (may be NULL) = bytes written. 0, or -1: no memory. */
int rio_send_or_queue(rio *r, rbuf *q, const char *buf, size_t n, size_t *sent);

/* ---- upstream target and pool key ------------------------------------- */
typedef struct upkey {
    char host[256];       /* name to resolve (connect-to applied later), or address text */
    char sni[256];        /* TLS name ("" = plain) */
    unsigned port;
    SSL_CTX *sslctx;      /* NULL = plain; a pooled SSL holds a reference */
    char *proxy;          /* relay_ctx_proxy() copy, NULL = direct */
    struct sockaddr_storage addr; /* when by address (the original destination) */
    int by_addr;
    int raw;              /* a blind tunnel: CONNECT through the proxy even
                           * without TLS; never pooled */
    uint64_t hash;        /* of all the above (upkey_seal): compared first */
} upkey;
void upkey_seal(upkey *k);  /* after filling it in */
int upkey_eq(const upkey *a, const upkey *b);

/* ---- upconn.c: one upstream connection -------------------------------- */
enum { U_RESOLVE = 1, U_CONNECT, U_PROXY_HOP, U_TLS, U_READY, U_POOLED };
struct conn;
struct rres;
typedef struct upconn {
    rhandle h;
    uint8_t state, reused, reusable, kicked;
    uint8_t drained;              /* pooled with nothing left to read (pool.c) */
    long pooled_ms;               /* when it went into the pool */
    struct worker *w;
    rio u;
    rtimer tm;
    struct conn *owner;           /* NULL while pooled */
    upkey key;
    struct rres *res;             /* pending resolution */
    struct addrinfo *ai, *ai_cur; /* addresses to try */
    struct upconn *pnext, *pprev; /* pool list (worker) */
    struct kf_chain *ch;          /* the hop through the user's proxy, while it lasts */
    size_t ch_sent;               /* bytes of ch->req written */
    uint16_t fail_status;         /* what the client is told on failure (0: 502) */
    uint8_t chain_failed;         /* the user's proxy failed (a WARN line even for tunnels) */
} upconn;
/* Start a connection for the owner's key (copied). NULL: no memory. The
 * owner hears back through conn_up_ready() / conn_up_failed(). */
upconn *upconn_start(struct worker *w, struct conn *owner, const upkey *key);
void upconn_on_event(upconn *u, uint32_t ev);
void upconn_free(upconn *u);       /* close and free (cancels a resolution) */
void upconn_resolved(struct rres *r); /* resolve.c -> worker */
/* Report a failure to the owner with the status its client gets. */
void upconn_fail(upconn *u, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- chainhop.c: the hop through the user's proxy (chain.c) ------------- */
/* Before resolving: where to connect (the proxy) when key->proxy is set.
 * 1 chained (host/port filled), 0 direct, -1 failed (reported). */
int chainhop_begin(upconn *u, char *host, size_t hn, unsigned *port);
/* U_PROXY_HOP: 1 the tunnel stands (or no CONNECT is needed), 0 waiting,
 * -1 failed (reported). */
int chainhop_step(upconn *u);
/* A connect/resolve failure or the deadline while chained: reported. */
void chainhop_io_failed(upconn *u, int what, int err);
void chainhop_free(upconn *u);
/* A head to send to the user's proxy in absolute form (plain HTTP through
 * it without CONNECT; hint: the client's name for a target by address).
 * *out: a new buffer (free it) or NULL to send the head as it is. 0, or -1
 * (no memory). */
int chainhop_absolute(const upkey *key, const char *hint, const char *head, size_t n, char **out,
                      size_t *outn);

/* ---- resolve.c -------------------------------------------------------- */
typedef struct rres {
    struct worker *w;
    upconn *u;                    /* NULL once cancelled */
    char host[256], port[8];
    struct addrinfo *ai;
    int err;                      /* getaddrinfo() result */
    struct rres *next;
} rres;
int resolve_submit(rres *r);      /* -1: could not start a resolver */
void resolve_stop(void);

/* ---- pool.c: per worker ----------------------------------------------- */
#define POOL_PER_KEY 32           /* per worker */
#define POOL_TOTAL 128            /* per worker */
typedef struct pool {
    upconn *head;                 /* most recently used first */
    unsigned n;
} pool;
/* An idle, live connection for key (unlinked, owner unset), or NULL. */
upconn *pool_get(struct worker *w, const upkey *key);
/* Keep u (its owner let go at a response boundary). Closes it when the
 * pool is full for its key or in total. */
void pool_put(struct worker *w, upconn *u);
void pool_remove(struct worker *w, upconn *u);
void pool_clear(struct worker *w);
void pool_on_event(upconn *u, uint32_t ev);

/* ---- workers (loop.c) -------------------------------------------------- */
typedef struct worker {
    rhandle wake;                 /* eventfd: resolver completions, stop */
    int id, ep, evfd;
    pthread_t th;
    theap timers;
    char *buf;                    /* scratch read buffer, RELAY_BUF bytes */
    char *tbuf;                   /* blind tunnels' read buffer, TUNNEL_BUF (on first use) */
    struct conn *pend_head, *pend_tail; /* pending (pre-token) connections, oldest first */
    unsigned npend;
    struct conn *live;            /* every other client connection */
    struct conn *again, *again_tail; /* to run once more, first come first run */
    rhandle *grave;               /* closed objects, freed after the batch */
    pool pool;
    int listening;                /* listeners in this worker's epoll set */
    rtimer backoff;
    int diag_fd;                  /* NETLINK_SOCK_DIAG socket, -1 if none */
    struct {                      /* listeners' own addresses (accept.c) */
        int fd;
        struct sockaddr_storage ss;
    } lname[4];
    unsigned nlname;
    pthread_mutex_t mu;           /* guards done and inbox */
    rres *done;                   /* resolutions finished */
    int *inbox;                   /* accepted fds handed on to this worker */
    unsigned ninbox, capinbox;
    int inbox_closed;             /* stopped: hand nothing on to it */
    atomic_uint npend_pub, npool_pub, nup; /* for STATUS (other threads read them) */
    atomic_uint nconn_pub;        /* client connections it owns (incl. pending) */
    atomic_uint nhanded;          /* in its inbox, not yet taken (accept.c) */
} worker;
#define RELAY_BUF (16 * 1024 + 512)
/* Blind tunnels read 64 KiB at a time: 4x fewer system calls than the
 * scratch buffer (bench fig 13: 742 -> 873 MiB/s through a tunnel; 256 KiB
 * gave 974, but what a slow receiver leaves queued is one read per
 * direction and tunnel). */
#define TUNNEL_BUF (64 * 1024)

/* Every worker is initialized (worker_init) before any runs (worker_run):
 * a running worker hands connections on to any other (accept.c), whose
 * mutex and eventfd must exist by then (TSan caught worker 0 locking
 * worker 1's mutex while main was still initializing it). */
int worker_init(worker *w, int id);
int worker_run(worker *w);
void worker_wake(worker *w);
void worker_join(worker *w);
int worker_add(worker *w, int fd, rhandle *h);  /* EPOLLIN|OUT|RDHUP|ET */
void worker_listen(worker *w, int on);

/* ---- accept.c / peeruid.c ---------------------------------------------- */
void accept_ready(worker *w, int lfd);
void accept_inbox(worker *w);       /* take the fds other workers handed on */
void accept_inbox_close(worker *w); /* stopping: close what is left */
void accept_backoff_end(worker *w, rtimer *t);
/* Owner uid of the socket at the other end of fd (a loopback TCP
 * connection): 0 found, -1 not found, -2 sock_diag unavailable. me and
 * peer: fd's two ends when the caller knows them (accept4 says the peer,
 * the listener's address is ours), else NULL and they are asked for. */
int peeruid_of(worker *w, int fd, const struct sockaddr_storage *me,
               const struct sockaddr_storage *peer, uid_t *uid);
int peeruid_probe(void);  /* 1: the kernel answers (checked on our own socket) */

/* ---- conn.c: a client connection --------------------------------------- */
enum {
    CS_PREAMBLE = 1, /* pending: before the token */
    CS_CONTROL,      /* LOCAL command: reading one line */
    CS_FIRSTBYTE,    /* after the preamble: TLS or plain? */
    CS_TLS,          /* TLS handshake */
    CS_PUMP,         /* first head, upstream, bytes both ways */
    CS_CLOSING,      /* flushing a final answer */
    CS_PROXY_HEAD,   /* pending: an HTTP proxy request head (proxyfront.c) */
    CS_TUNNEL        /* CONNECT to a host no rule names: bytes both ways (tunnel.c) */
};
struct conn_info;
typedef struct conn {
    rhandle h;
    uint8_t state, tls, pending, first_done, resp_seen, retried, replay_over;
    uint8_t drain;                /* CS_CLOSING: read and drop the client's bytes until its FIN */
    uint8_t absolute;             /* absolute-form proxy request: one request only */
    uint8_t head_next;            /* the next bytes to the upstream are a head (on_head) */
    uint8_t over;                 /* absolute form: a second head came: drop the rest */
    uint8_t tunnel_up;            /* CS_TUNNEL: upstream connected, 200 sent */
    struct worker *w;
    rio c;
    rtimer tm;
    long born, last_io, linger_from;
    struct conn *pnext, *pprev;   /* the worker's pending or live list */
    struct conn *again_next;
    int on_again;
    relay_ctx *ctx;
    relay_rules *rules;           /* its rules (the client's or the relay's), once needed (conn_rules) */
    struct conn_info *info;       /* after the token */
    kf_stream st;
    kf_ctx kctx;
    struct resp_tap *tap;
    rbuf toup, toc, replay;
    upconn *up;
    unsigned nheads;
    struct hp_scan *px;           /* CS_PROXY_HEAD: the head scanner's state */
} conn;

conn *conn_new(worker *w, int fd);
void conn_on_event(conn *k, uint32_t ev);
void conn_run(conn *k);                 /* one step of the current state */
void conn_close(conn *k);               /* free everything, now */
void conn_again(conn *k);               /* run it again before sleeping */
void conn_after_preamble(conn *k, const kf_proxy_info *pi); /* front.c -> conn.c */
void conn_leave_pending(conn *k);       /* the token was right */
void conn_up_ready(conn *k);            /* upconn.c -> conn */
void conn_up_failed(conn *k, const char *why);
void conn_fail_502(conn *k, const char *why);
void conn_fail(conn *k, int status, const char *why); /* 502 or 504 (JSON body) */
/* A proxy-carrier connection's target by name (after the head): dst =
 * host:port resolved by the upstream connection (connect-to honoured),
 * authority = host. 0, or -1 (no memory: closed). */
int conn_set_proxy_target(conn *k, const char *host, unsigned port);
/* CONNECT to a rule host: from here on like a steered connection. */
void conn_after_connect(conn *k);
/* Absolute form: the pump with the upstream head fed in first. */
void conn_start_absolute(conn *k, const char *head, size_t n);
/* Reply, FIN, then read and drop the client's bytes until its FIN (a close
 * with unread bytes would reset the connection and lose the reply). */
void conn_refuse(conn *k, const char *reply, size_t n);
void conn_finish(conn *k, const char *reply, size_t n); /* send, FIN, close */
const upkey *conn_key(const conn *k);
/* The rules for this connection: its context's own, else the relay's
 * current set, taken on first use and kept to the end (one set for all of
 * a connection's requests, whatever happens to the file meanwhile). */
const kf_ruleset *conn_rules(conn *k);
const char *conn_host(const conn *k);
void conn_choose_target(conn *k);       /* after the first head */
/* pump.c */
void pump_run(conn *k);
void pump_timeout(conn *k);             /* the CS_PUMP timer fired */
int pump_want_upstream(conn *k);        /* conn.c: choose + attach/start */
/* Client bytes through the rewriter to the upstream. 0, or -1 (closed). */
int pump_feed(conn *k, const char *buf, size_t n);
/* proxyfront.c */
void proxyfront_begin(conn *k, ssize_t peeked); /* front.c: the first bytes are an HTTP method */
void proxyfront_step(conn *k);
void proxyfront_timeout(conn *k);       /* 408 */
/* tunnel.c */
void tunnel_start(conn *k);             /* after conn_set_proxy_target */
void tunnel_run(conn *k);
void tunnel_up_ready(conn *k);
void tunnel_up_failed(conn *k, const char *why);
void tunnel_timeout(conn *k);
/* front.c */
void front_step(conn *k);               /* CS_PREAMBLE and CS_CONTROL */

/* ---- tlsterm.c --------------------------------------------------------- */
SSL_CTX *tlsterm_ctx(void);
typedef struct tlsterm_info {
    const char *authority;        /* from PROXY TLV, "" if none */
    const kf_ruleset *rs;         /* the connection's rules (conn_rules) */
    unsigned port;                /* original destination port */
    char host[256];               /* chosen: SNI, else authority */
    char why[640];                /* reason when refused */
} tlsterm_info;
int tlsterm_ex_index(void);

/* ---- upstream.c -------------------------------------------------------- */
SSL_CTX *upstream_ctx(void);
/* A client SSL for key on fd: SNI + verification for key->sni. */
SSL *upstream_ssl_new(const upkey *key, int fd);
void upstream_tls_error(SSL *ssl, const char *host, char *err, size_t n);
void relay_addr_text(const struct sockaddr *sa, char *buf, size_t n);

/* ---- ca.c -------------------------------------------------------------- */
int ca_init(const char *datadir, const kf_ruleset *rs);
/* Leaf certificate for host (lower case, validated), minted or cached; the
 * caller owns one reference. NULL on failure. */
X509 *ca_leaf_for(const char *host);
EVP_PKEY *ca_leaf_key(void);
const char *ca_names(void);   /* "api.kimi.com .example.org ..." */

/* ---- resp_tap.c -------------------------------------------------------- */
#define TAP_LINE_MAX 768
typedef struct resp_tap resp_tap;
resp_tap *tap_new(const char *host);
/* Its lines also go to this client's log (the connection holds ctx). */
void tap_set_ctx(resp_tap *t, const relay_ctx *ctx);
void tap_free(resp_tap *t);
/* A request head went upstream: its log line (without status) and method.
 * no_reuse: the request ends the connection's reuse (Connection: close,
 * HTTP/1.0, Upgrade). */
void tap_request(resp_tap *t, const char *line, int is_head, int log_always);
void tap_request_no_reuse(resp_tap *t);
void tap_feed(resp_tap *t, const char *buf, size_t n);
/* Between responses, or in a body that ends at close (or not following):
 * an upstream EOF without close_notify here loses nothing. */
int tap_at_boundary(const resp_tap *t);
/* Every request answered completely, framing followed, nothing says close:
 * the upstream connection may carry another client's request. */
int tap_reusable(const resp_tap *t);
int tap_waiting(const resp_tap *t);      /* requests without a complete answer */
const char *tap_oldest_line(const resp_tap *t); /* NULL when none */
void tap_drop_oldest(resp_tap *t);       /* answered by the relay (502) */
/* Connection over: log what is still waiting ("no response"). */
void tap_finish(resp_tap *t);
/* Extract error.message (or message) from a JSON text; 1 if found. */
int tap_json_message(const char *body, size_t n, char *out, size_t outn);

/* ---- logfile.c --------------------------------------------------------- */
/* Cap the log file at max bytes: past it, PATH -> PATH.1 (once) and a new
 * PATH. Only when fd 2 / the KIMIFIX_LOG file is that path. */
void logfile_setup(const char *path, long max);
/* One warning line per interval per kind, with the count since the last. */
enum { RL_FOREIGN, RL_BADTOKEN, RL_PENDING, RL_EMFILE, RL_KINDS };
void ratelog(int kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ratelog_flush(void); /* counts whose interval is over (main thread, every second) */

/* ---- control (front.c) ------------------------------------------------- */
size_t relay_status_text(char *out, size_t n); /* ends with relay_rules_status() */

/* ---- lease.c / keep.c (main thread) -------------------------------------- */
/* Proxy-carrier clients alive (their lease files, kf_lease.h); *who names
 * one ("pid 1234"). Files of clients gone and unused for KF_LEASE_KEEP_S
 * are removed on the way. */
unsigned lease_scan(char *who, size_t n);
/* For lease_scan: when a connection last used this id (monotonic seconds,
 * 0 never); forget it once its file is gone. ctx.c. */
long relay_ctx_last_used(const char *hexid);
void relay_ctx_forget(const char *hexid);
/* RUNDIR/relay.keep: the port and token of the last relay (0600). 0 with
 * both filled, -1 when absent or not usable. */
int keep_load(unsigned *port, unsigned char *token);
void keep_save(unsigned port, const unsigned char *token);

#endif
