/* kf_trustjava.c - the JDK's trust store, client side (kf_trustjava.h). */
#include "kf_trustjava.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_trust.h"

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int kf_java_default_store(const char *from, char *out, size_t n)
{
    static const char *const rel[] = {"lib/security/jssecacerts", "lib/security/cacerts"};
    char dir[PATH_MAX], cand[PATH_MAX + 64], real[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", from) >= (int)sizeof dir)
        return -1;
    for (int up = 0; up <= 4; up++) {
        for (unsigned i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(cand, sizeof cand, "%s/%s", dir, rel[i]);
            if (is_file(cand) && realpath(cand, real))
                return snprintf(out, n, "%s", real) < (int)n ? 0 : -1;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            break;
        *slash = 0;
    }
    return -1;
}

static int copy_value(const char *v, size_t vn, char *out, size_t n)
{
    if (vn >= n)
        return -1;
    memcpy(out, v, vn);
    out[vn] = 0;
    return 1;
}

int kf_java_opt(const char *opts, const char *opt, char *out, size_t n)
{
    size_t on = strlen(opt);
    const char *val = NULL;
    size_t vn = 0;
    for (const char *p = opts; p && *p;) {
        p += strspn(p, " \t\n\r");
        size_t k = strcspn(p, " \t\n\r");
        if (k >= on && !memcmp(p, opt, on)) {
            val = p + on;
            vn = k - on;
        }
        p += k;
    }
    return val ? copy_value(val, vn, out, n) : 0;
}

int kf_java_opt_argv(const char *args, size_t len, const char *opt, char *out, size_t n)
{
    size_t on = strlen(opt);
    const char *val = NULL;
    size_t vn = 0;
    for (size_t i = 0; i < len;) {
        const char *a = args + i;
        const char *z = memchr(a, 0, len - i);
        size_t k = z ? (size_t)(z - a) : len - i;
        if (k >= on && !memcmp(a, opt, on)) {
            val = a + on;
            vn = k - on;
        }
        i += k + 1;
    }
    return val ? copy_value(val, vn, out, n) : 0;
}

static unsigned long long hash_file(unsigned long long h, const char *path, const struct stat *st)
{
    long long k[5] = {(long long)st->st_dev, (long long)st->st_ino, (long long)st->st_size,
                      (long long)st->st_mtim.tv_sec, (long long)st->st_mtim.tv_nsec};
    h = kf_trust_fnv(h, path, strlen(path) + 1);
    return kf_trust_fnv(h, k, sizeof k);
}

int kf_java_store_path(const char *datadir, const char *src, char *out, size_t n)
{
    char real[PATH_MAX], ca[PATH_MAX];
    struct stat a, b;
    if (!realpath(src, real) || stat(real, &a) < 0 || !S_ISREG(a.st_mode) ||
        snprintf(ca, sizeof ca, "%s/ca.pem", datadir) >= (int)sizeof ca || stat(ca, &b) < 0)
        return -1;
    unsigned long long h = hash_file(hash_file(KF_TRUST_FNV_INIT, real, &a), ca, &b);
    int w = snprintf(out, n, "%s/" KF_JAVA_DIR "/trust-%016llx.p12", datadir, h);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

int kf_java_opts_with(const char *opts, const char *store, char *out, size_t n)
{
    if (!*store || strpbrk(store, " \t\n\r"))
        return -1;
    const char *sep = opts && *opts ? " " : "";
    int w = snprintf(out, n, "%s%s" KF_JAVA_OPT_STORE "%s " KF_JAVA_OPT_TYPE "PKCS12",
                     opts ? opts : "", sep, store);
    return w > 0 && (size_t)w < n ? 0 : -1;
}
