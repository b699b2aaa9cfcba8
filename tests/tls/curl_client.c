/* curl_client.c - a libcurl program posting an Anthropic-style request to
 * https://api.kimi.com/coding/v1/v1/messages, steered to the local test
 * server with CURLOPT_CONNECT_TO. Built twice: against libcurl (OpenSSL)
 * and libcurl-gnutls. Run under LD_PRELOAD=libkimifix.so by the tests.
 *
 *   curl_client URL CAFILE CONNECT_TO[,CONNECT_TO...] [h1|h2|default] [easy|multi|dup|reset|twice]
 *
 * Prints "code=N body=B" for each transfer on stdout.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

static char body[4096];
static size_t body_len;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    (void)ud;
    size_t k = sz * n;
    if (body_len + k < sizeof body) {
        memcpy(body + body_len, p, k);
        body_len += k;
    }
    return k;
}

static void setup(CURL *h, const char *url, const char *ca, struct curl_slist *ct,
                  struct curl_slist *hdrs, const char *ver)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, ct);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"model\":\"k\"}");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kftest-curl/1");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    if (strcmp(ver, "h1") == 0)
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    else if (strcmp(ver, "h2") == 0)
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
}

static int report(CURL *h, CURLcode rc)
{
    long code = 0, ver = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &ver);
    printf("code=%ld rc=%d body=%.*s http=%s\n", code, (int)rc, (int)body_len, body,
           ver == CURL_HTTP_VERSION_2_0 ? "2" : ver == CURL_HTTP_VERSION_1_1 ? "1.1" : "?");
    fflush(stdout);
    body_len = 0;
    return rc == CURLE_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 64;
    const char *url = argv[1], *ca = argv[2], *ver = argc > 4 ? argv[4] : "default";
    const char *mode = argc > 5 ? argv[5] : "easy";
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct curl_slist *ct = NULL; /* comma-separated CONNECT_TO entries */
    char cts[512];
    snprintf(cts, sizeof cts, "%s", argv[3]);
    for (char *t = strtok(cts, ","); t; t = strtok(NULL, ","))
        ct = curl_slist_append(ct, t);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "X-Msh-Platform: kimi_code_cli");
    hdrs = curl_slist_append(hdrs, "x-api-key: sk-kimi-SECRETSECRET");
    hdrs = curl_slist_append(hdrs, "Accept:"); /* a "do not send" entry must survive */
    int bad = 0;
    CURL *h = curl_easy_init();
    setup(h, url, ca, ct, hdrs, ver);
    if (strcmp(mode, "multi") == 0) {
        CURLM *m = curl_multi_init();
        curl_multi_add_handle(m, h);
        int running = 1;
        while (running) {
            curl_multi_perform(m, &running);
            if (running)
                curl_multi_poll(m, NULL, 0, 1000, NULL);
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE)
                bad |= report(msg->easy_handle, msg->data.result);
        curl_multi_remove_handle(m, h);
        curl_multi_cleanup(m);
    } else if (strcmp(mode, "dup") == 0) {
        bad |= report(h, curl_easy_perform(h));
        CURL *d = curl_easy_duphandle(h);
        curl_easy_cleanup(h); /* the copy must not depend on the original's state */
        h = d;
        bad |= report(h, curl_easy_perform(h));
    } else if (strcmp(mode, "reset") == 0) {
        bad |= report(h, curl_easy_perform(h));
        curl_easy_reset(h);
        setup(h, url, ca, ct, hdrs, ver);
        bad |= report(h, curl_easy_perform(h));
    } else if (strcmp(mode, "twice") == 0) {
        bad |= report(h, curl_easy_perform(h));
        bad |= report(h, curl_easy_perform(h));
    } else {
        bad |= report(h, curl_easy_perform(h));
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(ct);
    curl_global_cleanup();
    return bad;
}
