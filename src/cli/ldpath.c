/* ldpath.c - library search like ld.so (see ldpath.h). */
#include "ldpath.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAX (16u << 20)
#define CACHE_MAGIC "glibc-ld.so.cache1.1"
#define CACHE_HDR 48   /* magic+version 20, nlibs, len_strings, flags+pad, ext, 3 unused */
#define CACHE_ENTRY 24 /* flags, key, value, osversion (4 each), hwcap (8) */

static const char *const default_dirs[] = {
    "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu", "/lib/i386-linux-gnu", "/usr/lib/i386-linux-gnu",
    "/lib64", "/usr/lib64", "/lib32", "/usr/lib32", "/lib", "/usr/lib",
};

/* Does this file look like a library the loader would accept for a
 * program of this class and machine? */
static int compatible(const char *path, int is64, unsigned machine)
{
    unsigned char h[20];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    struct stat st;
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pread(fd, h, sizeof h, 0) == sizeof h &&
             memcmp(h, ELFMAG, SELFMAG) == 0 && h[EI_CLASS] == (is64 ? ELFCLASS64 : ELFCLASS32);
    if (ok) {
        unsigned m = h[EI_DATA] == ELFDATA2LSB ? (unsigned)(h[18] | h[19] << 8)
                                               : (unsigned)(h[19] | h[18] << 8);
        ok = m == machine;
    }
    close(fd);
    return ok;
}

/* Try each directory of a ':'-separated list. */
static int search_list(const char *list, const char *origin, const char *name, int is64,
                       unsigned machine, char *out, size_t n)
{
    const char *p = list;
    while (p && *p) {
        size_t l = strcspn(p, ":;");
        char dir[PATH_MAX];
        if (l == 0) { /* an empty entry means the current directory */
            snprintf(dir, sizeof dir, ".");
        } else if (l < sizeof dir) {
            memcpy(dir, p, l);
            dir[l] = 0;
        } else {
            dir[0] = 0;
        }
        /* $ORIGIN / ${ORIGIN}; other dynamic string tokens are skipped. */
        char exp[PATH_MAX];
        const char *d = dir;
        if (!strncmp(dir, "$ORIGIN", 7) || !strncmp(dir, "${ORIGIN}", 9)) {
            const char *rest = dir + (dir[1] == '{' ? 9 : 7);
            if (origin && snprintf(exp, sizeof exp, "%s%s", origin, rest) < (int)sizeof exp)
                d = exp;
            else
                d = "";
        }
        if (*d && !strchr(d, '$')) {
            char cand[PATH_MAX];
            if (snprintf(cand, sizeof cand, "%s/%s", d, name) < (int)sizeof cand &&
                compatible(cand, is64, machine) && strlen(cand) < n) {
                strcpy(out, cand);
                return 0;
            }
        }
        p += l;
        if (*p)
            p++;
    }
    return -1;
}

/* /etc/ld.so.cache, read once (glibc's "new" format). */
static unsigned char *cache;
static size_t cache_len;
static int cache_tried;

static void load_cache(void)
{
    cache_tried = 1;
    int fd = open("/etc/ld.so.cache", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > CACHE_HDR &&
        (size_t)st.st_size <= CACHE_MAX) {
        cache = malloc((size_t)st.st_size);
        if (cache && pread(fd, cache, (size_t)st.st_size, 0) == st.st_size &&
            memcmp(cache, CACHE_MAGIC, strlen(CACHE_MAGIC)) == 0) {
            cache_len = (size_t)st.st_size;
        } else {
            free(cache);
            cache = NULL;
        }
    }
    close(fd);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A string at offset off of the cache, if it ends inside the cache. */
static const char *cache_str(uint32_t off)
{
    if (off >= cache_len || !memchr(cache + off, 0, cache_len - off))
        return NULL;
    return (const char *)cache + off;
}

static int search_cache(const char *name, int is64, unsigned machine, char *out, size_t n)
{
    if (!cache_tried)
        load_cache();
    if (!cache)
        return -1;
    uint32_t nlibs = le32(cache + 20);
    if (nlibs > (cache_len - CACHE_HDR) / CACHE_ENTRY)
        return -1;
    for (uint32_t i = 0; i < nlibs; i++) {
        const unsigned char *ent = cache + CACHE_HDR + (size_t)i * CACHE_ENTRY;
        const char *key = cache_str(le32(ent + 4)), *val = cache_str(le32(ent + 8));
        if (key && val && !strcmp(key, name) && strlen(val) < n && compatible(val, is64, machine)) {
            strcpy(out, val);
            return 0;
        }
    }
    return -1;
}

int kf_ld_resolve(const char *name, const char *origin, const char *rpath, const char *runpath,
                  const char *exe_rpath, int is64, unsigned machine, char *out, size_t n)
{
    if (!name || !*name)
        return -1;
    if (strchr(name, '/')) { /* a path: used as is */
        if (!compatible(name, is64, machine) || strlen(name) >= n)
            return -1;
        strcpy(out, name);
        return 0;
    }
    const char *llp = getenv("LD_LIBRARY_PATH");
    if (!runpath || !*runpath) { /* DT_RPATH counts only without DT_RUNPATH */
        if (rpath && *rpath && search_list(rpath, origin, name, is64, machine, out, n) == 0)
            return 0;
        if (exe_rpath && *exe_rpath &&
            search_list(exe_rpath, NULL, name, is64, machine, out, n) == 0)
            return 0;
    }
    if (llp && *llp && search_list(llp, NULL, name, is64, machine, out, n) == 0)
        return 0;
    if (runpath && *runpath && search_list(runpath, origin, name, is64, machine, out, n) == 0)
        return 0;
    if (search_cache(name, is64, machine, out, n) == 0)
        return 0;
    for (size_t i = 0; i < sizeof default_dirs / sizeof default_dirs[0]; i++)
        if (search_list(default_dirs[i], NULL, name, is64, machine, out, n) == 0)
            return 0;
    return -1;
}

static void dir_of(const char *path, char *out, size_t n)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        snprintf(real, sizeof real, "%s", path);
    char *s = strrchr(real, '/');
    if (s && s != real)
        *s = 0;
    else
        snprintf(real, sizeof real, "%s", s ? "/" : ".");
    snprintf(out, n, "%s", real);
}

static int known(const kf_ldtree *t, const char *name)
{
    for (unsigned i = 1; i <= t->n; i++)
        if (!strcmp(t->lib[i].name, name))
            return 1;
    return 0;
}

/* Append the DT_NEEDED entries of object `idx` (already parsed as e). */
static void add_needed(kf_ldtree *t, unsigned idx, const ef_elf *e, const char *path,
                       const char *exe_rpath, int is64, unsigned machine)
{
    char origin[PATH_MAX];
    dir_of(path, origin, sizeof origin);
    for (unsigned k = 0; k < e->nneeded; k++) {
        if (known(t, e->needed[k]))
            continue;
        if (t->n >= KF_LD_MAX_LIBS) {
            t->truncated = 1;
            return;
        }
        kf_ldlib *l = &t->lib[++t->n];
        snprintf(l->name, sizeof l->name, "%s", e->needed[k]);
        l->parent = idx;
        l->depth = t->lib[idx].depth + 1;
        if (kf_ld_resolve(l->name, origin, e->rpath, e->runpath, exe_rpath, is64, machine, l->path,
                          sizeof l->path) != 0)
            l->path[0] = 0;
    }
}

void kf_ld_closure(const ef_elf *exe, const char *exe_path, kf_ldtree *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->lib[0].path, sizeof t->lib[0].path, "%s", exe_path);
    const char *exe_rpath = exe->runpath[0] ? "" : exe->rpath;
    add_needed(t, 0, exe, exe_path, exe_rpath, exe->is64, exe->machine);
    ef_elf *lib = malloc(sizeof *lib);
    if (!lib)
        return;
    for (unsigned i = 1; i <= t->n; i++) { /* t->n grows as we go: breadth first */
        if (!t->lib[i].path[0] || ef_open(lib, t->lib[i].path) != 0)
            continue;
        add_needed(t, i, lib, t->lib[i].path, exe_rpath, exe->is64, exe->machine);
        ef_close(lib);
    }
    free(lib);
}

unsigned kf_ld_find(const kf_ldtree *t, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (unsigned i = 1; i <= t->n; i++)
        if (!strncmp(t->lib[i].name, prefix, pl))
            return i;
    return 0;
}
