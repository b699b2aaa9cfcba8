/* doctor_report.h - the report of `kimifix doctor` (doctor_report.c): what
 * every check adds to (facts, resolve hops) and the verdict, printed as
 * text or JSON. Depends on nothing else of doctor: every doctor file
 * includes it, it includes none of them. */
#ifndef KF_DOCTOR_REPORT_H
#define KF_DOCTOR_REPORT_H

#include <limits.h>
#include <stddef.h>

#define DR_MAX_FACTS 64
#define DR_MAX_HOPS 8
#define DR_VAL_MAX 1024

/* Verdicts (the first word of the last line). */
#define DR_LIBCURL "libcurl"
#define DR_OPENSSL "openssl"
#define DR_GNUTLS "gnutls"
#define DR_LIBC "libc"
#define DR_RELAY "relay"
#define DR_PROXY "proxy"
#define DR_UNREACHABLE "unreachable"
#define DR_OK "ok"
#define DR_PROBLEMS "problems"

typedef struct dr_fact {
    char key[32];
    char val[DR_VAL_MAX];
    int problem; /* shown as a problem; counts toward the exit status */
} dr_fact;

typedef struct dr_report {
    /* How CMD was resolved: one line per hop ("PATH: ...", "#!: ..."). */
    unsigned nhops;
    char hop[DR_MAX_HOPS * 3][DR_VAL_MAX];
    char exe[PATH_MAX];       /* the ELF that will run ("" if none) */
    char script_shell[64];    /* set when the chain ends in a shell running a script */

    unsigned nfacts;
    dr_fact fact[DR_MAX_FACTS];
    unsigned nproblems;

    const char *verdict;      /* DR_* */
    char reason[DR_VAL_MAX];  /* one line: why */
    int exit_code;            /* 0 fixable/ok, 1 unreachable/problems, 2 usage/cannot analyze */
} dr_report;

/* Facts: key/value lines in order. problem=1 marks a problem. */
void dr_fact_add(dr_report *r, int problem, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void dr_hop_add(dr_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dr_set_verdict(dr_report *r, const char *verdict, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* vsnprintf into out; 0 when it fit, -1 when truncated (or error). */
int dr_fmt(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Set r->reason. */
void dr_why(dr_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print the report (the last line is always `kimifix doctor: VERDICT`). */
void dr_report_print(const dr_report *r, const char *cmd, int json);

#endif
