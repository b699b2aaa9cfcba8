/* kfreq.h - the request the TLS test clients send and what the built-in
 * rules must turn it into. Shared by the client programs and the tests. */
#ifndef KFREQ_H
#define KFREQ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KFREQ_PATH "/coding/v1/v1/messages"
#define KFREQ_FIXED_PATH "/coding/v1/messages"

/* Head + a body of `bodybytes` that itself looks like a request line (a
 * rewriter that touched bodies would show). malloc'd. */
static inline char *kfreq_make(const char *host, const char *path, size_t bodybytes, size_t *len)
{
    static const char fake[] = "POST /coding/v1/v1/messages HTTP/1.1\r\n";
    char head[1024];
    int h = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kftest/1\r\n"
                     "X-Msh-Platform: kimi_code_cli\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     path, host, bodybytes);
    char *r = malloc((size_t)h + bodybytes + 1);
    memcpy(r, head, (size_t)h);
    for (size_t i = 0; i < bodybytes; i++)
        r[h + i] = fake[i % (sizeof fake - 1)];
    r[(size_t)h + bodybytes] = 0;
    *len = (size_t)h + bodybytes;
    return r;
}

/* What the built-in rules make of it on api.kimi.com. */
static inline char *kfreq_fixed(const char *host, size_t bodybytes, size_t *len)
{
    size_t n;
    char *r = kfreq_make(host, KFREQ_FIXED_PATH, bodybytes, &n);
    char *p = strstr(r, "kimi_code_cli");
    memmove(p + 8, p + 13, n - (size_t)(p + 13 - r) + 1); /* kimi_code_cli -> kimi_cli */
    memcpy(p, "kimi_cli", 8);
    *len = n - 5;
    return r;
}

#endif
