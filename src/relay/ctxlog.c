/* ctxlog.c - each client context's own log (ctxtab.h; docs/relay.md,
 * "Client contexts": "Each client's lines in its own log").
 *
 * A client says where its kimifix log goes (`log fd` with its stderr as
 * SCM_RIGHTS, `log PATH`, `log off`, and `level`); the relay writes the
 * lines of that client's connections (rewritten requests, upstream error
 * statuses with their message, 502s) there as well as into its own log,
 * formatted and masked once (kf_log_format).
 *
 * Never blocking a worker: a regular file is written like the relay's own
 * log; a pipe, socket or terminal with RWF_NOWAIT (or poll first), its
 * flags untouched (the file description is the client's: O_NONBLOCK on it
 * would change the client's own stderr). A line it cannot take now is
 * dropped and counted (`client_log_dropped` in STATUS). The per-context
 * mutex only orders writers against closing the fd; nobody holds it
 * across anything that waits.
 *
 * A handed-over fd must not outlive its client: a relay holding the write
 * end of the client's stderr pipe would keep whoever reads it ($(...),
 * subprocess.communicate(), a CI log) waiting until the context expired.
 * So a `log fd` is kept only with a pidfd of the process that sent it
 * (SO_PEERCRED at registration); the serving thread polls those pidfds
 * (ctxlog_watch) and closes the log fd as soon as the process exits
 * (ctxlog_reap). Without a pidfd the fd is not kept.
 */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ctxtab.h"
#include "kf_log.h"

static atomic_ulong dropped;

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

void ctxlog_setup(relay_ctx *c, int fd, pid_t pid)
{
    if (fd >= 0) {
        int pfd = pid > 0 ? pidfd_of(pid) : -1;
        if (pfd < 0) {
            kf_log(KF_LOG_WARN, "relay: a client's log fd cannot be tied to its process (%s): "
                   "its lines stay in the relay's log", pid > 0 ? strerror(errno) : "no pid");
            close(fd);
            return;
        }
        fcntl(pfd, F_SETFD, FD_CLOEXEC);
        c->log_fd = fd;
        c->log_pidfd = pfd;
        c->log_sink = 1;
        return;
    }
    if (c->log_path) {
        c->log_fd = kf_log_open_file(c->log_path, NULL, NULL);
        c->log_sink = c->log_fd >= 0;
        if (c->log_fd < 0)
            kf_log(KF_LOG_WARN, "relay: cannot open a client's log %s: %s: its lines stay in the "
                   "relay's log", c->log_path, strerror(errno));
    }
}

int ctxlog_wants(const relay_ctx *c, int level)
{
    return c && c->log_sink && !c->log_off && level <= (c->level < 0 ? KF_LOG_INFO : c->level);
}

void ctxlog_write(relay_ctx *c, int level, const char *line, size_t n)
{
    if (!ctxlog_wants(c, level))
        return;
    pthread_mutex_lock(&c->log_mu);
    if (c->log_fd >= 0 && kf_log_write_to(c->log_fd, line, n) < 0)
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
    pthread_mutex_unlock(&c->log_mu);
}

void ctxlog_free(relay_ctx *c)
{
    if (c->log_fd >= 0)
        close(c->log_fd);
    if (c->log_pidfd >= 0)
        close(c->log_pidfd);
    c->log_fd = c->log_pidfd = -1;
    pthread_mutex_destroy(&c->log_mu);
}

unsigned long ctxlog_dropped(void)
{
    return atomic_load_explicit(&dropped, memory_order_relaxed);
}
