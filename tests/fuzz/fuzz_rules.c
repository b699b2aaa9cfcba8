/* fuzz_rules.c - libFuzzer target for the rules parser (and, when the
 * input parses, the matcher and the dump).
 *
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc/core \
 *       tests/fuzz/fuzz_rules.c src/core/kf_rules_*.c src/core/kf_req.c \
 *       src/common/kf_log.c build/core/default_rules.c -o fuzz_rules
 *   ./fuzz_rules rules/examples      (the shipped rules make a good corpus)
 *
 * Invariants checked beyond "no crash": a ruleset that loads dumps to
 * text that loads again; applying it twice to one request never fails.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kf_rules.h"

typedef struct text {
    char *p;
    size_t n, cap;
    int user; /* past the "# rules from" line */
} text;

static void collect(void *ud, const char *line)
{
    text *t = ud;
    if (!t->user) {
        t->user = strncmp(line, "# rules from ", 13) == 0;
        return;
    }
    size_t k = strlen(line);
    if (t->n + k + 2 > t->cap) {
        t->cap = (t->n + k + 2) * 2;
        t->p = realloc(t->p, t->cap);
        if (!t->p)
            abort();
    }
    memcpy(t->p + t->n, line, k);
    t->n += k;
    t->p[t->n++] = '\n';
}

static void ignore(void *ud, const char *line)
{
    (void)ud;
    (void)line;
}

static const char *const heads[][4] = {
    { "POST", "/coding/v1/v1/messages", "?beta=true", "api.kimi.com" },
    { "GET", "//a//b", "", "api.moonshot.ai" },
    { "PUT", "/", "?k=sk-1", "example.org" },
};

static void apply_some(const kf_ruleset *rs)
{
    static kf_req req;
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        kf_req_init(&req);
        req.tls = 1;
        req.method = kf_str_c(heads[i][0]);
        req.path = kf_str_c(heads[i][1]);
        req.query = kf_str_c(heads[i][2]);
        kf_req_add_header(&req, KF_STR("Host"), kf_str_c(heads[i][3]), KF_STR("Host: x\r\n"));
        kf_req_add_header(&req, KF_STR("Authorization"), KF_STR("Bearer sk-kimi-x"), KF_STR("A: x\r\n"));
        kf_req_add_header(&req, KF_STR("X-Msh-Platform"), KF_STR("kimi_code_cli"), KF_STR("X: x\r\n"));
        kf_req_set_host(&req, req.hdr[0].value);
        kf_rules_apply(rs, &req, i & 1 ? KF_CAP_UPSTREAM : 0);
        char sum[512];
        kf_req_summary(&req, sum, sizeof sum);
    }
    kf_rules_host_relevant(rs, "api.kimi.com", 443);
    kf_rules_host_needs_upstream(rs, "api.moonshot.ai", 0);
    const char *a;
    unsigned p;
    kf_rules_connect_to(rs, "api.kimi.com", 443, &a, &p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int nerr = 0;
    kf_ruleset *rs = kf_ruleset_load_text((const char *)data, size, "fuzz", ignore, NULL, &nerr);
    if (!rs) {
        if (nerr <= 0)
            abort(); /* failure without an error reported */
        return 0;
    }
    apply_some(rs);
    /* The dump of the user's part (with `defaults off` state lost, which
     * only affects built-ins) must load again. */
    text t = { 0 };
    kf_ruleset_dump(rs, collect, &t);
    kf_ruleset_free(rs);
    static const char pre[] = "defaults off\n";
    char *again = malloc(sizeof pre + t.n);
    if (!again)
        abort();
    memcpy(again, pre, sizeof pre - 1);
    if (t.n)
        memcpy(again + sizeof pre - 1, t.p, t.n);
    kf_ruleset *rs2 = kf_ruleset_load_text(again, sizeof pre - 1 + t.n, "dump", ignore, NULL, &nerr);
    if (!rs2)
        abort(); /* the dump did not parse back */
    kf_ruleset_free(rs2);
    free(again);
    free(t.p);
    return 0;
}
