/* deepcurl.c - deepcurl URL: dlopen libcurl.so.4 with RTLD_DEEPBIND (as a
 * plugin host would), POST a small Anthropic-wire body to URL through the
 * pointers dlsym gives, print "status: N". CA file: $E2E_CACERT; key:
 * $E2E_API_KEY. libcurl offers h2 as usual: the shim's ALPN hook, bound
 * into libcurl like the others, keeps rule hosts on HTTP/1.1. */
#include <curl/curl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return fprintf(stderr, "usage: deepcurl URL\n"), 2;
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_DEEPBIND);
    if (!h)
        return fprintf(stderr, "deepcurl: %s\n", dlerror()), 1;
    CURL *(*init)(void) = (CURL * (*)(void)) dlsym(h, "curl_easy_init");
    CURLcode (*setopt)(CURL *, CURLoption, ...) =
        (CURLcode(*)(CURL *, CURLoption, ...))dlsym(h, "curl_easy_setopt");
    CURLcode (*perform)(CURL *) = (CURLcode(*)(CURL *))dlsym(h, "curl_easy_perform");
    CURLcode (*getinfo)(CURL *, CURLINFO, ...) =
        (CURLcode(*)(CURL *, CURLINFO, ...))dlsym(h, "curl_easy_getinfo");
    struct curl_slist *(*append)(struct curl_slist *, const char *) =
        (struct curl_slist * (*)(struct curl_slist *, const char *)) dlsym(h, "curl_slist_append");
    if (!init || !setopt || !perform || !getinfo || !append)
        return fprintf(stderr, "deepcurl: libcurl symbols missing\n"), 1;
    static char key[256];
    snprintf(key, sizeof key, "x-api-key: %s", getenv("E2E_API_KEY") ? getenv("E2E_API_KEY") : "");
    struct curl_slist *hl = append(NULL, "Content-Type: application/json");
    hl = append(hl, "anthropic-version: 2023-06-01");
    hl = append(hl, key);
    hl = append(hl, "Expect:");
    CURL *c = init();
    setopt(c, CURLOPT_URL, argv[1]);
    setopt(c, CURLOPT_HTTPHEADER, hl);
    setopt(c, CURLOPT_POSTFIELDS, "{\"model\":\"kimi-for-coding\",\"max_tokens\":64,"
                                  "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    setopt(c, CURLOPT_WRITEFUNCTION, sink);
    setopt(c, CURLOPT_TIMEOUT, 30L);
    if (getenv("E2E_CACERT"))
        setopt(c, CURLOPT_CAINFO, getenv("E2E_CACERT"));
    CURLcode rc = perform(c);
    long status = -1;
    getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    printf("status: %ld\n", rc == CURLE_OK ? status : -1L);
    if (rc != CURLE_OK)
        fprintf(stderr, "deepcurl: curl error %d\n", (int)rc);
    return 0;
}
