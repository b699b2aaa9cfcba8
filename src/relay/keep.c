/* keep.c - what a restarted relay keeps: its port and token
 * (RUNDIR/relay.keep, 0600 in the 0700 runtime dir).
 *
 * Why: a proxy-carrier client holds the relay's URL - port and token - in
 * its environment for its whole life (HTTPS_PROXY=http://kimifix:TOKEN@
 * 127.0.0.1:PORT), and a static program has no shim that could re-point it.
 * A relay that exited (idle, crash, `kimifix relay stop`) and is started
 * again listens on the same port when it is free and answers the same
 * token, so such a client keeps working. relay.state says whether a relay
 * runs; this file outlives the relay.
 */
#include "relay.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_log.h"
#include "kf_paths.h"

#define KEEP_FILE "relay.keep"

int keep_load(unsigned *port, unsigned char *token)
{
    char path[4200], text[256];
    struct stat sb;
    if (!kf_path_join(path, sizeof path, g_relay.rundir, KEEP_FILE))
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n = -1;
    /* Another user's or a readable file: its token may be known to others. */
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() && !(sb.st_mode & 077))
        n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = 0;
    unsigned p = 0;
    char hex[2 * KF_PROXY_TOKEN_LEN + 2];
    if (sscanf(text, "kimifix-relay-keep 1\nport %u\ntoken %33s", &p, hex) != 2 || p == 0 ||
        p > 65535 || kf_hex_decode(hex, strlen(hex), token, KF_PROXY_TOKEN_LEN) < 0)
        return -1;
    *port = p;
    return 0;
}

void keep_save(unsigned port, const unsigned char *token)
{
    char path[4200], tmp[4300], text[256], hex[2 * KF_PROXY_TOKEN_LEN + 1];
    if (!kf_path_join(path, sizeof path, g_relay.rundir, KEEP_FILE) ||
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return;
    kf_hex_encode(token, KF_PROXY_TOKEN_LEN, hex);
    int n = snprintf(text, sizeof text, "kimifix-relay-keep 1\nport %u\ntoken %s\n", port, hex);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int ok = fd >= 0 && write(fd, text, (size_t)n) == n;
    if (fd >= 0)
        ok &= close(fd) == 0;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        kf_log(KF_LOG_WARN, "relay: cannot write %s: a restarted relay will have a new port and "
               "token (proxy-carrier clients then lose it)", path);
    }
}
