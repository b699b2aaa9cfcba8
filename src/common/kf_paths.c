/* kf_paths.c - private directories and the relay state file (kf_paths.h).
 *
 * Why so careful: /tmp is shared. Another user could pre-create
 * /tmp/kimifix-UID (or a symlink) to read our token or plant a state file
 * that steers our traffic to their process. So every directory is checked
 * with lstat for owner and mode, and the state file for owner and mode,
 * before anything in it is trusted.
 */
#include "kf_sys.h"
#include "kf_paths.h"
#include "kf_log.h"
#include "kf_req.h"
#include "kf_str.h"
#include "kf_sockdiag.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

char *kf_path_join(char *buf, size_t n, const char *dir, const char *name)
{
    return kf_cat3(buf, n, dir, "/", name) < 0 ? NULL : buf;
}

/* Why a directory failed kf_private_dir (for the caller's message). */
enum { PD_OK = 0, PD_ERRNO, PD_NOT_OURS, PD_WRITABLE };

/* Check (and with create=1 make) a private directory through one
 * descriptor: open(O_NOFOLLOW|O_DIRECTORY) refuses a symlink or a file,
 * fstat/fchmod act on exactly what was checked (no rename race). A mode
 * with group/other bits that lets nobody else write (e.g. 0755) is ours to
 * repair: chmod 0700, said once. Writable by others: somebody could have
 * planted files in it, so it is refused (the user checks and chmods). */
static int private_dir_check(const char *path, int create, uid_t *owner, unsigned *mode)
{
    /* open first, mkdir only when it is missing: every process under the
     * shim comes here at start, and the directory is almost always there. */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return PD_ERRNO;
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        if (errno == ELOOP)
            errno = ENOTDIR; /* a symlink where a directory must be */
        return PD_ERRNO;
    }
    struct stat st;
    int r = PD_OK;
    if (fstat(fd, &st) < 0) {
        r = PD_ERRNO;
    } else if (st.st_uid != geteuid()) {
        r = PD_NOT_OURS;
    } else if (st.st_mode & 022) {
        r = PD_WRITABLE;
    } else if (st.st_mode & 077) {
        if (fchmod(fd, 0700) < 0)
            r = PD_ERRNO;
        else
            kf_log(KF_LOG_WARN, "%s had mode %04o: repaired to 0700 (kimifix keeps keys and "
                                "tokens there)", path, (unsigned)(st.st_mode & 07777));
    }
    *owner = st.st_uid;
    *mode = (unsigned)(st.st_mode & 07777);
    int e = errno;
    syscall(SYS_close, fd);
    errno = e;
    if (r == PD_NOT_OURS || r == PD_WRITABLE)
        errno = EPERM;
    return r;
}

int kf_private_dir(const char *path, int create)
{
    uid_t owner = 0;
    unsigned mode = 0;
    int r = private_dir_check(path, create, &owner, &mode);
    if (r == PD_NOT_OURS)
        kf_log(KF_LOG_ERROR, "%s belongs to uid %u, not to you (uid %u): refusing to use it",
               path, (unsigned)owner, (unsigned)geteuid());
    else if (r == PD_WRITABLE)
        kf_log(KF_LOG_ERROR, "%s has mode %04o (others may write there): refusing to use it; "
                             "check its contents, then chmod 700 it", path, mode);
    return r == PD_OK ? 0 : -1;
}

static int absolute(const char *s)
{
    return s && s[0] == '/';
}

/* mkdir -p for the parents of a directory under the user's home. */
static void make_parents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        mkdir(path, 0700);
        *p = '/';
    }
}

/* The fallback's name, $XDG_CACHE_HOME/kimifix/run, else
 * ~/.cache/kimifix/run: -1 when neither variable is absolute, or
 * ENAMETOOLONG. */
static int fallback_path(char *buf, size_t n)
{
    const char *x = secure_getenv("XDG_CACHE_HOME"), *home = secure_getenv("HOME");
    int r;
    if (absolute(x))
        r = kf_cat3(buf, n, x, "/kimifix/run", NULL);
    else if (absolute(home))
        r = kf_cat3(buf, n, home, "/.cache/kimifix/run", NULL);
    else
        return -1;
    if (r < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* /tmp/kimifix-UID */
static int tmp_path(char *buf, size_t n)
{
    char uid[11];
    if (kf_cat3(buf, n, "/tmp/kimifix-", kf_utoa((unsigned)geteuid(), uid), NULL) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* The runtime dir when /tmp/kimifix-UID is not ours (another user made it
 * first, or planted a symlink or file there): fallback_path. Every process
 * of the user computes the same. */
static int runtime_fallback(char *buf, size_t n, int create, const char *squatted,
                            uid_t owner, int why)
{
    if (fallback_path(buf, n) < 0)
        return -1;
    /* INFO: every process under the shim comes here; the relay and the
     * kimifix command (which log INFO) tell the user. */
    static atomic_int said;
    if (!atomic_exchange(&said, 1)) {
        if (why == PD_NOT_OURS)
            kf_log(KF_LOG_INFO, "%s belongs to uid %u, not to you: using %s instead", squatted,
                   (unsigned)owner, buf);
        else
            kf_log(KF_LOG_INFO, "%s is not a directory of yours (%s): using %s instead", squatted,
                   why == PD_WRITABLE ? "others may write there" : "a symlink or a file", buf);
    }
    if (create)
        make_parents(buf);
    return kf_private_dir(buf, create);
}

/* XDG_RUNTIME_DIR names a directory of ours. It may not: `su` or `sudo -u`
 * keep the first user's, and a session without pam_systemd keeps one that
 * was never made. Then the /tmp rules below apply, said once. */
static int xdg_runtime_ours(const char *x)
{
    struct stat st;
    return lstat(x, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid();
}

int kf_runtime_dir(char *buf, size_t n, int create)
{
    const char *x = secure_getenv("XDG_RUNTIME_DIR");
    if (absolute(x)) {
        if (kf_cat3(buf, n, x, "/kimifix", NULL) < 0) {
            errno = ENAMETOOLONG;
            return -1;
        }
        /* the usual case costs what it did: one open of RUNDIR */
        if (kf_private_dir(buf, create) == 0)
            return 0;
        int e = errno;
        if (xdg_runtime_ours(x)) {
            errno = e; /* ours: RUNDIR's own trouble (or not made yet) stands */
            return -1;
        }
        static atomic_int said;
        if (!atomic_exchange(&said, 1))
            kf_log(KF_LOG_INFO, "XDG_RUNTIME_DIR=%s is not a directory of yours (another user's "
                                "after su, or never made): using /tmp/kimifix-%u", x,
                   (unsigned)geteuid());
    }
    if (tmp_path(buf, n) < 0)
        return -1;
    /* /tmp is shared: what is there may not be ours. */
    uid_t owner = 0;
    unsigned mode = 0;
    int why = private_dir_check(buf, create, &owner, &mode);
    if (why == PD_OK)
        return 0;
    if (why == PD_ERRNO && errno != ENOTDIR)
        return -1; /* ENOENT without create: no runtime dir (yet) */
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s", buf);
    return runtime_fallback(buf, n, create, tmp, owner, why);
}

int kf_runtime_dir_names(char *buf, size_t n, const char *names[3])
{
    const char *x = secure_getenv("XDG_RUNTIME_DIR");
    int k = 0;
    size_t used = 0;
    if (absolute(x) && kf_cat3(buf, n, x, "/kimifix", NULL) >= 0)
        names[k++] = buf, used = strlen(buf) + 1;
    if (used < n && tmp_path(buf + used, n - used) == 0)
        names[k++] = buf + used, used += strlen(buf + used) + 1;
    if (used < n && fallback_path(buf + used, n - used) == 0)
        names[k++] = buf + used;
    return k;
}

/* The relay listens on loopback TCP, which exists per network namespace:
 * a relay started in another one (a container or sandbox sharing /tmp, an
 * `unshare -n`, make demo) is unreachable from here, and its run lock
 * would keep ours from starting. RUNDIR/relay.net (a symlink naming a
 * namespace, never followed) says whose RUNDIR is: the first to start a
 * relay claims it (only a relay: a `relay status` run in a sandbox must not
 * give RUNDIR to a namespace that is about to go); a process of another
 * namespace uses RUNDIR/net-INODE.
 * Two readlinks per call, no open. Without /proc: RUNDIR, as before. */
int kf_relay_dir(char *buf, size_t n, int create)
{
    if (kf_runtime_dir(buf, n, create) < 0)
        return -1;
    char me[64], owner[64], mark[4200];
    if (kf_relay_net_owner(buf, owner, me))
        return 0;
    const char *ino = strchr(me, '[');
    if (!ino)
        return 0; /* no /proc: RUNDIR, as before */
    if (!owner[0]) {
        if (create < KF_RELAY_DIR_CLAIM)
            return 0; /* unclaimed: as before */
        if (kf_path_join(mark, sizeof mark, buf, KF_RELAY_NET_MARK) && symlink(me, mark) == 0)
            return 0; /* now ours */
        if (kf_relay_net_owner(buf, owner, me))
            return 0; /* claimed meanwhile, by our namespace */
    }
    size_t bl = strlen(buf);
    int r = snprintf(buf + bl, n - bl, "/net-%.*s", (int)strcspn(ino + 1, "]"), ino + 1);
    if (r < 0 || (size_t)r >= n - bl) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return kf_private_dir(buf, create);
}

int kf_relay_net_owner(const char *run, char owner[64], char me[64])
{
    char mark[4200];
    ssize_t ol = -1, ml = readlink("/proc/self/ns/net", me, 63);
    if (kf_path_join(mark, sizeof mark, run, KF_RELAY_NET_MARK))
        ol = readlink(mark, owner, 63);
    owner[ol > 0 ? ol : 0] = 0;
    me[ml > 0 ? ml : 0] = 0;
    return ml > 0 && ol == ml && !strcmp(me, owner);
}

void kf_relay_dir_release(const char *reldir)
{
    char run[4096], mark[4200], me[64], owner[64];
    if (kf_runtime_dir(run, sizeof run, 0) == 0 && !strcmp(run, reldir) &&
        kf_relay_net_owner(run, owner, me) && kf_path_join(mark, sizeof mark, run, KF_RELAY_NET_MARK))
        unlink(mark);
}

int kf_data_dir_path(char *buf, size_t n)
{
    const char *x = secure_getenv("XDG_DATA_HOME");
    const char *home = secure_getenv("HOME");
    int r;
    if (absolute(x))
        r = kf_cat3(buf, n, x, "/kimifix", NULL);
    else if (absolute(home))
        r = kf_cat3(buf, n, home, "/.local/share/kimifix", NULL);
    else {
        errno = ENOENT;
        return -1;
    }
    if (r < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

ssize_t kf_read_private(const char *path, char *buf, size_t cap)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n = -1;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() &&
        !(sb.st_mode & 077) && (size_t)sb.st_size < cap)
        n = read(fd, buf, cap - 1);
    kf_sys_close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return n;
}

void kf_file_id_of(const char *path, kf_file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (path && *path && stat(path, &st) == 0) {
        id->exists = 1;
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        id->size = st.st_size;
        id->mtim = st.st_mtim;
    }
}

int kf_file_id_eq(const kf_file_id *a, const kf_file_id *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec;
}

int kf_data_dir(char *buf, size_t n, int create)
{
    if (kf_data_dir_path(buf, n) < 0)
        return -1;
    if (create)
        make_parents(buf);
    return kf_private_dir(buf, create);
}

void kf_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = 0;
}

int kf_hex_decode(const char *in, size_t inlen, unsigned char *out, size_t n)
{
    if (inlen != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int a = kf_hexval(in[2 * i]), b = kf_hexval(in[2 * i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i] = (unsigned char)(a << 4 | b);
    }
    return 0;
}

/* "key value" lines; unknown keys are ignored (newer relays may add some). */
static int parse_state(char *text, kf_relay_state *st)
{
    int have = 0;
    memset(st, 0, sizeof *st);
    for (char *line = text, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        char *v = strchr(line, ' ');
        if (!v)
            continue;
        *v++ = 0;
        char *end;
        if (!strcmp(line, "port")) {
            unsigned long p = strtoul(v, &end, 10);
            if (*end || p == 0 || p > 65535)
                return -1;
            st->port = (unsigned)p;
            have |= 1;
        } else if (!strcmp(line, "pid")) {
            long p = strtol(v, &end, 10);
            if (*end || p <= 0)
                return -1;
            st->pid = (pid_t)p;
            have |= 2;
        } else if (!strcmp(line, "token")) {
            if (kf_hex_decode(v, strlen(v), st->token, sizeof st->token))
                return -1;
            have |= 4;
        } else if (!strcmp(line, "started")) {
            st->started = strtol(v, &end, 10);
        } else if (!strcmp(line, "v6")) {
            st->v6 = !strcmp(v, "1");
        }
    }
    return have == 7 ? 0 : -1;
}

int kf_relay_state_read(const char *dir, kf_relay_state *st)
{
    char path[4096], text[1024];
    if (!kf_path_join(path, sizeof path, dir, KF_RELAY_STATE_FILE))
        return -1;
    ssize_t n = kf_read_private(path, text, sizeof text);
    if (n <= 0)
        return -1;
    return parse_state(text, st);
}

int kf_relay_state_write(const char *dir, const kf_relay_state *st)
{
    char path[4096], tmp[4096], text[512], hex[2 * KF_PROXY_TOKEN_LEN + 1];
    if (!kf_path_join(path, sizeof path, dir, KF_RELAY_STATE_FILE))
        return -1;
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return -1;
    kf_hex_encode(st->token, sizeof st->token, hex);
    int n = snprintf(text, sizeof text,
                     "kimifix-relay 1\nport %u\nv6 %d\npid %ld\nstarted %ld\ntoken %s\n",
                     st->port, st->v6 ? 1 : 0, (long)st->pid, st->started, hex);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    int ok = kf_sys_write(fd, text, (size_t)n) == n;
    ok &= kf_sys_close(fd) == 0;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int kf_relay_state_alive(const kf_relay_state *st)
{
    return st->pid > 0 && kill(st->pid, 0) == 0; /* EPERM: not ours */
}

/* Held by a live relay for its whole life (it takes LOCK_EX at start).
 * Probed with a shared non-blocking lock, released at once. */
int kf_relay_run_lock_held(const char *dir)
{
    char p[4200];
    if (!kf_path_join(p, sizeof p, dir, KF_RELAY_RUN_LOCK))
        return 0;
    int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    syscall(SYS_close, fd); /* drops our lock, if we got it */
    return held;
}

int kf_relay_live(const char *dir, const kf_relay_state *st, char *why, size_t wn)
{
    int saved = errno;
    int r = 0;
    if (!kf_relay_run_lock_held(dir)) {
        snprintf(why, wn, "no relay holds %s/%s (relay.state is stale)", dir, KF_RELAY_RUN_LOCK);
    } else {
        switch (kf_tcp_listener_owner(st->port, st->v6, geteuid())) {
        case KF_LISTEN_OURS:
            r = 1;
            break;
        case KF_LISTEN_NONE:
            snprintf(why, wn, "nothing of yours listens on 127.0.0.1:%u", st->port);
            break;
        case KF_LISTEN_FOREIGN:
            snprintf(why, wn, "port %u belongs to another user", st->port);
            break;
        default:
            snprintf(why, wn, "cannot tell who listens on port %u", st->port);
        }
    }
    errno = saved;
    return r;
}
