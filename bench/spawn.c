/* spawn.c - figure 6: cost of presence. Runs a command N times (fork +
 * execve + wait4), optionally with LD_PRELOAD=LIB in the child only.
 *
 *   spawn [-p LIB] N CMD [ARGS...]
 *   spawn -F N      first touch of N fresh anonymous pages: prints
 *                   us_per_fault=X (what a page fault costs on this machine:
 *                   ~0.1-0.3 us on bare metal, tens of times more in some VMs)
 * prints: us_per_run=X cpu_us_per_run=C maxrss_kib=Y minflt_per_run=F
 *   X: wall-clock per run; C: the children's own CPU time (user + system,
 *   wait4's rusage) per run, which a loaded machine does not inflate with
 *   waiting; Y: median of the children's peak RSS; F: the children's page
 *   faults per run (wait4's ru_minflt + ru_majflt: deterministic, and on a
 *   VM each one costs microseconds).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

extern char **environ;

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static int fault_cost(long n)
{
    char *p = mmap(NULL, (size_t)n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return perror("mmap"), 1;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        p[i * 4096] = 1;
    uint64_t t1 = bench_now_ns();
    printf("us_per_fault=%.2f\n", (double)(t1 - t0) / 1e3 / (double)n);
    return munmap(p, (size_t)n * 4096);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "-F"))
        return fault_cost(atol(argv[2]));
    const char *lib = NULL;
    int i = 1;
    if (argc > 2 && !strcmp(argv[1], "-p")) {
        lib = argv[2];
        i = 3;
    }
    if (argc - i < 2)
        return fprintf(stderr, "usage: spawn [-p LIB] N CMD [ARGS...]\n"), 2;
    long n = atol(argv[i]);
    char **cmd = argv + i + 1;
    /* The child's environment: ours without LD_PRELOAD, plus LIB if given. */
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **env = calloc(ne + 2, sizeof *env);
    size_t k = 0;
    for (size_t j = 0; j < ne; j++)
        if (strncmp(environ[j], "LD_PRELOAD=", 11))
            env[k++] = environ[j];
    char pre[4096];
    if (lib) {
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", lib);
        env[k++] = pre;
    }
    long *rss = calloc((size_t)n, sizeof *rss);
    double cpu_us = 0, flt = 0;
    uint64_t t0 = bench_now_ns();
    for (long r = 0; r < n; r++) {
        pid_t p = fork();
        if (p == 0) {
            execve(cmd[0], cmd, env);
            _exit(127);
        }
        int st;
        struct rusage ru;
        if (p < 0 || wait4(p, &st, 0, &ru) != p || !WIFEXITED(st) || WEXITSTATUS(st))
            return fprintf(stderr, "spawn: %s failed\n", cmd[0]), 1;
        rss[r] = ru.ru_maxrss;
        flt += (double)(ru.ru_minflt + ru.ru_majflt);
        cpu_us += (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                  (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    }
    uint64_t t1 = bench_now_ns();
    qsort(rss, (size_t)n, sizeof *rss, cmp_long);
    printf("us_per_run=%.1f cpu_us_per_run=%.1f maxrss_kib=%ld minflt_per_run=%.1f\n",
           (double)(t1 - t0) / 1e3 / (double)n, cpu_us / (double)n, rss[n / 2], flt / (double)n);
    return 0;
}
