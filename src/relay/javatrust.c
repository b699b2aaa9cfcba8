/* javatrust.c - Java key stores: read their trusted certificates, build the
 * PKCS12 trust store a JVM is pointed at (truststore.h).
 *
 * JKS (magic 0xFEEDFEED) and JCEKS (0xCECECECE), big-endian:
 *   magic u4, version u4 (1 or 2), count u4, then per entry:
 *     tag u4 (1 private key, 2 trusted certificate, 3 secret key: JCEKS)
 *     alias: u2 length + modified UTF-8; date u8 (ms)
 *     tag 1: u4 length + protected key; u4 chain length; per certificate
 *            [version 2: u2 length + type] u4 length + DER
 *     tag 2: [version 2: u2 length + type] u4 length + DER
 *   trailer: 20-byte SHA-1 keyed by the store password (not checked: a
 *   trust store is public data, and we only read certificates from it).
 * A secret-key entry is a serialized Java object that cannot be skipped
 * without a Java deserializer: reading stops there (what came before is
 * kept). Debian's /etc/ssl/certs/java/cacerts is JKS version 2 with only
 * trusted-certificate entries; JDK 18+ ship cacerts as password-less
 * PKCS12.
 */
#include "truststore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include "kf_log.h"
#include "kf_paths.h"
#include "kf_trustjava.h"

#define STORE_MAX (16L << 20)
#define ENTRY_MAX 100000
#define JAVA_TRUST_OID "2.16.840.1.113894.746875.1.1"
#define ANY_EKU_OID "2.5.29.37.0"

int javatrust_is_jks(const unsigned char *h, size_t n)
{
    return n >= 4 && ((h[0] == 0xFE && h[1] == 0xED && h[2] == 0xFE && h[3] == 0xED) ||
                      (h[0] == 0xCE && h[1] == 0xCE && h[2] == 0xCE && h[3] == 0xCE));
}

static unsigned char *slurp(const char *path, size_t *len, char *why, size_t wn)
{
    FILE *f = fopen(path, "rbe");
    struct stat st;
    if (!f || fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > STORE_MAX) {
        snprintf(why, wn, "%s", f ? "not a regular file or too big" : strerror(errno));
        if (f)
            fclose(f);
        return NULL;
    }
    unsigned char *b = malloc((size_t)st.st_size + 1);
    *len = b ? fread(b, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!b)
        snprintf(why, wn, "out of memory");
    return b;
}

/* ---- JKS ---- */

typedef struct rd {
    const unsigned char *p;
    size_t len, off;
    int bad;
} rd;

static uint64_t get(rd *r, unsigned bytes)
{
    uint64_t v = 0;
    if (r->bad || r->len - r->off < bytes) {
        r->bad = 1;
        return 0;
    }
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | r->p[r->off++];
    return v;
}

static const unsigned char *take(rd *r, uint64_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *s = r->p + r->off;
    r->off += (size_t)n;
    return s;
}

/* One certificate: [type] length DER. Calls fn for trusted ones. */
static int jks_cert(rd *r, int v2, const char *alias, int trusted,
                    int (*fn)(void *, X509 *, const char *), void *ud, int *count)
{
    if (v2)
        take(r, get(r, 2)); /* "X.509" */
    uint64_t n = get(r, 4);
    const unsigned char *der = take(r, n);
    if (!der)
        return -1;
    X509 *x = d2i_X509(NULL, &der, (long)n);
    if (!x)
        return -1;
    if (trusted) {
        (*count)++;
        fn(ud, x, alias);
    }
    X509_free(x);
    return 0;
}

static int read_jks(const unsigned char *b, size_t len, int (*fn)(void *, X509 *, const char *),
                    void *ud, char *why, size_t wn)
{
    rd r = {b, len, 0, 0};
    get(&r, 4);
    uint64_t version = get(&r, 4), count = get(&r, 4);
    if (r.bad || (version != 1 && version != 2) || count > ENTRY_MAX) {
        snprintf(why, wn, "not a JKS store (version %llu)", (unsigned long long)version);
        return -1;
    }
    int v2 = version == 2, n = 0;
    for (uint64_t i = 0; i < count && !r.bad; i++) {
        uint64_t tag = get(&r, 4), an = get(&r, 2);
        const unsigned char *a = take(&r, an);
        char alias[256];
        snprintf(alias, sizeof alias, "%.*s", a ? (int)(an < 255 ? an : 255) : 0,
                 a ? (const char *)a : "");
        get(&r, 8); /* date */
        if (tag == 2) {
            if (jks_cert(&r, v2, alias, 1, fn, ud, &n) < 0)
                break;
        } else if (tag == 1) {
            take(&r, get(&r, 4));
            uint64_t chain = get(&r, 4);
            for (uint64_t k = 0; k < chain && k < 64 && !r.bad; k++)
                if (jks_cert(&r, v2, alias, 0, fn, ud, &n) < 0)
                    break;
        } else {
            break; /* JCEKS secret key: a serialized object; stop here */
        }
    }
    return n;
}

/* ---- PKCS12 ---- */

static ASN1_OBJECT *java_trust;
static pthread_once_t java_trust_once = PTHREAD_ONCE_INIT;

static void java_trust_init(void)
{
    java_trust = OBJ_txt2obj(JAVA_TRUST_OID, 1); /* kept for the process's life */
}

static ASN1_OBJECT *java_trust_oid(void)
{
    pthread_once(&java_trust_once, java_trust_init);
    return java_trust;
}

static int has_java_trust(const PKCS12_SAFEBAG *bag)
{
    const STACK_OF(X509_ATTRIBUTE) *attrs = PKCS12_SAFEBAG_get0_attrs(bag);
    ASN1_OBJECT *want = java_trust_oid();
    for (int i = 0; want && i < X509at_get_attr_count(attrs); i++)
        if (!OBJ_cmp(X509_ATTRIBUTE_get0_object(X509at_get_attr(attrs, i)), want))
            return 1;
    return 0;
}

/* Certificate bags of every safe: pass 0 counts Java-trusted ones, pass 1
 * reports (only those when any exist, else all). */
static int p12_bags(STACK_OF(PKCS7) *safes, const char *pass, int only_trusted,
                    int (*fn)(void *, X509 *, const char *), void *ud)
{
    int n = 0;
    for (int i = 0; i < sk_PKCS7_num(safes); i++) {
        PKCS7 *p7 = sk_PKCS7_value(safes, i);
        int nid = OBJ_obj2nid(p7->type);
        STACK_OF(PKCS12_SAFEBAG) *bags =
            nid == NID_pkcs7_data        ? PKCS12_unpack_p7data(p7)
            : nid == NID_pkcs7_encrypted ? PKCS12_unpack_p7encdata(p7, pass, -1)
                                         : NULL;
        for (int k = 0; k < sk_PKCS12_SAFEBAG_num(bags); k++) {
            PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, k);
            if (PKCS12_SAFEBAG_get_nid(bag) != NID_certBag || (only_trusted && !has_java_trust(bag)))
                continue;
            n++;
            X509 *x = fn ? PKCS12_SAFEBAG_get1_cert(bag) : NULL;
            if (x) {
                char *name = PKCS12_get_friendlyname(bag);
                fn(ud, x, name ? name : "");
                OPENSSL_free(name);
                X509_free(x);
            }
        }
        sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
    }
    return n;
}

static int count_trusted(void *ud, X509 *x, const char *alias)
{
    (void)ud, (void)x, (void)alias;
    return 0;
}

static int read_p12(const unsigned char *b, size_t len, const char *pass,
                    int (*fn)(void *, X509 *, const char *), void *ud, char *why, size_t wn)
{
    const unsigned char *p = b;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    STACK_OF(PKCS7) *safes = p12 ? PKCS12_unpack_authsafes(p12) : NULL;
    if (!safes) {
        PKCS12_free(p12);
        snprintf(why, wn, "neither a Java key store nor PKCS12");
        ERR_clear_error();
        return -1;
    }
    const char *pw = pass ? pass : "changeit"; /* only for encrypted bags */
    int trusted = p12_bags(safes, pw, 1, count_trusted, ud);
    int n = p12_bags(safes, pw, trusted > 0, fn, ud);
    sk_PKCS7_pop_free(safes, PKCS7_free);
    PKCS12_free(p12);
    ERR_clear_error();
    return n;
}

int javatrust_read(const char *path, const char *storepass,
                   int (*fn)(void *ud, X509 *x, const char *alias), void *ud, char *why,
                   size_t wn)
{
    size_t len = 0;
    unsigned char *b = slurp(path, &len, why, wn);
    if (!b)
        return -1;
    int n = javatrust_is_jks(b, len) ? read_jks(b, len, fn, ud, why, wn)
                                     : read_p12(b, len, storepass, fn, ud, why, wn);
    free(b);
    return n;
}

/* ---- building the JVM's store ---- */

typedef struct build {
    STACK_OF(PKCS12_SAFEBAG) *bags;
    int n, failed;
} build;

static int add_bag(build *bd, X509 *x, const char *alias)
{
    PKCS12_SAFEBAG *bag = PKCS12_SAFEBAG_create_cert(x);
    /* Java's trusted-certificate entry: the attribute's value is the set
     * of extended key usages the certificate is trusted for. */
    ASN1_OBJECT *any = OBJ_txt2obj(ANY_EKU_OID, 1);
    int ok = bag && any && PKCS12_add_friendlyname_asc(bag, alias, -1) &&
             PKCS12_add1_attr_by_txt(bag, JAVA_TRUST_OID, V_ASN1_OBJECT, (unsigned char *)any, -1) &&
             sk_PKCS12_SAFEBAG_push(bd->bags, bag);
    ASN1_OBJECT_free(any);
    if (!ok) {
        PKCS12_SAFEBAG_free(bag);
        bd->failed = 1;
        return -1;
    }
    bd->n++;
    return 0;
}

static int add_entry(void *ud, X509 *x, const char *alias)
{
    char name[300];
    build *bd = ud;
    if (truststore_is_kimifix(x))
        return 0; /* added once, below, under our own alias */
    /* Aliases must be unique in a key store: a copy keeps its own. */
    snprintf(name, sizeof name, "%s", *alias ? alias : "cert");
    return add_bag(bd, x, name);
}

static int write_store(build *bd, const char *dst, char *why, size_t wn)
{
    STACK_OF(PKCS7) *safes = sk_PKCS7_new_null();
    PKCS7 *p7 = PKCS12_pack_p7data(bd->bags);
    PKCS12 *p12 = NULL;
    if (safes && p7 && sk_PKCS7_push(safes, p7)) {
        p7 = NULL;
        p12 = PKCS12_add_safes(safes, 0); /* no MAC: any password, or none, loads it */
    }
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", dst, (long)getpid());
    BIO *out = p12 ? BIO_new_file(tmp, "wb") : NULL;
    int ok = out && i2d_PKCS12_bio(out, p12) == 1;
    ok &= out && BIO_free(out) == 1;
    ok = ok && chmod(tmp, 0644) == 0 && rename(tmp, dst) == 0;
    if (!ok) {
        snprintf(why, wn, "cannot write %s: %s", dst, p12 ? strerror(errno) : "out of memory");
        unlink(tmp);
    }
    PKCS7_free(p7);
    sk_PKCS7_pop_free(safes, PKCS7_free);
    PKCS12_free(p12);
    return ok ? 0 : -1;
}

static X509 *load_pem(const char *path)
{
    FILE *f = fopen(path, "re");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    return x;
}

int javatrust_build(const char *datadir, const char *src, const char *storepass, char *out,
                    size_t n, char *why, size_t wn)
{
    char dir[4200], ca_path[4200];
    struct stat st;
    if (kf_java_store_path(datadir, src, out, n) < 0) {
        snprintf(why, wn, "%s or %s/ca.pem: missing", src, datadir);
        return -1;
    }
    if (lstat(out, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid())
        return 0;
    if (!kf_path_join(dir, sizeof dir, datadir, KF_JAVA_DIR) || kf_private_dir(dir, 1) < 0) {
        snprintf(why, wn, "%s: %s", dir, strerror(errno));
        return -1;
    }
    X509 *ca = load_pem(kf_path_join(ca_path, sizeof ca_path, datadir, "ca.pem"));
    build bd = {sk_PKCS12_SAFEBAG_new_null(), 0, 0};
    int got = ca && bd.bags ? javatrust_read(src, storepass, add_entry, &bd, why, wn) : -1;
    if (!ca)
        snprintf(why, wn, "cannot read %s", ca_path);
    int rc = -1;
    if (got >= 0 && !bd.failed && add_bag(&bd, ca, "kimifix-local-ca") == 0)
        rc = write_store(&bd, out, why, wn);
    if (rc == 0)
        kf_log(KF_LOG_INFO, "relay: Java trust store %s: %d entries of %s + the kimifix CA", out,
               bd.n - 1, src);
    sk_PKCS12_SAFEBAG_pop_free(bd.bags, PKCS12_SAFEBAG_free);
    X509_free(ca);
    return rc;
}
