/* tracked.c - figure 7b: shim cost per call as the number of tracked
 * sockets in one process grows.
 *
 *   tracked K N head|null
 * Opens K TCP connections to a listener in this process (raw-address
 * connects: under libkimifix.so every one is tracked), then times N calls on
 * the last one opened (highest fd):
 *   head  write() of a ~700-byte request head with a doubled /v1 and
 *         Content-Length: 0 (under the shim: engine rewrite per call);
 *   null  write() of 1 byte to /dev/null (the untracked fast path).
 * A thread drains the measured connection. Prints ns_per_call=X.
 * Under callgrind, --toggle-collect='bench_loop*'.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

static int lfd, peer = -1;
static long kconns;
static _Atomic unsigned target_port; /* local port of the measured socket */

/* Accepts all K connections; keeps the measured one (found by its port:
 * with a full backlog, accept order need not be connect order) and closes
 * the others (their client sides stay open and tracked). */
static void *acceptor(void *arg)
{
    (void)arg;
    static char buf[1 << 16];
    for (long i = 0; i < kconns; i++) {
        struct sockaddr_in pa;
        socklen_t pl = sizeof pa;
        int c = accept(lfd, (struct sockaddr *)&pa, &pl);
        if (c < 0) {
            perror("accept");
            exit(1);
        }
        if (peer < 0 && ntohs(pa.sin_port) == target_port)
            peer = c;
        else
            close(c);
    }
    while (read(peer, buf, sizeof buf) > 0)
        ;
    return NULL;
}

__attribute__((noinline)) static void bench_loop(int fd, const char *buf, size_t len, long n)
{
    for (long i = 0; i < n; i++)
        for (size_t done = 0; done < len;) {
            ssize_t r = write(fd, buf + done, len - done);
            if (r <= 0) {
                perror("write");
                exit(1);
            }
            done += (size_t)r;
        }
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return fprintf(stderr, "usage: tracked K N head|null\n"), 2;
    kconns = atol(argv[1]);
    long n = atol(argv[2]);
    int head = !strcmp(argv[3], "head");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)kconns + 64) {
        rl.rlim_cur = (rlim_t)kconns + 64;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl))
            return perror("setrlimit"), 1;
    }

    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(lfd, (struct sockaddr *)&sa, sl) || listen(lfd, 4096) ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl))
        return perror("listen"), 1;
    pthread_t th;
    pthread_create(&th, NULL, acceptor, NULL);
    int fd = -1;
    for (long i = 0; i < kconns; i++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return perror("socket"), 1;
        if (i == kconns - 1) { /* the measured one: highest fd, known port */
            struct sockaddr_in me = {.sin_family = AF_INET};
            me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            socklen_t ml = sizeof me;
            if (bind(fd, (struct sockaddr *)&me, ml) || getsockname(fd, (struct sockaddr *)&me, &ml))
                return perror("bind"), 1;
            target_port = ntohs(me.sin_port);
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa))
            return perror("connect"), 1;
    }
    char hbuf[2048];
    size_t hlen = bench_head(hbuf, sizeof hbuf, "/coding/v1/v1/messages?beta=true", NULL, 0, 700);
    int wfd = head ? fd : open("/dev/null", O_WRONLY);
    const char *buf = head ? hbuf : "x";
    size_t len = head ? hlen : 1;
    bench_loop(wfd, buf, len, n / 10 + 1); /* warm up */
    uint64_t t0 = bench_now_ns();
    bench_loop(wfd, buf, len, n);
    uint64_t t1 = bench_now_ns();
    printf("ns_per_call=%.2f\n", (double)(t1 - t0) / (double)n);
    fflush(stdout);
    _exit(0); /* skip closing K sockets */
}
