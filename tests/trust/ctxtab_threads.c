/* ctxtab_threads.c - the context table and the trust stores under
 * threads, for ThreadSanitizer (`make trust-tsan`; Criterion cannot run
 * under TSan): lookups and releases from 4 threads (the relay's connection
 * threads), registrations through relay.sock (its own thread) and sweeps,
 * all at once. Exit 0 and "ctxtab_threads: ok" when the table is
 * consistent afterwards; TSan reports fail the run by themselves. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ctxtab.h"
#include "truststore.h"

static char run[128], data[128];

static int reg(const char *trust, unsigned char id[16])
{
    char msg[512], reply[KF_CTXMSG_REPLY_MAX], why[128];
    int n = snprintf(msg, sizeof msg, "kfctx 1\ntrust %s\nexe /bin/t\n\n", trust);
    if (kf_ctx_call(run, msg, (size_t)n, -1, 1000, reply, sizeof reply, why, sizeof why) != 1)
        return -1;
    return kf_ctx_id_parse((kf_str){reply, strlen(reply)}, id);
}

static void *lookups(void *p)
{
    unsigned char *id = p;
    for (int i = 0; i < 3000; i++) {
        relay_ctx *c = ctxtab_get(id);
        SSL_CTX *s = ctxtab_upstream_ctx(c);
        SSL_CTX_free(s);
        ctxtab_put(c);
        if (i % 100 == 0)
            ctxtab_sweep(ctxtab_now());
    }
    return NULL;
}

int main(void)
{
    char dir[] = "/tmp/kfctxthr.XXXXXX", ca[256], cmd[300];
    if (!mkdtemp(dir))
        return 1;
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(run, 0700);
    mkdir(data, 0700);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_sign(x, k, EVP_sha256());
    snprintf(ca, sizeof ca, "%s/ca.pem", data);
    FILE *f = fopen(ca, "w");
    PEM_write_X509(f, x);
    fclose(f);
    unsetenv("KIMIFIX_UPSTREAM_CA");
    if (ctxtab_start(run, data) < 0)
        return 1;
    truststore_set_recheck_ms(0);
    unsigned char ids[4][16];
    pthread_t t[4];
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        char src[200];
        snprintf(src, sizeof src, "%s/ca.pem", data); /* the kimifix CA: left out, logged */
        if (i % 2)
            snprintf(src, sizeof src, "/missing/%d.pem", i);
        bad |= reg(src, ids[i]) < 0;
        pthread_create(&t[i], NULL, lookups, ids[i]);
    }
    for (int i = 0; i < 30; i++) {
        char src[64];
        unsigned char id[16];
        snprintf(src, sizeof src, "/other/%d.pem", i);
        bad |= reg(src, id) < 0;
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    unsigned n = ctxtab_count();
    ctxtab_stop();
    truststore_shutdown();
    X509_free(x);
    EVP_PKEY_free(k);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0 || bad || n != 33) {
        fprintf(stderr, "ctxtab_threads: FAILED (registrations %s, %u contexts, want 33)\n",
                bad ? "failed" : "ok", n);
        return 1;
    }
    printf("ctxtab_threads: ok\n");
    return 0;
}
