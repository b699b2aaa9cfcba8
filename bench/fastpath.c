/* fastpath.c - figure 1: N write() calls of 1 byte to an untracked fd.
 *
 *   fastpath devnull|pipe N      prints ns_per_call=X
 *
 * pipe: a 1 MiB pipe in this process, drained by a read() every 64 Ki
 * writes (no second process, no wake-ups: only the writes are timed in
 * practice; the reads are 1/65536 of the calls). Run with and without
 * LD_PRELOAD=libkimifix.so. Under callgrind, --toggle-collect=bench_loop.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static char drain[1 << 16];

__attribute__((noinline)) static void bench_loop(int wfd, int rfd, long n)
{
    const char c = 'x';
    long chunk = rfd >= 0 ? (long)sizeof drain : n;
    for (long done = 0; done < n;) {
        long k = n - done < chunk ? n - done : chunk;
        for (long i = 0; i < k; i++)
            if (write(wfd, &c, 1) != 1) {
                perror("write");
                exit(1);
            }
        done += k;
        if (rfd >= 0)
            for (long got = 0; got < k;) {
                ssize_t r = read(rfd, drain, (size_t)(k - got));
                if (r <= 0) {
                    perror("read");
                    exit(1);
                }
                got += r;
            }
    }
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return fprintf(stderr, "usage: fastpath devnull|pipe N\n"), 2;
    long n = atol(argv[2]);
    int wfd, rfd = -1;
    if (!strcmp(argv[1], "devnull")) {
        wfd = open("/dev/null", O_WRONLY);
    } else {
        int p[2];
        if (pipe(p))
            return perror("pipe"), 1;
        if (fcntl(p[1], F_SETPIPE_SZ, 1 << 20) < (1 << 17))
            return fprintf(stderr, "fastpath: cannot grow the pipe\n"), 1;
        rfd = p[0];
        wfd = p[1];
    }
    bench_loop(wfd, rfd, 100000); /* warm up */
    uint64_t t0 = bench_now_ns();
    bench_loop(wfd, rfd, n);
    uint64_t t1 = bench_now_ns();
    printf("ns_per_call=%.2f\n", (double)(t1 - t0) / (double)n);
    return 0;
}
