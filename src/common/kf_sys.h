/* kf_sys.h - the system calls of the contract room (src/common) that the
 * shim also hooks: close, write, fcntl.
 *
 * Why: src/common runs inside the shim too (its constructor, its log, the
 * relay's state and trust files). Called through the PLT, close() or
 * write() would bind at run time to the shim's own hooks (or to another
 * preloaded library's), so kimifix's own file I/O would run through the
 * fd table it is maintaining. These go straight to the kernel instead,
 * as socket_wrapper's libc_X and proxychains' true_X do -- the same in
 * the relay and the CLI, where no hook exists. Same results and errno as
 * the libc functions (close: EINTR is reported, the fd is gone either
 * way, as with glibc). No allocation, async-signal-safe.
 */
#ifndef KF_SYS_H
#define KF_SYS_H

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static inline int kf_sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

static inline ssize_t kf_sys_write(int fd, const void *buf, size_t n)
{
    return (ssize_t)syscall(SYS_write, fd, buf, n);
}

/* fcntl with an int argument (F_GETFL, F_SETFL, F_GETFD, F_SETFD...). */
static inline int kf_sys_fcntl(int fd, int cmd, long arg)
{
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

#endif
