/* test_req.c - the request model (kf_req.c), and the head helpers the
 * rules tests share (kf_test_*: parse a head into a kf_req the way the
 * stream rewriter does, serialize it back by header state). */
#include <criterion/criterion.h>
#include <string.h>

#include "kf_req.h"
#include "kf_rules.h"

/* ---- shared helpers (declared again in test_rules_apply.c, test_defaults.c) ---- */

void kf_test_parse(kf_req *req, const char *head, int tls);
size_t kf_test_serialize(const kf_req *req, const char *head, char *out, size_t n);
int kf_test_rewrite(const kf_ruleset *rs, const char *head, unsigned caps, kf_req *req, char *out,
                    size_t n);

/* "METHOD TARGET VERSION" line, then "Name: value" lines, then an empty
 * line; CRLF or LF. Views point into `head`; lines keep their ending. */
void kf_test_parse(kf_req *req, const char *head, int tls)
{
    kf_req_init(req);
    req->tls = tls;
    const char *eol = strchr(head, '\n');
    cr_assert(eol, "head without a line end");
    size_t ln = (size_t)(eol - head);
    if (ln && head[ln - 1] == '\r')
        ln--;
    const char *sp1 = memchr(head, ' ', ln);
    const char *sp2 = memrchr(head, ' ', ln);
    cr_assert(sp1 && sp2 && sp1 < sp2, "bad request line");
    req->method = (kf_str){ head, (size_t)(sp1 - head) };
    kf_str target = { sp1 + 1, (size_t)(sp2 - sp1 - 1) };
    const char *q = memchr(target.p, '?', target.n);
    size_t pn = q ? (size_t)(q - target.p) : target.n;
    req->path = (kf_str){ target.p, pn };
    req->query = (kf_str){ target.p + pn, target.n - pn };
    req->version = (kf_str){ sp2 + 1, (size_t)(head + ln - sp2 - 1) };
    const char *p = eol + 1;
    int have_host = 0;
    while (*p && *p != '\r' && *p != '\n') {
        eol = strchr(p, '\n');
        cr_assert(eol, "header line without an end");
        size_t l = (size_t)(eol - p);
        size_t vl = l && p[l - 1] == '\r' ? l - 1 : l;
        const char *colon = memchr(p, ':', vl);
        cr_assert(colon, "header line without ':'");
        kf_str name = { p, (size_t)(colon - p) };
        kf_str value = kf_str_trim((kf_str){ colon + 1, (size_t)(p + vl - colon - 1) });
        cr_assert_eq(kf_req_add_header(req, name, value, (kf_str){ p, l + 1 }), 0);
        if (!have_host && kf_str_ieq_c(name, "host")) {
            kf_req_set_host(req, value);
            have_host = 1;
        }
        p = eol + 1;
    }
}

static size_t put(char *out, size_t n, size_t o, const char *s, size_t k)
{
    cr_assert(o + k < n, "serialize: output buffer too small");
    memcpy(out + o, s, k);
    out[o + k] = '\0';
    return o + k;
}

/* The stream rewriter's contract: the request line is rebuilt only when
 * the path changed; headers by state; the blank line as received. */
size_t kf_test_serialize(const kf_req *req, const char *head, char *out, size_t n)
{
    size_t o = 0;
    const char *eol = strchr(head, '\n');
    int crlf = eol > head && eol[-1] == '\r';
    const char *nl = crlf ? "\r\n" : "\n";
    if (req->changed & KF_CHG_PATH) {
        o = put(out, n, o, req->method.p, req->method.n);
        o = put(out, n, o, " ", 1);
        o = put(out, n, o, req->path.p, req->path.n);
        o = put(out, n, o, req->query.p, req->query.n);
        o = put(out, n, o, " ", 1);
        o = put(out, n, o, req->version.p, req->version.n);
        o = put(out, n, o, nl, strlen(nl));
    } else {
        o = put(out, n, o, head, (size_t)(eol - head + 1));
    }
    const char *end = NULL;
    for (unsigned i = 0; i < req->nhdr; i++) {
        const kf_hdr *h = &req->hdr[i];
        if (h->line.p)
            end = h->line.p + h->line.n;
        switch (h->state) {
        case KF_HDR_ORIG:
            o = put(out, n, o, h->line.p, h->line.n);
            break;
        case KF_HDR_CHANGED: {
            o = put(out, n, o, h->name.p, h->name.n);
            o = put(out, n, o, ": ", 2);
            o = put(out, n, o, h->value.p, h->value.n);
            int lcrlf = h->line.n >= 2 && h->line.p[h->line.n - 2] == '\r';
            o = put(out, n, o, lcrlf ? "\r\n" : "\n", lcrlf ? 2 : 1);
            break;
        }
        case KF_HDR_ADDED:
            o = put(out, n, o, h->name.p, h->name.n);
            o = put(out, n, o, ": ", 2);
            o = put(out, n, o, h->value.p, h->value.n);
            o = put(out, n, o, nl, strlen(nl));
            break;
        default:
            break;
        }
    }
    if (!end)
        end = eol + 1;
    o = put(out, n, o, end, strlen(end)); /* the blank line (and anything after) */
    return o;
}

int kf_test_rewrite(const kf_ruleset *rs, const char *head, unsigned caps, kf_req *req, char *out,
                    size_t n)
{
    kf_test_parse(req, head, 1);
    int fired = kf_rules_apply(rs, req, caps);
    kf_test_serialize(req, head, out, n);
    return fired;
}

/* ---- kf_req ---- */

static kf_req req;

Test(req, init_and_add_find)
{
    kf_req_init(&req);
    cr_assert_eq(req.nhdr, 0);
    cr_assert_eq(kf_req_add_header(&req, KF_STR("Host"), KF_STR("a"), KF_STR("Host: a\r\n")), 0);
    cr_assert_eq(kf_req_add_header(&req, KF_STR("X-A"), KF_STR("1"), KF_STR("X-A: 1\r\n")), 0);
    cr_assert_eq(kf_req_add_header(&req, KF_STR("x-a"), KF_STR("2"), KF_STR("x-a: 2\r\n")), 0);
    cr_assert_eq(kf_req_find_header(&req, KF_STR("x-A"), 0), 1);
    cr_assert_eq(kf_req_find_header(&req, KF_STR("X-A"), 2), 2);
    cr_assert_eq(kf_req_find_header(&req, KF_STR("X-A"), 3), -1);
    req.hdr[1].state = KF_HDR_REMOVED;
    cr_assert_eq(kf_req_find_header(&req, KF_STR("X-A"), 0), 2, "removed headers are not found");
    cr_assert_eq(req.hdr[2].state, KF_HDR_ORIG);
    cr_assert(kf_str_eq(req.hdr[2].orig_value, KF_STR("2")));
}

Test(req, header_limit)
{
    kf_req_init(&req);
    for (int i = 0; i < KF_MAX_HEADERS; i++)
        cr_assert_eq(kf_req_add_header(&req, KF_STR("A"), KF_STR("b"), KF_STR("A: b\n")), 0);
    cr_assert_eq(kf_req_add_header(&req, KF_STR("A"), KF_STR("b"), KF_STR("A: b\n")), -1);
    cr_assert_eq(req.nhdr, KF_MAX_HEADERS);
}

Test(req, store_scratch)
{
    kf_req_init(&req);
    kf_str a = kf_req_store(&req, "abc", 3);
    cr_assert(kf_str_eq(a, KF_STR("abc")));
    cr_assert_eq(req.scratch_used, 3);
    static char big[KF_SCRATCH];
    memset(big, 'x', sizeof big);
    kf_str b = kf_req_store(&req, big, sizeof big);
    cr_assert_null(b.p, "store beyond the scratch must fail");
    cr_assert_eq(req.scratch_used, 3);
    kf_req_init(&req);
    cr_assert_eq(req.scratch_used, 0);
}

Test(req, set_host_forms)
{
    kf_req_init(&req);
    req.tls = 1;
    kf_req_set_host(&req, KF_STR("api.kimi.com"));
    cr_assert(kf_str_eq(req.host, KF_STR("api.kimi.com")));
    cr_assert_eq(req.port, 443);
    kf_req_set_host(&req, KF_STR("Api.Kimi.com:8443"));
    cr_assert(kf_str_eq(req.host, KF_STR("Api.Kimi.com")));
    cr_assert_eq(req.port, 8443);
    kf_req_set_host(&req, KF_STR("[::1]:8080"));
    cr_assert(kf_str_eq(req.host, KF_STR("::1")));
    cr_assert_eq(req.port, 8080);
    kf_req_set_host(&req, KF_STR("[fe80::1]"));
    cr_assert(kf_str_eq(req.host, KF_STR("fe80::1")));
    cr_assert_eq(req.port, 443);
    kf_req_set_host(&req, KF_STR("api.kimi.com."));
    cr_assert(kf_str_eq(req.host, KF_STR("api.kimi.com")), "trailing dot dropped");
    req.tls = 0;
    kf_req_set_host(&req, KF_STR("h:bogus"));
    cr_assert(kf_str_eq(req.host, KF_STR("h")));
    cr_assert_eq(req.port, 80, "bad port falls back to the scheme default");
    kf_req_set_host(&req, KF_STR("h:70000"));
    cr_assert_eq(req.port, 80);
}

Test(req, api_key)
{
    kf_req_init(&req);
    cr_assert_eq(kf_req_api_key(&req).n, 0);
    kf_req_add_header(&req, KF_STR("x-api-key"), KF_STR("sk-kimi-x"), KF_STR(""));
    cr_assert(kf_str_eq(kf_req_api_key(&req), KF_STR("sk-kimi-x")));
    kf_req_add_header(&req, KF_STR("authorization"), KF_STR("Basic Zm9v"), KF_STR(""));
    cr_assert(kf_str_eq(kf_req_api_key(&req), KF_STR("sk-kimi-x")), "Basic is not a key");
    kf_req_add_header(&req, KF_STR("Authorization"), KF_STR("bearer  sk-abc "), KF_STR(""));
    cr_assert(kf_str_eq(kf_req_api_key(&req), KF_STR("sk-abc")), "Bearer wins, trimmed");
    req.hdr[2].state = KF_HDR_REMOVED;
    cr_assert(kf_str_eq(kf_req_api_key(&req), KF_STR("sk-kimi-x")));
}

Test(req, strings)
{
    cr_assert(kf_str_eq(KF_STR(""), (kf_str){ NULL, 0 }));
    cr_assert(kf_str_ieq(KF_STR("X-Msh-Platform"), KF_STR("x-msh-platform")));
    cr_assert_not(kf_str_ieq(KF_STR("abc"), KF_STR("abd")));
    cr_assert(kf_str_ieq_c(KF_STR("HOST"), "host"));
    cr_assert(kf_str_eq(kf_str_trim(KF_STR(" \t a b \t")), KF_STR("a b")));
    cr_assert_eq(kf_str_c(NULL).n, 0);
}

Test(req, glob)
{
    cr_assert(kf_glob("sk-kimi-*", KF_STR("sk-kimi-abc")));
    cr_assert(kf_glob("sk-kimi-*", KF_STR("sk-kimi-")));
    cr_assert_not(kf_glob("sk-kimi-*", KF_STR("sk-abc")));
    cr_assert_not(kf_glob("sk-kimi-*", KF_STR("SK-KIMI-abc")), "case-sensitive");
    cr_assert(kf_glob_ci("sk-kimi-*", KF_STR("SK-KIMI-abc")));
    cr_assert(kf_glob("a?c", KF_STR("abc")));
    cr_assert_not(kf_glob("a?c", KF_STR("ac")));
    cr_assert(kf_glob("*", KF_STR("")));
    cr_assert(kf_glob("", KF_STR("")));
    cr_assert_not(kf_glob("", KF_STR("a")));
    cr_assert(kf_glob("*a*b*c", KF_STR("xxaxxbxxbc")));
    cr_assert_not(kf_glob("*a*b*c", KF_STR("xxaxxbxxb")));
    cr_assert(kf_glob("kimi_code_cli", KF_STR("kimi_code_cli")));
    cr_assert_not(kf_glob("kimi_code_cli", KF_STR("kimi_code_cli2")));
    /* a hostile pattern stays fast (no exponential backtracking) */
    cr_assert_not(kf_glob("*a*a*a*a*a*a*a*a*a*b",
                          KF_STR("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")));
}

Test(req, summary)
{
    kf_test_parse(&req,
                  "POST /coding/v1/v1/messages?beta=true HTTP/1.1\r\n"
                  "Host: api.kimi.com\r\n"
                  "x-msh-platform: kimi_code_cli\r\n"
                  "Authorization: Bearer sk-kimi-secret\r\n"
                  "X-Gone: 1\r\n"
                  "\r\n",
                  1);
    req.orig_path = req.path;
    req.path = KF_STR("/coding/v1/messages");
    req.hdr[1].value = KF_STR("kimi_cli");
    req.hdr[1].state = KF_HDR_CHANGED;
    req.hdr[2].value = KF_STR("Bearer sk-kimi-other");
    req.hdr[2].state = KF_HDR_CHANGED;
    req.hdr[3].state = KF_HDR_REMOVED;
    kf_req_add_header(&req, KF_STR("X-New"), KF_STR("v"), (kf_str){ NULL, 0 });
    req.hdr[4].state = KF_HDR_ADDED;
    req.upstream_host = KF_STR("api.kimi.com");
    char buf[512];
    size_t n = kf_req_summary(&req, buf, sizeof buf);
    cr_assert_str_eq(buf, "POST /coding/v1/v1/messages?beta=true -> /coding/v1/messages?beta=true; "
                          "x-msh-platform: kimi_code_cli -> kimi_cli; "
                          "Authorization: [redacted] -> [redacted]; -X-Gone; +X-New: v; "
                          "upstream api.kimi.com");
    cr_assert_eq(n, strlen(buf));
    cr_assert_null(strstr(buf, "secret"));
    req.upstream_port = 8443;
    kf_req_summary(&req, buf, sizeof buf);
    cr_assert(strstr(buf, "; upstream api.kimi.com:8443"), "%s", buf);
    /* truncation: always terminated, returns what was written */
    char small[10];
    n = kf_req_summary(&req, small, sizeof small);
    cr_assert_eq(n, 9);
    cr_assert_str_eq(small, "POST /cod");
}

Test(req, summary_unchanged_redacts_query)
{
    kf_test_parse(&req, "GET /v1/models?api_key=sk-123&x=1 HTTP/1.1\nHost: h\n\n", 0);
    req.orig_path = req.path;
    char buf[256];
    kf_req_summary(&req, buf, sizeof buf);
    cr_assert_str_eq(buf, "GET /v1/models?api_key=[redacted]&x=1");
}

Test(req, test_helpers_roundtrip)
{
    static const char *heads[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nX:  y \r\n\r\n",
        "GET /a?b HTTP/1.0\nHost: a\n\n",
    };
    for (size_t i = 0; i < 2; i++) {
        char out[256];
        kf_test_parse(&req, heads[i], 0);
        kf_test_serialize(&req, heads[i], out, sizeof out);
        cr_assert_str_eq(out, heads[i]);
    }
}

/* The shim's printf-free path building (kf_str.h). */
Test(str, cat3_and_utoa)
{
    char b[16], u[11];
    cr_assert_eq(kf_cat3(b, sizeof b, "/tmp", "/", "x"), 6);
    cr_assert_str_eq(b, "/tmp/x");
    cr_assert_eq(kf_cat3(b, sizeof b, "abc", "", NULL), 3);
    cr_assert_str_eq(b, "abc");
    cr_assert_eq(kf_cat3(b, sizeof b, "0123456789", "abcde", NULL), 15); /* exactly fits */
    cr_assert_eq(kf_cat3(b, sizeof b, "0123456789", "abcdef", NULL), -1);
    cr_assert_str_eq(b, "");
    cr_assert_eq(kf_cat3(b, 0, "", "", NULL), -1);
    cr_assert_str_eq(kf_utoa(0, u), "0");
    cr_assert_str_eq(kf_utoa(1001, u), "1001");
    cr_assert_str_eq(kf_utoa(4294967295u, u), "4294967295");
}

/* Host names compare by ASCII case only, whatever the host program's
 * locale (strcasecmp in tr_TR does not fold 'I' to 'i'). */
Test(str, ascii_ieq)
{
    cr_assert(kf_ascii_ieq("API.KIMI.COM", "api.kimi.com"));
    cr_assert(kf_ascii_ieq("", ""));
    cr_assert_not(kf_ascii_ieq("api.kimi.co", "api.kimi.com"));
    cr_assert_not(kf_ascii_ieq("\xc4\xb1", "i")); /* dotless i is not i */
    cr_assert_not(kf_ascii_ieq("\xc9", "\xe9"));  /* Latin-1 E/e acute: not ASCII, not folded */
}
