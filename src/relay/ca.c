/* ca.c - the per-user kimifix CA and the leaf certificates it mints.
 *
 * The CA is EC P-256, made once per user, and name-constrained (critical
 * nameConstraints, permitted dNSName subtrees = the explicit hosts of the
 * enabled rules, excluded iPAddress subtrees 0.0.0.0/0 and ::/0). OpenSSL,
 * BoringSSL, Go and browsers then refuse any leaf it signs for another
 * name, even if the key leaked. Why the IP exclusion: constraints apply
 * per name type, so a CA that permits only DNS subtrees leaves IP names
 * unconstrained (a leaf for IP:10.1.2.3 would verify). Matching (OpenSSL
 * nc_dns, RFC 5280): the subtree "api.kimi.com" permits api.kimi.com and
 * its subdomains; ".example.org" (from a rule host "*.example.org")
 * permits subdomains only; rules at or above a public suffix are refused
 * when they load (kf_psl.c). When the CA's constraints are not exactly
 * what the rules need (a host added or dropped, or a CA made by an older
 * kimifix without the IP exclusion), a new CA replaces it (logged; clients
 * pick it up when they start).
 *
 * Keys (ca.key, leaf.key) are used only when they are regular files of
 * ours that nobody else can read (0600). A key that was group- or
 * world-readable may be known to others: chmod would not un-leak it, so a
 * new key (and for ca.key a new CA) replaces it, with a warning.
 *
 * Leaves: one shared P-256 key (leaf.key), a certificate per host, valid 7
 * days, re-minted a day before expiry, cached in memory and in certs/.
 */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "kf_log.h"
#include "kf_paths.h"
#include "kf_rules_hosts.h"
#include "kf_trust.h"

#define CA_DAYS 825
#define CA_RENEW_DAYS 30
#define LEAF_SECS (7L * 86400)
#define LEAF_RENEW_SECS 86400L
#define CACHE_MAX 256

static X509 *ca_cert;
static EVP_PKEY *ca_key, *leaf_key;
static char dir[4096], names[8192];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char host[256];
    X509 *cert;
    time_t not_after;
} cache[CACHE_MAX];
static unsigned ncache;

const char *ca_names(void)
{
    return names;
}

EVP_PKEY *ca_leaf_key(void)
{
    return leaf_key;
}

static char *path_of(char *buf, size_t n, const char *name)
{
    return kf_path_join(buf, n, dir, name);
}

/* Write a file atomically with the given mode. */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -1;
    int ok = write(fd, data, len) == (ssize_t)len;
    ok &= fchmod(fd, mode) == 0;
    ok &= close(fd) == 0;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

typedef int (*pem_writer)(BIO *, const void *);
static int pem_w_cert(BIO *b, const void *x) { return PEM_write_bio_X509(b, (X509 *)x); }
static int pem_w_key(BIO *b, const void *k)
{
    return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

static int save_pem(const char *path, pem_writer w, const void *obj, mode_t mode)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    int rc = -1;
    if (b && w(b, obj)) {
        long n = BIO_get_mem_data(b, &p);
        rc = write_atomic(path, p, (size_t)n, mode);
    }
    BIO_free(b);
    return rc;
}

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

/* A private key, if its file is safe to use: a regular file (not a
 * link), ours, with no group or other permission bits. Otherwise NULL, and
 * *unsafe says why (left alone when the file is just missing or bad). */
static EVP_PKEY *load_key(const char *path, char *unsafe, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        if (errno == ELOOP)
            snprintf(unsafe, n, "%s is a symbolic link", path);
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077)) {
        snprintf(unsafe, n, "%s is %s (mode %04o, owner uid %u)", path,
                 !S_ISREG(st.st_mode)       ? "not a regular file"
                 : st.st_uid != geteuid() ? "owned by another user"
                                          : "readable or writable by others",
                 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

static int add_ext(X509 *issuer, X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e)
        return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

static int set_serial(X509 *x)
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1)
        return -1;
    r[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(r, sizeof r, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok ? 0 : -1;
}

/* Is this subtree "every address" of one family (0.0.0.0/0 or ::/0)? */
static int any_ip(const GENERAL_SUBTREE *st, int len)
{
    if (st->base->type != GEN_IPADD || st->base->d.iPAddress->length != len)
        return 0;
    for (int i = 0; i < len; i++)
        if (st->base->d.iPAddress->data[i])
            return 0;
    return 1;
}

/* The permitted DNS subtrees a CA carries, space-separated, into out.
 * Returns 1 when its constraints are of the form make_ca() writes: only
 * DNS subtrees permitted, and every IPv4 and IPv6 address excluded. */
static int ca_permitted(X509 *ca, char *out, size_t n)
{
    out[0] = 0;
    NAME_CONSTRAINTS *nc = X509_get_ext_d2i(ca, NID_name_constraints, NULL, NULL);
    if (!nc)
        return 0;
    int v4 = 0, v6 = 0, other = 0;
    for (int i = 0; i < sk_GENERAL_SUBTREE_num(nc->excludedSubtrees); i++) {
        const GENERAL_SUBTREE *st = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, i);
        v4 |= any_ip(st, 8);
        v6 |= any_ip(st, 32);
    }
    size_t used = 0;
    for (int i = 0; i < sk_GENERAL_SUBTREE_num(nc->permittedSubtrees); i++) {
        GENERAL_SUBTREE *st = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i);
        if (st->base->type != GEN_DNS) {
            other = 1;
            continue;
        }
        ASN1_IA5STRING *s = st->base->d.dNSName;
        int w = snprintf(out + used, n - used, "%s%.*s", used ? " " : "", s->length,
                         (const char *)s->data);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    NAME_CONSTRAINTS_free(nc);
    return v4 && v6 && !other;
}

/* Every word of need is a word of have (case-insensitive). */
static int covers(const char *have, const char *need)
{
    char tmp[8192];
    snprintf(tmp, sizeof tmp, "%s", need);
    char *save, *w;
    for (w = strtok_r(tmp, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        size_t n = strlen(w);
        const char *p = have;
        int found = 0;
        while (*p && !found) {
            size_t m = strcspn(p, " ");
            found = m == n && !strncasecmp(p, w, n);
            p += m + (p[m] == ' ');
        }
        if (!found)
            return 0;
    }
    return 1;
}

static X509 *make_ca(EVP_PKEY *key)
{
    X509 *x = X509_new();
    char nc[9000], cn[300], host[200] = "localhost";
    const char *user = getenv("USER");
    gethostname(host, sizeof host - 1);
    snprintf(cn, sizeof cn, KF_CA_CN_PREFIX " (%s@%s)", user ? user : "user", host);
    /* permitted;DNS:a,permitted;DNS:b ... ("invalid" when there is none,
     * RFC 6761: a CA that can sign for nothing). */
    size_t used = (size_t)snprintf(nc, sizeof nc, "critical");
    char tmp[8192];
    snprintf(tmp, sizeof tmp, "%s", names[0] ? names : "invalid");
    char *save;
    for (char *w = strtok_r(tmp, " ", &save); w; w = strtok_r(NULL, " ", &save))
        used += (size_t)snprintf(nc + used, sizeof nc - used, ",permitted;DNS:%s", w);
    /* IP names are otherwise unconstrained (see the top of the file). */
    snprintf(nc + used, sizeof nc - used, ",excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:::/::");
    if (!x || !X509_set_version(x, 2) || set_serial(x) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)CA_DAYS * 86400) ||
        !X509_set_pubkey(x, key))
        goto fail;
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (unsigned char *)cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_UTF8, (unsigned char *)KF_CA_ORG, -1, -1, 0);
    X509_set_issuer_name(x, nm);
    if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        add_ext(x, x, NID_subject_key_identifier, "hash") ||
        add_ext(x, x, NID_authority_key_identifier, "keyid:always") ||
        add_ext(x, x, NID_name_constraints, nc) || !X509_sign(x, key, EVP_sha256()))
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

/* Leaves on disk signed by an old CA fail usable() and are re-minted. */
static void drop_leaf_cache(void)
{
    for (unsigned i = 0; i < ncache; i++)
        X509_free(cache[i].cert);
    ncache = 0;
}

static const char *system_ca_file(void)
{
    const char *deb = "/etc/ssl/certs/ca-certificates.crt";
    return access(deb, R_OK) == 0 ? deb : X509_get_default_cert_file();
}

/* ca-bundle.pem = system CAs + ours (for SSL_CERT_FILE). */
static int write_bundle(void)
{
    char p[4200], *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = fopen(system_ca_file(), "re");
    if (f) {
        char chunk[16384];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
            if (len + n > cap) {
                cap = (len + n) * 2;
                char *nb = realloc(buf, cap);
                if (!nb) {
                    fclose(f);
                    free(buf);
                    return -1;
                }
                buf = nb;
            }
            memcpy(buf + len, chunk, n);
            len += n;
        }
        fclose(f);
    } else {
        kf_log(KF_LOG_WARN, "relay: no system CA file (%s): ca-bundle.pem has only the kimifix CA",
               system_ca_file());
    }
    BIO *b = BIO_new(BIO_s_mem());
    if (len)
        BIO_write(b, buf, (int)len);
    BIO_puts(b, "\n# kimifix local CA\n");
    PEM_write_bio_X509(b, ca_cert);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    int rc = write_atomic(path_of(p, sizeof p, "ca-bundle.pem"), data, (size_t)n, 0644);
    BIO_free(b);
    free(buf);
    return rc;
}

static void collect_names(const kf_ruleset *rs)
{
    size_t used = 0;
    const char *n;
    int wild;
    names[0] = 0;
    for (unsigned i = 0; kf_rules_host_at(rs, i, &n, &wild); i++) {
        if (!kf_proxy_valid_host(n + (*n == '.'), strlen(n) - (*n == '.')))
            continue;
        int w = snprintf(names + used, sizeof names - used, "%s%s", used ? " " : "", n);
        if (w < 0 || (size_t)w >= sizeof names - used)
            break;
        used += (size_t)w;
    }
}

/* Why the CA on disk cannot stay (NULL: it can). Its constraints must be
 * exactly what the rules need: a wider CA (hosts the rules dropped, a
 * `host *.com` an older kimifix accepted, no IP exclusion) is replaced. */
static const char *ca_unfit(const char *key_unsafe)
{
    char have[8192];
    const char *need = names[0] ? names : "invalid";
    if (key_unsafe[0])
        return "its key may be known to others";
    if (!ca_key || !ca_cert)
        return "none yet";
    if (X509_check_private_key(ca_cert, ca_key) != 1)
        return "ca.key does not match ca.pem";
    if (X509_cmp_time(X509_get0_notAfter(ca_cert), &(time_t){time(NULL) + CA_RENEW_DAYS * 86400L}) <= 0)
        return "it expires soon";
    if (!ca_permitted(ca_cert, have, sizeof have))
        return "its name constraints do not exclude IP addresses (made by an older kimifix)";
    if (!covers(have, need))
        return "the rules name hosts it does not cover";
    if (!covers(need, have))
        return "it covers hosts the rules no longer name";
    return NULL;
}

int ca_init(const char *datadir, const kf_ruleset *rs)
{
    char p[4200], have[8192], unsafe[4400] = "";
    snprintf(dir, sizeof dir, "%s", datadir);
    collect_names(rs);

    ca_key = load_key(path_of(p, sizeof p, "ca.key"), unsafe, sizeof unsafe);
    ca_cert = load_cert(path_of(p, sizeof p, "ca.pem"));
    if (unsafe[0])
        kf_log(KF_LOG_WARN, "relay: %s: whoever could read it could sign for the rules' hosts; "
                            "not using it", unsafe);
    const char *why = ca_unfit(unsafe);
    if (why) {
        kf_log(KF_LOG_INFO, "relay: making a new kimifix CA (%s) for: %s", why,
               names[0] ? names : "(no rule hosts)");
        EVP_PKEY_free(ca_key);
        X509_free(ca_cert);
        ca_key = EVP_EC_gen("P-256");
        ca_cert = ca_key ? make_ca(ca_key) : NULL;
        if (!ca_cert ||
            save_pem(path_of(p, sizeof p, "ca.key"), pem_w_key, ca_key, 0600) ||
            save_pem(path_of(p, sizeof p, "ca.pem"), pem_w_cert, ca_cert, 0644)) {
            kf_log(KF_LOG_ERROR, "relay: cannot make the CA in %s: %s", dir, strerror(errno));
            return -1;
        }
        drop_leaf_cache();
    }
    ca_permitted(ca_cert, have, sizeof have);
    char txt[8300];
    int tn = snprintf(txt, sizeof txt, "%s\n", have);
    write_atomic(path_of(p, sizeof p, "ca.names"), txt, (size_t)tn, 0644);
    if (write_bundle() < 0)
        kf_log(KF_LOG_WARN, "relay: cannot write ca-bundle.pem: %s", strerror(errno));

    unsafe[0] = 0;
    leaf_key = load_key(path_of(p, sizeof p, "leaf.key"), unsafe, sizeof unsafe);
    if (unsafe[0])
        kf_log(KF_LOG_WARN, "relay: %s: not using it; making a new leaf key", unsafe);
    if (!leaf_key) {
        leaf_key = EVP_EC_gen("P-256");
        if (!leaf_key || save_pem(p, pem_w_key, leaf_key, 0600)) {
            kf_log(KF_LOG_ERROR, "relay: cannot make leaf.key: %s", strerror(errno));
            return -1;
        }
    }
    path_of(p, sizeof p, "certs");
    if (kf_private_dir(p, 1) < 0)
        kf_log(KF_LOG_WARN, "relay: %s: %s (no disk cache)", p, strerror(errno));
    return 0;
}

static X509 *mint(const char *host)
{
    X509 *x = X509_new();
    char san[300];
    snprintf(san, sizeof san, "DNS:%s", host);
    if (!x || !X509_set_version(x, 2) || set_serial(x) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), LEAF_SECS) || !X509_set_pubkey(x, leaf_key))
        goto fail;
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(ca_cert));
    if (add_ext(ca_cert, x, NID_basic_constraints, "critical,CA:FALSE") ||
        add_ext(ca_cert, x, NID_key_usage, "critical,digitalSignature") ||
        add_ext(ca_cert, x, NID_ext_key_usage, "serverAuth") ||
        add_ext(ca_cert, x, NID_subject_alt_name, san) ||
        add_ext(ca_cert, x, NID_subject_key_identifier, "hash") ||
        add_ext(ca_cert, x, NID_authority_key_identifier, "keyid") ||
        !X509_sign(x, ca_key, EVP_sha256()))
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

/* A cached leaf is usable: signed by our CA, for our key, not expiring. */
static int usable(X509 *x, time_t now)
{
    EVP_PKEY *pub = X509_get0_pubkey(ca_cert);
    time_t limit = now + LEAF_RENEW_SECS;
    return X509_verify(x, pub) == 1 && X509_check_private_key(x, leaf_key) == 1 &&
           X509_cmp_time(X509_get0_notAfter(x), &limit) > 0;
}

X509 *ca_leaf_for(const char *host)
{
    time_t now = time(NULL);
    X509 *x = NULL;
    char p[4200], rel[300];
    pthread_mutex_lock(&cache_mu);
    unsigned i;
    for (i = 0; i < ncache; i++)
        if (!strcmp(cache[i].host, host))
            break;
    if (i < ncache && cache[i].not_after > now + LEAF_RENEW_SECS) {
        x = cache[i].cert;
        X509_up_ref(x);
        pthread_mutex_unlock(&cache_mu);
        return x;
    }
    snprintf(rel, sizeof rel, "certs/%s.pem", host);
    path_of(p, sizeof p, rel);
    x = load_cert(p);
    if (x && !usable(x, now)) {
        X509_free(x);
        x = NULL;
    }
    if (!x) {
        x = mint(host);
        if (x && save_pem(p, pem_w_cert, x, 0644) < 0)
            kf_log(KF_LOG_DEBUG, "relay: cannot cache %s: %s", p, strerror(errno));
        if (x)
            kf_log(KF_LOG_INFO, "relay: minted a certificate for %s (valid 7 days)", host);
    }
    if (x) {
        if (i == ncache && ncache == CACHE_MAX) /* full: reuse the oldest slot */
            i = 0;
        if (i < ncache)
            X509_free(cache[i].cert);
        else
            ncache++;
        snprintf(cache[i].host, sizeof cache[i].host, "%s", host);
        cache[i].cert = x;
        struct tm tm = {0};
        ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
        cache[i].not_after = timegm(&tm);
        X509_up_ref(x);
    }
    pthread_mutex_unlock(&cache_mu);
    return x;
}
