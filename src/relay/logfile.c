/* logfile.c - the relay's log cannot be used to fill a disk.
 *
 *  - Size cap: when the log is a regular file at a known path (RUNDIR/
 *    relay.log of a background relay, or KIMIFIX_LOG), a line that takes
 *    it past the cap renames it to PATH.1 (replacing the previous one) and
 *    continues in a new PATH (0600): at most twice the cap on disk.
 *  - Rate limit: a warning another user can trigger at will (bad token,
 *    foreign uid, dropped pending connections, EMFILE) is written at most
 *    once per RL_INTERVAL_MS per kind; later ones are counted, and the
 *    count is written when the interval is over (ratelog_flush, called by
 *    the main thread every second).
 */
#include "relay.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_log.h"

#define RL_INTERVAL_MS 10000

static char lpath[4200];
static atomic_long lmax;
static int lfd = -1;
static atomic_long lsize;
static pthread_mutex_t lmu = PTHREAD_MUTEX_INITIALIZER;

static void rotate(int fd)
{
    pthread_mutex_lock(&lmu);
    struct stat a, b;
    if (atomic_load(&lsize) > atomic_load(&lmax) && fstat(fd, &a) == 0 && stat(lpath, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        char old[4300];
        snprintf(old, sizeof old, "%s.1", lpath);
        int nfd = -1;
        if (rename(lpath, old) == 0)
            nfd = open(lpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (nfd >= 0) {
            dup3(nfd, fd, fd == 2 ? 0 : O_CLOEXEC);
            close(nfd);
            atomic_store(&lsize, 0);
        } else {
            atomic_store(&lmax, 0); /* cannot rotate: stop trying (and say nothing: we are the log) */
        }
    }
    pthread_mutex_unlock(&lmu);
}

static ssize_t capped_write(int fd, const void *buf, size_t n)
{
    long max = atomic_load(&lmax);
    if (fd == lfd && max > 0 && atomic_fetch_add(&lsize, (long)n) + (long)n > max)
        rotate(fd);
    return write(fd, buf, n);
}

void logfile_setup(const char *path, long max)
{
    int fd = kf_log_fd();
    struct stat a, b;
    if (fd < 0 || max <= 0 || !path || fstat(fd, &a) < 0 || stat(path, &b) < 0 ||
        a.st_dev != b.st_dev || a.st_ino != b.st_ino || !S_ISREG(a.st_mode))
        return;
    snprintf(lpath, sizeof lpath, "%s", path);
    atomic_store(&lmax, max);
    lfd = fd;
    atomic_store(&lsize, (long)a.st_size);
    kf_log_set_writer(capped_write);
}

static struct {
    atomic_long last;
    atomic_ulong count;
} rl[RL_KINDS];

static const char *const rl_what[RL_KINDS] = {
    [RL_FOREIGN] = "connections from other users refused",
    [RL_BADTOKEN] = "connections without the right token dropped",
    [RL_PENDING] = "pending connections dropped",
    [RL_EMFILE] = "accepts paused (out of file descriptors)",
};

void ratelog(int kind, const char *fmt, ...)
{
    atomic_fetch_add(&rl[kind].count, 1);
    long now = relay_now_ms(), last = atomic_load(&rl[kind].last);
    if (last && now - last < RL_INTERVAL_MS)
        return;
    if (!atomic_compare_exchange_strong(&rl[kind].last, &last, now))
        return; /* another thread writes it */
    unsigned long c = atomic_exchange(&rl[kind].count, 0);
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c > 1)
        kf_log(KF_LOG_WARN, "%s (and %lu more %s in the last %d s)", msg, c - 1, rl_what[kind],
               RL_INTERVAL_MS / 1000);
    else
        kf_log(KF_LOG_WARN, "%s (more of these: one line per %d s)", msg, RL_INTERVAL_MS / 1000);
}

void ratelog_flush(void)
{
    long now = relay_now_ms();
    for (int k = 0; k < RL_KINDS; k++) {
        long last = atomic_load(&rl[k].last);
        if (!last || now - last < RL_INTERVAL_MS || !atomic_load(&rl[k].count))
            continue;
        if (!atomic_compare_exchange_strong(&rl[k].last, &last, now))
            continue;
        unsigned long c = atomic_exchange(&rl[k].count, 0);
        if (c)
            kf_log(KF_LOG_WARN, "relay: %lu %s in the last %ld s", c, rl_what[k],
                   (now - last) / 1000);
    }
}
