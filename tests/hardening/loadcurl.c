/* loadcurl.c - load through libcurl under libkimifix.so.
 *
 *   loadcurl PORT THREADS REQUESTS
 *
 * THREADS threads, each with one easy handle (keep-alive), send REQUESTS
 * POSTs to http://api.kimi.com:PORT/coding/v1/v1/chat/completions (the
 * name resolved by CURLOPT_RESOLVE to 127.0.0.1: fakeup's plain listener)
 * with the body of hardening/req.h. Without kimifix fakeup answers 404;
 * fixed, 200. After the first tenth and at the end it samples its open fds
 * and RSS: neither may grow (fds: +2, RSS: +8 MiB).
 * Prints "loadcurl: N passed, N failed" (a request passes with a 200).
 */
#include <curl/curl.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hardening/req.h"

static int port, nthreads, nreq;
static atomic_long ok, bad;
static CURL *handles[512];
static struct curl_slist *hdrs;
static char url[256], resolve[128];

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static void *worker(void *arg)
{
    long *range = arg; /* [thread, from, to) */
    CURL *c = handles[range[0]];
    for (long i = range[1]; i < range[2]; i++) {
        long code = 0;
        if (curl_easy_perform(c) == CURLE_OK &&
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200)
            atomic_fetch_add(&ok, 1);
        else {
            if (atomic_fetch_add(&bad, 1) < 3)
                fprintf(stderr, "loadcurl: request failed: status %ld\n", code);
        }
    }
    return NULL;
}

static void phase(long from, long to)
{
    pthread_t th[512];
    long ranges[512][3];
    for (int t = 0; t < nthreads; t++) {
        ranges[t][0] = t;
        ranges[t][1] = from;
        ranges[t][2] = to;
        pthread_create(&th[t], NULL, worker, ranges[t]);
    }
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
}

static long count_fds(void)
{
    long n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    port = atoi(argv[1]);
    nthreads = atoi(argv[2]);
    nreq = atoi(argv[3]);
    if (nthreads > 512)
        nthreads = 512;
    curl_global_init(CURL_GLOBAL_ALL);
    snprintf(url, sizeof url, "http://api.kimi.com:%d/coding/v1/v1/chat/completions", port);
    snprintf(resolve, sizeof resolve, "api.kimi.com:%d:127.0.0.1", port);
    struct curl_slist *res = curl_slist_append(NULL, resolve);
    hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Authorization: Bearer sk-kimi-HARDSECRET-51b2");
    for (int t = 0; t < nthreads; t++) {
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_RESOLVE, res);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, HARD_BODY);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
        handles[t] = c;
    }
    long warm = nreq / 10 ? nreq / 10 : 1;
    phase(0, warm);
    long fd1 = count_fds(), rss1 = rss_kib();
    phase(warm, nreq);
    long fd2 = count_fds(), rss2 = rss_kib();
    for (int t = 0; t < nthreads; t++)
        curl_easy_cleanup(handles[t]);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(res);
    curl_global_cleanup();
    /* Under sanitizers RSS says nothing (shadow memory, quarantine). */
    int rss_ok = getenv("HARD_NO_RSS") != NULL || rss2 <= rss1 + 8192;
    int growth = fd2 > fd1 + 2 || !rss_ok;
    printf("loadcurl: %d threads x %d requests: fds %ld -> %ld, RSS %ld -> %ld KiB%s\n", nthreads,
           nreq, fd1, fd2, rss1, rss2, growth ? " (GROWTH)" : "");
    printf("loadcurl: %ld passed, %ld failed\n", atomic_load(&ok), atomic_load(&bad) + growth);
    return atomic_load(&bad) || growth ? 1 : 0;
}
