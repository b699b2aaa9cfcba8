/* resolve.c - finding the real functions behind the hooks.
 *
 * libc functions: dlsym(RTLD_NEXT) once per symbol, by the first call of its
 * hook (the constructor resolves only write): a process pays for the
 * functions it uses, not 23 lookups at every start.
 *
 * Library functions (libssl, GnuTLS, libcurl): the caller's object first.
 * Why: Python loads libssl with RTLD_LOCAL through its _ssl module, so
 * RTLD_NEXT from the shim cannot see SSL_write_ex there; the object that
 * called the hook can (its dependency scope contains the library). Then
 * RTLD_NEXT, then every loaded object. The result is never our own hook.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kf_shim.h"

static const char *const kf_libc_names[KF_LIBC_NSYMS] = {
    [KF_LIBC_write] = "write", [KF_LIBC_writev] = "writev", [KF_LIBC_send] = "send",
    [KF_LIBC_sendto] = "sendto", [KF_LIBC_sendmsg] = "sendmsg",
    [KF_LIBC_sendmmsg] = "sendmmsg", [KF_LIBC_sendfile] = "sendfile",
    [KF_LIBC_sendfile64] = "sendfile64", [KF_LIBC_connect] = "connect",
    [KF_LIBC_close] = "close", [KF_LIBC_dup] = "dup", [KF_LIBC_dup2] = "dup2",
    [KF_LIBC_dup3] = "dup3", [KF_LIBC_fcntl] = "fcntl", [KF_LIBC_fcntl64] = "fcntl64",
    [KF_LIBC_close_range] = "close_range", [KF_LIBC_closefrom] = "closefrom",
    [KF_LIBC_getaddrinfo] = "getaddrinfo", [KF_LIBC_gethostbyname] = "gethostbyname",
    [KF_LIBC_gethostbyname2] = "gethostbyname2",
    [KF_LIBC_gethostbyname_r] = "gethostbyname_r",
    [KF_LIBC_gethostbyname2_r] = "gethostbyname2_r",
    [KF_LIBC_getpeername] = "getpeername",
    [KF_LIBC_recv] = "recv", [KF_LIBC_recvfrom] = "recvfrom", [KF_LIBC_recvmsg] = "recvmsg",
    [KF_LIBC_dlopen] = "dlopen", [KF_LIBC_dlmopen] = "dlmopen",
};

_Atomic(void *) kf_libc_slots[KF_LIBC_NSYMS] KF_START_DATA;

/* Our own mapping, from our ELF header's program headers: dladdr() walks
 * every loaded object's symbol table (2M instructions for the constructor's
 * 23 lookups, 2/3 of a preloaded `true`). */
/* Declared as an array of unknown size: the linker gives the symbol no
 * size, and UBSan's object-size check would reject reading an Ehdr from a
 * zero-sized object. */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));

int kf_is_own_addr(const void *p)
{
    static _Atomic uintptr_t lo KF_START_DATA, hi KF_START_DATA;
    uintptr_t l = atomic_load_explicit(&lo, memory_order_relaxed);
    uintptr_t h = atomic_load_explicit(&hi, memory_order_relaxed);
    if (!h) {
        const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)(const void *)__ehdr_start;
        const ElfW(Phdr) *ph = (const ElfW(Phdr) *)((const char *)eh + eh->e_phoff);
        ElfW(Addr) vmin = (ElfW(Addr))-1, vmax = 0;
        for (int i = 0; i < eh->e_phnum; i++) {
            if (ph[i].p_type != PT_LOAD)
                continue;
            if (ph[i].p_vaddr < vmin)
                vmin = ph[i].p_vaddr;
            if (ph[i].p_vaddr + ph[i].p_memsz > vmax)
                vmax = ph[i].p_vaddr + ph[i].p_memsz;
        }
        l = (uintptr_t)eh;
        h = l + (vmax - vmin);
        atomic_store_explicit(&lo, l, memory_order_relaxed);
        atomic_store_explicit(&hi, h, memory_order_relaxed);
    }
    return (uintptr_t)p >= l && (uintptr_t)p < h;
}

static void *kf_libc_lookup(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (p && !kf_is_own_addr(p))
        return p;
    /* The shim was dlopen()ed after libc (RTLD_NEXT sees nothing): ask libc. */
    void *h = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    if (!h)
        return NULL;
    p = dlsym(h, name);
    dlclose(h);
    return p && !kf_is_own_addr(p) ? p : NULL;
}

void *kf_libc_fn_slow(int sym)
{
    void *p = atomic_load_explicit(&kf_libc_slots[sym], memory_order_relaxed);
    if (__builtin_expect(p != NULL, 1))
        return p;
    int saved = errno; /* hooks must not disturb errno on their way in */
    p = kf_libc_lookup(kf_libc_names[sym]);
    if (p)
        atomic_store_explicit(&kf_libc_slots[sym], p, memory_order_relaxed);
    errno = saved;
    return p;
}

ssize_t kf_real_write_slow(int fd, const void *buf, size_t n)
{
    ssize_t (*w)(int, const void *, size_t) = KF_REAL(write);
    if (w)
        return w(fd, buf, n);
    return syscall(SYS_write, fd, buf, n); /* never call NULL */
}

/* ---- library functions, cached per (symbol, caller) and (symbol, object) ---- */

#define KF_RCACHE 128
#define KF_SYMLEN 48

struct kf_rent {
    char sym[KF_SYMLEN];
    const void *key; /* caller address, or the caller's object base */
    void *fn;
};

static pthread_mutex_t kf_rlock = PTHREAD_MUTEX_INITIALIZER;
static struct kf_rent kf_rcache[KF_RCACHE];
static unsigned kf_rnext;

/* Both skip the cache when this thread already holds its lock (a signal
 * handler that interrupted it here and called a library hook). */
static void *kf_rcache_get(const char *sym, const void *key)
{
    void *fn = NULL;
    if (kf_holding(KF_HOLD_RCACHE))
        return NULL;
    unsigned held = kf_lock(&kf_rlock, KF_HOLD_RCACHE);
    for (unsigned i = 0; i < KF_RCACHE && kf_rcache[i].fn; i++)
        if (kf_rcache[i].key == key && strcmp(kf_rcache[i].sym, sym) == 0) {
            fn = kf_rcache[i].fn;
            break;
        }
    kf_unlock(&kf_rlock, held);
    return fn;
}

static void kf_rcache_put(const char *sym, const void *key, void *fn)
{
    if (strlen(sym) >= KF_SYMLEN || kf_holding(KF_HOLD_RCACHE))
        return;
    unsigned held = kf_lock(&kf_rlock, KF_HOLD_RCACHE);
    struct kf_rent *e = &kf_rcache[kf_rnext++ % KF_RCACHE]; /* a cache: oldest goes */
    strcpy(e->sym, sym);
    e->key = key;
    e->fn = fn;
    kf_unlock(&kf_rlock, held);
}

void kf_resolve_lock(void) { pthread_mutex_lock(&kf_rlock); }
void kf_resolve_unlock(void) { pthread_mutex_unlock(&kf_rlock); }
void kf_resolve_child(void) { pthread_mutex_init(&kf_rlock, NULL); }

static void *kf_sym_in(const char *path, const char *sym)
{
    void *h = dlopen(path, RTLD_NOLOAD | RTLD_LAZY);
    if (!h)
        return NULL;
    void *p = dlsym(h, sym);
    dlclose(h); /* NOLOAD took a reference: give it back */
    return p && !kf_is_own_addr(p) ? p : NULL;
}

#define KF_MAXOBJ 512
struct kf_objs {
    const char *name[KF_MAXOBJ];
    unsigned n;
};

static int kf_collect(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    struct kf_objs *o = ud;
    /* The main program ("") is searched through RTLD_NEXT/default scope;
     * the vDSO and our own object hold nothing we want. */
    if (!info->dlpi_name || !info->dlpi_name[0] || strstr(info->dlpi_name, "linux-vdso"))
        return 0;
    if (o->n < KF_MAXOBJ)
        o->name[o->n++] = info->dlpi_name;
    return 0;
}

static void *kf_walk(const char *sym)
{
    struct kf_objs o;
    o.n = 0;
    /* Collect first, dlopen after: no dl calls inside the iteration lock. */
    dl_iterate_phdr(kf_collect, &o);
    for (unsigned i = 0; i < o.n; i++) {
        void *p = kf_sym_in(o.name[i], sym);
        if (p)
            return p;
    }
    return NULL;
}

void *kf_real_lib(const char *symbol, const void *caller)
{
    int saved = errno;
    void *p = caller ? kf_rcache_get(symbol, caller) : NULL;
    if (p)
        goto out;

    Dl_info di;
    struct link_map *lm = NULL;
    const void *base = NULL;
    if (caller && dladdr1(caller, &di, (void **)&lm, RTLD_DL_LINKMAP) && !kf_is_own_addr(caller)) {
        base = di.dli_fbase;
        p = kf_rcache_get(symbol, base);
        /* The main program's handle would search the global scope, which
         * starts with our own preloaded hooks: skip it, RTLD_NEXT covers it. */
        if (!p && lm && lm->l_name && lm->l_name[0])
            p = kf_sym_in(lm->l_name, symbol);
    }
    if (!p) {
        p = dlsym(RTLD_NEXT, symbol);
        if (p && kf_is_own_addr(p))
            p = NULL;
    }
    if (!p)
        p = kf_walk(symbol);
    if (p) {
        if (base)
            kf_rcache_put(symbol, base, p);
        if (caller)
            kf_rcache_put(symbol, caller, p);
    }
out:
    errno = saved;
    return p;
}
