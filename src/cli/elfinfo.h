/* elfinfo.h - a small, bounded ELF32/ELF64 reader for `kimifix doctor`.
 *
 * It reads untrusted files: every offset and size is checked against the
 * file, every count is capped, every read goes through pread into a local
 * buffer (no mmap, so a file truncated under us cannot SIGBUS). Either
 * byte order. No libelf.
 *
 * What it answers: class/machine/type, PT_INTERP, the dynamic section
 * (DT_NEEDED, DT_RUNPATH/DT_RPATH), "is symbol S defined in the dynamic
 * symbol table" (through DT_GNU_HASH or DT_HASH like the loader, else a
 * scan of SHT_DYNSYM), sections by name, PT_NOTE names, and a substring
 * scan of a file range.
 */
#ifndef KF_ELFINFO_H
#define KF_ELFINFO_H

#include <stddef.h>
#include <stdint.h>

#define EF_MAX_NEEDED 64
#define EF_MAX_LOAD 32
#define EF_NAME_MAX 256
#define EF_PATH_LIST_MAX 1024

typedef struct ef_load {
    uint64_t vaddr, off, filesz;
} ef_load;

typedef struct ef_elf {
    int fd;
    uint64_t size;          /* file size */
    int is64, le;
    uint16_t type, machine; /* e_type (ET_EXEC, ET_DYN, ...), e_machine */
    uint64_t phoff, shoff;
    unsigned phnum, phentsize, shnum, shentsize, shstrndx;

    int has_interp;         /* PT_INTERP present */
    char interp[EF_NAME_MAX];
    int has_dynamic;        /* PT_DYNAMIC present and readable */
    unsigned nneeded;
    int needed_truncated;   /* more than EF_MAX_NEEDED (rest ignored) */
    char needed[EF_MAX_NEEDED][EF_NAME_MAX];
    char runpath[EF_PATH_LIST_MAX], rpath[EF_PATH_LIST_MAX];
    uint64_t flags_1;       /* DT_FLAGS_1 */

    /* For symbol lookups: file offsets (0 = absent). */
    uint64_t dynstr_off, dynstr_size, dynsym_off, gnuhash_off, hash_off;

    unsigned nload;
    ef_load load[EF_MAX_LOAD];
    char err[160];          /* why ef_open failed, or a parse warning */
} ef_elf;

/* Open and parse. Returns 0; -1 when the file cannot be opened (errno);
 * -2 when it is not ELF; -3 when it is ELF but malformed (e->err says
 * what). On -2/-3 nothing needs closing. */
int ef_open(ef_elf *e, const char *path);
void ef_close(ef_elf *e);

/* Bounded read: 0 when [off, off+n) lies within the file and was read. */
int ef_read(const ef_elf *e, uint64_t off, void *buf, size_t n);

/* Is `name` a defined function/object symbol (global or weak) in the
 * dynamic symbol table? 1 yes, 0 no, -1 cannot tell (no table). */
int ef_defines(const ef_elf *e, const char *name);

/* Section by exact name: 1 with its file offset and size (0 for NOBITS),
 * 0 if absent or no section headers. */
int ef_section(const ef_elf *e, const char *name, uint64_t *off, uint64_t *size);
/* Any section whose name starts with prefix: calls fn for each, up to the
 * first non-zero return (which is returned). */
int ef_sections(const ef_elf *e, const char *prefix,
                int (*fn)(void *ud, const char *name, uint64_t off, uint64_t size), void *ud);

/* Is there a note with this owner name in a PT_NOTE segment or SHT_NOTE
 * section? 1 or 0. */
int ef_has_note(const ef_elf *e, const char *owner);

/* The GNU build id in hex (kf_progid.h), from the PT_NOTE segments; files
 * of the other byte order are not read. 0 or -1. */
int ef_build_id(const ef_elf *e, char *hex, size_t n);

/* Scan [off, off+len) (clipped to the file) for each of n byte strings;
 * bit i of the result is set when pats[i] occurs. Stops early when all
 * are found. `at` (may be NULL) gets the offset of the first hit of each
 * pattern. */
unsigned ef_scan(const ef_elf *e, uint64_t off, uint64_t len, const char *const *pats,
                 const size_t *lens, unsigned n, uint64_t *at);

/* "x86-64", "AArch64", ... or "machine 1234". */
const char *ef_machine_name(unsigned machine, char *buf, size_t n);

#endif
