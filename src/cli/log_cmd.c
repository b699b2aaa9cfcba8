/* log_cmd.c - `kimifix log [-f] [-n N]`: the relay's recent lines.
 *
 * The relay of a background start logs to RUNDIR/relay.log; at its size cap
 * it renames that to relay.log.1 (replacing the older one) and starts a new
 * relay.log. The last N lines come from both files, older first; either may
 * be missing. -f then follows like `tail -F`: new lines as they come, and
 * across a rotation (what is left in the old file first, then the new file
 * from its start). Secrets are redacted by the relay when it writes; here
 * control bytes, C1 controls and invalid UTF-8 are shown as \xHH, so a log
 * line cannot drive the terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kf_paths.h"

#define LOG_BUF 65536

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (c >= 0xF5 || !len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] >= 0x90))
        return 0;
    return len;
}

/* One line (without its newline), control bytes escaped. */
static void put_line(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '\t' || (c >= 0x20 && c < 0x7F)) {
            putchar((int)c);
            i++;
            continue;
        }
        size_t l = c >= 0x80 ? utf8_len(s + i, n - i) : 0;
        if (l && !(c == 0xC2 && s[i + 1] < 0xA0)) { /* U+0080..U+009F: C1 controls */
            fwrite(s + i, 1, l, stdout);
            i += l;
            continue;
        }
        printf("\\x%02X", c);
        i++;
    }
    putchar('\n');
}

/* Show whole lines of buf[0..*len); keep a partial last line (unless
 * flush) at the front of buf for the next read. */
static void put_lines(unsigned char *buf, size_t *len, int flush)
{
    size_t start = 0;
    for (size_t i = 0; i < *len; i++)
        if (buf[i] == '\n') {
            put_line(buf + start, i - start);
            start = i + 1;
        }
    if (flush && start < *len) {
        put_line(buf + start, *len - start);
        start = *len;
    }
    memmove(buf, buf + start, *len - start);
    *len -= start;
}

/* Copy fd from where it is to its end. Returns -1 on a read error. */
static int drain(int fd, unsigned char *buf, size_t *len, int flush)
{
    for (;;) {
        if (*len == LOG_BUF) /* a line longer than the buffer: show it in pieces */
            put_lines(buf, len, 1);
        ssize_t r = read(fd, buf + *len, LOG_BUF - *len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        *len += (size_t)r;
        put_lines(buf, len, 0);
    }
    if (flush)
        put_lines(buf, len, 1);
    fflush(stdout);
    return 0;
}

/* Offset where the last `want` lines of fd (size bytes) begin; *got = how
 * many lines that is (fewer when the file has fewer). */
static off_t tail_start(int fd, off_t size, long want, long *got)
{
    static char b[LOG_BUF];
    long lines = 0;
    off_t pos = size;
    *got = 0;
    if (size <= 0 || want <= 0)
        return size;
    while (pos > 0) {
        size_t n = pos > (off_t)sizeof b ? sizeof b : (size_t)pos;
        pos -= (off_t)n;
        if (pread(fd, b, n, pos) != (ssize_t)n)
            return size;
        for (size_t i = n; i-- > 0;) {
            if (b[i] != '\n' || pos + (off_t)i == size - 1) /* the last line's own end */
                continue;
            if (++lines == want) {
                *got = want;
                return pos + (off_t)i + 1;
            }
        }
    }
    *got = lines + 1;
    return 0;
}

static int open_log(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 && (fstat(fd, st) < 0 || !S_ISREG(st->st_mode))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Print the last n lines of old then cur (either may be -1). */
static void show_tail(int old, int cur, long n, unsigned char *buf)
{
    struct stat s;
    long got = 0;
    off_t start = 0;
    size_t len = 0;
    if (cur >= 0 && fstat(cur, &s) == 0)
        start = tail_start(cur, s.st_size, n, &got);
    if (old >= 0 && got < n && fstat(old, &s) == 0) {
        long g2;
        off_t o = tail_start(old, s.st_size, n - got, &g2);
        if (lseek(old, o, SEEK_SET) == o)
            drain(old, buf, &len, 1);
    }
    if (cur >= 0 && lseek(cur, start, SEEK_SET) == start)
        drain(cur, buf, &len, 1);
}

/* -f: new lines as they come, across rotations. Ends only by a signal. */
static int follow(const char *path, int fd, unsigned char *buf)
{
    struct stat held = {0}, now;
    size_t len = 0;
    if (fd >= 0 && fstat(fd, &held) < 0)
        held.st_ino = 0;
    for (;;) {
        if (fd >= 0)
            drain(fd, buf, &len, 0);
        int nfd = open_log(path, &now);
        if (nfd >= 0 && (fd < 0 || now.st_ino != held.st_ino || now.st_dev != held.st_dev)) {
            /* Rotated (or created): finish the old file, then the new one
             * from its start. */
            if (fd >= 0) {
                drain(fd, buf, &len, 1);
                close(fd);
            }
            fd = nfd;
            held = now;
            continue;
        }
        if (nfd >= 0)
            close(nfd);
        if (fd >= 0 && fstat(fd, &now) == 0 && now.st_size < lseek(fd, 0, SEEK_CUR))
            lseek(fd, 0, SEEK_SET); /* truncated in place */
        struct timespec ts = {0, 200 * 1000 * 1000}; /* like tail -F: a poll, not a deadline */
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int log_usage(FILE *f)
{
    fputs("usage: kimifix log [-f] [-n N]\n"
          "Show the last N (10) lines of the relay's log (RUNDIR/relay.log and relay.log.1);\n"
          "-f: then follow it, across rotations.\n",
          f);
    return f == stdout ? 0 : 2;
}

int kf_cli_log(int argc, char **argv)
{
    long n = 10;
    int fol = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *num = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return log_usage(stdout);
        if (!strcmp(a, "-f") || !strcmp(a, "--follow"))
            fol = 1;
        else if (!strcmp(a, "-n") || !strcmp(a, "--lines"))
            num = ++i < argc ? argv[i] : "";
        else if (!strncmp(a, "-n", 2))
            num = a + 2;
        else if (!strncmp(a, "--lines=", 8))
            num = a + 8;
        else
            return log_usage(stderr);
        if (num) {
            char *end;
            errno = 0;
            n = strtol(num, &end, 10);
            if (!*num || *end || n < 0 || errno) {
                fprintf(stderr, "kimifix log: -n wants a number of lines, not '%s'\n", num);
                return 2;
            }
        }
    }
    char dir[4096], path[4200], path1[4300];
    if (kf_relay_dir(dir, sizeof dir, 0) < 0 && !fol) {
        printf("kimifix log: no relay log yet (%s: %s)\n", dir, strerror(errno));
        return 0;
    }
    kf_path_join(path, sizeof path, dir, "relay.log");
    snprintf(path1, sizeof path1, "%s.1", path);
    static unsigned char buf[LOG_BUF];
    struct stat s;
    int cur = open_log(path, &s), old = open_log(path1, &s);
    if (cur < 0 && old < 0 && !fol)
        printf("kimifix log: no relay log yet (%s)\n", path);
    show_tail(old, cur, n, buf);
    if (old >= 0)
        close(old);
    if (!fol)
        return 0;
    signal(SIGPIPE, SIG_DFL);
    return follow(path, cur, buf);
}
