/* kf_paths.c - private directories and the relay state file (kf_paths.h).
 *
 * Why so careful: /tmp is shared. Another user could pre-create
 * /tmp/kimifix-UID (or a symlink) to read our token or plant a state file
 * that steers our traffic to their process. So every directory is checked
 * with lstat for owner and mode, and the state file for owner and mode,
 * before anything in it is trusted.
 */
#include "kf_paths.h"
#include "kf_req.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *kf_path_join(char *buf, size_t n, const char *dir, const char *name)
{
    int r = snprintf(buf, n, "%s/%s", dir, name);
    return (r < 0 || (size_t)r >= n) ? NULL : buf;
}

int kf_private_dir(const char *path, int create)
{
    struct stat st;
    if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
        return -1;
    if (lstat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 022)) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

static int absolute(const char *s)
{
    return s && s[0] == '/';
}

int kf_runtime_dir(char *buf, size_t n, int create)
{
    const char *x = secure_getenv("XDG_RUNTIME_DIR");
    int r;
    if (absolute(x))
        r = snprintf(buf, n, "%s/kimifix", x);
    else
        r = snprintf(buf, n, "/tmp/kimifix-%u", (unsigned)geteuid());
    if (r < 0 || (size_t)r >= n) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return kf_private_dir(buf, create);
}

/* mkdir -p for the parents of the data dir (they are the user's own). */
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

int kf_data_dir(char *buf, size_t n, int create)
{
    const char *x = secure_getenv("XDG_DATA_HOME");
    const char *home = secure_getenv("HOME");
    int r;
    if (absolute(x))
        r = snprintf(buf, n, "%s/kimifix", x);
    else if (absolute(home))
        r = snprintf(buf, n, "%s/.local/share/kimifix", home);
    else {
        errno = ENOENT;
        return -1;
    }
    if (r < 0 || (size_t)r >= n) {
        errno = ENAMETOOLONG;
        return -1;
    }
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
    struct stat sb;
    if (!kf_path_join(path, sizeof path, dir, KF_RELAY_STATE_FILE))
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n = -1;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() &&
        !(sb.st_mode & 077))
        n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = 0;
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
    int ok = write(fd, text, (size_t)n) == n;
    ok &= close(fd) == 0;
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
