/* ctxtab.c - the table of client contexts (ctxtab.h). */
#include "ctxtab.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "kf_envplan.h"
#include "kf_log.h"
#include "kf_trust.h"
#include "truststore.h"

#define BUCKETS 256

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static relay_ctx *bucket[BUCKETS];
static unsigned count;

long ctxtab_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void ctx_free(relay_ctx *c)
{
    ctxlog_free(c); /* closes the client's log fd and its pidfd */
    if (c->raw)
        memset(c->raw, 0, c->len); /* a proxy URL's credentials */
    if (c->text)
        memset(c->text, 0, c->len);
    free(c->raw);
    free(c->text);
    free(c);
}

/* ---- lookups ---- */

relay_ctx *ctxtab_get(const unsigned char id[KF_CTX_ID_LEN])
{
    pthread_mutex_lock(&mu);
    relay_ctx *c = bucket[id[0]];
    while (c && memcmp(c->id, id, KF_CTX_ID_LEN))
        c = c->next;
    if (c) {
        atomic_fetch_add(&c->refs, 1);
        atomic_store(&c->last_used, ctxtab_now());
    }
    pthread_mutex_unlock(&mu);
    return c;
}

void ctxtab_ref(relay_ctx *c)
{
    atomic_fetch_add(&c->refs, 1);
    atomic_store(&c->last_used, ctxtab_now());
}

/* No lock: the sweeper frees only unreferenced contexts, under the lock,
 * and a holder's reference keeps this one alive until this decrement. */
void ctxtab_put(relay_ctx *c)
{
    if (!c)
        return;
    atomic_store(&c->last_used, ctxtab_now());
    atomic_fetch_sub(&c->refs, 1);
}

SSL_CTX *ctxtab_upstream_ctx(const relay_ctx *c)
{
    return c ? truststore_get(c->trust, c->ntrust) : truststore_get(NULL, 0);
}

unsigned ctxtab_count(void)
{
    pthread_mutex_lock(&mu);
    unsigned n = count;
    pthread_mutex_unlock(&mu);
    return n;
}

/* ---- expiry ---- */

static void unlink_ctx(relay_ctx **pp)
{
    relay_ctx *c = *pp;
    *pp = c->next;
    count--;
    ctx_free(c);
}

unsigned ctxtab_sweep(long now_s)
{
    unsigned gone = 0;
    pthread_mutex_lock(&mu);
    for (unsigned b = 0; b < BUCKETS; b++)
        for (relay_ctx **pp = &bucket[b]; *pp;) {
            relay_ctx *c = *pp;
            if (atomic_load(&c->refs) == 0 && now_s - atomic_load(&c->last_used) >= CTX_EXPIRE_S) {
                unlink_ctx(pp);
                gone++;
            } else {
                pp = &c->next;
            }
        }
    pthread_mutex_unlock(&mu);
    return gone;
}

/* Full table: the least recently used unreferenced context makes room. */
static int evict_one(void)
{
    relay_ctx **lru = NULL;
    for (unsigned b = 0; b < BUCKETS; b++)
        for (relay_ctx **pp = &bucket[b]; *pp; pp = &(*pp)->next)
            if (atomic_load(&(*pp)->refs) == 0 &&
                (!lru || atomic_load(&(*pp)->last_used) < atomic_load(&(*lru)->last_used)))
                lru = pp;
    if (!lru)
        return -1;
    unlink_ctx(lru);
    return 0;
}

/* ---- clients' log fds (ctxlog.c): closed when their process exits ---- */

unsigned ctxlog_watch(struct pollfd *pf, unsigned max)
{
    unsigned n = 0;
    pthread_mutex_lock(&mu);
    for (unsigned b = 0; b < BUCKETS && n < max; b++)
        for (relay_ctx *c = bucket[b]; c && n < max; c = c->next)
            if (c->log_pidfd >= 0)
                pf[n++] = (struct pollfd){.fd = c->log_pidfd, .events = POLLIN};
    pthread_mutex_unlock(&mu);
    return n;
}

void ctxlog_reap(int pidfd)
{
    pthread_mutex_lock(&mu);
    for (unsigned b = 0; b < BUCKETS; b++)
        for (relay_ctx *c = bucket[b]; c; c = c->next) {
            /* The number may have been closed by a context freed since the
             * poll and reused by another's: only a process that exited. */
            struct pollfd p = {.fd = pidfd, .events = POLLIN};
            if (c->log_pidfd != pidfd || poll(&p, 1, 0) != 1)
                continue;
            pthread_mutex_lock(&c->log_mu);
            if (c->log_fd >= 0)
                close(c->log_fd);
            c->log_fd = -1;
            pthread_mutex_unlock(&c->log_mu);
            close(c->log_pidfd);
            c->log_pidfd = -1;
            pthread_mutex_unlock(&mu);
            return;
        }
    pthread_mutex_unlock(&mu);
}

/* ---- registration ---- */

static const char *str_at(relay_ctx *c, const char *text, kf_str v)
{
    return v.p ? c->raw + (v.p - text) : NULL;
}

static int level_of(kf_str v)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (v.n == strlen(names[i]) && !memcmp(v.p, names[i], v.n))
            return i; /* KF_LOG_ERROR .. KF_LOG_DEBUG */
    return -1;
}

static int is(kf_str v, const char *lit)
{
    return v.n == strlen(lit) && !memcmp(v.p, lit, v.n);
}

/* The same registration again (same text, no log fd of its own)? A
 * handed-over fd lives as long as the process that handed it over
 * (ctxlog.c): another process's context must not lose its log when that
 * one exits, so contexts with one are never shared. */
static relay_ctx *find_same(unsigned long long digest, const char *text, size_t len, int fd)
{
    if (fd >= 0)
        return NULL;
    for (relay_ctx *c = bucket[digest % BUCKETS]; c; c = c->next)
        if (c->digest == digest && c->len == len && !memcmp(c->text, text, len) &&
            c->log_pidfd < 0 && !(c->log_fd < 0 && c->log_path))
            return c;
    return NULL;
}

static relay_ctx *ctx_new(const kf_ctxmsg *m, const char *text, size_t len, int fd, pid_t pid)
{
    relay_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->raw = malloc(len)) || !(c->text = malloc(len))) {
        if (c)
            free(c->raw);
        free(c);
        return NULL;
    }
    memcpy(c->text, text, len);
    memcpy(c->raw, text, len);
    for (size_t i = 0; i < len; i++)
        if (c->raw[i] == '\n')
            c->raw[i] = 0; /* every value now ends where its line did */
    c->len = len;
    c->ntrust = m->ntrust;
    for (unsigned i = 0; i < m->ntrust; i++)
        c->trust[i] = str_at(c, text, m->trust[i]);
    c->rules = str_at(c, text, m->rules);
    c->exe = str_at(c, text, m->exe);
    c->buildid = str_at(c, text, m->buildid);
    c->proxy = str_at(c, text, m->proxy);
    c->noproxy = str_at(c, text, m->noproxy);
    kf_purl u;
    if (c->proxy && (kf_purl_parse(c->proxy, &u) < 0 || strcmp(u.scheme, "http"))) {
        kf_log(KF_LOG_WARN, "[relay] a client's proxy is not an http:// URL: its connections go "
                            "direct");
        c->proxy = NULL; /* the raw text keeps it: never logged */
    }
    c->level = m->level.p ? level_of(m->level) : -1;
    c->log_fd = c->log_pidfd = -1;
    pthread_mutex_init(&c->log_mu, NULL);
    if (m->log.p && m->log.n && m->log.p[0] == '/')
        c->log_path = str_at(c, text, m->log);
    else
        c->log_off = m->log.p && is(m->log, "off");
    ctxlog_setup(c, fd, pid); /* owns fd from here */
    return c;
}

int ctxtab_register(const kf_ctxmsg *m, const char *text, size_t len, int fd,
                    unsigned char id[KF_CTX_ID_LEN], char *why, size_t wn)
{
    return ctxtab_register_pid(m, text, len, fd, 0, id, why, wn);
}

/* `log fd`, or a lease's `log stderr` (ctx.c opened the lease holder's
 * stderr for it): the fd is the log. */
static int fd_is_log(const kf_ctxmsg *m)
{
    return m->log.p && (is(m->log, "fd") || is(m->log, "stderr"));
}

int ctxtab_register_pid(const kf_ctxmsg *m, const char *text, size_t len, int fd, pid_t pid,
                        unsigned char id[KF_CTX_ID_LEN], char *why, size_t wn)
{
    if (m->log.p && is(m->log, "fd") && fd < 0) {
        snprintf(why, wn, "log fd without an fd");
        return -1;
    }
    if (fd >= 0 && (!fd_is_log(m) || pid <= 0)) {
        close(fd); /* an fd nobody asked for */
        fd = -1;
    }
    unsigned long long digest = kf_trust_fnv(KF_TRUST_FNV_INIT, text, len);
    pthread_mutex_lock(&mu);
    relay_ctx *c = find_same(digest, text, len, fd);
    if (c) {
        atomic_store(&c->last_used, ctxtab_now());
        memcpy(id, c->id, KF_CTX_ID_LEN);
        pthread_mutex_unlock(&mu);
        if (fd >= 0)
            close(fd); /* the one we have goes to the same place */
        return 0;
    }
    if (count >= CTX_MAX && evict_one() < 0) {
        pthread_mutex_unlock(&mu);
        snprintf(why, wn, "too many contexts in use");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    c = ctx_new(m, text, len, fd, pid);
    if (!c || RAND_bytes(c->id, KF_CTX_ID_LEN) != 1) {
        pthread_mutex_unlock(&mu);
        if (c)
            ctx_free(c); /* closes fd */
        else if (fd >= 0)
            close(fd); /* ctx_new failed before taking it */
        snprintf(why, wn, "out of memory");
        return -1;
    }
    /* One bucket for both lookups: by id (bucket id[0]) and by content
     * (bucket digest % BUCKETS, for duplicates). So id[0] is the digest's
     * bucket, not random; 15 random bytes remain. */
    c->digest = digest;
    c->id[0] = (unsigned char)(digest % BUCKETS);
    atomic_store(&c->last_used, ctxtab_now());
    c->next = bucket[c->id[0]];
    bucket[c->id[0]] = c;
    count++;
    memcpy(id, c->id, KF_CTX_ID_LEN);
    pthread_mutex_unlock(&mu);
    return 0;
}

/* ---- one request ---- */

static size_t answer_java(const kf_ctxmsg *m, char *reply, size_t rn)
{
    char src[4200], out[4200], why[512], pass[4200];
    if (!m->cacerts.p || !m->cacerts.n || m->cacerts.p[0] != '/' || m->cacerts.n >= sizeof src)
        return kf_ctxmsg_reply(reply, rn, 0, "kfjava: cacerts PATH (absolute) required");
    snprintf(src, sizeof src, "%.*s", (int)m->cacerts.n, m->cacerts.p);
    snprintf(pass, sizeof pass, "%.*s", (int)m->storepass.n, m->storepass.p ? m->storepass.p : "");
    if (javatrust_build(ctxsrv_datadir(), src, m->storepass.p ? pass : NULL, out, sizeof out, why,
                        sizeof why) < 0) {
        kf_log(KF_LOG_WARN, "relay: Java trust store from %s: %s", src, why);
        return kf_ctxmsg_reply(reply, rn, 0, why);
    }
    return kf_ctxmsg_reply(reply, rn, 1, out);
}

size_t ctxtab_answer(const char *text, size_t len, int passed_fd, char *reply, size_t rn)
{
    return ctxtab_answer_pid(text, len, passed_fd, 0, reply, rn);
}

size_t ctxtab_answer_pid(const char *text, size_t len, int passed_fd, pid_t pid, char *reply,
                         size_t rn)
{
    kf_ctxmsg m;
    const char *why = "";
    char w[256], hex[2 * KF_CTX_ID_LEN + 1];
    unsigned char id[KF_CTX_ID_LEN];
    ssize_t n = kf_ctxmsg_parse(text, len, &m, &why);
    if (n <= 0) {
        if (passed_fd >= 0)
            close(passed_fd);
        kf_log(KF_LOG_WARN, "relay: a client context request was refused: %s",
               n < 0 ? why : "incomplete");
        return kf_ctxmsg_reply(reply, rn, 0, n < 0 ? why : "incomplete request");
    }
    if (m.kind == KF_CTXMSG_JAVA) {
        if (passed_fd >= 0)
            close(passed_fd);
        return answer_java(&m, reply, rn);
    }
    if (ctxtab_register_pid(&m, text, (size_t)n, passed_fd, pid, id, w, sizeof w) < 0) {
        kf_log(KF_LOG_WARN, "relay: a client context was not registered: %s", w);
        return kf_ctxmsg_reply(reply, rn, 0, w);
    }
    kf_ctx_id_hex(id, hex);
    kf_log(KF_LOG_DEBUG, "relay: context %.8s... for %s (%u trust source%s)", hex,
           m.exe.p ? "a client" : "an unnamed client", m.ntrust, m.ntrust == 1 ? "" : "s");
    return kf_ctxmsg_reply(reply, rn, 1, hex);
}

int ctxtab_start(const char *rundir, const char *datadir)
{
    if (truststore_init(datadir) < 0)
        return -1;
    return ctxsrv_start(rundir, datadir);
}

void ctxtab_stop(void)
{
    ctxsrv_stop();
    pthread_mutex_lock(&mu);
    for (unsigned b = 0; b < BUCKETS; b++)
        while (bucket[b])
            unlink_ctx(&bucket[b]);
    pthread_mutex_unlock(&mu);
}
