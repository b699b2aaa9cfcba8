/* truststore.h - trust both ways, the relay's side (docs/relay.md "Trust").
 *
 *   truststore.c  upstream: one verifying client SSL_CTX per distinct set of
 *                 trust sources (system store + the client's own files and
 *                 directories, never the kimifix CA), cached, LRU-bounded
 *   javatrust.c   Java key stores: read trusted certificates from JKS, JCEKS
 *                 and PKCS12; build the PKCS12 trust store a JVM is given
 *   distrust.c    learning which programs refuse the kimifix CA
 *
 * Thread-safe (one mutex per module); callable from the event loop: a
 * cache hit is a lock, a lookup and a reference (no system call while the
 * entry is younger than the recheck interval, then one stat per source).
 */
#ifndef KF_RELAY_TRUSTSTORE_H
#define KF_RELAY_TRUSTSTORE_H

#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TS_SOURCES_MAX 16
#define TS_CACHE_MAX 16          /* distinct source sets kept */
#define TS_RECHECK_MS 1000       /* re-stat the sources at most this often */

/* Read the kimifix CA (DATADIR/ca.pem: excluded from every store) and
 * KIMIFIX_UPSTREAM_CA (when set, it replaces every store: tests). Call
 * after ca_init(). 0 or -1. */
int truststore_init(const char *datadir);
/* truststore_init() succeeded (the kimifix CA is known): 1, else 0. */
int truststore_ready(void);
/* Drop every cached store (SSL_CTXs still in use live on). */
void truststore_shutdown(void);

/* The upstream SSL_CTX for these sources (paths: absolute files or
 * directories; n == 0: the system store only). Settings as upstream.c's
 * upstream_ctx(): client, TLS >= 1.2, ALPN http/1.1, peer verification,
 * no session cache. Returns a new reference (SSL_CTX_free() it when the
 * connection is done), or NULL (out of memory: log says). A source that
 * is missing or holds no certificate is skipped with one log line per
 * (re)build; the others still count. */
SSL_CTX *truststore_get(const char *const *paths, unsigned n);

/* A client SSL_CTX with the relay's upstream settings and no trust yet
 * (TLS >= 1.2, peer verification refusing any chain through the kimifix
 * CA once known, no session cache, ALPN http/1.1; upstream.c's default
 * store is made from it too). NULL when out of memory. */
SSL_CTX *truststore_client_ctx(void);

/* "system store (DIR, FILE), /a.pem, /b.pem (missing)" */
void truststore_describe(char *out, size_t n, const char *const *paths, unsigned np);

/* The 502 / log text of a failed verification:
 * "certificate verification failed: REASON (trusted: SOURCES)". */
void truststore_verify_error(char *out, size_t n, long verify_result, const char *const *paths,
                             unsigned np);

/* Is x the kimifix CA? (by SHA-256 fingerprint) */
int truststore_is_kimifix(X509 *x);

/* Counters (tests, bench). */
typedef struct ts_stats {
    unsigned long hits, builds, evictions, sys_loads;
    unsigned entries;
} ts_stats;
void truststore_stats(ts_stats *s);
/* Tests: the recheck interval (default TS_RECHECK_MS; 0 = every lookup),
 * and another file standing for the system bundle. */
void truststore_set_recheck_ms(long ms);
void truststore_set_system_bundle(const char *path);

/* ---- javatrust.c ---- */

/* Read the trusted certificates of a Java key store (JKS/JCEKS: trusted
 * certificate entries; PKCS12: certificate bags, with Java's trusted-usage
 * attribute when any bag has one) or stop at the first that does not
 * parse. fn gets each certificate (borrowed) and its alias. storepass may
 * be NULL (JKS integrity is not checked; PKCS12 MACs are not required).
 * Returns the number of certificates, -1 when the file is no key store
 * (why says). */
int javatrust_read(const char *path, const char *storepass,
                   int (*fn)(void *ud, X509 *x, const char *alias), void *ud, char *why,
                   size_t wn);
/* Does the file start like a Java key store (JKS/JCEKS magic)? */
int javatrust_is_jks(const unsigned char *head, size_t n);

/* Build the JVM's trust store: the trusted certificates of src plus the
 * kimifix CA (DATADIR/ca.pem), as PKCS12 with Java's trusted-certificate
 * attribute (OID 2.16.840.1.113894.746875.1.1 = anyExtendedKeyUsage),
 * unencrypted certificate bags and no MAC (loads with any or no password),
 * written atomically to kf_java_store_path(datadir, src) (0644 in a 0700
 * directory). 0 with out = the path, -1 with why. Reuses an existing one. */
int javatrust_build(const char *datadir, const char *src, const char *storepass, char *out,
                    size_t n, char *why, size_t wn);

/* ---- distrust.c ---- */

/* A client's TLS handshake with the relay failed with OpenSSL error `err`
 * (ERR_peek_error() right after SSL_accept failed). When it is the
 * client's alert refusing our certificate (unknown_ca, bad_certificate,
 * unsupported_certificate, certificate_unknown), record that the program
 * (exe, buildid: from its context; NULL when none) distrusts the relay and
 * log it loudly once. Returns 1 when err was such an alert. */
int distrust_note(unsigned long err, const char *datadir, const char *exe, const char *buildid,
                  const char *host);
/* The alert's name for an OpenSSL error, or NULL when not a distrust alert. */
const char *distrust_alert_name(unsigned long err);

#endif
