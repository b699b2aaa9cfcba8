/* ldpath.h - find shared libraries the way ld.so would, for `kimifix
 * doctor`: DT_RPATH (when there is no DT_RUNPATH), LD_LIBRARY_PATH,
 * DT_RUNPATH, /etc/ld.so.cache (parsed, bounded), then the default
 * directories; $ORIGIN is expanded; a candidate of the wrong ELF class or
 * machine is skipped, as the loader does. Plus the transitive closure of a
 * program's DT_NEEDED. */
#ifndef KF_LDPATH_H
#define KF_LDPATH_H

#include <limits.h>

#include "elfinfo.h"

#define KF_LD_MAX_LIBS 256

typedef struct kf_ldlib {
    char name[EF_NAME_MAX];  /* as written in DT_NEEDED */
    char path[PATH_MAX];     /* resolved ("" when not found) */
    unsigned parent;         /* index of the object that needs it; 0 = the program */
    unsigned depth;          /* 1 = needed by the program itself */
} kf_ldlib;

typedef struct kf_ldtree {
    unsigned n;              /* lib[1..n] are libraries; lib[0] is the program */
    int truncated;           /* more than KF_LD_MAX_LIBS */
    kf_ldlib lib[KF_LD_MAX_LIBS + 1];
} kf_ldtree;

/* Resolve `name` needed by an object in directory `origin` (for $ORIGIN)
 * with its rpath/runpath (may be ""); `exe_rpath` is the program's
 * DT_RPATH when it has no DT_RUNPATH ("" otherwise). 0 with out filled, or
 * -1. */
int kf_ld_resolve(const char *name, const char *origin, const char *rpath, const char *runpath,
                  const char *exe_rpath, int is64, unsigned machine, char *out, size_t n);

/* Breadth-first closure of the program's DT_NEEDED (deduplicated by name,
 * like the loader). `t` is large: allocate it. */
void kf_ld_closure(const ef_elf *exe, const char *exe_path, kf_ldtree *t);

/* Index of the first library in the closure whose name starts with
 * `prefix` (e.g. "libssl.so"), or 0 when none. */
unsigned kf_ld_find(const kf_ldtree *t, const char *prefix);

#endif
