/* kf_trust.h - trust both ways, the client's side (docs/relay.md "Trust").
 *
 * Downstream: runtimes with their own TLS read extra or replacement CA
 * files from the environment at start-up. For each variable:
 *   unset            EXTRA kind (adds to the runtime's roots): DATADIR/ca.pem;
 *                    REPLACE kind (replaces the default file): the system
 *                    bundle + ours (DATADIR/ca-bundle.pem while it is newer
 *                    than the system bundle and ca.pem, else a combined
 *                    file made now: a changed system bundle is followed);
 *   set by the user  RUNDIR/trust-HASH.pem = theirs + ours (never replaced);
 *                    a file that cannot be read adds nothing: ours alone;
 *   already ours     (inherited from a parent under kimifix) left alone.
 * SSL_CERT_DIR is never changed: a directory cannot be combined with a
 * file, and every runtime that reads it also reads SSL_CERT_FILE (OpenSSL,
 * Go, rustls-native-certs), which then carries the kimifix CA.
 *
 * Saved originals (contract C): the first kimifix layer that changes V
 * records the user's value in KIMIFIX_ORIG_V ("" when V was unset); later
 * layers keep it. kf_trust_apply() does both in the right order.
 *
 * Upstream: kf_trust_sources() lists the CA files and directories this
 * client would have trusted without kimifix (for the relay's `trust`
 * lines); the relay adds the system store and removes the kimifix CA.
 *
 * libc only, no allocation (but kf_trust_apply's setter), no hooked call
 * other than open/read/write/close on files: meant for the shim's
 * constructor, the wrapper and the doctor.
 */
#ifndef KF_TRUST_H
#define KF_TRUST_H

#include <stddef.h>

#define KF_TRUST_NVARS 8
#define KF_TRUST_SOURCES_MAX 16
#define KF_TRUST_ORIG_PREFIX "KIMIFIX_ORIG_"
/* The kimifix CA's subject (src/relay/ca.c makes it): O=KF_CA_ORG,
 * CN="KF_CA_CN_PREFIX (user@host)". The shim's TLS hook reads them in a
 * peer certificate's issuer to know the relay answers (tls_openssl.c). */
#define KF_CA_ORG "kimifix"
#define KF_CA_CN_PREFIX "kimifix local CA"

enum kf_trust_kind { KF_TRUST_EXTRA = 1, KF_TRUST_REPLACE = 2 };

typedef struct kf_trust_var {
    const char *name;      /* variable name (static string) */
    const char *value;     /* what to set; "" = leave the variable as it is
                            * (points into the plan's arena or at "") */
    int combined;          /* value is a combined file (theirs + ours) */
    int kind;              /* KF_TRUST_EXTRA or KF_TRUST_REPLACE */
    const char *orig_name; /* "KIMIFIX_ORIG_" + name (static string) */
    int set_orig;          /* record the user's value in orig_name first */
    const char *orig;      /* that value ("" = unset); points into environ:
                            * valid until the variable changes */
} kf_trust_var;

/* kf_trust_env's answer. The values (and the directory names they come
 * from) are packed one after another in arena: every process start under
 * the shim computes this before main, and on a VM a page touched for the
 * first time costs ~10 us, so a plan touches about one page of it, not one
 * per PATH_MAX buffer (bench figure 6). Room for every path at full
 * length is not needed: a value that does not fit is left unset. */
typedef struct kf_trust_plan {
    kf_trust_var v[KF_TRUST_NVARS];
    size_t used;
    char arena[6 * 4096];
} kf_trust_plan;

/* Fill p->v[0..KF_TRUST_NVARS). Returns how many variables to set (>= 0),
 * or -1 when the kimifix CA does not exist yet (the relay makes it).
 * Order: NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, REQUESTS_CA_BUNDLE,
 * CURL_CA_BUNDLE, DENO_CERT, GIT_SSL_CAINFO, CARGO_HTTP_CAINFO,
 * PERL_LWP_SSL_CA_FILE. Variables naming the same file share one answer,
 * worked out once. */
int kf_trust_env(kf_trust_plan *p);

/* Set what kf_trust_env() computed: KIMIFIX_ORIG_V (when set_orig) before
 * V. set: setenv(3) or a stand-in. Returns how many variables were set. */
int kf_trust_apply(const kf_trust_plan *p,
                   int (*set)(const char *name, const char *value, int overwrite));

/* The client's original trust sources: each file or directory named by a
 * KIMIFIX_ORIG_V, or by V itself when it is not kimifix's own file, for
 * every variable above and SSL_CERT_DIR (a ':' list). Absolute paths only,
 * each once, not the system store (kf_trust_is_system: the relay always
 * has it), at most KF_TRUST_SOURCES_MAX; missing files are listed too
 * (the relay skips them with one log line). fn gets each path and the
 * variable that named it; a non-zero return stops. Returns the count. */
int kf_trust_sources(int (*fn)(void *ud, const char *path, const char *var), void *ud);

/* Name of the i-th variable kf_trust_sources() reads: the KF_TRUST_NVARS
 * above, then SSL_CERT_DIR; NULL past the end. */
const char *kf_trust_var_name(int i);

/* The system CA bundle file (first of the usual distribution paths that
 * exists), or NULL. */
const char *kf_trust_system_bundle(void);

/* Is path the system bundle or its directory (symlinks resolved)? */
int kf_trust_is_system(const char *path);

/* Is path inside kimifix's own data or runtime directory? */
int kf_trust_is_ours(const char *path);

/* dst = RUNDIR-style dir/trust-HASH.pem holding theirs + "\n" + ours, made
 * atomically when missing (reused when it exists: HASH covers both files'
 * paths, inodes, sizes and mtimes). 0 or -1. */
int kf_trust_combine(char *dst, size_t n, const char *dir, const char *theirs, const char *ours);

/* FNV-1a 64, for file names derived from (path, stat) tuples. */
unsigned long long kf_trust_fnv(unsigned long long h, const void *p, size_t n);
#define KF_TRUST_FNV_INIT 14695981039346656037ULL

#endif
