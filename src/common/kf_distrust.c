/* kf_distrust.c - learned distrust records (kf_distrust.h). */
#include "kf_distrust.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kf_paths.h"
#include "kf_sys.h"
#include "kf_trust.h"

#define REC_MAX 6144 /* the longest record: exe (4096) + the rest */

int kf_distrust_path(const char *datadir, const char *exe, const char *buildid, char *out,
                     size_t n)
{
    unsigned long long h = KF_TRUST_FNV_INIT;
    h = kf_trust_fnv(h, exe, strlen(exe));
    h = kf_trust_fnv(h, "\n", 1);
    h = kf_trust_fnv(h, buildid, strlen(buildid));
    int w = snprintf(out, n, "%s/" KF_DISTRUST_DIR "/%016llx", datadir, h);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

static int copy_field(char *dst, size_t n, const char *v, size_t vn)
{
    if (vn == 0 || vn >= n)
        return -1;
    memcpy(dst, v, vn);
    dst[vn] = 0;
    return 0;
}

/* One pass over "key value" lines. */
static int parse_rec(const char *t, size_t len, kf_distrust_rec *r)
{
    static const char first[] = "kimifix-distrust 1\n";
    if (len < sizeof first - 1 || memcmp(t, first, sizeof first - 1))
        return -1;
    memset(r, 0, sizeof *r);
    int have = 0;
    for (size_t pos = sizeof first - 1; pos < len;) {
        const char *nl = memchr(t + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (t + pos)) : len - pos;
        const char *line = t + pos, *sp = memchr(line, ' ', n);
        pos += n + 1;
        if (!sp)
            continue;
        size_t kn = (size_t)(sp - line), vn = n - kn - 1;
        const char *v = sp + 1;
        if (kn == 3 && !memcmp(line, "exe", 3))
            have |= copy_field(r->exe, sizeof r->exe, v, vn) ? 0 : 1;
        else if (kn == 7 && !memcmp(line, "buildid", 7))
            have |= copy_field(r->buildid, sizeof r->buildid, v, vn) ? 0 : 2;
        else if (kn == 5 && !memcmp(line, "alert", 5))
            copy_field(r->alert, sizeof r->alert, v, vn);
        else if (kn == 4 && !memcmp(line, "host", 4))
            copy_field(r->host, sizeof r->host, v, vn);
        else if (kn == 4 && !memcmp(line, "when", 4) && vn < 24) {
            char num[24];
            memcpy(num, v, vn);
            num[vn] = 0;
            r->when = strtoll(num, NULL, 10);
        }
    }
    return have == 3 ? 0 : -1;
}

/* Raw system calls: the shim's connect() hook calls this (its close and
 * read paths must not be re-entered). */
int kf_distrust_read(const char *path, kf_distrust_rec *r)
{
    char buf[REC_MAX];
    struct stat st;
    long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long n = -1;
    if (syscall(SYS_fstat, fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        !(st.st_mode & 022))
        n = syscall(SYS_read, fd, buf, sizeof buf);
    syscall(SYS_close, fd);
    if (n <= 0 || (size_t)n == sizeof buf)
        return -1;
    return parse_rec(buf, (size_t)n, r);
}

int kf_distrust_check(const char *datadir, const char *exe, const char *buildid,
                      kf_distrust_rec *r)
{
    char path[4200];
    kf_distrust_rec tmp;
    if (!r)
        r = &tmp;
    if (kf_distrust_path(datadir, exe, buildid, path, sizeof path) < 0 ||
        kf_distrust_read(path, r) < 0)
        return 0;
    return !strcmp(r->exe, exe) && !strcmp(r->buildid, buildid);
}

static int field_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

int kf_distrust_record(const char *datadir, const char *exe, const char *buildid,
                       const char *alert, const char *host)
{
    char dir[4200], path[4200], tmp[4300], text[REC_MAX];
    if (!*exe || !*buildid || !field_ok(exe) || !field_ok(buildid) || !field_ok(alert) ||
        !field_ok(host) || strlen(exe) >= 4096 || strlen(buildid) >= KF_BUILDID_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (kf_distrust_check(datadir, exe, buildid, NULL))
        return 0;
    if (!kf_path_join(dir, sizeof dir, datadir, KF_DISTRUST_DIR) || kf_private_dir(dir, 1) < 0 ||
        kf_distrust_path(datadir, exe, buildid, path, sizeof path) < 0)
        return -1;
    int n = snprintf(text, sizeof text,
                     "kimifix-distrust 1\nexe %s\nbuildid %s\nalert %.31s\nhost %.255s\nwhen %lld\n",
                     exe, buildid, alert, host, (long long)time(NULL));
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    int ok = n > 0 && n < (int)sizeof text && kf_sys_write(fd, text, (size_t)n) == n;
    ok &= kf_sys_close(fd) == 0;
    /* link(): exactly one writer wins; a record that appeared meanwhile
     * (another relay thread, a collision) is kept as it is. */
    int rc = ok ? link(tmp, path) : -1, e = errno;
    unlink(tmp);
    if (rc == 0)
        return 1;
    if (ok && e == EEXIST)
        return 0;
    errno = e;
    return -1;
}

int kf_distrust_each(const char *datadir,
                     int (*fn)(void *ud, const char *path, const kf_distrust_rec *r), void *ud)
{
    char dir[4200], path[4500];
    static kf_distrust_rec r; /* the doctor's single thread only */
    if (!kf_path_join(dir, sizeof dir, datadir, KF_DISTRUST_DIR))
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strlen(e->d_name) != 16 || strspn(e->d_name, "0123456789abcdef") != 16)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (kf_distrust_read(path, &r) < 0)
            continue;
        count++;
        if (fn(ud, path, &r))
            break;
    }
    closedir(d);
    return count;
}
