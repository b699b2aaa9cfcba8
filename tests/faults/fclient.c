/* fclient.c - the client the fault tests run, with and without kimifix.
 *
 *   fclient MODE PORT FILE
 *
 * Sends FILE's bytes to 127.0.0.1:PORT on one connection, the way a careful
 * client does: EINTR and EAGAIN (poll for POLLOUT, then the same call
 * again), short counts (go on from there). MODE says how: write, send,
 * writev, sendmsg (the whole stream as an iovec array of 23-byte
 * segments), pieces (write() in 37-byte pieces). Then shuts down its side
 * and waits for the server to close.
 *
 * Exit: 0 all sent; 3 a hard error (stderr: "fclient: error ERRNO NAME at
 * OFFSET"); 2 a broken contract (a count larger than asked, a failure
 * with errno 0, no progress for 10 s). Never writes to stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SEG 23
#define PIECE 37

static const char *mode;
static char *data;
static size_t len;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static ssize_t one_call(int s, size_t off, size_t maxn)
{
    size_t n = len - off < maxn ? len - off : maxn;
    if (!strcmp(mode, "write") || !strcmp(mode, "pieces"))
        return write(s, data + off, n);
    if (!strcmp(mode, "send"))
        return send(s, data + off, n, MSG_NOSIGNAL);
    /* writev / sendmsg: the rest as SEG-byte segments (at most 1024) */
    struct iovec iov[1024];
    int cnt = 0;
    for (size_t o = off; o < off + n && cnt < 1024; o += SEG) {
        iov[cnt].iov_base = data + o;
        iov[cnt++].iov_len = off + n - o < SEG ? off + n - o : SEG;
    }
    if (!strcmp(mode, "writev"))
        return writev(s, iov, cnt);
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
    return sendmsg(s, &m, MSG_NOSIGNAL);
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    mode = argv[1];
    FILE *f = fopen(argv[3], "rb");
    if (!f)
        return 2;
    data = malloc(1 << 22);
    len = fread(data, 1, 1 << 22, f);
    fclose(f);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "fclient: connect: %s\n", strerror(errno));
        return 2;
    }
    size_t maxn = !strcmp(mode, "pieces") ? PIECE : (size_t)-1;
    size_t off = 0;
    long last = now_ms();
    while (off < len) {
        size_t want = len - off < maxn ? len - off : maxn;
        errno = 0;
        ssize_t r = one_call(s, off, maxn);
        if (r > 0) {
            if ((size_t)r > want) {
                fprintf(stderr, "fclient: %s returned %zd for %zu bytes\n", mode, r, want);
                return 2;
            }
            off += (size_t)r;
            last = now_ms();
            continue;
        }
        if (r == 0 || errno == 0) {
            fprintf(stderr, "fclient: %s returned %zd with errno %d at %zu\n", mode, r, errno, off);
            return 2;
        }
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
            if (now_ms() - last > 60000) { /* hang guard */
                fprintf(stderr, "fclient: no progress at %zu for 60 s\n", off);
                return 2;
            }
            struct pollfd p = { .fd = s, .events = POLLOUT };
            poll(&p, 1, 100);
            continue;
        }
        fprintf(stderr, "fclient: error %d %s at %zu\n", errno, strerror(errno), off);
        return 3;
    }
    shutdown(s, SHUT_WR);
    char b[256];
    struct pollfd p = { .fd = s, .events = POLLIN };
    while (poll(&p, 1, 5000) > 0 && read(s, b, sizeof b) > 0)
        ;
    close(s);
    return 0;
}
