/* kf_trust.c - compute trust variables for clients of the relay (kf_trust.h). */
#include "kf_sys.h"
#include "kf_trust.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_paths.h"

static const struct {
    const char *name;
    const char *ours; /* file in the data dir used when the variable is unset */
} vars[KF_TRUST_NVARS] = {
    {"NODE_EXTRA_CA_CERTS", "ca.pem"},
    {"SSL_CERT_FILE", "ca-bundle.pem"},
    {"REQUESTS_CA_BUNDLE", "ca-bundle.pem"},
};

static int has_prefix(const char *s, const char *dir)
{
    size_t n = strlen(dir);
    return !strncmp(s, dir, n) && s[n] == '/';
}

static int copy_into(int out, const char *path)
{
    char buf[4096];
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (kf_sys_write(out, buf, (size_t)n) != n)
            rc = -1;
    kf_sys_close(in);
    return n < 0 ? -1 : rc;
}

/* FNV-1a over the inputs that decide the combined file's content. */
static unsigned long long fnv(unsigned long long h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* rundir/trust-HASH.pem = theirs + "\n" + ours; reused when it exists. */
static int combine(char *dst, size_t n, const char *rundir, const char *name,
                   const char *theirs, const char *ours)
{
    struct stat a, b;
    if (stat(theirs, &a) < 0 || !S_ISREG(a.st_mode) || stat(ours, &b) < 0)
        return -1;
    unsigned long long h = 14695981039346656037ULL;
    h = fnv(h, name, strlen(name));
    h = fnv(h, theirs, strlen(theirs));
    long long k[6] = {(long long)a.st_ino, (long long)a.st_size, (long long)a.st_mtime,
                      (long long)b.st_ino, (long long)b.st_size, (long long)b.st_mtime};
    h = fnv(h, k, sizeof k);
    if (snprintf(dst, n, "%s/trust-%016llx.pem", rundir, h) >= (int)n)
        return -1;
    struct stat c;
    if (lstat(dst, &c) == 0 && S_ISREG(c.st_mode) && c.st_uid == geteuid())
        return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", dst, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -1;
    int ok = copy_into(fd, theirs) == 0 && kf_sys_write(fd, "\n", 1) == 1 && copy_into(fd, ours) == 0;
    ok &= kf_sys_close(fd) == 0;
    if (!ok || rename(tmp, dst) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int kf_trust_env(kf_trust_var out[KF_TRUST_NVARS])
{
    char data[4096], run[4096], ca[4096], ours[4096];
    if (kf_data_dir(data, sizeof data, 0) < 0 || !kf_path_join(ca, sizeof ca, data, "ca.pem") ||
        access(ca, R_OK) < 0)
        return -1;
    int have_run = kf_runtime_dir(run, sizeof run, 1) == 0;
    int count = 0;
    for (int i = 0; i < KF_TRUST_NVARS; i++) {
        kf_trust_var *v = &out[i];
        v->name = vars[i].name;
        v->value[0] = 0;
        v->combined = 0;
        const char *cur = secure_getenv(v->name);
        if (!kf_path_join(ours, sizeof ours, data, vars[i].ours))
            continue;
        if (!cur || !*cur) {
            snprintf(v->value, sizeof v->value, "%s", ours);
        } else if (has_prefix(cur, data) || (have_run && has_prefix(cur, run))) {
            continue; /* already ours (inherited from a parent under kimifix) */
        } else if (have_run && combine(v->value, sizeof v->value, run, v->name, cur, ca) == 0) {
            v->combined = 1;
        } else {
            v->value[0] = 0; /* unreadable: leave the user's setting alone */
            continue;
        }
        count++;
    }
    return count;
}
