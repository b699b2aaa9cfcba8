/* trustbench.c - what per-client upstream trust costs the relay (figure 14,
 * bench/figs/fig_14_trust.py). Links the relay's own truststore.o and
 * ctxtab.o. Prints "key value" lines:
 *
 *   hit_ns_p50 / hit_ns_p90    one steady-state lookup of a connection:
 *                              ctxtab_get + ctxtab_upstream_ctx (store
 *                              cache hit) + SSL_CTX_free + ctxtab_put
 *   recheck_ns_p50             the same when the entry is re-validated
 *                              (one stat per source + the system bundle:
 *                              at most once a second per source set)
 *   base_ns_p50                the timer alone (subtract nothing: report)
 *   rss_kib_today              today's relay: one upstream SSL_CTX on the
 *                              hashed directory (upstream.c)
 *   rss_kib_10sets             instead: the default store (+ the system
 *                              bundle, parsed once) and 10 distinct client
 *                              source sets, each one CA file
 *   rss_kib_10naive_delta      10 stores each parsing the bundle itself
 *                              (what sharing the parsed bundle avoids)
 * RSS is read after malloc_trim(0) (freed memory is not the module's).
 *
 * Each sample is one call timed with clock_gettime(CLOCK_MONOTONIC);
 * percentiles over SAMPLES calls. A kimifix CA is made in a temp dir.
 */
#include <malloc.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctxtab.h"
#include "kf_trust.h"
#include "truststore.h"

#define SAMPLES 200000

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static long long pct(long long *v, int n, int p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    return v[(size_t)n * (size_t)p / 100];
}

static long rss_kib(void)
{
    malloc_trim(0);
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static X509 *make_ca(const char *cn)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, k, EVP_sha256());
    EVP_PKEY_free(k);
    return x;
}

static void write_pem(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    PEM_write_X509(f, x);
    fclose(f);
}

/* A registered context with these trust sources (in-process). */
static relay_ctx *context(const char *const *paths, unsigned n, unsigned char id[16])
{
    char text[KF_CTXMSG_MAX], why[128];
    kf_ctxmsg_buf b;
    kf_ctxmsg_begin(&b, text, sizeof text, KF_CTXMSG_CTX);
    for (unsigned i = 0; i < n; i++)
        kf_ctxmsg_add(&b, "trust", paths[i]);
    kf_ctxmsg_add(&b, "exe", "/usr/bin/bench");
    ssize_t len = kf_ctxmsg_end(&b);
    kf_ctxmsg m;
    const char *w;
    if (kf_ctxmsg_parse(text, (size_t)len, &m, &w) != len ||
        ctxtab_register(&m, text, (size_t)len, -1, id, why, sizeof why) < 0) {
        fprintf(stderr, "trustbench: cannot register: %s\n", why);
        exit(1);
    }
    return ctxtab_get(id);
}

static long long one_connection(const unsigned char id[16])
{
    long long t0 = now_ns();
    relay_ctx *c = ctxtab_get(id);
    SSL_CTX *s = ctxtab_upstream_ctx(c);
    SSL_CTX_free(s);
    ctxtab_put(c);
    return now_ns() - t0;
}

int main(void)
{
    static long long v[SAMPLES];
    char dir[] = "/tmp/kftrustbench.XXXXXX", p[256], src[2][256];
    if (!mkdtemp(dir))
        return 1;
    snprintf(p, sizeof p, "%s/ca.pem", dir);
    X509 *kca = make_ca("kimifix bench CA");
    write_pem(p, kca);
    unsetenv("KIMIFIX_UPSTREAM_CA");
    /* every file first: key generation is not the module's memory */
    X509 *corp = make_ca("Corp CA");
    snprintf(src[0], sizeof src[0], "%s/corp.pem", dir);
    write_pem(src[0], corp);
    snprintf(src[1], sizeof src[1], "%s/certs", dir);
    mkdir(src[1], 0700);
    char sets[10][300];
    for (int i = 0; i < 10; i++) {
        char cn[32];
        snprintf(sets[i], sizeof sets[i], "%s/set%d.pem", dir, i);
        snprintf(cn, sizeof cn, "Set %d CA", i);
        X509 *x = make_ca(cn);
        write_pem(sets[i], x);
        X509_free(x);
    }
    SSL_CTX *today = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(today, NULL, X509_get_default_cert_dir());
    long rss0 = rss_kib();
    if (truststore_init(dir) < 0)
        return 1;
    SSL_CTX *def = truststore_get(NULL, 0);
    SSL_CTX *held[10];
    for (int i = 0; i < 10; i++) {
        const char *one[1] = {sets[i]};
        held[i] = truststore_get(one, 1);
    }
    printf("rss_kib_today %ld\nrss_kib_10sets %ld\n", rss0, rss_kib());
    /* a client with two sources of its own (a corporate CA file, a dir) */
    const char *paths[2] = {src[0], src[1]};
    unsigned char id[16];
    ctxtab_put(context(paths, 2, id));
    one_connection(id); /* builds the store */

    for (int i = 0; i < SAMPLES; i++) {
        long long t0 = now_ns();
        v[i] = now_ns() - t0;
    }
    printf("base_ns_p50 %lld\n", pct(v, SAMPLES, 50));
    for (int i = 0; i < SAMPLES; i++)
        v[i] = one_connection(id);
    printf("hit_ns_p50 %lld\nhit_ns_p90 %lld\n", pct(v, SAMPLES, 50), pct(v, SAMPLES, 90));
    truststore_set_recheck_ms(0);
    for (int i = 0; i < SAMPLES / 10; i++)
        v[i] = one_connection(id);
    printf("recheck_ns_p50 %lld\n", pct(v, SAMPLES / 10, 50));
    truststore_set_recheck_ms(TS_RECHECK_MS);

    /* for comparison: 10 stores that each parse the system bundle */
    long r1 = rss_kib();
    X509_STORE *naive[10];
    for (int i = 0; i < 10; i++) {
        naive[i] = X509_STORE_new();
        X509_STORE_load_file(naive[i], kf_trust_system_bundle());
    }
    printf("rss_kib_10naive_delta %ld\n", rss_kib() - r1);
    ts_stats st;
    truststore_stats(&st);
    printf("store_builds %lu\nstore_entries %u\n", st.builds, st.entries);
    for (int i = 0; i < 10; i++) {
        SSL_CTX_free(held[i]);
        X509_STORE_free(naive[i]);
    }
    SSL_CTX_free(def);
    SSL_CTX_free(today);
    X509_free(corp);
    X509_free(kca);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
