/* kf_trust.h - the environment a client needs to trust the relay's CA.
 *
 * Runtimes with their own TLS read trust from the environment at start-up:
 *   NODE_EXTRA_CA_CERTS  Node, Node single executables, Bun: extra CAs
 *   SSL_CERT_FILE        OpenSSL's default store (python ssl, httpx, ruby)
 *   REQUESTS_CA_BUNDLE   python-requests (which otherwise uses certifi)
 * Unset: point it at ours (ca.pem for Node, ca-bundle.pem = system CAs +
 * ours for the others). Set by the user: write a file with theirs + our CA
 * into the runtime dir and point it there. Already ours (a parent kimifix
 * process set it): leave it.
 *
 * libc only, no allocation; meant for the shim's constructor (before the
 * client's main), which then calls setenv() for each answer.
 */
#ifndef KF_TRUST_H
#define KF_TRUST_H

#define KF_TRUST_NVARS 3

typedef struct kf_trust_var {
    const char *name;   /* variable name (static string) */
    char value[4096];   /* what to set; "" = leave the variable as it is */
    int combined;       /* value is a combined file (theirs + ours) */
} kf_trust_var;

/* Fill out[0..KF_TRUST_NVARS). Returns how many variables to set (>= 0),
 * or -1 when the kimifix CA does not exist yet (the relay makes it). */
int kf_trust_env(kf_trust_var out[KF_TRUST_NVARS]);

#endif
