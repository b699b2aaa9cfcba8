/* clash_b.c - libkfclash_b.so: a plugin that needs RTLD_DEEPBIND. Its own
 * kfclash_id() clashes with libkfclash_a.so's, and it carries its own
 * write() (as some plugins wrap libc functions): loaded with the flag, its
 * calls must reach its own definitions, whatever kimifix does. Its `send`
 * is libc's: with kimifix's hooks bound into it, &send is the hook. */
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

char kfclash_id(void);
char kfclash_self(void);
int kfclash_write_own(void);
void *kfclash_send_addr(void);

static int own_writes;

char kfclash_id(void)
{
    return 'B';
}

/* Through the PLT (default visibility, -fPIC): the loader picks the
 * definition, which is what the test is about. */
char kfclash_self(void)
{
    return kfclash_id();
}

ssize_t write(int fd, const void *buf, size_t n)
{
    own_writes++;
    return syscall(SYS_write, fd, buf, n);
}

int kfclash_write_own(void)
{
    int before = own_writes;
    (void)write(-1, "", 0);
    return own_writes > before;
}

void *kfclash_send_addr(void)
{
    return (void *)&send;
}
