/* truststore.c - the relay verifies each upstream against what its client
 * would have trusted without kimifix (truststore.h, docs/relay.md "Trust").
 *
 * A store = OpenSSL's hashed directory (looked up lazily, as before) + the
 * system bundle file (a CA appended to ca-certificates.crt without a hash
 * link counts: common in Dockerfiles) + the client's own files and
 * directories (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, ...: kf_trust_sources),
 * minus the kimifix CA, which is left out of every file by its SHA-256
 * fingerprint and refused by the verify callback should a directory
 * produce it: the relay must never trust its own certificates upstream.
 *
 * Memory: the system bundle (~140 CAs) is parsed once and its X509s are
 * shared by every store (X509_STORE_add_cert takes a reference), so a
 * store costs its own index plus the client's few certificates. Stores are
 * cached by the set of sources; an entry is re-validated by (dev, inode,
 * size, mtime) of every source and of the system bundle at most every
 * TS_RECHECK_MS, and rebuilt when one changed. At most TS_CACHE_MAX sets:
 * the least recently used goes (the SSL_CTX is reference-counted, so
 * connections still using it keep it).
 */
#include "kf_clock.h"
#include "truststore.h"
#include "tlsresume.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "kf_log.h"
#include "kf_paths.h"
#include "kf_trust.h"

#define DIR_EAGER_MAX 256 /* plain (not hash-named) files loaded from a client's directory */

typedef kf_file_id fst; /* kf_paths.h */

typedef struct ts_entry {
    unsigned long long hash;
    unsigned n;
    char *paths[TS_SOURCES_MAX]; /* sorted, owned */
    fst st[TS_SOURCES_MAX + 1];  /* [0]: the system bundle (or KIMIFIX_UPSTREAM_CA) */
    SSL_CTX *ctx;                /* our reference */
    long checked_ms;
    unsigned long used;
} ts_entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static ts_entry cache[TS_CACHE_MAX];
static unsigned long tick;
static long recheck_ms = TS_RECHECK_MS;
static ts_stats stats;
static X509 *kimifix_ca;
static unsigned char kimifix_fp[32];
static char override[4096]; /* KIMIFIX_UPSTREAM_CA */
static struct {
    char path[4096];
    fst st;
    STACK_OF(X509) *certs; /* the system bundle, parsed once, shared */
} sysb;

static void fst_of(const char *path, fst *f)
{
    kf_file_id_of(path, f);
}

static int fst_eq(const fst *a, const fst *b)
{
    return kf_file_id_eq(a, b);
}

int truststore_is_kimifix(X509 *x)
{
    unsigned char fp[32];
    unsigned len = 0;
    return kimifix_ca && X509_digest(x, EVP_sha256(), fp, &len) && len == sizeof fp &&
           !memcmp(fp, kimifix_fp, sizeof fp);
}

static const char *system_bundle(void)
{
    const char *p = kf_trust_system_bundle();
    return p ? p : X509_get_default_cert_file();
}

int truststore_ready(void)
{
    pthread_mutex_lock(&mu);
    int r = kimifix_ca != NULL;
    pthread_mutex_unlock(&mu);
    return r;
}

int truststore_init(const char *datadir)
{
    char p[4200];
    const char *ca = secure_getenv("KIMIFIX_UPSTREAM_CA");
    snprintf(override, sizeof override, "%s", ca && *ca ? ca : "");
    snprintf(sysb.path, sizeof sysb.path, "%s", system_bundle());
    FILE *f = fopen(kf_path_join(p, sizeof p, datadir, "ca.pem"), "re");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    unsigned len = 0;
    if (!x || !X509_digest(x, EVP_sha256(), kimifix_fp, &len)) {
        X509_free(x);
        kf_log(KF_LOG_ERROR, "relay: upstream trust: cannot read the kimifix CA %s", p);
        return -1;
    }
    pthread_mutex_lock(&mu);
    X509_free(kimifix_ca);
    kimifix_ca = x;
    pthread_mutex_unlock(&mu);
    if (override[0])
        kf_log(KF_LOG_INFO, "relay: upstream trust: KIMIFIX_UPSTREAM_CA=%s replaces every store",
               override);
    return 0;
}

/* ---- loading certificates ---- */

/* Add x unless it is the kimifix CA. 1 added, 0 left out. */
static int add_cert(X509_STORE *st, X509 *x, const char *src)
{
    if (truststore_is_kimifix(x)) {
        kf_log(KF_LOG_INFO, "relay: trust source %s holds the kimifix CA: left out", src);
        return 0;
    }
    X509_STORE_add_cert(st, x); /* a duplicate is fine */
    return 1;
}

struct jks_add {
    X509_STORE *st;
    const char *src;
    int n;
};

static int jks_cb(void *ud, X509 *x, const char *alias)
{
    (void)alias;
    struct jks_add *j = ud;
    j->n += add_cert(j->st, x, j->src);
    return 0;
}

static int load_java(X509_STORE *st, const char *path, char *why, size_t wn)
{
    struct jks_add j = {st, path, 0};
    return javatrust_read(path, NULL, jks_cb, &j, why, wn) < 0 ? -1 : j.n;
}

/* A file of certificates: PEM (any number), DER, or a Java key store
 * (JKS, JCEKS, PKCS12). Returns the number added (0 when the only one was
 * the kimifix CA), -1 with why when it holds no certificate. */
static int load_file(X509_STORE *st, const char *path, char *why, size_t wn)
{
    unsigned char head[4] = {0};
    BIO *b = BIO_new_file(path, "rb");
    if (!b) {
        snprintf(why, wn, "%s", strerror(errno));
        ERR_clear_error();
        return -1;
    }
    int hn = BIO_read(b, head, sizeof head), seen = 0, added = 0;
    if (hn == 4 && javatrust_is_jks(head, 4)) {
        BIO_free(b);
        return load_java(st, path, why, wn);
    }
    BIO_reset(b);
    STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
    for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->x509) {
            seen++;
            added += add_cert(st, xi->x509, path);
        }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    X509 *x = NULL;
    if (!seen && head[0] == 0x30) { /* not PEM: one DER certificate, or PKCS12 */
        BIO_reset(b);
        x = d2i_X509_bio(b, NULL);
    }
    BIO_free(b);
    ERR_clear_error();
    if (x) {
        seen = 1;
        added = add_cert(st, x, path);
        X509_free(x);
    } else if (!seen && head[0] == 0x30) {
        return load_java(st, path, why, wn);
    }
    if (!seen)
        snprintf(why, wn, "no certificate in it");
    return seen ? added : -1;
}

/* OpenSSL's hash links (8 hex digits, '.', digits) are found lazily. */
static int hash_named(const char *s)
{
    size_t h = strspn(s, "0123456789abcdef");
    return h == 8 && s[8] == '.' && s[9] && strspn(s + 9, "0123456789") == strlen(s + 9);
}

/* A client's directory: hashed lookup, plus its plain files (Go and
 * rustls read every file of SSL_CERT_DIR, OpenSSL only the hash links). */
static void load_dir(X509_STORE *st, X509_LOOKUP *lk, const char *path)
{
    X509_LOOKUP_add_dir(lk, path, X509_FILETYPE_PEM);
    DIR *d = opendir(path);
    struct dirent *e;
    char f[8300], why[128];
    for (int n = 0; d && (e = readdir(d)) && n < DIR_EAGER_MAX;) {
        struct stat s;
        if (e->d_name[0] == '.' || hash_named(e->d_name) ||
            snprintf(f, sizeof f, "%s/%s", path, e->d_name) >= (int)sizeof f || stat(f, &s) < 0 ||
            !S_ISREG(s.st_mode) || s.st_size > (1 << 20))
            continue;
        n++;
        load_file(st, f, why, sizeof why);
    }
    if (d)
        closedir(d);
}

/* The shared system bundle, parsed again when it changed. */
static void sys_refresh(const fst *now)
{
    if (sysb.certs && fst_eq(&sysb.st, now))
        return;
    sk_X509_pop_free(sysb.certs, X509_free);
    sysb.certs = sk_X509_new_null();
    sysb.st = *now;
    BIO *b = BIO_new_file(sysb.path, "r");
    STACK_OF(X509_INFO) *infos = b ? PEM_X509_INFO_read_bio(b, NULL, NULL, NULL) : NULL;
    for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->x509 && sysb.certs && sk_X509_push(sysb.certs, xi->x509))
            xi->x509 = NULL; /* moved */
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(b);
    ERR_clear_error();
    stats.sys_loads++;
    if (!sk_X509_num(sysb.certs))
        kf_log(KF_LOG_WARN, "relay: upstream trust: no certificate in the system bundle %s",
               sysb.path);
}

/* ---- one store ---- */

static int verify_cb(int ok, X509_STORE_CTX *sc)
{
    X509 *cur = X509_STORE_CTX_get_current_cert(sc);
    if (ok && cur && kimifix_ca && !X509_cmp(cur, kimifix_ca)) {
        X509_STORE_CTX_set_error(sc, X509_V_ERR_CERT_REJECTED);
        return 0; /* the kimifix CA never vouches for an upstream */
    }
    return ok;
}

SSL_CTX *truststore_client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
    tlsresume_ctx_setup(ctx); /* the last session per target, offered again */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* read_ahead: a record's header and body in one read() (and any
     * record behind it): half the reads per request. rio_can_read and the
     * pool's alive() look at SSL_has_pending, which sees those bytes. */
    SSL_CTX_set_read_ahead(ctx, 1);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    return ctx;
}

static void skip_line(const char *path, const char *why)
{
    kf_log(KF_LOG_WARN, "relay: upstream trust source %s: %s: skipped (the other sources still "
                        "count)", path, why);
}

static SSL_CTX *build(const ts_entry *e, const fst *snap)
{
    SSL_CTX *ctx = truststore_client_ctx();
    X509_STORE *st = ctx ? SSL_CTX_get_cert_store(ctx) : NULL;
    char why[256];
    if (!st) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (override[0]) {
        if (load_file(st, override, why, sizeof why) < 0)
            kf_log(KF_LOG_ERROR, "relay: KIMIFIX_UPSTREAM_CA=%s: %s", override, why);
        stats.builds++;
        return ctx;
    }
    X509_LOOKUP *lk = X509_STORE_add_lookup(st, X509_LOOKUP_hash_dir());
    if (lk)
        X509_LOOKUP_add_dir(lk, X509_get_default_cert_dir(), X509_FILETYPE_PEM);
    sys_refresh(&snap[0]);
    for (int i = 0; i < sk_X509_num(sysb.certs); i++)
        add_cert(st, sk_X509_value(sysb.certs, i), sysb.path);
    for (unsigned i = 0; i < e->n; i++) {
        struct stat s;
        const char *p = e->paths[i];
        if (stat(p, &s) < 0)
            skip_line(p, strerror(errno));
        else if (S_ISDIR(s.st_mode) && lk)
            load_dir(st, lk, p);
        else if (!S_ISREG(s.st_mode))
            skip_line(p, "not a file or directory");
        else if (load_file(st, p, why, sizeof why) < 0)
            skip_line(p, why);
    }
    ERR_clear_error();
    stats.builds++;
    return ctx;
}

/* ---- the cache ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, without duplicates; returns the count. */
static unsigned canon(const char *const *paths, unsigned n, const char **out)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n && k < TS_SOURCES_MAX; i++)
        if (paths[i] && paths[i][0] == '/')
            out[k++] = paths[i];
    qsort(out, k, sizeof *out, cmp_str);
    unsigned u = 0;
    for (unsigned i = 0; i < k; i++)
        if (!u || strcmp(out[u - 1], out[i]))
            out[u++] = out[i];
    return u;
}

static ts_entry *find(unsigned long long h, const char **p, unsigned n)
{
    for (unsigned i = 0; i < TS_CACHE_MAX; i++) {
        ts_entry *e = &cache[i];
        if (!e->ctx || e->hash != h || e->n != n)
            continue;
        unsigned k = 0;
        while (k < n && !strcmp(e->paths[k], p[k]))
            k++;
        if (k == n)
            return e;
    }
    return NULL;
}

static void entry_clear(ts_entry *e)
{
    for (unsigned i = 0; i < e->n; i++)
        free(e->paths[i]);
    SSL_CTX_free(e->ctx);
    memset(e, 0, sizeof *e);
}

static ts_entry *slot(void)
{
    ts_entry *lru = &cache[0];
    for (unsigned i = 0; i < TS_CACHE_MAX; i++) {
        if (!cache[i].ctx)
            return &cache[i];
        if (cache[i].used < lru->used)
            lru = &cache[i];
    }
    entry_clear(lru);
    stats.evictions++;
    return lru;
}

static void snapshot(const char **p, unsigned n, fst *st)
{
    fst_of(override[0] ? override : sysb.path, &st[0]);
    for (unsigned i = 0; i < n; i++)
        fst_of(p[i], &st[i + 1]);
}

static int same(const fst *a, const fst *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!fst_eq(&a[i], &b[i]))
            return 0;
    return 1;
}

/* Build a new store for e (its paths and st set) and install it. */
static int rebuild(ts_entry *e, const fst *snap, long now)
{
    SSL_CTX *ctx = build(e, snap);
    if (!ctx)
        return -1; /* e keeps its old store and stats: tried again next time */
    memcpy(e->st, snap, sizeof e->st);
    SSL_CTX_free(e->ctx);
    e->ctx = ctx;
    e->checked_ms = now;
    return 0;
}

SSL_CTX *truststore_get(const char *const *paths, unsigned n)
{
    const char *p[TS_SOURCES_MAX];
    n = canon(paths, n, p);
    unsigned long long h = KF_TRUST_FNV_INIT;
    for (unsigned i = 0; i < n; i++)
        h = kf_trust_fnv(h, p[i], strlen(p[i]) + 1);
    SSL_CTX *ret = NULL;
    fst snap[TS_SOURCES_MAX + 1] = {{0}};
    pthread_mutex_lock(&mu);
    long now = kf_mono_ms();
    ts_entry *e = find(h, p, n);
    if (e && now - e->checked_ms < recheck_ms)
        goto hit;
    snapshot(p, n, snap);
    if (e && same(e->st, snap, n + 1)) {
        e->checked_ms = now;
        goto hit;
    }
    if (!e) {
        e = slot();
        e->hash = h;
        for (unsigned i = 0; i < n; i++)
            if ((e->paths[i] = strdup(p[i])))
                e->n++;
        if (e->n != n) {
            entry_clear(e);
            goto out;
        }
    }
    if (rebuild(e, snap, now) < 0) {
        if (!e->ctx)
            entry_clear(e);
        goto out;
    }
    goto counted;
hit:
    stats.hits++;
counted:
    e->used = ++tick;
    SSL_CTX_up_ref(e->ctx);
    ret = e->ctx;
out:
    pthread_mutex_unlock(&mu);
    if (!ret)
        kf_log(KF_LOG_ERROR, "relay: upstream trust: cannot make a TLS context (out of memory)");
    return ret;
}

void truststore_shutdown(void)
{
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < TS_CACHE_MAX; i++)
        entry_clear(&cache[i]);
    sk_X509_pop_free(sysb.certs, X509_free);
    sysb.certs = NULL;
    X509_free(kimifix_ca);
    kimifix_ca = NULL;
    pthread_mutex_unlock(&mu);
}

void truststore_stats(ts_stats *s)
{
    pthread_mutex_lock(&mu);
    *s = stats;
    s->entries = 0;
    for (unsigned i = 0; i < TS_CACHE_MAX; i++)
        s->entries += cache[i].ctx != NULL;
    pthread_mutex_unlock(&mu);
}

void truststore_set_recheck_ms(long ms)
{
    pthread_mutex_lock(&mu);
    recheck_ms = ms;
    pthread_mutex_unlock(&mu);
}

void truststore_set_system_bundle(const char *path)
{
    pthread_mutex_lock(&mu);
    snprintf(sysb.path, sizeof sysb.path, "%s", path);
    pthread_mutex_unlock(&mu);
}

/* ---- messages ---- */

void truststore_describe(char *out, size_t n, const char *const *paths, unsigned np)
{
    size_t o;
    if (override[0]) {
        snprintf(out, n, "KIMIFIX_UPSTREAM_CA %s (replaces the system store)", override);
        return;
    }
    int w = snprintf(out, n, "system store (%s, %s)", X509_get_default_cert_dir(),
                     sysb.path[0] ? sysb.path : system_bundle());
    o = w > 0 && (size_t)w < n ? (size_t)w : n - 1;
    for (unsigned i = 0; i < np && i < TS_SOURCES_MAX; i++) {
        struct stat s;
        w = snprintf(out + o, n - o, ", %s%s", paths[i], stat(paths[i], &s) < 0 ? " (missing)" : "");
        o = w > 0 && (size_t)w < n - o ? o + (size_t)w : n - 1;
    }
}

void truststore_verify_error(char *out, size_t n, long verify_result, const char *const *paths,
                             unsigned np)
{
    char src[2048];
    truststore_describe(src, sizeof src, paths, np);
    snprintf(out, n, "certificate verification failed: %s (trusted: %s)",
             X509_verify_cert_error_string(verify_result), src);
}
