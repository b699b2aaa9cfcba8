/* kf_trustjava.h - Java's trust, the client's side (docs/relay.md "Trust").
 *
 * The JDK trusts only its own store (JAVA_HOME/lib/security/jssecacerts,
 * else cacerts; Debian's is a JKS file, /etc/ssl/certs/java/cacerts), or
 * the one javax.net.ssl.trustStore names. kimifix gives it a PKCS12 store
 * holding that store's entries plus the kimifix CA (built by the relay,
 * which has OpenSSL: src/relay/javatrust.c), and points the JVM at it:
 *
 *   JAVA_TOOL_OPTIONS="<the user's options> -Djavax.net.ssl.trustStore=S
 *                      -Djavax.net.ssl.trustStoreType=PKCS12"
 *
 * A later -D wins, so the user's own -D options stay and ours come last
 * (combined, never replaced). When the user names a store, it is read
 * instead of cacerts; when that happens in a variable read after
 * JAVA_TOOL_OPTIONS (JDK_JAVA_OPTIONS, the command line, _JAVA_OPTIONS),
 * ours goes to the variable that wins (_JAVA_OPTIONS for the command line).
 *
 * Pure functions over strings and files; libc only, no allocation.
 */
#ifndef KF_TRUSTJAVA_H
#define KF_TRUSTJAVA_H

#include <stddef.h>

#define KF_JAVA_DIR "java"
#define KF_JAVA_OPT_STORE "-Djavax.net.ssl.trustStore="
#define KF_JAVA_OPT_PASS "-Djavax.net.ssl.trustStorePassword="
#define KF_JAVA_OPT_TYPE "-Djavax.net.ssl.trustStoreType="

/* The store a JDK uses by default, found from a directory at or above
 * `from` (up to 4 levels: lib/libjli.so or jre/lib/amd64/jli/libjli.so both
 * reach JAVA_HOME): DIR/lib/security/jssecacerts, else .../cacerts. Symlinks
 * resolved. 0 or -1. */
int kf_java_default_store(const char *from, char *out, size_t n);

/* The value of a -Dname=value option (opt = "-Dname=") in a JVM option
 * string (whitespace-separated; the last one wins, as in the JVM). 1 when
 * found (value copied; "" allowed), 0 when absent, -1 when it does not fit. */
int kf_java_opt(const char *opts, const char *opt, char *out, size_t n);

/* Same for a NUL-separated argument vector (/proc/self/cmdline). */
int kf_java_opt_argv(const char *args, size_t len, const char *opt, char *out, size_t n);

/* DATADIR/java/trust-HASH.p12 for a source store: HASH covers the source's
 * resolved path, device, inode, size and mtime, and the same of
 * DATADIR/ca.pem (a new kimifix CA makes a new store). 0 or -1 (source or
 * CA missing). The shim uses it to find an existing store without asking
 * the relay; the relay builds it under exactly this name. */
int kf_java_store_path(const char *datadir, const char *src, char *out, size_t n);

/* opts + " -Djavax.net.ssl.trustStore=STORE -Djavax.net.ssl.trustStoreType=PKCS12"
 * into out. -1 when it does not fit or STORE has whitespace (the JVM
 * splits options on it). */
int kf_java_opts_with(const char *opts, const char *store, char *out, size_t n);

#endif
