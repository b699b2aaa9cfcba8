/* dl_bind.c - binding the shim's hooks into objects a dlopen(RTLD_DEEPBIND)
 * just loaded (docs/loader.md; the dlopen hook is dl.c).
 *
 * For each object that load brought in, each GOT slot (JUMP_SLOT,
 * GLOB_DAT, absolute function pointers; x86-64 and AArch64) that refers to
 * a name the shim exports is pointed at the hook when, and only when, it
 * resolves in the deep-bound scope to exactly the function the hook
 * forwards to: RTLD_NEXT's for the libc family, the caller's scope
 * (kf_real_lib) for libcurl/OpenSSL/GnuTLS. Any other binding is the clash
 * RTLD_DEEPBIND exists for and is kept.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
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

/* ---- our hooks, from our own dynamic symbol table ---- */

struct kf_dyn {
    ElfW(Addr) base;
    const ElfW(Sym) *sym;
    const char *str;
    size_t strsz;
    const ElfW(Rela) *rela, *jmprel;
    size_t relasz, jmprelsz;
    int jmprel_rela;
    const Elf32_Word *hash, *gnuhash;
};

/* glibc rewrites most d_ptr values to run-time addresses when the dynamic
 * section is writable; read-only ones stay offsets. Offsets are smaller
 * than any load address. */
static const void *kf_dptr(ElfW(Addr) base, ElfW(Addr) p)
{
    return (const void *)(p < base ? p + base : p);
}

static void kf_dyn_read(const struct link_map *lm, struct kf_dyn *d)
{
    memset(d, 0, sizeof *d);
    d->base = lm->l_addr;
    for (const ElfW(Dyn) *e = lm->l_ld; e && e->d_tag != DT_NULL; e++) {
        ElfW(Addr) v = e->d_un.d_ptr;
        switch (e->d_tag) {
        case DT_SYMTAB: d->sym = kf_dptr(d->base, v); break;
        case DT_STRTAB: d->str = kf_dptr(d->base, v); break;
        case DT_STRSZ: d->strsz = e->d_un.d_val; break;
        case DT_RELA: d->rela = kf_dptr(d->base, v); break;
        case DT_RELASZ: d->relasz = e->d_un.d_val; break;
        case DT_JMPREL: d->jmprel = kf_dptr(d->base, v); break;
        case DT_PLTRELSZ: d->jmprelsz = e->d_un.d_val; break;
        case DT_PLTREL: d->jmprel_rela = e->d_un.d_val == DT_RELA; break;
        case DT_HASH: d->hash = kf_dptr(d->base, v); break;
        case DT_GNU_HASH: d->gnuhash = kf_dptr(d->base, v); break;
        default: break;
        }
    }
}

/* Number of dynamic symbols: DT_HASH's nchain, or the end of the last
 * DT_GNU_HASH chain. */
static size_t kf_dyn_nsyms(const struct kf_dyn *d)
{
    if (d->hash)
        return d->hash[1];
    if (!d->gnuhash)
        return 0;
    const Elf32_Word *g = d->gnuhash;
    Elf32_Word nb = g[0], off = g[1], bloom = g[2];
    const Elf32_Word *bucket = g + 4 + bloom * (sizeof(ElfW(Addr)) / 4), *chain = bucket + nb;
    Elf32_Word last = 0;
    for (Elf32_Word i = 0; i < nb; i++)
        if (bucket[i] > last)
            last = bucket[i];
    if (last < off)
        return off;
    while (!(chain[last - off] & 1))
        last++;
    return (size_t)last + 1;
}

#define KF_MAXHOOKS 128
struct kf_hook {
    const char *name;
    void *addr;
    _Atomic(void *) next; /* libc family: RTLD_NEXT's definition, once known */
};
static struct kf_hook kf_hooks[KF_MAXHOOKS];
static int kf_nhooks;
static unsigned char kf_hook_first[256]; /* first letters of hook names */

static int kf_hook_cmp(const void *a, const void *b)
{
    return strcmp(((const struct kf_hook *)a)->name, ((const struct kf_hook *)b)->name);
}

/* Every function libkimifix.so exports is a hook (-fvisibility=hidden):
 * the list is read from the library itself, so it never drifts. */
static void kf_hooks_init(void)
{
    Dl_info di;
    struct link_map *lm = NULL;
    struct kf_dyn d;
    if (!dladdr1((void *)kf_hooks_init, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return;
    kf_dyn_read(lm, &d);
    size_t n = d.sym && d.str ? kf_dyn_nsyms(&d) : 0;
    for (size_t i = 1; i < n && kf_nhooks < KF_MAXHOOKS; i++) {
        const ElfW(Sym) *s = &d.sym[i];
        unsigned bind = s->st_info >> 4, type = s->st_info & 0xf;
        if (s->st_shndx == SHN_UNDEF || type != STT_FUNC || s->st_name >= d.strsz ||
            (bind != STB_GLOBAL && bind != STB_WEAK))
            continue;
        kf_hooks[kf_nhooks].name = d.str + s->st_name;
        kf_hooks[kf_nhooks++].addr = (void *)(d.base + s->st_value);
        kf_hook_first[(unsigned char)d.str[s->st_name]] = 1;
    }
    qsort(kf_hooks, (size_t)kf_nhooks, sizeof kf_hooks[0], kf_hook_cmp);
}

static struct kf_hook *kf_hook_find(const char *name)
{
    struct kf_hook key = { name, NULL, NULL };
    if (!kf_hook_first[(unsigned char)name[0]]) /* most imports: no search */
        return NULL;
    return bsearch(&key, kf_hooks, (size_t)kf_nhooks, sizeof key, kf_hook_cmp);
}

/* Hooks of libraries the shim does not link find their real function from
 * the calling object (kf_real_lib); libc hooks use RTLD_NEXT. */
static int kf_lib_family(const char *name)
{
    return !strncmp(name, "curl_", 5) || !strncmp(name, "SSL_", 4) || !strncmp(name, "gnutls_", 7);
}

/* ---- binding the hooks into newly loaded objects ---- */

#if defined(__x86_64__)
#define KF_R_SLOT(t) ((t) == R_X86_64_JUMP_SLOT || (t) == R_X86_64_GLOB_DAT || (t) == R_X86_64_64)
#elif defined(__aarch64__)
#define KF_R_SLOT(t) \
    ((t) == R_AARCH64_JUMP_SLOT || (t) == R_AARCH64_GLOB_DAT || (t) == R_AARCH64_ABS64)
#endif

#define KF_DL_MAXNEW 256
struct kf_newobj {
    struct link_map *lm;
    const ElfW(Phdr) *ph;
    ElfW(Half) phnum;
};
struct kf_newset {
    struct link_map *first;
    struct kf_newobj o[KF_DL_MAXNEW];
    int n, walked;
};

/* Inside dl_iterate_phdr the loader's list cannot change under us (it
 * holds the lock dlopen/dlclose take to link and unlink objects): walk
 * from the new object to the end of its namespace, and match program
 * headers. No dl* call in here (lock order against dlopen). */
static int kf_newset_cb(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    struct kf_newset *s = ud;
    if (!s->walked) {
        s->walked = 1;
        for (struct link_map *l = s->first; l && s->n < KF_DL_MAXNEW; l = l->l_next)
            s->o[s->n++].lm = l;
    }
    for (int i = 0; i < s->n; i++)
        if (!s->o[i].ph && s->o[i].lm->l_addr == info->dlpi_addr &&
            s->o[i].lm->l_name == info->dlpi_name) {
            s->o[i].ph = info->dlpi_phdr;
            s->o[i].phnum = info->dlpi_phnum;
        }
    return 0;
}

struct kf_bindstat {
    unsigned bound, kept, objects;
    char clash[160]; /* the first name kept, for the log */
};

#ifdef KF_R_SLOT
/* The object's mapped range and its RELRO pages ([lo, hi) each). */
static void kf_obj_ranges(const struct kf_newobj *o, uintptr_t *lo, uintptr_t *hi, uintptr_t *rlo,
                          uintptr_t *rhi)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), base = o->lm->l_addr;
    *lo = UINTPTR_MAX;
    *hi = *rlo = *rhi = 0;
    for (ElfW(Half) i = 0; i < o->phnum; i++) {
        const ElfW(Phdr) *p = &o->ph[i];
        if (p->p_type == PT_LOAD) {
            if (base + p->p_vaddr < *lo)
                *lo = base + p->p_vaddr;
            if (base + p->p_vaddr + p->p_memsz > *hi)
                *hi = base + p->p_vaddr + p->p_memsz;
        } else if (p->p_type == PT_GNU_RELRO) {
            /* as ld.so protects it: whole pages only */
            *rlo = (base + p->p_vaddr) & ~(page - 1);
            *rhi = (base + p->p_vaddr + p->p_memsz) & ~(page - 1);
        }
    }
}

/* What a slot for `name` in this object resolves to right now. */
static void *kf_slot_target(void *root, const char *name, void *cur, uintptr_t lo, uintptr_t hi)
{
    /* Lazy binding: the slot still points into the object (its PLT); ask
     * ld.so what the deep-bound lookup (root's scope first) will find. */
    if ((uintptr_t)cur >= lo && (uintptr_t)cur < hi)
        return dlsym(root, name);
    return cur;
}

/* The function the hook forwards to when called from here. */
static void *kf_hook_forward(struct kf_hook *h, uintptr_t lo)
{
    if (kf_lib_family(h->name))
        return kf_real_lib(h->name, (const void *)lo);
    void *p = atomic_load_explicit(&h->next, memory_order_relaxed);
    if (!p) {
        p = dlsym(RTLD_NEXT, h->name);
        if (!p || kf_is_own_addr(p))
            return NULL;
        atomic_store_explicit(&h->next, p, memory_order_relaxed);
    }
    return p;
}

static void kf_bind_table(void *root, const struct kf_newobj *o, const struct kf_dyn *d,
                          const ElfW(Rela) *r, size_t bytes, struct kf_bindstat *st)
{
    uintptr_t lo, hi, rlo, rhi;
    int opened = 0;
    kf_obj_ranges(o, &lo, &hi, &rlo, &rhi);
    for (size_t i = 0; r && i < bytes / sizeof *r; i++) {
        unsigned long type = ELF64_R_TYPE(r[i].r_info), si = ELF64_R_SYM(r[i].r_info);
        if (!KF_R_SLOT(type) || !si || r[i].r_addend != 0 || d->sym[si].st_name >= d->strsz)
            continue;
        const char *name = d->str + d->sym[si].st_name;
        struct kf_hook *h = kf_hook_find(name);
        void **slot = (void **)(d->base + r[i].r_offset);
        if (!h || (uintptr_t)slot < lo || (uintptr_t)slot + sizeof *slot > hi)
            continue;
        void *cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
        if (cur == h->addr)
            continue;
        void *t = kf_slot_target(root, name, cur, lo, hi);
        if (!t || kf_is_own_addr(t))
            continue; /* not defined in the deep scope: the global one (us) answers */
        if (t != kf_hook_forward(h, lo)) {
            /* Bound to another definition: the clash the flag is for. */
            if (!st->kept++)
                snprintf(st->clash, sizeof st->clash, "%s in %s", name, o->lm->l_name);
            continue;
        }
        int relro = (uintptr_t)slot >= rlo && (uintptr_t)slot < rhi;
        if (relro && !opened) {
            if (mprotect((void *)rlo, rhi - rlo, PROT_READ | PROT_WRITE) != 0) {
                kf_shim_warn_once("deepbind-mprotect", "[dl] cannot unprotect %s's GOT (%s): "
                                  "its calls stay unhooked", o->lm->l_name, strerror(errno));
                continue;
            }
            opened = 1;
        }
        __atomic_store_n(slot, h->addr, __ATOMIC_RELAXED);
        st->bound++;
    }
    if (opened)
        mprotect((void *)rlo, rhi - rlo, PROT_READ);
}

static void kf_bind_object(void *root, const struct kf_newobj *o, struct kf_bindstat *st)
{
    struct kf_dyn d;
    kf_dyn_read(o->lm, &d);
    if (!o->ph || !d.sym || !d.str)
        return;
    st->objects++;
    kf_bind_table(root, o, &d, d.rela, d.relasz, st);
    if (d.jmprel_rela)
        kf_bind_table(root, o, &d, d.jmprel, d.jmprelsz, st);
}
#endif

void kf_dl_bind(void *h, const char *file)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, kf_hooks_init);
#ifdef KF_R_SLOT
    struct kf_newset *s = calloc(1, sizeof *s);
    struct kf_bindstat st;
    memset(&st, 0, sizeof st);
    if (!s || dlinfo(h, RTLD_DI_LINKMAP, &s->first) != 0 || !s->first) {
        free(s);
        return;
    }
    dl_iterate_phdr(kf_newset_cb, s);
    for (int i = 0; i < s->n; i++)
        kf_bind_object(h, &s->o[i], &st);
    free(s);
    static atomic_int said;
    if (!atomic_exchange(&said, 1))
        kf_log(KF_LOG_INFO, "[dl] %s was loaded with RTLD_DEEPBIND: kimifix binds its hooks into "
                            "such code (KIMIFIX_DEEPBIND=off leaves it alone)", file);
    kf_log(KF_LOG_DEBUG, "[dl] RTLD_DEEPBIND %s: %u call slot%s bound to hooks in %u object%s%s%s",
           file, st.bound, st.bound == 1 ? "" : "s", st.objects, st.objects == 1 ? "" : "s",
           st.kept ? "; kept its own binding: " : "", st.kept ? st.clash : "");
#else
    (void)h;
    kf_shim_warn_once("deepbind-arch", "[dl] %s was loaded with RTLD_DEEPBIND: binding hooks "
                                       "into it is not supported on this architecture", file);
#endif
}
