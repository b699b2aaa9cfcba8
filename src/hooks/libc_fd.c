/* libc_fd.c - fd lifetime: close, close_range, closefrom, dup, dup2, dup3,
 * fcntl(F_DUPFD, F_DUPFD_CLOEXEC).
 *
 * Duplicates share the connection: both fds refer to one socket, so they
 * share one stream (refcounted in fdtab.c); the stream dies with the last
 * fd. State is forgotten *before* the real close so a new fd that reuses
 * the number never sees it. fork() is handled by pthread_atfork (shim.c);
 * exec needs nothing: LD_PRELOAD is inherited and the table starts empty.
 * Closes we cannot see (glibc's fclose() calls its internal close) are
 * caught by fdtab.c's identity check before the engine looks at bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dnsfd.h"
#include "fdtab.h"
#include "kf_shim.h"

KF_EXPORT int close(int fd)
{
    if (__builtin_expect(kf_fd_peek(fd) != NULL, 0)) {
        int saved = errno;
        kf_fd_forget(fd);
        errno = saved;
    }
    kf_dnsfd_forget(fd);
    __typeof__(&close) real = KF_REAL(close);
    return real ? real(fd) : (int)syscall(SYS_close, fd);
}

static void kf_after_dup(int oldfd, int newfd)
{
    if (newfd < 0 || oldfd == newfd)
        return;
    kf_dnsfd_forget(newfd); /* dup2/dup3 closed what newfd was; a copy is not read as DNS */
    if (kf_fd_peek(oldfd) || kf_fd_peek(newfd)) {
        int saved = errno;
        kf_fd_share(oldfd, newfd); /* newfd: oldfd's connection, or untracked */
        errno = saved;
    }
}

KF_EXPORT int dup(int fd)
{
    int r = KF_REAL(dup)(fd);
    kf_after_dup(fd, r);
    return r;
}

KF_EXPORT int dup2(int oldfd, int newfd)
{
    int r = KF_REAL(dup2)(oldfd, newfd);
    kf_after_dup(oldfd, r);
    return r;
}

KF_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    int r = KF_REAL(dup3)(oldfd, newfd, flags);
    kf_after_dup(oldfd, r);
    return r;
}

/* The optional argument is an int or a pointer: read it as a pointer
 * (register-sized on every ABI we run on) and forward it unchanged. */
static int kf_fcntl(__typeof__(&fcntl) real, int fd, int cmd, void *arg)
{
    int r = real(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        kf_after_dup(fd, r);
    return r;
}

KF_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return kf_fcntl(KF_REAL(fcntl), fd, cmd, arg);
}

KF_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    __typeof__(&fcntl) real = (__typeof__(&fcntl))kf_libc_fn(KF_LIBC_fcntl64);
    return kf_fcntl(real ? real : KF_REAL(fcntl), fd, cmd, arg);
}

KF_EXPORT int close_range(unsigned int lo, unsigned int hi, int flags)
{
    __typeof__(&close_range) real = KF_REAL(close_range);
    if (!(flags & CLOSE_RANGE_CLOEXEC)) {
        int saved = errno;
        kf_fd_forget_range(lo, hi);
        kf_dnsfd_forget_range(lo, hi);
        errno = saved;
    }
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(lo, hi, flags);
}

KF_EXPORT void closefrom(int lo)
{
    __typeof__(&closefrom) real = KF_REAL(closefrom);
    if (lo >= 0) {
        int saved = errno;
        kf_fd_forget_range((unsigned)lo, UINT_MAX);
        kf_dnsfd_forget_range((unsigned)lo, UINT_MAX);
        errno = saved;
    }
    if (real)
        real(lo);
}
