/* kf_progid.c - executable and build id (kf_progid.h). */
#include "kf_progid.h"

#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kf_paths.h"

#define NT_GNU_BUILD_ID_TYPE 3

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

int kf_buildid_from_notes(const void *notes, size_t len, size_t align, char *hex, size_t n)
{
    const unsigned char *b = notes;
    if (align != 8)
        align = 4; /* p_align 0, 1, 2 or 4 all mean 4-byte notes */
    size_t off = 0;
    while (off <= len && len - off >= 12) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, b + off, 4);
        memcpy(&descsz, b + off + 4, 4);
        memcpy(&type, b + off + 8, 4);
        /* Sizes are 32-bit: no overflow in size_t arithmetic below. */
        size_t desc = align_up(off + 12 + (size_t)namesz, align);
        size_t next = align_up(desc + (size_t)descsz, align);
        if (desc > len || descsz > len - desc)
            return -1;
        if (type == NT_GNU_BUILD_ID_TYPE && namesz == 4 && !memcmp(b + off + 12, "GNU", 4) &&
            descsz > 0 && descsz <= (KF_BUILDID_MAX - 1) / 2 && n > 2 * (size_t)descsz) {
            kf_hex_encode(b + desc, descsz, hex);
            return 0;
        }
        if (next <= off)
            return -1;
        off = next;
    }
    return -1;
}

int kf_buildid_stat(const char *path, char *out, size_t n)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    int w = snprintf(out, n, "stat:%llu:%llu:%lld:%lld", (unsigned long long)st.st_dev,
                     (unsigned long long)st.st_ino, (long long)st.st_size,
                     (long long)st.st_mtim.tv_sec);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

struct self_notes {
    char *hex;
    size_t n;
    int found;
};

/* The first object dl_iterate_phdr reports is the main program. */
static int main_notes(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct self_notes *s = data;
    for (unsigned i = 0; i < info->dlpi_phnum && !s->found; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_NOTE &&
            kf_buildid_from_notes((const void *)(info->dlpi_addr + ph->p_vaddr), ph->p_memsz,
                                  ph->p_align, s->hex, s->n) == 0)
            s->found = 1;
    }
    return 1;
}

int kf_progid_self(char *exe, size_t en, char *buildid, size_t bn)
{
    long r = syscall(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", exe, en - 1);
    if (r <= 0)
        return -1;
    exe[r] = 0;
    struct self_notes s = {buildid, bn, 0};
    dl_iterate_phdr(main_notes, &s);
    if (s.found)
        return 0;
    return kf_buildid_stat("/proc/self/exe", buildid, bn);
}
