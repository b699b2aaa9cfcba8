/* curlreq.c - figure 4: N small keep-alive POSTs from libcurl (one easy
 * handle, HTTP/1.1 over TLS) to the fake upstream.
 *
 *   curlreq PORT CAFILE N [good]
 * URL https://api.kimi.com:PORT/coding/v1/v1/messages (buggy; with "good":
 * /coding/v1/messages), name pinned with CURLOPT_RESOLVE.
 * prints: rps=X n200=K n=N
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static size_t drop(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return fprintf(stderr, "usage: curlreq PORT CAFILE N [good]\n"), 2;
    int port = atoi(argv[1]);
    long n = atol(argv[3]);
    int good = argc > 4 && !strcmp(argv[4], "good");
    char url[256], res[128];
    snprintf(url, sizeof url, "https://api.kimi.com:%d/coding/v1/%smessages", port,
             good ? "" : "v1/");
    snprintf(res, sizeof res, "api.kimi.com:%d:127.0.0.1", port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    struct curl_slist *resolve = curl_slist_append(NULL, res);
    struct curl_slist *hdrs = curl_slist_append(NULL, "x-api-key: sk-kimi-bench");
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    static const char body[] = "{\"model\":\"kimi-for-coding\",\"max_tokens\":16,\"messages\":[]}";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CAINFO, argv[2]);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, drop);
    long n200 = 0;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        long code = 0;
        if (curl_easy_perform(h) != CURLE_OK)
            return fprintf(stderr, "curlreq: perform failed\n"), 1;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        n200 += code == 200;
    }
    uint64_t t1 = bench_now_ns();
    printf("rps=%.0f n200=%ld n=%ld\n", n / ((t1 - t0) / 1e9), n200, n);
    curl_easy_cleanup(h);
    curl_slist_free_all(resolve);
    curl_slist_free_all(hdrs);
    return 0;
}
