/* gate.c: answer like Moonshot's gate (field-notes §1-§2), keyed on the
 * Host header / :authority, never on SNI. Pure function of the request. */
#include "fakeup.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define JSON "application/json"
#define ERR_404 "{\"error\":{\"type\":\"resource_not_found_error\"," \
    "\"message\":\"The requested resource was not found\"}}"
#define ERR_403 "{\"error\":{\"message\":\"Kimi For Coding is currently only available " \
    "for Coding Agents such as Kimi CLI, Claude Code, Roo Code, Kilo Code, etc.\"," \
    "\"type\":\"access_terminated_error\"}}"
#define ERR_429 "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\"," \
    "\"message\":\"The engine is currently overloaded, please try again later\"}}"
#define ERR_401 "{\"error\":{\"message\":\"Invalid Authentication\"," \
    "\"type\":\"invalid_authentication_error\"}}"
#define ERR_400 "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Bad Request\"}}"

static const char *const models[] = {"kimi-for-coding", "kimi-for-coding-highspeed",
                                     "k3", "kimi-k2.6", "kimi-k2-thinking"};
/* Platform ids the coding gate refuses (seeds/kimi-code-platform-403.txt). */
static const char *const gated_platforms[] = {"kimi_code_cli", "kimi_code", "kimi-code",
                                              "kimicode"};
static atomic_ulong next_id;

enum route { R_NONE, R_OPENAI, R_ANTHROPIC, R_COUNT, R_MODELS, R_USAGES, R_SEARCH,
             R_FETCH, R_DEVICE, R_TOKEN };
struct path_route {
    const char *path;
    enum route r;
};
static const struct path_route coding_paths[] = {
    {"/coding/v1/chat/completions", R_OPENAI}, {"/coding/v1/messages", R_ANTHROPIC},
    {"/coding/v1/messages/count_tokens", R_COUNT}, {"/coding/v1/models", R_MODELS},
    {"/coding/v1/usages", R_USAGES}, {"/coding/v1/search", R_SEARCH},
    {"/coding/v1/fetch", R_FETCH}, {NULL, R_NONE}};
static const struct path_route platform_paths[] = {
    {"/v1/chat/completions", R_OPENAI}, {"/v1/models", R_MODELS},
    {"/anthropic/v1/messages", R_ANTHROPIC}, {NULL, R_NONE}};
static const struct path_route auth_paths[] = {
    {"/api/oauth/device_authorization", R_DEVICE}, {"/api/oauth/token", R_TOKEN},
    {NULL, R_NONE}};

/* Host part of a Host value, lower case, port and trailing dot removed. */
static void host_part(const char *h, char *out, size_t cap)
{
    size_t n = 0;
    if (!h)
        h = "";
    if (*h == '[') { /* [v6]:port */
        const char *e = strchr(h, ']');
        size_t l = e ? (size_t)(e - h + 1) : strlen(h);
        snprintf(out, cap, "%.*s", (int)l, h);
        return;
    }
    for (; h[n] && h[n] != ':' && n + 1 < cap; n++)
        out[n] = (char)tolower((unsigned char)h[n]);
    if (n && out[n - 1] == '.')
        n--;
    out[n] = 0;
}

static enum route lookup(const struct path_route *t, const char *target)
{
    size_t plen = strcspn(target, "?#");
    for (; t->path; t++)
        if (strlen(t->path) == plen && !memcmp(t->path, target, plen))
            return t->r;
    return R_NONE;
}

/* Position just after `"key"` + ws + ':' + ws in a JSON body, or NULL. The
 * quote must not be escaped, so text inside strings does not match. */
static const char *json_key(const struct fu_buf *b, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    size_t pl = strlen(pat);
    if (!b->p)
        return NULL;
    for (const char *p = b->p; (p = memmem(p, b->len - (size_t)(p - b->p), pat, pl)); p++) {
        if (p > b->p && p[-1] == '\\')
            continue;
        const char *q = p + pl;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (*q != ':')
            continue;
        q++;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        return q;
    }
    return NULL;
}

static int wants_stream(const struct fu_req *r)
{
    const char *v = json_key(&r->keep, "stream");
    return v && !strncmp(v, "true", 4);
}

/* The model named in the body, still JSON-escaped (safe to paste back). */
static void body_model(const struct fu_req *r, char *out, size_t cap)
{
    snprintf(out, cap, "kimi-for-coding");
    const char *v = json_key(&r->keep, "model");
    if (!v || *v != '"')
        return;
    size_t n = 0;
    for (v++; v[n] && v[n] != '"'; n++) {
        if ((unsigned char)v[n] < 0x20 || n + 2 >= cap)
            return;
        if (v[n] == '\\' && v[++n] == 0)
            return;
    }
    if (v[n] == '"' && n)
        snprintf(out, cap, "%.*s", (int)n, v);
}

static int has_key(const struct fu_req *r, char *key, size_t cap)
{
    const char *a = fu_hdrs_get(&r->hdrs, "authorization");
    const char *k = fu_hdrs_get(&r->hdrs, "x-api-key");
    key[0] = 0;
    if (a && !strncasecmp(a, "Bearer ", 7)) {
        for (a += 7; *a == ' '; a++)
            ;
        snprintf(key, cap, "%s", a);
    }
    if (!key[0] && k)
        snprintf(key, cap, "%s", k);
    return key[0] != 0;
}

static int gated_platform(const struct fu_req *r)
{
    for (size_t i = 0; i < r->hdrs.n; i++) {
        if (strcasecmp(r->hdrs.v[i].name, "x-msh-platform"))
            continue;
        for (size_t j = 0; j < sizeof gated_platforms / sizeof *gated_platforms; j++)
            if (!strcmp(r->hdrs.v[i].value, gated_platforms[j]))
                return 1;
    }
    return 0;
}

static void set(struct fu_resp *s, int status, const char *body)
{
    s->status = status;
    s->ctype = JSON;
    fu_buf_puts(&s->body, body);
}

static void openai(const struct fu_req *r, struct fu_resp *s, const char *model, unsigned long id)
{
    static const char *const words[] = {"Hello", " from", " fakeup."};
    long t = (long)time(NULL);
    s->status = 200;
    if (!wants_stream(r)) {
        s->ctype = JSON;
        fu_buf_printf(&s->body, "{\"id\":\"chatcmpl-fakeup-%lu\",\"object\":\"chat.completion\","
            "\"created\":%ld,\"model\":\"%s\",\"choices\":[{\"index\":0,\"message\":"
            "{\"role\":\"assistant\",\"content\":\"Hello from fakeup.\"},\"finish_reason\":"
            "\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":4,"
            "\"total_tokens\":16}}", id, t, model);
        return;
    }
    s->sse = 1;
    s->ctype = "text/event-stream";
#define CHUNK "data: {\"id\":\"chatcmpl-fakeup-%lu\",\"object\":\"chat.completion.chunk\"," \
    "\"created\":%ld,\"model\":\"%s\",\"choices\":[{\"index\":0,"
    fu_buf_printf(&s->ev[s->nev++], CHUNK "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                  "\"finish_reason\":null}]}\n\n", id, t, model);
    for (int i = 0; i < 3; i++)
        fu_buf_printf(&s->ev[s->nev++], CHUNK "\"delta\":{\"content\":\"%s\"},"
                      "\"finish_reason\":null}]}\n\n", id, t, model, words[i]);
    fu_buf_printf(&s->ev[s->nev++], CHUNK "\"delta\":{},\"finish_reason\":\"stop\"}],"
                  "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":4,"
                  "\"total_tokens\":16}}\n\n", id, t, model);
#undef CHUNK
    fu_buf_puts(&s->ev[s->nev++], "data: [DONE]\n\n");
}

static void anthropic(const struct fu_req *r, struct fu_resp *s, const char *model, unsigned long id)
{
    static const char *const words[] = {"Hello", " from", " fakeup."};
    s->status = 200;
    if (!wants_stream(r)) {
        s->ctype = JSON;
        fu_buf_printf(&s->body, "{\"id\":\"msg_fakeup_%lu\",\"type\":\"message\",\"role\":"
            "\"assistant\",\"model\":\"%s\",\"content\":[{\"type\":\"text\",\"text\":"
            "\"Hello from fakeup.\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
            "\"usage\":{\"input_tokens\":12,\"output_tokens\":4}}", id, model);
        return;
    }
    s->sse = 1;
    s->ctype = "text/event-stream";
    fu_buf_printf(&s->ev[s->nev++], "event: message_start\ndata: {\"type\":\"message_start\","
        "\"message\":{\"id\":\"msg_fakeup_%lu\",\"type\":\"message\",\"role\":\"assistant\","
        "\"model\":\"%s\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
        "\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n", id, model);
    fu_buf_puts(&s->ev[s->nev++], "event: content_block_start\ndata: {\"type\":"
        "\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    for (int i = 0; i < 3; i++)
        fu_buf_printf(&s->ev[s->nev++], "event: content_block_delta\ndata: {\"type\":"
            "\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
            "\"%s\"}}\n\n", words[i]);
    fu_buf_puts(&s->ev[s->nev++], "event: content_block_stop\ndata: {\"type\":"
        "\"content_block_stop\",\"index\":0}\n\n");
    fu_buf_puts(&s->ev[s->nev++], "event: message_delta\ndata: {\"type\":\"message_delta\","
        "\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":"
        "{\"output_tokens\":4}}\n\n");
    fu_buf_puts(&s->ev[s->nev++], "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

static void models_list(struct fu_resp *s)
{
    s->status = 200;
    s->ctype = JSON;
    fu_buf_puts(&s->body, "{\"object\":\"list\",\"data\":[");
    size_t n = sizeof models / sizeof *models;
    for (size_t i = 0; i < n; i++)
        fu_buf_printf(&s->body, "%s{\"id\":\"%s\",\"object\":\"model\",\"type\":\"model\","
            "\"created\":1760000000,\"created_at\":\"2025-10-09T00:00:00Z\",\"owned_by\":"
            "\"moonshot\",\"display_name\":\"%s\"}", i ? "," : "", models[i], models[i]);
    fu_buf_printf(&s->body, "],\"has_more\":false,\"first_id\":\"%s\",\"last_id\":\"%s\"}",
                  models[0], models[n - 1]);
}

static void ok_answer(const struct fu_req *r, struct fu_resp *s, enum route rt)
{
    char model[256];
    unsigned long id = atomic_fetch_add(&next_id, 1) + 1;
    body_model(r, model, sizeof model);
    switch (rt) {
    case R_OPENAI: openai(r, s, model, id); break;
    case R_ANTHROPIC: anthropic(r, s, model, id); break;
    case R_COUNT: set(s, 200, "{\"input_tokens\":12}"); break;
    case R_MODELS: models_list(s); break;
    case R_USAGES:
        set(s, 200, "{\"user\":{\"userId\":\"fakeup\"},\"usage\":{\"limit\":\"100\",\"used\":"
            "\"1\",\"remaining\":\"99\",\"resetTime\":\"2030-01-01T00:00:00Z\"},\"limits\":[]}");
        break;
    case R_SEARCH: set(s, 200, "{\"search_results\":[]}"); break;
    case R_FETCH: set(s, 200, "{\"content\":\"fakeup page\"}"); break;
    case R_DEVICE:
        set(s, 200, "{\"device_code\":\"fakeup-device-code\",\"user_code\":\"FAKE-CODE\","
            "\"verification_uri\":\"https://www.kimi.com/code/authorize_device\","
            "\"verification_uri_complete\":\"https://www.kimi.com/code/authorize_device"
            "?user_code=FAKE-CODE\",\"expires_in\":600,\"interval\":5}");
        break;
    case R_TOKEN:
        set(s, 200, "{\"access_token\":\"fakeup-access-token\",\"token_type\":\"Bearer\","
            "\"expires_in\":3600,\"refresh_token\":\"fakeup-refresh-token\",\"scope\":"
            "\"kimi-code\"}");
        break;
    case R_NONE: set(s, 404, ERR_404); break;
    }
}

void fu_gate_bad_request(struct fu_resp *s)
{
    set(s, 400, ERR_400);
}

void fu_gate(const struct fu_req *r, struct fu_resp *s)
{
    char host[256], key[512];
    const char *target = r->target ? r->target : "";
    int head = r->method && !strcmp(r->method, "HEAD");
    host_part(r->host, host, sizeof host);
    s->head_only = head;
    if (!strcmp(host, "api.kimi.com") || !strcmp(host, "api.kimi.ai")) {
        enum route rt = lookup(coding_paths, target);
        if (head)
            set(s, 200, ""); /* Claude Code probes `HEAD <base>` first */
        else if (rt == R_NONE)
            set(s, 404, ERR_404);
        else if (gated_platform(r))
            set(s, rt == R_ANTHROPIC || rt == R_COUNT ? 429 : 403,
                rt == R_ANTHROPIC || rt == R_COUNT ? ERR_429 : ERR_403);
        else if (!has_key(r, key, sizeof key))
            set(s, 401, ERR_401);
        else
            ok_answer(r, s, rt);
    } else if (!strcmp(host, "api.moonshot.ai") || !strcmp(host, "api.moonshot.cn")) {
        enum route rt = lookup(platform_paths, target);
        if (head)
            set(s, 200, "");
        else if (rt == R_NONE)
            set(s, 404, ERR_404);
        else if (!has_key(r, key, sizeof key) || !strncmp(key, "sk-kimi-", 8))
            set(s, 401, ERR_401);
        else
            ok_answer(r, s, rt);
    } else if (!strcmp(host, "auth.kimi.com") || !strcmp(host, "auth.kimi.ai")) {
        enum route rt = lookup(auth_paths, target);
        if (head)
            set(s, 200, "");
        else
            ok_answer(r, s, rt);
    } else {
        set(s, 200, "{\"ok\":true}");
    }
}
