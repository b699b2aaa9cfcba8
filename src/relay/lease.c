/* lease.c - proxy-carrier clients that keep the relay alive (kf_lease.h).
 *
 * The main thread asks when the relay would exit idle: a lease whose
 * process is alive (same pid, same start time: a reused pid does not
 * count) keeps it running, since that client has the relay's URL in its
 * environment and nothing could re-point it. On the way, files of clients
 * that are gone and whose id went unused for KF_LEASE_KEEP_S are removed
 * (a child that inherited the id may still use it for a while).
 */
#include "relay.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kf_lease.h"
#include "kf_log.h"

/* A dead client's file may go: unused in memory and on disk for long enough. */
static int stale(const char *id, const struct stat *sb)
{
    long used = relay_ctx_last_used(id);
    if (used && relay_now_ms() / 1000 - used < KF_LEASE_KEEP_S)
        return 0;
    return (long)time(NULL) - (long)sb->st_mtime >= KF_LEASE_KEEP_S;
}

unsigned lease_scan(char *who, size_t n)
{
    char dir[4200], text[KF_LEASE_MAX];
    unsigned alive = 0;
    if (who && n)
        who[0] = 0;
    if (!kf_lease_dir(dir, sizeof dir, g_relay.rundir))
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        struct stat sb;
        if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (!kf_lease_id_ok(e->d_name)) {
            /* a writer's temporary file that never got its rename */
            if (strstr(e->d_name, ".tmp") && (long)time(NULL) - (long)sb.st_mtime >= KF_LEASE_KEEP_S)
                unlinkat(dirfd(d), e->d_name, 0);
            continue;
        }
        kf_lease l;
        ssize_t len = kf_lease_read(g_relay.rundir, e->d_name, text, sizeof text);
        if (len >= 0 && kf_lease_parse(text, (size_t)len, &l) == 0 && kf_lease_alive(l.pid, l.start)) {
            if (!alive++ && who)
                snprintf(who, n, "pid %ld", (long)l.pid);
            continue;
        }
        if (stale(e->d_name, &sb)) {
            unlinkat(dirfd(d), e->d_name, 0);
            relay_ctx_forget(e->d_name);
        }
    }
    closedir(d);
    memset(text, 0, sizeof text);
    atomic_store(&g_relay.leases, alive);
    return alive;
}
