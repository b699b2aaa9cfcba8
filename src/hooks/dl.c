/* dl.c - code loaded with RTLD_DEEPBIND, and dlmopen namespaces
 * (docs/loader.md).
 *
 * An object loaded with dlopen(RTLD_DEEPBIND) - PHP loads every extension
 * so - and every library that dlopen call brings in look their symbols up
 * in their own dependency tree first, the global scope (where LD_PRELOAD
 * puts the hooks) last: their curl_easy_setopt, SSL_write, connect and
 * write calls never meet a hook. dlopen is hooked, and after such a load
 * the hooks are bound into the new objects: each GOT slot that refers to a
 * hooked name is pointed at the hook, but only when the slot resolves to
 * exactly the function the hook itself forwards to. A slot bound to some
 * other definition - the clash RTLD_DEEPBIND exists for, e.g. a plugin
 * carrying its own `write` - is left as it is. So the flag keeps its
 * meaning and the hooks see what an LD_PRELOAD would have shown them.
 * KIMIFIX_DEEPBIND=strip (load without the flag; for measurements) or off.
 * The binding itself is dl_bind.c.
 *
 * dlopen is caller-sensitive (ld.so searches the caller's RPATH/RUNPATH
 * and $ORIGIN, and picks the caller's namespace from the return address):
 * every call without RTLD_DEEPBIND therefore leaves the hook by a tail jump,
 * so ld.so sees the program's own return address (written in assembly on
 * x86-64, where an -O1 sanitizer build would not make a tail call). A
 * RTLD_DEEPBIND load of a bare name searches the caller's directories
 * itself (RTLD_DI_SERINFO) before asking ld.so.
 *
 * dlmopen: objects in another link-map namespace get their own libc and
 * never see the hooks; logged once.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dl_bind.h"
#include "kf_shim.h"

#define KF_HIDDEN __attribute__((visibility("hidden")))

/* The real functions, for the assembly below (also set lazily); written
 * by every start (kf_dl_ctor). */
KF_HIDDEN void *kf_dl_real_dlopen KF_START_DATA, *kf_dl_real_dlmopen KF_START_DATA;
KF_HIDDEN void *kf_dlopen_slow(const char *file, int mode, const void *caller);
KF_HIDDEN void *kf_dlmopen_slow(Lmid_t ns, const char *file, int mode);
KF_HIDDEN void kf_dlmopen_note(Lmid_t ns, const char *file, int mode);

#if defined(__x86_64__)
/* dlopen: no RTLD_DEEPBIND (8) and the real function known -> jump to it
 * with the caller's return address still on the stack. */
__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        "dlopen:\n"
        "    .cfi_startproc\n"
        "    endbr64\n"
        "    testl $8, %esi\n"
        "    jnz 1f\n"
        "    movq kf_dl_real_dlopen(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz 1f\n"
        "    jmp *%rax\n"
        "1:  movq (%rsp), %rdx\n"
        "    jmp kf_dlopen_slow\n"
        "    .cfi_endproc\n"
        ".size dlopen, .-dlopen\n"
        ".globl dlmopen\n"
        ".type dlmopen, @function\n"
        "dlmopen:\n"
        "    .cfi_startproc\n"
        "    endbr64\n"
        "    pushq %rdi\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %rsi\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %rdx\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    call kf_dlmopen_note\n"
        "    popq %rdx\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %rsi\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %rdi\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    movq kf_dl_real_dlmopen(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz 2f\n"
        "    jmp *%rax\n"
        "2:  jmp kf_dlmopen_slow\n"
        "    .cfi_endproc\n"
        ".size dlmopen, .-dlmopen\n");
#else
/* Elsewhere: C, a tail call at -O2 (an -O1 build loses the caller's RPATH
 * for dlopen of bare names). */
static void *kf_dlopen(const char *file, int mode, const void *caller)
{
    void *(*real)(const char *, int) = kf_dl_real_dlopen;
    if (__builtin_expect(!(mode & RTLD_DEEPBIND) && real != NULL, 1))
        return real(file, mode);
    return kf_dlopen_slow(file, mode, caller);
}

KF_EXPORT void *dlopen(const char *file, int mode)
{
    return kf_dlopen(file, mode, __builtin_return_address(0));
}

static void *kf_dlmopen(Lmid_t ns, const char *file, int mode)
{
    kf_dlmopen_note(ns, file, mode);
    void *(*real)(Lmid_t, const char *, int) = kf_dl_real_dlmopen;
    return real ? real(ns, file, mode) : kf_dlmopen_slow(ns, file, mode);
}

KF_EXPORT void *dlmopen(Lmid_t ns, const char *file, int mode)
{
    return kf_dlmopen(ns, file, mode);
}
#endif

/* ---- real functions ---- */

/* kf_libc_fn_slow's fallback dlopen()s libc: that lands here again while
 * the first lookup is running. Answer the inner call with NULL. */
static __thread int kf_dl_resolving;

static void *kf_dl_real(int sym, void **cache)
{
    void *p = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (p || kf_dl_resolving)
        return p;
    kf_dl_resolving = 1;
    p = kf_libc_fn(sym);
    kf_dl_resolving = 0;
    if (p)
        __atomic_store_n(cache, p, __ATOMIC_RELAXED);
    return p;
}

static void *kf_call_dlopen(const char *file, int mode)
{
    void *(*real)(const char *, int) = kf_dl_real(KF_LIBC_dlopen, &kf_dl_real_dlopen);
    return real ? real(file, mode) : NULL;
}

void *kf_dlmopen_slow(Lmid_t ns, const char *file, int mode)
{
    void *(*real)(Lmid_t, const char *, int) = kf_dl_real(KF_LIBC_dlmopen, &kf_dl_real_dlmopen);
    return real ? real(ns, file, mode) : NULL;
}

/* Once per process, at INFO (a user who asked for a log sees it; the
 * program's own stderr is left alone). */
void kf_dlmopen_note(Lmid_t ns, const char *file, int mode)
{
    static atomic_int said;
    if ((ns == LM_ID_BASE && !(mode & RTLD_DEEPBIND)) || atomic_exchange(&said, 1))
        return;
    int saved = errno;
    kf_log(KF_LOG_INFO, "[dl] dlmopen(%s%s): code loaded there is not covered by kimifix's "
                        "hooks (%s)", file ? file : "NULL", ns == LM_ID_BASE ? ", RTLD_DEEPBIND" : "",
           ns == LM_ID_BASE ? "they are bound only into dlopen's RTLD_DEEPBIND loads"
                            : "another link-map namespace has its own libc");
    errno = saved;
}

/* ---- KIMIFIX_DEEPBIND ---- */

enum { KF_DEEP_BIND, KF_DEEP_STRIP, KF_DEEP_OFF };
static int kf_deep_mode KF_START_DATA;

static void kf_deep_mode_init(void)
{
    const char *v = secure_getenv("KIMIFIX_DEEPBIND");
    if (!v || !*v || !strcmp(v, "bind"))
        kf_deep_mode = KF_DEEP_BIND;
    else if (!strcmp(v, "strip"))
        kf_deep_mode = KF_DEEP_STRIP;
    else if (!strcmp(v, "off"))
        kf_deep_mode = KF_DEEP_OFF;
    else
        kf_log(KF_LOG_ERROR, "KIMIFIX_DEEPBIND=%s: unknown (bind, strip, off); using bind", v);
}

/* ---- the caller's search path, for bare names ---- */

extern const char __ehdr_start[] KF_HIDDEN; /* our own ELF header */

/* Is path an ELF object of our class and machine? ld.so skips others and
 * searches on; so do we. */
static int kf_elf_ours(const char *path)
{
    const ElfW(Ehdr) *me = (const ElfW(Ehdr) *)(const void *)__ehdr_start;
    ElfW(Ehdr) eh;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t r = read(fd, &eh, sizeof eh);
    KF_REAL(close)(fd);
    return r == (ssize_t)sizeof eh && !memcmp(eh.e_ident, me->e_ident, EI_VERSION) &&
           eh.e_machine == me->e_machine;
}

/* ld.so would search the directories of the object that called dlopen
 * (its RPATH chain, LD_LIBRARY_PATH, its RUNPATH) before ld.so.cache; from
 * here it would search ours. Find the file in the caller's directories
 * (RTLD_DI_SERINFO lists them in ld.so's order, without the cache). 0 with
 * the path in out, -1 when the cache and default directories decide. */
static int kf_search_caller(const void *caller, const char *file, char *out, size_t n)
{
    Dl_info di;
    struct link_map *lm = NULL;
    if (!caller || kf_is_own_addr(caller) ||
        !dladdr1(caller, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return -1;
    Dl_serinfo size;
    if (dlinfo(lm, RTLD_DI_SERINFOSIZE, &size) != 0)
        return -1;
    Dl_serinfo *si = malloc(size.dls_size); /* dlopen is no fast path */
    if (!si)
        return -1;
    si->dls_size = size.dls_size;
    si->dls_cnt = size.dls_cnt;
    int rc = -1;
    if (dlinfo(lm, RTLD_DI_SERINFO, si) == 0)
        for (unsigned i = 0; i < si->dls_cnt && rc < 0; i++) {
            const Dl_serpath *sp = &si->dls_serpath[i];
            if (sp->dls_flags & LA_SER_DEFAULT)
                break; /* the cache comes first: ld.so decides from here */
            int w = snprintf(out, n, "%s/%s", sp->dls_name, file);
            if (w > 0 && (size_t)w < n && kf_elf_ours(out))
                rc = 0;
        }
    free(si);
    return rc;
}

/* ---- dlopen with RTLD_DEEPBIND (and the unresolved case) ---- */

void *kf_dlopen_slow(const char *file, int mode, const void *caller)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!(mode & RTLD_DEEPBIND) || !file || (mode & RTLD_NOLOAD))
        return kf_call_dlopen(file, mode); /* nothing new is bound deep */
    pthread_once(&once, kf_deep_mode_init);
    char path[4096];
    const char *use = file;
    void *h;
    if (!strchr(file, '/')) {
        /* Loaded already (by soname)? Then the flag changes nothing. */
        if ((h = kf_call_dlopen(file, mode | RTLD_NOLOAD)) != NULL)
            return h;
        if (kf_search_caller(caller, file, path, sizeof path) == 0)
            use = path;
    }
    if ((h = kf_call_dlopen(use, mode | RTLD_NOLOAD)) != NULL)
        return h;
    if (kf_deep_mode == KF_DEEP_STRIP) {
        kf_log(KF_LOG_DEBUG, "[dl] %s: loading without RTLD_DEEPBIND (KIMIFIX_DEEPBIND=strip)",
               file);
        return kf_call_dlopen(use, mode & ~RTLD_DEEPBIND);
    }
    h = kf_call_dlopen(use, mode);
    if (h && kf_deep_mode == KF_DEEP_BIND && kf_shim_rules()) {
        int saved = errno;
        kf_dl_bind(h, file);
        errno = saved;
    }
    return h;
}

/* The slots the assembly reads: filled at start (before main) so the first
 * dlopen already takes the tail jump. */
__attribute__((constructor)) static void kf_dl_ctor(void)
{
    (void)kf_dl_real(KF_LIBC_dlopen, &kf_dl_real_dlopen);
    (void)kf_dl_real(KF_LIBC_dlmopen, &kf_dl_real_dlmopen);
}
