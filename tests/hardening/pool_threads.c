/* pool_threads.c - the engine under threads (check-tsan, check-asan).
 *
 *   pool_threads [THREADS] [ROUNDS] [FORKS]
 *
 * THREADS threads share one ruleset and the head-buffer pool; each runs
 * ROUNDS keep-alive streams through its own kf_stream, split at random
 * points, into a sink that takes short counts, and compares the result
 * with the one-shot rewrite made before the threads started. Meanwhile
 * the main thread forks repeatedly with the pool and rules locked around
 * fork() exactly as the shim's pthread_atfork handlers do; each child
 * runs one stream itself (the pool must be usable in the child) and exits.
 * Prints "pool_threads: N passed, N failed".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kf_rules.h"
#include "kf_stream.h"
#include "unit/stream_util.h"

static kf_ruleset *rs;
static char in[8192], want_buf[16384];
static size_t in_len, want_len;
static int rounds = 200;

static void build_stream(void)
{
    const char *heads[] = {
        "POST /coding/v1/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\n"
        "x-msh-platform: kimi_code_cli\r\nContent-Length: 11\r\n\r\nhello world",
        "POST /coding/chat/completions HTTP/1.1\r\nHost: api.kimi.ai\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET //coding//v1//models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.moonshot.ai\r\n"
        "Authorization: Bearer sk-kimi-pool\r\nContent-Length: 2\r\n\r\n{}",
    };
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
            size_t n = strlen(heads[i]);
            memcpy(in + in_len, heads[i], n);
            in_len += n;
        }
}

static int run_one(uint64_t seed, char **out, size_t *out_len)
{
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = { .rs = rs, .tls = 1, .host = "api.kimi.com", .caps = 0 };
    sink k = { .max_per_send = seed ? 1 + seed % 17 : 0, .fail_every = (unsigned)(seed % 5 == 1 ? 0 : seed % 5),
               .rng = seed + 3 };
    uint64_t r = seed;
    int rc = 0;
    for (size_t off = 0; off < in_len && rc == 0;) {
        size_t piece = seed ? 1 + (size_t)(tu_rand(&r) % 97) : in_len;
        if (piece > in_len - off)
            piece = in_len - off;
        rc = caller_write(&s, &c, &k, in + off, piece, (seed & 1) ? KF_WR_ALL_OR_NOTHING : KF_WR_PARTIAL);
        off += piece;
    }
    kf_stream_reset(&s);
    *out = k.buf;
    *out_len = k.len;
    return rc;
}

static int check_one(uint64_t seed)
{
    char *o;
    size_t n;
    int bad = run_one(seed, &o, &n) != 0 || n != want_len || memcmp(o, want_buf, n) != 0;
    free(o);
    return bad;
}

static void *worker(void *arg)
{
    long id = (long)arg, bad = 0;
    for (int i = 0; i < rounds; i++)
        bad += check_one((uint64_t)id * 1000003u + (uint64_t)i + 1);
    return (void *)bad;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 16;
    rounds = argc > 2 ? atoi(argv[2]) : 200;
    int nforks = argc > 3 ? atoi(argv[3]) : 40;
    rs = kf_ruleset_builtin();
    build_stream();
    char *o;
    if (run_one(0, &o, &want_len) != 0)
        return 1;
    memcpy(want_buf, o, want_len);
    free(o);
    if (!memmem(want_buf, want_len, "POST /coding/v1/messages?beta=true", 34)) {
        fprintf(stderr, "pool_threads: the built-ins did not rewrite the stream\n");
        return 1;
    }
    pthread_t th[256];
    if (nthreads > 256)
        nthreads = 256;
    for (long i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, (void *)i);
    int forks = 0, fork_bad = 0;
    for (int i = 0; i < nforks; i++) {
        kf_rules_fork_prepare();
        kf_pool_lock();
        pid_t p = fork();
        if (p == 0) {
            kf_pool_unlock();
            kf_rules_fork_child();
            _exit(check_one(7777u + (uint64_t)i) ? 1 : 0);
        }
        kf_pool_unlock();
        kf_rules_fork_parent();
        int st = 0;
        if (p > 0 && waitpid(p, &st, 0) == p) {
            forks++;
            fork_bad += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        usleep(2000);
    }
    long bad = 0;
    for (int i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (long)r;
    }
    long total = (long)nthreads * rounds;
    printf("pool_threads: %d threads x %d streams (%zu bytes each), %d forks\n", nthreads, rounds,
           in_len, forks);
    printf("pool_threads: %ld passed, %ld failed\n", total - bad + forks - fork_bad, bad + fork_bad);
    kf_ruleset_free(rs);
    return bad || fork_bad ? 1 : 0;
}
