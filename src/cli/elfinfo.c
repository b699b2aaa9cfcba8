/* elfinfo.c - bounded ELF reader (see elfinfo.h). Paranoid by design: the
 * file is untrusted input. Every read is ef_read (range-checked pread),
 * every loop has a hard cap, every string must end inside its table. */
#include "elfinfo.h"

#include "kf_progid.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PHNUM 1024
#define MAX_SHNUM 65536
#define MAX_DYN 8192
#define MAX_NOTES 4096
#define MAX_HASH_STEPS (1u << 22)

/* ---- byte order ---- */

static uint16_t g16(const ef_elf *e, const unsigned char *p)
{
    return e->le ? (uint16_t)(p[0] | p[1] << 8) : (uint16_t)(p[1] | p[0] << 8);
}

static uint32_t g32(const ef_elf *e, const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[e->le ? i : 3 - i] << (8 * i);
    return v;
}

static uint64_t g64(const ef_elf *e, const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[e->le ? i : 7 - i] << (8 * i);
    return v;
}

/* A word: 8 bytes in ELF64, 4 in ELF32. */
static uint64_t gw(const ef_elf *e, const unsigned char *p)
{
    return e->is64 ? g64(e, p) : g32(e, p);
}

int ef_read(const ef_elf *e, uint64_t off, void *buf, size_t n)
{
    if (off > e->size || n > e->size - off)
        return -1;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(e->fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* String `idx` of a table at [tab, tab+tabsz): must end inside the table
 * and fit in buf. 0 or -1. */
static int table_str(const ef_elf *e, uint64_t tab, uint64_t tabsz, uint64_t idx, char *buf,
                     size_t n)
{
    if (n == 0)
        return -1;
    buf[0] = 0;
    if (!tab || idx >= tabsz)
        return -1;
    uint64_t avail = tabsz - idx;
    size_t want = avail < n ? (size_t)avail : n;
    if (ef_read(e, tab + idx, buf, want) != 0 || !memchr(buf, 0, want)) {
        buf[0] = 0;
        return -1;
    }
    return 0;
}

/* File offset of a virtual address range inside one PT_LOAD. */
static uint64_t vaddr_to_off(const ef_elf *e, uint64_t va, uint64_t len)
{
    for (unsigned i = 0; i < e->nload; i++) {
        const ef_load *l = &e->load[i];
        if (va >= l->vaddr && va - l->vaddr < l->filesz && len <= l->filesz - (va - l->vaddr))
            return l->off + (va - l->vaddr);
    }
    return 0;
}

/* ---- program headers ---- */

typedef struct phdr {
    uint32_t type, flags;
    uint64_t off, vaddr, filesz, align;
} phdr;

static int read_phdr(const ef_elf *e, unsigned i, phdr *ph)
{
    unsigned char b[56];
    size_t n = e->is64 ? 56 : 32;
    if (ef_read(e, e->phoff + (uint64_t)i * e->phentsize, b, n) != 0)
        return -1;
    ph->type = g32(e, b);
    if (e->is64) {
        ph->flags = g32(e, b + 4);
        ph->off = g64(e, b + 8);
        ph->vaddr = g64(e, b + 16);
        ph->filesz = g64(e, b + 32);
        ph->align = g64(e, b + 48);
    } else {
        ph->off = g32(e, b + 4);
        ph->vaddr = g32(e, b + 8);
        ph->filesz = g32(e, b + 16);
        ph->flags = g32(e, b + 24);
        ph->align = g32(e, b + 28);
    }
    return 0;
}

/* ---- section headers ---- */

typedef struct shdr {
    uint32_t name, type, link;
    uint64_t off, size, entsize;
} shdr;

static int read_shdr(const ef_elf *e, unsigned i, shdr *sh)
{
    unsigned char b[64];
    size_t n = e->is64 ? 64 : 40;
    if (i >= e->shnum || ef_read(e, e->shoff + (uint64_t)i * e->shentsize, b, n) != 0)
        return -1;
    sh->name = g32(e, b);
    sh->type = g32(e, b + 4);
    if (e->is64) {
        sh->off = g64(e, b + 24);
        sh->size = g64(e, b + 32);
        sh->link = g32(e, b + 40);
        sh->entsize = g64(e, b + 56);
    } else {
        sh->off = g32(e, b + 16);
        sh->size = g32(e, b + 20);
        sh->link = g32(e, b + 24);
        sh->entsize = g32(e, b + 36);
    }
    return 0;
}

static int section_name(const ef_elf *e, const shdr *sh, char *buf, size_t n)
{
    shdr str;
    if (e->shstrndx >= e->shnum || read_shdr(e, e->shstrndx, &str) != 0 || str.type != SHT_STRTAB)
        return -1;
    return table_str(e, str.off, str.size, sh->name, buf, n);
}

int ef_sections(const ef_elf *e, const char *prefix,
                int (*fn)(void *ud, const char *name, uint64_t off, uint64_t size), void *ud)
{
    size_t pl = strlen(prefix);
    for (unsigned i = 1; i < e->shnum; i++) {
        shdr sh;
        char name[128];
        if (read_shdr(e, i, &sh) != 0 || section_name(e, &sh, name, sizeof name) != 0)
            continue;
        if (strncmp(name, prefix, pl) != 0)
            continue;
        uint64_t size = sh.type == SHT_NOBITS ? 0 : sh.size;
        if (size && (sh.off > e->size || size > e->size - sh.off))
            continue; /* lies outside the file: ignore it */
        int r = fn(ud, name, sh.off, size);
        if (r)
            return r;
    }
    return 0;
}

typedef struct exact {
    const char *name;
    uint64_t off, size;
} exact;

static int exact_fn(void *ud, const char *name, uint64_t off, uint64_t size)
{
    exact *x = ud;
    if (strcmp(name, x->name) != 0)
        return 0;
    x->off = off;
    x->size = size;
    return 1;
}

int ef_section(const ef_elf *e, const char *name, uint64_t *off, uint64_t *size)
{
    exact x = {name, 0, 0};
    if (!ef_sections(e, name, exact_fn, &x))
        return 0;
    if (off)
        *off = x.off;
    if (size)
        *size = x.size;
    return 1;
}

/* ---- dynamic section ---- */

static void read_dynamic(ef_elf *e, const phdr *dyn)
{
    size_t esz = e->is64 ? 16 : 8;
    uint64_t n = dyn->filesz / esz, strtab_va = 0, strsz = 0, symtab_va = 0, gnuhash_va = 0,
             hash_va = 0, runpath = 0, rpath = 0;
    int have_runpath = 0, have_rpath = 0;
    uint64_t needed[EF_MAX_NEEDED];
    unsigned nneeded = 0;
    if (n > MAX_DYN)
        n = MAX_DYN;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char b[16];
        if (ef_read(e, dyn->off + i * esz, b, esz) != 0)
            break;
        int64_t tag = (int64_t)gw(e, b);
        uint64_t val = gw(e, b + esz / 2);
        if (tag == DT_NULL)
            break;
        switch (tag) {
        case DT_NEEDED:
            if (nneeded < EF_MAX_NEEDED)
                needed[nneeded++] = val;
            else
                e->needed_truncated = 1;
            break;
        case DT_STRTAB: strtab_va = val; break;
        case DT_STRSZ: strsz = val; break;
        case DT_SYMTAB: symtab_va = val; break;
        case DT_GNU_HASH: gnuhash_va = val; break;
        case DT_HASH: hash_va = val; break;
        case DT_RUNPATH: runpath = val; have_runpath = 1; break;
        case DT_RPATH: rpath = val; have_rpath = 1; break;
        case DT_FLAGS_1: e->flags_1 = val; break;
        default: break;
        }
    }
    e->has_dynamic = 1;
    e->dynstr_off = vaddr_to_off(e, strtab_va, strsz);
    e->dynstr_size = e->dynstr_off ? strsz : 0;
    e->dynsym_off = vaddr_to_off(e, symtab_va, e->is64 ? 24 : 16);
    e->gnuhash_off = vaddr_to_off(e, gnuhash_va, 16);
    e->hash_off = vaddr_to_off(e, hash_va, 8);
    for (unsigned i = 0; i < nneeded; i++)
        if (table_str(e, e->dynstr_off, e->dynstr_size, needed[i], e->needed[e->nneeded],
                      EF_NAME_MAX) == 0)
            e->nneeded++;
    if (have_runpath)
        table_str(e, e->dynstr_off, e->dynstr_size, runpath, e->runpath, sizeof e->runpath);
    if (have_rpath)
        table_str(e, e->dynstr_off, e->dynstr_size, rpath, e->rpath, sizeof e->rpath);
}

/* ---- open ---- */

static int parse_header(ef_elf *e, const unsigned char *h)
{
    e->is64 = h[EI_CLASS] == ELFCLASS64;
    e->le = h[EI_DATA] == ELFDATA2LSB;
    e->type = g16(e, h + 16);
    e->machine = g16(e, h + 18);
    if (e->is64) {
        e->phoff = g64(e, h + 32);
        e->shoff = g64(e, h + 40);
        e->phentsize = g16(e, h + 54);
        e->phnum = g16(e, h + 56);
        e->shentsize = g16(e, h + 58);
        e->shnum = g16(e, h + 60);
        e->shstrndx = g16(e, h + 62);
    } else {
        e->phoff = g32(e, h + 28);
        e->shoff = g32(e, h + 32);
        e->phentsize = g16(e, h + 42);
        e->phnum = g16(e, h + 44);
        e->shentsize = g16(e, h + 46);
        e->shnum = g16(e, h + 48);
        e->shstrndx = g16(e, h + 50);
    }
    unsigned min_ph = e->is64 ? 56 : 32, min_sh = e->is64 ? 64 : 40;
    if (e->phnum && (e->phentsize < min_ph || e->phnum > MAX_PHNUM)) {
        snprintf(e->err, sizeof e->err, "bad program header table (%u entries of %u bytes)",
                 e->phnum, e->phentsize);
        return -1;
    }
    if (e->shoff == 0 || e->shentsize < min_sh) {
        e->shnum = 0; /* unusable section table: work from segments only */
        return 0;
    }
    shdr s0;
    if (e->shnum == 0 || e->shstrndx == SHN_XINDEX) { /* extended numbering */
        e->shnum = 1;
        if (read_shdr(e, 0, &s0) != 0) {
            e->shnum = 0;
            return 0;
        }
        unsigned realnum = s0.size ? (s0.size > MAX_SHNUM ? MAX_SHNUM : (unsigned)s0.size) : 0;
        if (e->shstrndx == SHN_XINDEX)
            e->shstrndx = s0.link;
        e->shnum = realnum ? realnum : (unsigned)g16(e, h + (e->is64 ? 60 : 48));
    }
    if (e->shoff > e->size || (uint64_t)e->shnum * e->shentsize > e->size - e->shoff)
        e->shnum = 0;
    return 0;
}

int ef_open(ef_elf *e, const char *path)
{
    memset(e, 0, sizeof *e);
    e->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (e->fd < 0)
        return -1;
    struct stat st;
    unsigned char h[64];
    if (fstat(e->fd, &st) != 0) {
        int err = errno;
        close(e->fd);
        errno = err;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) { /* a FIFO or device would block or lie */
        close(e->fd);
        errno = S_ISDIR(st.st_mode) ? EISDIR : EACCES;
        return -1;
    }
    e->size = (uint64_t)st.st_size;
    if (ef_read(e, 0, h, EI_NIDENT) != 0 || memcmp(h, ELFMAG, SELFMAG) != 0) {
        close(e->fd);
        return -2;
    }
    int r = -3;
    if ((h[EI_CLASS] != ELFCLASS32 && h[EI_CLASS] != ELFCLASS64) ||
        (h[EI_DATA] != ELFDATA2LSB && h[EI_DATA] != ELFDATA2MSB))
        snprintf(e->err, sizeof e->err, "unknown ELF class %u or byte order %u", h[EI_CLASS],
                 h[EI_DATA]);
    else if (ef_read(e, 0, h, h[EI_CLASS] == ELFCLASS64 ? 64 : 52) != 0)
        snprintf(e->err, sizeof e->err, "truncated ELF header");
    else if (parse_header(e, h) == 0)
        r = 0;
    if (r != 0) {
        close(e->fd);
        return r;
    }
    phdr dyn = {0};
    int have_dyn = 0;
    for (unsigned i = 0; i < e->phnum; i++) {
        phdr ph;
        if (read_phdr(e, i, &ph) != 0) {
            snprintf(e->err, sizeof e->err, "program header %u lies outside the file", i);
            close(e->fd);
            return -3;
        }
        if (ph.type == PT_LOAD && e->nload < EF_MAX_LOAD && ph.off <= e->size &&
            ph.filesz <= e->size - ph.off)
            e->load[e->nload++] = (ef_load){ph.vaddr, ph.off, ph.filesz};
        else if (ph.type == PT_INTERP) {
            e->has_interp = 1;
            size_t n = ph.filesz < EF_NAME_MAX ? (size_t)ph.filesz : EF_NAME_MAX - 1;
            if (ef_read(e, ph.off, e->interp, n) != 0)
                snprintf(e->interp, sizeof e->interp, "?");
            e->interp[n] = 0;
        } else if (ph.type == PT_DYNAMIC) {
            dyn = ph;
            have_dyn = 1;
        }
    }
    if (have_dyn)
        read_dynamic(e, &dyn);
    return 0;
}

void ef_close(ef_elf *e)
{
    if (e->fd >= 0)
        close(e->fd);
    e->fd = -1;
}

/* ---- symbols ---- */

typedef struct sym {
    uint32_t name;
    unsigned char info;
    uint16_t shndx;
} sym;

static int read_sym(const ef_elf *e, uint64_t base, uint64_t idx, sym *s)
{
    unsigned char b[24];
    size_t n = e->is64 ? 24 : 16;
    if (idx > (e->size / n) || ef_read(e, base + idx * n, b, n) != 0)
        return -1;
    s->name = g32(e, b);
    s->info = e->is64 ? b[4] : b[12];
    s->shndx = e->is64 ? g16(e, b + 6) : g16(e, b + 14);
    return 0;
}

/* 1 when symbol idx is called `name` and is a definition. */
static int sym_is(const ef_elf *e, uint64_t symtab, uint64_t strtab, uint64_t strsz,
                  uint64_t idx, const char *name)
{
    sym s;
    char buf[EF_NAME_MAX];
    size_t nl = strlen(name) + 1;
    if (nl > sizeof buf || read_sym(e, symtab, idx, &s) != 0)
        return 0;
    if (s.name >= strsz || nl > strsz - s.name || ef_read(e, strtab + s.name, buf, nl) != 0 ||
        memcmp(buf, name, nl) != 0)
        return 0;
    unsigned type = ELF64_ST_TYPE(s.info), bind = ELF64_ST_BIND(s.info);
    return s.shndx != SHN_UNDEF &&
           (type == STT_FUNC || type == STT_GNU_IFUNC || type == STT_OBJECT) &&
           (bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE);
}

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

static uint32_t sysv_hash(const char *s)
{
    uint32_t h = 0, g;
    for (; *s; s++) {
        h = (h << 4) + (unsigned char)*s;
        g = h & 0xf0000000u;
        if (g)
            h ^= g >> 24;
        h &= ~g;
    }
    return h;
}

static int lookup_gnu(const ef_elf *e, const char *name)
{
    unsigned char b[16];
    if (ef_read(e, e->gnuhash_off, b, 16) != 0)
        return -1;
    uint32_t nbuckets = g32(e, b), symoff = g32(e, b + 4), bloom = g32(e, b + 8);
    if (nbuckets == 0 || nbuckets > (1u << 24) || bloom > (1u << 24))
        return -1;
    uint32_t h = gnu_hash(name);
    uint64_t buckets = e->gnuhash_off + 16 + (uint64_t)bloom * (e->is64 ? 8 : 4);
    uint64_t chains = buckets + 4ull * nbuckets;
    unsigned char w[4];
    if (ef_read(e, buckets + 4ull * (h % nbuckets), w, 4) != 0)
        return -1;
    uint32_t idx = g32(e, w);
    if (idx == 0 || idx < symoff)
        return 0;
    for (unsigned step = 0; step < MAX_HASH_STEPS; step++, idx++) {
        if (ef_read(e, chains + 4ull * (idx - symoff), w, 4) != 0)
            return 0;
        uint32_t ch = g32(e, w);
        if ((ch | 1) == (h | 1) &&
            sym_is(e, e->dynsym_off, e->dynstr_off, e->dynstr_size, idx, name))
            return 1;
        if (ch & 1)
            break;
    }
    return 0;
}

static int lookup_sysv(const ef_elf *e, const char *name)
{
    unsigned char b[8];
    if (ef_read(e, e->hash_off, b, 8) != 0)
        return -1;
    uint32_t nbucket = g32(e, b), nchain = g32(e, b + 4);
    if (nbucket == 0 || nbucket > (1u << 24) || nchain > (1u << 24))
        return -1;
    unsigned char w[4];
    if (ef_read(e, e->hash_off + 8 + 4ull * (sysv_hash(name) % nbucket), w, 4) != 0)
        return -1;
    uint32_t idx = g32(e, w);
    /* A crafted chain may loop: at most nchain steps, and never many. */
    for (unsigned step = 0; idx != STN_UNDEF && idx < nchain && step < nchain &&
                            step < MAX_HASH_STEPS;
         step++) {
        if (sym_is(e, e->dynsym_off, e->dynstr_off, e->dynstr_size, idx, name))
            return 1;
        if (ef_read(e, e->hash_off + 8 + 4ull * nbucket + 4ull * idx, w, 4) != 0)
            return 0;
        idx = g32(e, w);
    }
    return 0;
}

/* No hash table in the dynamic section: scan SHT_DYNSYM linearly. */
static int lookup_sections(const ef_elf *e, const char *name)
{
    for (unsigned i = 1; i < e->shnum; i++) {
        shdr sh, str;
        if (read_shdr(e, i, &sh) != 0 || sh.type != SHT_DYNSYM)
            continue;
        if (read_shdr(e, sh.link, &str) != 0 || str.type != SHT_STRTAB)
            return -1;
        uint64_t esz = e->is64 ? 24 : 16, n = sh.size / esz;
        if (sh.off >= e->size)
            return -1;
        if (n > (e->size - sh.off) / esz)
            n = (e->size - sh.off) / esz;
        if (n > (1u << 22))
            n = 1u << 22;
        for (uint64_t k = 1; k < n; k++)
            if (sym_is(e, sh.off, str.off, str.size, k, name))
                return 1;
        return 0;
    }
    return -1;
}

int ef_defines(const ef_elf *e, const char *name)
{
    int r = -1;
    if (e->dynsym_off && e->dynstr_off && e->gnuhash_off)
        r = lookup_gnu(e, name);
    if (r < 0 && e->dynsym_off && e->dynstr_off && e->hash_off)
        r = lookup_sysv(e, name);
    if (r < 0)
        r = lookup_sections(e, name);
    return r;
}

/* ---- notes ---- */

static int notes_have(const ef_elf *e, uint64_t off, uint64_t size, uint64_t align,
                      const char *owner)
{
    size_t ol = strlen(owner) + 1;
    uint64_t a = align == 8 ? 8 : 4, pos = 0;
    if (off > e->size || size > e->size - off)
        return 0;
    for (unsigned k = 0; k < MAX_NOTES && size - pos >= 12; k++) {
        unsigned char b[12];
        if (ef_read(e, off + pos, b, 12) != 0)
            return 0;
        uint64_t namesz = g32(e, b), descsz = g32(e, b + 4);
        uint64_t name_at = pos + 12, desc_at = name_at + ((namesz + a - 1) & ~(a - 1));
        if (desc_at > size)
            return 0;
        if (namesz == ol) {
            char buf[EF_NAME_MAX];
            if (ol <= sizeof buf && ef_read(e, off + name_at, buf, ol) == 0 &&
                memcmp(buf, owner, ol) == 0)
                return 1;
        }
        uint64_t next = desc_at + ((descsz + a - 1) & ~(a - 1));
        if (next <= pos || next > size)
            return 0;
        pos = next;
    }
    return 0;
}

int ef_has_note(const ef_elf *e, const char *owner)
{
    for (unsigned i = 0; i < e->phnum; i++) {
        phdr ph;
        if (read_phdr(e, i, &ph) == 0 && ph.type == PT_NOTE &&
            notes_have(e, ph.off, ph.filesz, ph.align, owner))
            return 1;
    }
    for (unsigned i = 1; i < e->shnum; i++) {
        shdr sh;
        if (read_shdr(e, i, &sh) == 0 && sh.type == SHT_NOTE &&
            notes_have(e, sh.off, sh.size, 4, owner))
            return 1;
    }
    return 0;
}

/* GNU build id (kf_progid.h: the same text the shim computes from memory),
 * for files in this machine's byte order. */
int ef_build_id(const ef_elf *e, char *hex, size_t n)
{
    unsigned char buf[4096];
    if (e->le != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__))
        return -1;
    for (unsigned i = 0; i < e->phnum; i++) {
        phdr ph;
        size_t len;
        if (read_phdr(e, i, &ph) != 0 || ph.type != PT_NOTE || !ph.filesz)
            continue;
        len = ph.filesz < sizeof buf ? (size_t)ph.filesz : sizeof buf;
        if (ef_read(e, ph.off, buf, len) == 0 &&
            kf_buildid_from_notes(buf, len, (size_t)ph.align, hex, n) == 0)
            return 0;
    }
    return -1;
}

/* ---- scanning ---- */

#define SCAN_CHUNK (1u << 20)

unsigned ef_scan(const ef_elf *e, uint64_t off, uint64_t len, const char *const *pats,
                 const size_t *lens, unsigned n, uint64_t *at)
{
    size_t maxl = 0;
    unsigned found = 0, all = n >= 32 ? ~0u : (1u << n) - 1;
    for (unsigned i = 0; i < n; i++)
        if (lens[i] > maxl)
            maxl = lens[i];
    if (off >= e->size || maxl == 0 || maxl > 4096)
        return 0;
    if (len > e->size - off)
        len = e->size - off;
    char *buf = malloc(SCAN_CHUNK + maxl);
    if (!buf)
        return 0;
    uint64_t pos = 0;
    while (pos < len && found != all) {
        size_t want = len - pos > SCAN_CHUNK + maxl ? SCAN_CHUNK + maxl : (size_t)(len - pos);
        if (ef_read(e, off + pos, buf, want) != 0)
            break;
        for (unsigned i = 0; i < n && i < 32; i++) {
            if (found & (1u << i) || lens[i] == 0)
                continue;
            const char *hit = memmem(buf, want, pats[i], lens[i]);
            if (hit) {
                found |= 1u << i;
                if (at)
                    at[i] = off + pos + (uint64_t)(hit - buf);
            }
        }
        if (want < SCAN_CHUNK + maxl)
            break;
        pos += SCAN_CHUNK; /* the next chunk overlaps by maxl bytes */
    }
    free(buf);
    return found;
}

const char *ef_machine_name(unsigned m, char *buf, size_t n)
{
    static const struct {
        unsigned m;
        const char *s;
    } t[] = {{EM_X86_64, "x86-64"}, {EM_386, "i386"},       {EM_AARCH64, "AArch64"},
             {EM_ARM, "ARM"},       {EM_RISCV, "RISC-V"},   {EM_PPC64, "PowerPC64"},
             {EM_S390, "s390"},     {EM_MIPS, "MIPS"},      {EM_LOONGARCH, "LoongArch"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].m == m)
            return t[i].s;
    snprintf(buf, n, "machine %u", m);
    return buf;
}
