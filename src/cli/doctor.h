/* doctor.h - internals of `kimifix doctor` shared by its files:
 *
 *   doctor.c         argument parsing, the run of the checks
 *   doctor_report.c  the report: facts, hops, verdict; text and JSON
 *   doctor_target.c  CMD -> the program that really runs (PATH, #!, env,
 *                    pyenv shims, shell wrappers that exec)
 *   doctor_prog.c    what the ELF program is (facts) and the verdict
 *   doctor_rt.c      runtime-specific checks: Python's _ssl, Node, Bun, Go,
 *                    PHP (extensions loaded with RTLD_DEEPBIND)
 *   doctor_self.c    the state of kimifix itself (shim, rules, relay, CA)
 *   pemcert.c        validity dates of a PEM certificate, without OpenSSL
 */
#ifndef KF_DOCTOR_H
#define KF_DOCTOR_H

#include <limits.h>
#include <stddef.h>

#include "doctor_report.h"
#include "elfinfo.h"
#include "kf_envplan.h"
#include "ldpath.h"

/* doctor_target.c: resolve CMD to the ELF that runs. 0, or -1 (r->reason
 * says why; verdict unset). */
int dr_resolve(dr_report *r, const char *cmd);
/* Search PATH like execvp for a regular executable file; `skip_dir` (may
 * be NULL) is a directory to leave out (pyenv's shims). 0 or -1. */
int dr_path_search(const char *name, const char *skip_dir, char *out, size_t n);

/* doctor_prog.c: facts and verdict for r->exe. */
void dr_analyze(dr_report *r);
/* Can LD_PRELOAD carry the program at path (the ELF that runs)? why gets
 * the reason when it cannot. */
enum { DR_SHIM_OK = 0, DR_SHIM_NONE, DR_SHIM_SECURE };
int dr_shim_reach(const char *path, char *why, size_t n);

/* doctor_rt.c: runtimes. Each returns 1 when the program is one. */
typedef struct dr_prog dr_prog;
int dr_rt_go(dr_prog *p, dr_report *r);
int dr_rt_bun(dr_prog *p, dr_report *r);
int dr_rt_node(dr_prog *p, dr_report *r);
int dr_rt_python(dr_prog *p, dr_report *r);
int dr_rt_php(dr_prog *p, dr_report *r); /* extensions loaded with RTLD_DEEPBIND */
extern const char *const dr_trust_node; /* the trust line for Node/Bun */

/* doctor_self.c: the state of kimifix. brief=1: a few lines for the CMD
 * report. Returns the number of problems found. */
unsigned dr_self(dr_report *r, int brief);
/* The shim library kimifix would preload; 0 or -1. */
int dr_shim_path(char *out, size_t n);

/* doctor_trust.c: with CMD, the upstream trust sources the relay would use
 * for it and what was learned about it refusing the kimifix CA (a learned
 * refusal turns a relay verdict into unreachable); without CMD, every
 * learned refusal (returns how many). */
void dr_trust(dr_report *r);
unsigned dr_trust_learned(dr_report *r);
/* doctor_carrier.c: the carrier `kimifix CMD` would choose (the proxy
 * carrier's choice, kf_envplan.h) as a fact, and the rule hosts NO_PROXY
 * sends past the relay. no_shim: no preload carries the program. out (may
 * be NULL) gets the choice. */
void dr_carrier(dr_report *r, const dr_prog *p, int no_shim, kf_carrier_choice *out);

/* pemcert.c: first certificate of a PEM file: validity (epoch seconds)
 * and subject CN (may be ""). 0, or -1 with why. */
int kf_pem_cert_info(const char *path, long long *not_before, long long *not_after, char *cn,
                     size_t cnlen, const char **why);

/* What the analysis of one ELF program knows (doctor_prog.c fills it). */
struct dr_prog {
    const char *path;
    ef_elf elf;
    kf_ldtree *tree;          /* closure of DT_NEEDED */
    int ssl_write, ssl_write_ex; /* defined in the executable (1/0/-1) */
    /* Filled by the runtime checks: */
    const char *runtime;      /* "Node", "Bun", "Python 3.11", "Go", "Java", "PHP" or NULL */
    const char *carrier;      /* verdict, when a runtime check decided it */
    char why[DR_VAL_MAX];
    const char *trust;        /* how the client trusts the relay's CA */
};

#endif
