/* ctxtab.h - the relay's table of client contexts (contract A; docs/relay.md
 * "Client contexts").
 *
 *   ctxtab.c   the table: id -> refcounted relay_ctx, expiry, caps
 *   ctxsrv.c   its own thread serving RUNDIR/relay.sock (registrations and
 *              Java trust-store requests), independent of the event loop
 *
 * A context is what one client told the relay about itself (kf_ctxmsg.h):
 * its trust sources, rules source, log destination and level, program,
 * proxy. Connections find theirs by the 16-byte id they carry (PROXY v2 TLV
 * 0xE1, or the proxy username) with ctxtab_get(), hold it for their
 * lifetime and release it with ctxtab_put(). A context nobody used for
 * CTX_EXPIRE_S seconds is dropped (its log fd closed); at most CTX_MAX
 * exist (the least recently used unreferenced one makes room). Identical
 * registrations (many short-lived processes of one script) share one.
 */
#ifndef KF_RELAY_CTXTAB_H
#define KF_RELAY_CTXTAB_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <stddef.h>
struct pollfd;

#include <openssl/ssl.h>

#include "kf_ctxmsg.h"

#define CTX_MAX 1024
#define CTX_EXPIRE_S 600
#define CTX_REQ_MS 1000       /* per request, from accept to reply */
#define CTX_PENDING_MAX 16    /* requests read at the same time */

typedef struct relay_ctx relay_ctx;
struct relay_ctx {
    unsigned char id[KF_CTX_ID_LEN];
    atomic_int refs;           /* connections holding it */
    atomic_long last_used;     /* monotonic seconds */
    unsigned ntrust;
    const char *trust[KF_CTXMSG_TRUST_MAX]; /* absolute paths, as sent */
    const char *rules;         /* path, "builtin", or NULL (relay default) */
    const char *log_path;      /* `log PATH`, else NULL */
    int log_fd;                /* the client's log: `log fd` (SCM_RIGHTS), the
                                  file `log PATH` names (opened by the relay),
                                  or -1; under log_mu (ctxlog.c) */
    int log_pidfd;             /* the client process that handed log_fd over:
                                  log_fd is closed when it exits; -1 none */
    int log_off;               /* `log off` */
    int log_sink;              /* log_fd was set up (never changes after) */
    int level;                 /* KF_LOG_*, or -1 (relay default) */
    pthread_mutex_t log_mu;    /* writers vs. closing log_fd */
    atomic_ulong rules_gen;    /* the broken rules set whose line it was told */
    const char *exe, *buildid; /* NULL when not sent */
    const char *proxy, *noproxy;
    /* private to ctxtab.c */
    char *raw;                 /* the request, '\n' -> '\0': the strings above */
    char *text;                /* the request as received: duplicates share */
    size_t len;
    unsigned long long digest;
    relay_ctx *next;
};

/* Start: truststore_init(datadir), bind RUNDIR/relay.sock (0600; a stale
 * one is replaced: the caller holds relay.run.lock) and start the serving
 * thread. 0, or -1 (logged; the relay then serves every client with its
 * defaults). */
int ctxtab_start(const char *rundir, const char *datadir);
/* Stop the thread, remove relay.sock, drop every context. */
void ctxtab_stop(void);

/* The context with this id, with a reference (and its use noted), or NULL
 * (unknown or expired: the connection gets the relay's defaults). */
relay_ctx *ctxtab_get(const unsigned char id[KF_CTX_ID_LEN]);
void ctxtab_put(relay_ctx *c);
/* Another reference on a context the caller holds one on. */
void ctxtab_ref(relay_ctx *c);

/* The upstream SSL_CTX for a connection of this context (NULL: the system
 * store only): a new reference, SSL_CTX_free() it when done. */
SSL_CTX *ctxtab_upstream_ctx(const relay_ctx *c);

/* Register a parsed kfctx request (text = the request's bytes, for
 * de-duplication; fd = the SCM_RIGHTS fd or -1, owned by the table from
 * here on). 0 with id filled, -1 with why. */
int ctxtab_register(const kf_ctxmsg *m, const char *text, size_t len, int fd,
                    unsigned char id[KF_CTX_ID_LEN], char *why, size_t wn);
/* The same, fd handed over by process pid (> 0; 0 = unknown: the fd is
 * closed, see ctxtab_answer_pid). A lease's `log stderr` comes with the
 * lease holder's stderr, opened by ctx.c, as fd. */
int ctxtab_register_pid(const kf_ctxmsg *m, const char *text, size_t len, int fd, pid_t pid,
                        unsigned char id[KF_CTX_ID_LEN], char *why, size_t wn);
/* Answer one complete request (the serving thread's work; tests drive it
 * in-process): the reply line goes into reply, its length is returned.
 * passed_fd (or -1) is owned by the table from here on. A `log fd` is kept
 * only with pid > 0, the sender (SO_PEERCRED), whose life it is tied to
 * (ctxlog.c); without one it is closed and the client's lines stay in the
 * relay's log. */
size_t ctxtab_answer(const char *text, size_t len, int passed_fd, char *reply, size_t rn);
size_t ctxtab_answer_pid(const char *text, size_t len, int passed_fd, pid_t pid, char *reply,
                         size_t rn);

/* ctxlog.c - a context's own log (docs/relay.md, "Client contexts").
 * ctxlog_setup: at registration, give c its sink: the passed fd tied to
 * process pid (a pidfd; no pidfd: no sink), or the `log PATH` file opened
 * with kf_log_open_file's checks. ctxlog_write: one formatted line
 * (kf_log_format) if level passes the context's, never blocking; a line
 * the fd cannot take now is dropped and counted. ctxlog_watch/
 * ctxlog_reap (in ctxtab.c: they walk the table): the serving thread polls
 * the pidfds and closes the log fd of a client that exited. ctxlog_free:
 * at the context's end. */
void ctxlog_setup(relay_ctx *c, int fd, pid_t pid);
void ctxlog_write(relay_ctx *c, int level, const char *line, size_t n);
int ctxlog_wants(const relay_ctx *c, int level); /* a sink that takes this level */
unsigned ctxlog_watch(struct pollfd *pf, unsigned max);
void ctxlog_reap(int pidfd);
void ctxlog_free(relay_ctx *c);
unsigned long ctxlog_dropped(void);

/* Drop contexts unused since before now_s - CTX_EXPIRE_S (and unreferenced).
 * Returns how many went. The serving thread calls it every second. */
unsigned ctxtab_sweep(long now_s);
unsigned ctxtab_count(void);
long ctxtab_now(void);        /* the clock the table uses (monotonic s) */

/* ctxsrv.c */
int ctxsrv_start(const char *rundir, const char *datadir);
void ctxsrv_stop(void);
const char *ctxsrv_datadir(void);

#endif
