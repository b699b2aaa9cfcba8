/* tlsrun.h - run a test program the way the TLS tests do (a clean
 * environment, a fresh HOME, a hang guard) and collect what it said. */
#ifndef TLSRUN_H
#define TLSRUN_H

struct out {
    int status; /* exit code, or 128+signal */
    char *out, *err;
};

/* Run argv with a clean environment: HOME in a fresh temp dir (no user
 * rules), KIMIFIX_LOG=stderr, LD_PRELOAD=`preload` unless NULL, plus
 * `extra` (NULL-terminated "K=V"). Killed after 60 s (a hang guard). */
struct out tls_run(const char *const argv[], const char *const extra[], const char *preload);
void free_out(struct out *o);
/* A file's contents, NUL-terminated ("" when it cannot be read). */
char *slurp(const char *path);

#endif
