/* test_defaults.c - the built-in rules against the real cases of
 * field-notes §2 and their negatives. Every case is also run a second time
 * over its own output, which must change nothing (idempotence). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "kf_rules.h"

void kf_test_parse(kf_req *req, const char *head, int tls);
size_t kf_test_serialize(const kf_req *req, const char *head, char *out, size_t n);
int kf_test_rewrite(const kf_ruleset *rs, const char *head, unsigned caps, kf_req *req, char *out,
                    size_t n);

#define RELAY KF_CAP_UPSTREAM
#define INPROC 0u

typedef struct dcase {
    const char *what;
    unsigned caps;
    const char *in;
    const char *want;  /* NULL: unchanged */
    const char *fired; /* rule names, comma-separated; "" for none */
    const char *skipped;
} dcase;

#define KEY_KIMI "sk-kimi-Abc123def456"
#define KEY_PLATFORM "sk-Xyz789platformKey"

static const dcase cases[] = {
    /* ---- 1. doubled /v1 on the coding hosts ---- */
    { "anthropic sdk, base .../coding/v1", RELAY,
      "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\nx-api-key: " KEY_KIMI "\r\n"
      "anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: 120\r\n\r\n",
      "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\nx-api-key: " KEY_KIMI "\r\n"
      "anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: 120\r\n\r\n",
      "kimi-coding-double-v1", "" },
    { "claude code keeps ?beta=true", RELAY,
      "POST /coding/v1/v1/messages?beta=true HTTP/1.1\r\nhost: api.kimi.com\r\n"
      "User-Agent: claude-cli/2.1.113 (external, cli)\r\nx-app: cli\r\n\r\n",
      "POST /coding/v1/messages?beta=true HTTP/1.1\r\nhost: api.kimi.com\r\n"
      "User-Agent: claude-cli/2.1.113 (external, cli)\r\nx-app: cli\r\n\r\n",
      "kimi-coding-double-v1", "" },
    { "any number of /v1 repeats, global host", RELAY,
      "POST /coding/v1/v1/v1/v1/messages/count_tokens HTTP/1.1\r\nHost: api.kimi.ai\r\n\r\n",
      "POST /coding/v1/messages/count_tokens HTTP/1.1\r\nHost: api.kimi.ai\r\n\r\n", "kimi-coding-double-v1", "" },
    { "base with a trailing slash: //v1 then double v1", RELAY,
      "POST /coding/v1//v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "kimi-squash-slashes,kimi-coding-double-v1", "" },
    { "bare /coding/v1/v1", RELAY, "HEAD /coding/v1/v1 HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "HEAD /coding/v1 HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", "kimi-coding-double-v1", "" },
    { "claude code HEAD on the base is fine", RELAY, "HEAD /coding/v1 HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      NULL, "", "" },
    /* ---- missing /v1 ---- */
    { "openai wire, base .../coding", RELAY,
      "POST /coding/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      "kimi-coding-missing-v1-chat", "" },
    { "missing v1: messages", RELAY, "POST /coding/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "kimi-coding-missing-v1-messages", "" },
    { "missing v1: messages sub-path", RELAY,
      "POST /coding/messages/count_tokens HTTP/1.1\r\nHost: api.kimi.ai\r\n\r\n",
      "POST /coding/v1/messages/count_tokens HTTP/1.1\r\nHost: api.kimi.ai\r\n\r\n",
      "kimi-coding-missing-v1-messages", "" },
    { "missing v1: models", RELAY, "GET /coding/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "GET /coding/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", "kimi-coding-missing-v1-models", "" },
    { "missing v1: usages", RELAY, "GET /coding/usages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "GET /coding/v1/usages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", "kimi-coding-missing-v1-usages", "" },
    { "missing v1: search", RELAY, "POST /coding/search HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/search HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", "kimi-coding-missing-v1-search", "" },
    { "missing v1: fetch", RELAY, "POST /coding/fetch HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/fetch HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", "kimi-coding-missing-v1-fetch", "" },
    { "not an endpoint: left alone", RELAY, "GET /coding/messagesx HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      NULL, "", "" },
    /* ---- doubled suffixes and // ---- */
    { "chat/completions twice", RELAY,
      "POST /coding/v1/chat/completions/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", "kimi-coding-double-chat", "" },
    { "messages/v1/messages", RELAY, "POST /coding/v1/messages/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", "kimi-coding-double-messages", "" },
    { "messages/messages", RELAY, "POST /coding/v1/messages/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", "kimi-coding-double-messages", "" },
    { "double slashes", RELAY, "POST //coding//v1///messages?x=a//b HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/messages?x=a//b HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", "kimi-squash-slashes", "" },
    { "everything at once", RELAY,
      "POST //coding/messages//v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "kimi-squash-slashes,kimi-coding-missing-v1-messages,kimi-coding-double-messages", "" },
    { "v1 twice and suffix twice", RELAY,
      "POST /coding/v1/v1/chat/completions/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n",
      "kimi-coding-double-v1,kimi-coding-double-chat", "" },
    /* ---- 2. platform gate ---- */
    { "kimi-code: X-Msh-Platform kimi_code_cli (mixed-case name)", RELAY,
      "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\nUser-Agent: kimi-code-cli/2.1.0\r\n"
      "X-Msh-Platform: kimi_code_cli\r\nAuthorization: Bearer " KEY_KIMI "\r\ncontent-length: 10\r\n\r\n",
      "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\nUser-Agent: kimi-code-cli/2.1.0\r\n"
      "X-Msh-Platform: kimi_cli\r\nAuthorization: Bearer " KEY_KIMI "\r\ncontent-length: 10\r\n\r\n",
      "kimi-platform-kimi-code-cli", "" },
    { "node client: lower-case name, anthropic wire", RELAY,
      "POST /coding/v1/messages HTTP/1.1\r\nhost: api.kimi.ai\r\nuser-agent: kimi-code-cli/0.14.0\r\n"
      "x-msh-platform: kimi_code_cli\r\n\r\n",
      "POST /coding/v1/messages HTTP/1.1\r\nhost: api.kimi.ai\r\nuser-agent: kimi-code-cli/0.14.0\r\n"
      "x-msh-platform: kimi_cli\r\n\r\n",
      "kimi-platform-kimi-code-cli", "" },
    { "platform fix plus double v1", RELAY,
      "POST /coding/v1/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\nX-Msh-Platform: kimi_code_cli\r\n\r\n",
      "POST /coding/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\nX-Msh-Platform: kimi_cli\r\n\r\n",
      "kimi-coding-double-v1,kimi-platform-kimi-code-cli", "" },
    /* ---- 1b. moonshot doubled v1 ---- */
    { "moonshot anthropic double v1 (platform key)", RELAY,
      "POST /anthropic/v1/v1/messages HTTP/1.1\r\nHost: api.moonshot.ai\r\nx-api-key: " KEY_PLATFORM "\r\n\r\n",
      "POST /anthropic/v1/messages HTTP/1.1\r\nHost: api.moonshot.ai\r\nx-api-key: " KEY_PLATFORM "\r\n\r\n",
      "moonshot-anthropic-double-v1", "" },
    { "moonshot openai double v1, .cn", RELAY,
      "POST /v1/v1/chat/completions HTTP/1.1\r\nHost: api.moonshot.cn\r\nAuthorization: Bearer " KEY_PLATFORM "\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.moonshot.cn\r\nAuthorization: Bearer " KEY_PLATFORM "\r\n\r\n",
      "moonshot-double-v1", "" },
    /* ---- 3. sk-kimi key on the platform host ---- */
    { "sk-kimi to moonshot: chat -> api.kimi.com", RELAY,
      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.moonshot.ai\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      "moonshot-sk-kimi-to-kimi", "" },
    { "sk-kimi to moonshot: models", RELAY,
      "GET /v1/models HTTP/1.1\r\nHost: api.moonshot.cn\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      "GET /coding/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      "moonshot-sk-kimi-to-kimi", "" },
    { "sk-kimi to moonshot: anthropic messages", RELAY,
      "POST /anthropic/v1/messages?beta=true HTTP/1.1\r\nhost: api.moonshot.ai\r\nx-api-key: " KEY_KIMI "\r\n\r\n",
      "POST /coding/v1/messages?beta=true HTTP/1.1\r\nhost: api.kimi.com\r\nx-api-key: " KEY_KIMI "\r\n\r\n",
      "moonshot-sk-kimi-to-kimi", "" },
    { "sk-kimi, doubled v1 and kimi-code platform, all fixed", RELAY,
      "POST /anthropic/v1/v1/messages HTTP/1.1\r\nHost: api.moonshot.ai\r\nx-api-key: " KEY_KIMI "\r\n"
      "x-msh-platform: kimi_code_cli\r\n\r\n",
      "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\nx-api-key: " KEY_KIMI "\r\n"
      "x-msh-platform: kimi_cli\r\n\r\n",
      "moonshot-anthropic-double-v1,moonshot-sk-kimi-to-kimi,kimi-platform-kimi-code-cli", "" },
    { "sk-kimi in-process: routing skipped as a whole", INPROC,
      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.moonshot.ai\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      NULL, "", "moonshot-sk-kimi-to-kimi" },
    { "sk-kimi in-process: path fix still applies", INPROC,
      "POST /v1/v1/chat/completions HTTP/1.1\r\nHost: api.moonshot.ai\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.moonshot.ai\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      "moonshot-double-v1", "moonshot-sk-kimi-to-kimi" },
    { "sk-kimi to an unknown platform path: not routed", RELAY,
      "GET /v1/files HTTP/1.1\r\nHost: api.moonshot.ai\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n", NULL, "", "" },

    /* ---- never touched ---- */
    { "auth.kimi.com with kimi_code_cli", RELAY,
      "POST /api/oauth/token HTTP/1.1\r\nHost: auth.kimi.com\r\nX-Msh-Platform: kimi_code_cli\r\n"
      "User-Agent: kimi-code-cli/2.1.0\r\n\r\n", NULL, "", "" },
    { "auth.kimi.ai device authorization", RELAY,
      "POST /api/oauth/device_authorization HTTP/1.1\r\nHost: auth.kimi.ai\r\nx-msh-platform: kimi_code_cli\r\n\r\n",
      NULL, "", "" },
    { "auth.kimi.com even with a coding-looking path", RELAY,
      "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: auth.kimi.com\r\nX-Msh-Platform: kimi_code_cli\r\n\r\n",
      NULL, "", "" },
    { "kimi-cli (kimi_cli) untouched", RELAY,
      "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\nUser-Agent: KimiCLI/1.49.0\r\n"
      "X-Msh-Platform: kimi_cli\r\nX-Msh-Version: 1.49.0\r\nX-Msh-Device-Id: abc\r\n\r\n", NULL, "", "" },
    { "vscode platform id untouched", RELAY,
      "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\nX-Msh-Platform: kimi_code_vscode\r\n\r\n",
      NULL, "", "" },
    { "kimi_code_cli outside /coding/ untouched", RELAY,
      "GET /api/user HTTP/1.1\r\nHost: api.kimi.com\r\nX-Msh-Platform: kimi_code_cli\r\n\r\n", NULL, "", "" },
    { "platform key on moonshot untouched", RELAY,
      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.moonshot.ai\r\nAuthorization: Bearer " KEY_PLATFORM "\r\n\r\n",
      NULL, "", "" },
    { "platform key, anthropic wire, untouched", RELAY,
      "POST /anthropic/v1/messages HTTP/1.1\r\nHost: api.moonshot.cn\r\nx-api-key: " KEY_PLATFORM "\r\n\r\n",
      NULL, "", "" },
    { "unrelated host with /v1/v1/", RELAY,
      "POST /v1/v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer " KEY_KIMI "\r\n\r\n",
      NULL, "", "" },
    { "unrelated host with a coding path", RELAY,
      "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nX-Msh-Platform: kimi_code_cli\r\n\r\n",
      NULL, "", "" },
    { "lookalike host", RELAY,
      "POST //coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com.example.net\r\n\r\n", NULL, "", "" },
    { "User-Agent never rewritten", RELAY,
      "POST /coding/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\nUser-Agent: pi-agent/0.1\r\n"
      "x-api-key: " KEY_KIMI "\r\n\r\n", NULL, "", "" },
    { "correct openai request untouched", RELAY,
      "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n", NULL, "", "" },
    { "LF-only head with odd spacing untouched", RELAY,
      "GET /coding/v1/models HTTP/1.1\nHost:api.kimi.com\nAccept:   */*  \n\n", NULL, "", "" },
};

static kf_req req;

static void names(const kf_rule *const *r, unsigned n, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        if (i)
            strncat(buf, ",", cap - strlen(buf) - 1);
        strncat(buf, kf_rule_name(r[i]), cap - strlen(buf) - 1);
    }
}

static void run_case(const kf_ruleset *rs, const dcase *c)
{
    char out[4096], again[4096], got[512];
    kf_test_rewrite(rs, c->in, c->caps, &req, out, sizeof out);
    cr_assert_str_eq(out, c->want ? c->want : c->in, "case: %s", c->what);
    names(req.fired, req.nfired, got, sizeof got);
    cr_assert_str_eq(got, c->fired, "case: %s (fired)", c->what);
    names(req.skipped, req.nskipped, got, sizeof got);
    cr_assert_str_eq(got, c->skipped, "case: %s (skipped)", c->what);
    /* idempotence: the output goes through the rules unchanged */
    kf_test_rewrite(rs, out, c->caps, &req, again, sizeof again);
    cr_assert_str_eq(again, out, "case: %s (second pass)", c->what);
    cr_assert_eq(req.nfired, 0, "case: %s (second pass fired %s)", c->what,
                 req.nfired ? kf_rule_name(req.fired[0]) : "");
}

Test(defaults, table_of_real_cases_and_idempotence)
{
    kf_ruleset *rs = kf_ruleset_builtin();
    cr_assert_not_null(rs);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(rs, &cases[i]);
    kf_ruleset_free(rs);
}

Test(defaults, every_builtin_rule_is_exercised)
{
    kf_ruleset *rs = kf_ruleset_builtin();
    for (unsigned k = 0; k < kf_ruleset_count(rs); k++) {
        const char *name = kf_rule_name(kf_ruleset_rule(rs, k));
        int seen = 0;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !seen; i++) {
            const char *f = cases[i].fired;
            size_t n = strlen(name);
            for (const char *p = strstr(f, name); p && !seen; p = strstr(p + 1, name))
                seen = (p == f || p[-1] == ',') && (p[n] == '\0' || p[n] == ',');
        }
        cr_assert(seen, "built-in rule %s has no case in the table", name);
    }
    kf_ruleset_free(rs);
}

static char diag[4096];
static void collect(void *ud, const char *line)
{
    (void)ud;
    strncat(diag, line, sizeof diag - strlen(diag) - 2);
    strcat(diag, "\n");
}

Test(defaults, builtins_load_cleanly_and_can_be_disabled)
{
    diag[0] = '\0';
    int nerr = -1;
    kf_ruleset *rs = kf_ruleset_load_text("", 0, "empty", collect, NULL, &nerr);
    cr_assert_not_null(rs);
    cr_assert_eq(nerr, 0);
    cr_assert_str_eq(diag, "", "built-ins must load without warnings");
    kf_ruleset_free(rs);

    const char *off = "disable kimi-platform-kimi-code-cli\n";
    rs = kf_ruleset_load_text(off, strlen(off), "u", collect, NULL, &nerr);
    cr_assert_not_null(rs);
    const char *in = "POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n"
                     "X-Msh-Platform: kimi_code_cli\r\n\r\n";
    char out[1024];
    kf_test_rewrite(rs, in, RELAY, &req, out, sizeof out);
    cr_assert_str_eq(out, in);
    kf_ruleset_free(rs);

    rs = kf_ruleset_load_text("defaults off\n", 13, "u", collect, NULL, &nerr);
    in = "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n\r\n";
    kf_test_rewrite(rs, in, RELAY, &req, out, sizeof out);
    cr_assert_str_eq(out, in);
    kf_ruleset_free(rs);
}

Test(defaults, summary_line_for_the_log)
{
    kf_ruleset *rs = kf_ruleset_builtin();
    char out[1024], sum[512];
    kf_test_rewrite(rs,
                    "POST /coding/v1/v1/messages?beta=true HTTP/1.1\r\nHost: api.kimi.com\r\n"
                    "x-msh-platform: kimi_code_cli\r\nx-api-key: " KEY_KIMI "\r\n\r\n",
                    RELAY, &req, out, sizeof out);
    kf_req_summary(&req, sum, sizeof sum);
    cr_assert_str_eq(sum, "POST /coding/v1/v1/messages?beta=true -> /coding/v1/messages?beta=true; "
                          "x-msh-platform: kimi_code_cli -> kimi_cli");
    kf_test_rewrite(rs,
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: api.moonshot.ai\r\n"
                    "Authorization: Bearer " KEY_KIMI "\r\n\r\n",
                    RELAY, &req, out, sizeof out);
    kf_req_summary(&req, sum, sizeof sum);
    cr_assert_str_eq(sum, "POST /v1/chat/completions -> /coding/v1/chat/completions; "
                          "Host: api.moonshot.ai -> api.kimi.com; upstream api.kimi.com");
    cr_assert_null(strstr(sum, "sk-kimi"));
    kf_ruleset_free(rs);
}
