/* httpproxy_reply.c - what the proxy front end answers, and the one log
 * line each refusal gets (httpproxy.h). Texts name hosts and ports only:
 * never a credential, never raw client bytes. */
#include "httpproxy.h"

#include <stdio.h>
#include <string.h>

#include "kf_log.h"

const char hp_established[] = "HTTP/1.1 200 Connection established\r\n\r\n";

static const char *reason(int status)
{
    switch (status) {
    case HP_400: return "Bad Request";
    case HP_403: return "Forbidden";
    case HP_407: return "Proxy Authentication Required";
    case HP_408: return "Request Timeout";
    case HP_431: return "Request Header Fields Too Large";
    case HP_502: return "Bad Gateway";
    case HP_504: return "Gateway Timeout";
    default: return "Error";
    }
}

/* JSON string contents: quotes and backslashes escaped, controls dropped. */
static void json_text(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (; *in && o + 3 < n; in++) {
        unsigned char c = (unsigned char)*in;
        if (c < 0x20 || c == 0x7f)
            continue;
        if (c == '"' || c == '\\')
            out[o++] = '\\';
        out[o++] = (char)c;
    }
    out[o] = 0;
}

ssize_t hp_reply(int status, const char *why, char *out, size_t cap)
{
    char esc[512], body[700];
    int json = status == HP_502 || status == HP_504;
    json_text(why ? why : "", esc, sizeof esc);
    int bl = json ? snprintf(body, sizeof body,
                             "{\"error\":{\"type\":\"kimifix_relay_error\",\"message\":\"kimifix "
                             "relay: %s\"}}",
                             esc)
                  : snprintf(body, sizeof body, "kimifix relay: %s\n", esc);
    if (bl < 0 || (size_t)bl >= sizeof body)
        return -1;
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason(status),
                     status == HP_407 ? "Proxy-Authenticate: Basic realm=\"kimifix\"\r\n" : "",
                     json ? "application/json" : "text/plain; charset=utf-8", bl, body);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int hp_limit_allow(hp_limit *l, long now_ms, unsigned *dropped)
{
    if (l->next_ms && now_ms < l->next_ms) {
        l->dropped++;
        return 0;
    }
    *dropped = l->dropped;
    l->dropped = 0;
    l->next_ms = now_ms + HP_LOG_EVERY_MS;
    if (!l->next_ms)
        l->next_ms = 1;
    return 1;
}

void hp_log_refusal(int status, const hp_req *req, const char *why, hp_limit *lim, long now_ms)
{
    unsigned dropped = 0;
    if (status == HP_407 && lim && !hp_limit_allow(lim, now_ms, &dropped))
        return;
    char what[400] = "";
    if (req && req->host[0])
        snprintf(what, sizeof what, " for %s%s%s:%u", req->host_ip == 6 ? "[" : "", req->host,
                 req->host_ip == 6 ? "]" : "", req->port);
    char more[80] = "";
    if (dropped)
        snprintf(more, sizeof more, " (and %u more like it in the last %d s)", dropped,
                 HP_LOG_EVERY_MS / 1000);
    kf_log(KF_LOG_WARN, "[relay] proxy: refused a request%s: %s => %d%s", what,
           why && *why ? why : reason(status), status, more);
}
