/* kf_lease.c - a proxy-carrier client's lease file (kf_lease.h).
 *
 * Why raw system calls for write and close: the shim's constructor writes
 * leases, and the shim hooks write() and close(); the engine calls no
 * function the shim hooks.
 */
#include "kf_lease.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kf_paths.h"
#include "kf_rules.h"
#include "kf_trust.h"

static ssize_t raw_write(int fd, const void *p, size_t n)
{
    return (ssize_t)syscall(SYS_write, fd, p, n);
}

static void raw_close(int fd)
{
    syscall(SYS_close, fd);
}

int kf_proc_start(pid_t pid, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    raw_close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    /* "PID (COMM) S ...": COMM may hold spaces and parentheses; the fields
     * after the last ')' are plain: state is field 3, starttime field 22. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    for (int field = 3; field < 22; field++) {
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++;
        if (!*p)
            return -1;
    }
    while (*p == ' ')
        p++;
    unsigned long long v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        v = v * 10 + (unsigned)(*p - '0');
    if (!digits)
        return -1;
    *start = v;
    return 0;
}

int kf_lease_alive(pid_t pid, unsigned long long start)
{
    unsigned long long now;
    return pid > 0 && kf_proc_start(pid, &now) == 0 && now == start;
}

int kf_lease_id_ok(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == KF_LEASE_ID_HEX;
}

char *kf_lease_dir(char *buf, size_t n, const char *rundir)
{
    return kf_path_join(buf, n, rundir, KF_LEASE_DIR);
}

/* A value that fits on its line: no control byte, not empty. */
static int value_ok(const char *v)
{
    if (!v || !*v || strlen(v) > 4096)
        return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* `trust PATH` lines: the client's original trust sources (kf_trust.h),
 * so the relay verifies its CONNECT-terminated upstreams as it would. */
struct trust_lines {
    char *p;
    size_t cap, len;
};

static int add_trust(void *ud, const char *path, const char *var)
{
    (void)var;
    struct trust_lines *t = ud;
    if (!value_ok(path))
        return 0;
    int w = snprintf(t->p + t->len, t->cap - t->len, "trust %s\n", path);
    if (w > 0 && (size_t)w < t->cap - t->len)
        t->len += (size_t)w;
    else
        t->p[t->len] = 0; /* did not fit: left out */
    return 0;
}

/* The client's rules source and log, as its own registration says them
 * (kf_ctxself.c), except stderr: a file cannot carry an fd, so the lease
 * says `log stderr` and the relay opens the lease holder's fd 2 itself
 * (/proc/PID/fd/2, only while that process lives; src/relay/ctx.c). */
static void prefs(char *out, size_t cap)
{
    char rp[4096], cwd[4096], abs[8200];
    const char *rules = kf_rules_default_path(rp, sizeof rp);
    const char *log = secure_getenv("KIMIFIX_LOG"), *dbg = secure_getenv("KIMIFIX_DEBUG");
    const char *lv = dbg && *dbg && strcmp(dbg, "0") ? "debug" : !log || !*log ? "warn" : "info";
    const char *dest = NULL;
    if (log && !strcmp(log, "off"))
        dest = "off";
    else if (log && (!strcmp(log, "stderr") || !strcmp(log, "-")))
        dest = "stderr";
    else if (log && log[0] == '/')
        dest = log;
    else if (log && *log && syscall(SYS_getcwd, cwd, sizeof cwd) > 0 &&
             snprintf(abs, sizeof abs, "%s/%s", cwd, log) < (int)sizeof abs)
        dest = abs; /* relative to the client's directory, not the relay's */
    if (dest && !value_ok(dest))
        dest = NULL;
    if (rules && !value_ok(rules))
        rules = NULL;
    int w = snprintf(out, cap, "rules %s\n%s%s%slevel %s\n", rules ? rules : "builtin",
                     dest ? "log " : "", dest ? dest : "", dest ? "\n" : "", lv);
    if (w < 0 || (size_t)w >= cap)
        out[0] = 0; /* too long: the relay's defaults */
}

int kf_lease_write(const char *rundir, pid_t pid, const char *proxy, const char *noproxy,
                   char *idhex)
{
    char pref[9000];
    prefs(pref, sizeof pref);
    char trust[KF_LEASE_MAX / 2] = "";
    struct trust_lines tl = {trust, sizeof trust, 0};
    kf_trust_sources(add_trust, &tl);
    if (strlen(trust) + strlen(pref) + 1024 > KF_LEASE_MAX)
        pref[0] = 0; /* the proxy and trust matter more: the relay's rules and log */
    char dir[4200], path[4300], tmp[4400], text[KF_LEASE_MAX];
    unsigned char id[KF_LEASE_ID_HEX / 2];
    unsigned long long start;
    if (!kf_lease_dir(dir, sizeof dir, rundir) || kf_private_dir(dir, 1) < 0 ||
        kf_proc_start(pid, &start) < 0)
        return -1;
    if (getrandom(id, sizeof id, 0) != (ssize_t)sizeof id)
        return -1;
    kf_hex_encode(id, sizeof id, idhex);
    int n = snprintf(text, sizeof text, "kfctx 1\nlease %ld %llu\n%s%s%s%s%s%s%s%s\n", (long)pid, start,
                     trust, pref,
                     value_ok(proxy) ? "proxy " : "", value_ok(proxy) ? proxy : "",
                     value_ok(proxy) ? "\n" : "", value_ok(noproxy) ? "noproxy " : "",
                     value_ok(noproxy) ? noproxy : "", value_ok(noproxy) ? "\n" : "");
    if (n < 0 || (size_t)n >= sizeof text || !kf_path_join(path, sizeof path, dir, idhex) ||
        snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    int ok = raw_write(fd, text, (size_t)n) == n;
    raw_close(fd);
    memset(text, 0, sizeof text); /* the proxy's credentials */
    if (!ok || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e ? e : EIO;
        return -1;
    }
    return 0;
}

ssize_t kf_lease_read(const char *rundir, const char *idhex, char *buf, size_t cap)
{
    char dir[4200], path[4300];
    if (!kf_lease_id_ok(idhex) || !kf_lease_dir(dir, sizeof dir, rundir) ||
        !kf_path_join(path, sizeof path, dir, idhex))
        return -1;
    return kf_read_private(path, buf, cap);
}

static int parse_lease(const char *v, size_t n, kf_lease *out)
{
    unsigned long long pid = 0, start = 0;
    size_t i = 0, d = 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9' && pid < (1ull << 31); i++, d++)
        pid = pid * 10 + (unsigned)(v[i] - '0');
    if (!d || i >= n || v[i++] != ' ' || pid == 0 || pid >= (1ull << 31))
        return -1;
    for (d = 0; i < n && v[i] >= '0' && v[i] <= '9' && start < (1ull << 60); i++, d++)
        start = start * 10 + (unsigned)(v[i] - '0');
    if (!d || i != n)
        return -1;
    out->pid = (pid_t)pid;
    out->start = start;
    return 0;
}

int kf_lease_parse(const char *text, size_t n, kf_lease *out)
{
    memset(out, 0, sizeof *out);
    int first = 1, have = 0;
    for (const char *p = text, *end = text + n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le == p)
            break; /* the empty line: the end */
        const char *sp = memchr(p, ' ', (size_t)(le - p));
        if (!sp || sp + 1 >= le)
            return -1;
        kf_str key = {p, (size_t)(sp - p)}, val = {sp + 1, (size_t)(le - sp - 1)};
        if (first) {
            if (!kf_str_eq(key, KF_STR("kfctx")) || !kf_str_eq(val, KF_STR("1")))
                return -1;
            first = 0;
        } else if (kf_str_eq(key, KF_STR("lease"))) {
            if (parse_lease(val.p, val.n, out) < 0)
                return -1;
            have = 1;
        } else if (kf_str_eq(key, KF_STR("proxy"))) {
            out->proxy = val;
        } else if (kf_str_eq(key, KF_STR("noproxy"))) {
            out->noproxy = val;
        }
        p = nl ? nl + 1 : end;
    }
    return have ? 0 : -1;
}
