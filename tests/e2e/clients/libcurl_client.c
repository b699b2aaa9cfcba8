/* libcurl_client: a small program on libcurl, as applications use it. The
 * same source is linked twice: against libcurl4-openssl (-lcurl) and against
 * libcurl-gnutls (libcurl-gnutls.so.4, same API and headers). Defaults are
 * libcurl's own (HTTP/2 over TLS when the server offers it); E2E_HTTP=1.1
 * forces HTTP/1.1. Trust: CURL_CA_BUNDLE, which this program passes to
 * CURLOPT_CAINFO the way the curl tool does. Interface and output format:
 * tests/e2e/README.md ("Driver interface"). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct timespec t0;
static long first_ms = -1;
static char *body;
static size_t body_len, body_off, resp_len;
static char resp[1 << 16];

static long ms_since_start(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    size_t len = size * n, room = sizeof(resp) - resp_len;
    (void)ud;
    if (len && first_ms < 0)
        first_ms = ms_since_start();
    memcpy(resp + resp_len, p, len < room ? len : room);
    resp_len += len < room ? len : room;
    return len;
}

/* Upload in small pieces of unknown total: libcurl sends them chunked. */
static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    size_t want = size * n, left = body_len - body_off;
    (void)ud;
    if (want > 4096)
        want = 4096;
    if (want > left)
        want = left;
    memcpy(p, body + body_off, want);
    body_off += want;
    return want;
}

static int load_body(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n;
    if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
        return -1;
    body = malloc((size_t)n + 1);
    body_len = (size_t)n;
    if (!body || fread(body, 1, body_len, f) != body_len)
        return -1;
    fclose(f);
    return 0;
}

static struct curl_slist *header_list(int expect100)
{
    struct curl_slist *l = NULL;
    const char *h = env("E2E_HEADERS");
    char *copy = h ? strdup(h) : NULL, *save = NULL;
    for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save))
        l = curl_slist_append(l, line);
    free(copy);
    /* libcurl adds Expect by itself above a size: make it explicit either way */
    if (body)
        l = curl_slist_append(l, expect100 ? "Expect: 100-continue" : "Expect:");
    return l;
}

int main(void)
{
    const char *url = env("E2E_URL"), *method = env("E2E_METHOD");
    int chunked = env("E2E_CHUNKED") != NULL, expect100 = env("E2E_EXPECT100") != NULL;
    int repeat = env("E2E_REPEAT") ? atoi(env("E2E_REPEAT")) : 1;
    long connects = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!url || (env("E2E_BODY_FILE") && load_body(env("E2E_BODY_FILE")))) {
        fprintf(stderr, "libcurl_client: need E2E_URL and a readable E2E_BODY_FILE\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    struct curl_slist *hl = header_list(expect100);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (env("CURL_CA_BUNDLE"))
        curl_easy_setopt(c, CURLOPT_CAINFO, env("CURL_CA_BUNDLE"));
    if (env("E2E_HTTP") && !strcmp(env("E2E_HTTP"), "1.1"))
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (body && chunked) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (method && !strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (method && strcmp(method, body ? "POST" : "GET"))
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    for (int i = 0; i < repeat; i++) {
        long code = 0, nc = 0;
        body_off = resp_len = 0;
        CURLcode rc = curl_easy_perform(c);
        if (rc != CURLE_OK) {
            printf("error: %s\n", curl_easy_strerror(rc));
            return 3;
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nc);
        connects += nc;
        printf("status: %ld\n", code);
    }
    printf("connections: %ld\n", connects);
    if (first_ms >= 0)
        printf("first-byte-ms: %ld\n", first_ms);
    printf("total-ms: %ld\nbody:\n", ms_since_start());
    fwrite(resp, 1, resp_len, stdout);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    free(body);
    return 0;
}
