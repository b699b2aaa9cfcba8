/* explain.c - `kimifix explain [-f FILE] [--carrier relay|inprocess]
 * METHOD URL [-H 'Name: value']...`: build the request a client would send,
 * run the rules on it, and print it before and after (secrets redacted),
 * with the rules that fired or were skipped. No network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kf_log.h"
#include "kf_mask.h"
#include "kf_rules.h"
#include "kf_rules_policy.h"

#define MAX_H 64

typedef struct url {
    int tls;
    char host[256]; /* without brackets */
    unsigned port;  /* 0 = scheme default */
    const char *path;
    size_t path_n;
    const char *query;
    size_t query_n;
} url;

static int bad(const char *msg, const char *arg)
{
    fprintf(stderr, "kimifix explain: %s%s%s\n", msg, arg ? ": " : "", arg ? kf_cli_esc(arg) : "");
    return 2;
}

static int parse_url(const char *s, url *u)
{
    memset(u, 0, sizeof *u);
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f)
            return bad("URL must not contain spaces or control characters", s);
    if (!strncmp(s, "https://", 8)) {
        u->tls = 1;
        s += 8;
    } else if (!strncmp(s, "http://", 7)) {
        s += 7;
    } else {
        return bad("URL must start with http:// or https://", s);
    }
    size_t an = strcspn(s, "/?#");
    const char *auth = s, *rest = s + an;
    const char *at = memrchr(auth, '@', an);
    if (at) { /* drop user:password@ */
        an -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    const char *hs = auth, *ps = NULL;
    size_t hn = an;
    if (an && auth[0] == '[') {
        const char *close = memchr(auth, ']', an);
        if (!close)
            return bad("bad IPv6 address in URL", auth);
        hs = auth + 1;
        hn = (size_t)(close - hs);
        if (close + 1 < auth + an) {
            if (close[1] != ':')
                return bad("bad URL authority", auth);
            ps = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', an);
        if (colon) {
            hn = (size_t)(colon - auth);
            ps = colon + 1;
        }
    }
    if (hn == 0 || hn >= sizeof u->host)
        return bad("URL has no host", auth);
    memcpy(u->host, hs, hn);
    if (ps) {
        char *end;
        unsigned long p = strtoul(ps, &end, 10);
        if (end != auth + an || p == 0 || p > 65535)
            return bad("bad port in URL", ps);
        u->port = (unsigned)p;
    }
    size_t pn = strcspn(rest, "?#");
    u->path = pn ? rest : "/";
    u->path_n = pn ? pn : 1;
    if (rest[pn] == '?') {
        u->query = rest + pn;
        u->query_n = strcspn(rest + pn, "#");
    } else {
        u->query = "";
    }
    return 0;
}

/* Parse the head we built (request line, header lines, all CRLF) into req;
 * every view points into `head`, lines keep their CRLF, as kf_stream does. */
static void parse_head(const char *head, kf_req *req)
{
    const char *p = head, *eol = strstr(p, "\r\n");
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = memrchr(p, ' ', (size_t)(eol - p));
    req->method = (kf_str){ p, (size_t)(sp1 - p) };
    kf_str target = { sp1 + 1, (size_t)(sp2 - sp1 - 1) };
    const char *qm = memchr(target.p, '?', target.n);
    size_t pl = qm ? (size_t)(qm - target.p) : target.n;
    req->path = (kf_str){ target.p, pl };
    req->query = (kf_str){ target.p + pl, target.n - pl };
    req->version = (kf_str){ sp2 + 1, (size_t)(eol - sp2 - 1) };
    p = eol + 2;
    while (strncmp(p, "\r\n", 2) != 0) {
        eol = strstr(p, "\r\n");
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        kf_str name = { p, (size_t)(colon - p) };
        kf_str value = kf_str_trim((kf_str){ colon + 1, (size_t)(eol - colon - 1) });
        kf_req_add_header(req, name, value, (kf_str){ p, (size_t)(eol + 2 - p) });
        p = eol + 2;
    }
}

static void print_target(const char *lead, kf_str method, kf_str path, kf_str query, kf_str version)
{
    char t[4096];
    kf_redact_target(path, query, t, sizeof t);
    printf("%s%.*s %s %.*s\n", lead, (int)method.n, method.p, kf_cli_esc(t), (int)version.n, version.p);
}

static void print_header(kf_str name, kf_str value)
{
    char v[4096];
    kf_redact_value(name, value, v, sizeof v);
    printf("  %.*s: %s\n", (int)name.n, name.p, kf_cli_esc(v));
}

static void print_after(const kf_req *req)
{
    print_target("  ", req->method, req->path, req->query, req->version);
    for (unsigned i = 0; i < req->nhdr; i++)
        if (req->hdr[i].state != KF_HDR_REMOVED)
            print_header(req->hdr[i].name, req->hdr[i].value);
}

static void print_rules(const kf_rule *const *rules, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        printf("%s%s (%s)", i ? ", " : "", kf_rule_name(rules[i]), kf_cli_esc(kf_rule_origin(rules[i])));
}

static int explain(const kf_ruleset *rs, const kf_rules_src *src, int inprocess,
                   const char *method, const url *u, char **hdrs, int nh)
{
    /* The head as a client would write it: request line, Host (unless
     * given with -H), then the -H headers in order. */
    size_t cap = 4096 + strlen(u->host) + u->path_n + u->query_n + strlen(method);
    for (int i = 0; i < nh; i++)
        cap += strlen(hdrs[i]) + 4;
    char *head = malloc(cap);
    kf_req *req = malloc(sizeof *req);
    if (!head || !req) {
        free(head);
        free(req);
        return bad("out of memory", NULL);
    }
    int has_host = 0;
    for (int i = 0; i < nh; i++)
        if (!strncasecmp(hdrs[i], "host:", 5))
            has_host = 1;
    size_t o = (size_t)snprintf(head, cap, "%s %.*s%.*s HTTP/1.1\r\n", method, (int)u->path_n,
                                u->path, (int)u->query_n, u->query);
    if (!has_host) {
        int v6 = strchr(u->host, ':') != NULL;
        o += (size_t)snprintf(head + o, cap - o, "Host: %s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
        if (u->port)
            o += (size_t)snprintf(head + o, cap - o, ":%u", u->port);
        o += (size_t)snprintf(head + o, cap - o, "\r\n");
    }
    for (int i = 0; i < nh; i++) {
        const char *c = strchr(hdrs[i], ':');
        o += (size_t)snprintf(head + o, cap - o, "%.*s: %s\r\n", (int)(c - hdrs[i]), hdrs[i],
                              c + 1 + strspn(c + 1, " \t"));
    }
    snprintf(head + o, cap - o, "\r\n");

    kf_req_init(req);
    req->tls = u->tls;
    parse_head(head, req);
    int hi = kf_req_find_header(req, KF_STR("Host"), 0);
    kf_req_set_host(req, req->hdr[hi].value);
    kf_str host0 = req->host;
    unsigned port0 = req->port;
    kf_req_note_keys(req); /* the key repeated in another header is masked too */

    char pl[5200];
    if (src->fallback)
        printf("rules: built-in defaults only -- %s\n",
               kf_cli_esc(kf_rules_policy_line(src, pl, sizeof pl)));
    else
        printf("rules: built-in defaults%s%s\n", src->path[0] ? " + " : "", kf_cli_esc(src->path));
    printf("carrier: %s\n", inprocess ? "inprocess (cannot choose the upstream connection)"
                                      : "relay (can choose the upstream connection)");
    printf("\nbefore:\n");
    print_target("  ", req->method, req->path, req->query, req->version);
    for (unsigned i = 0; i < req->nhdr; i++)
        print_header(req->hdr[i].name, req->hdr[i].value);

    kf_rules_apply(rs, req, inprocess ? 0 : KF_CAP_UPSTREAM);

    printf("\nafter:\n");
    print_after(req);
    printf("\n");
    if (req->nfired) {
        printf("fired: ");
        print_rules(req->fired, req->nfired);
        printf("\n");
    } else {
        printf("fired: none (the request goes out unchanged)\n");
    }
    for (unsigned i = 0; i < req->nskipped; i++)
        printf("skipped: %s (%s): has an 'upstream' action, which needs a carrier that can choose "
               "the connection; none of its actions applied\n",
               kf_rule_name(req->skipped[i]), kf_cli_esc(kf_rule_origin(req->skipped[i])));
    if (req->upstream_host.n)
        printf("upstream: %.*s:%u (was %.*s:%u)\n", (int)req->upstream_host.n, req->upstream_host.p,
               req->port, (int)host0.n, host0.p, port0);
    char hbuf[300];
    snprintf(hbuf, sizeof hbuf, "%.*s", (int)req->host.n, req->host.p);
    const char *addr;
    unsigned aport;
    if (kf_rules_connect_to(rs, hbuf, req->port, &addr, &aport))
        printf("connect-to: %s:%u -> %s%s%s:%u\n", hbuf, req->port, strchr(addr, ':') ? "[" : "",
               addr, strchr(addr, ':') ? "]" : "", aport);
    if (req->nfired) {
        char text[2048], shown[4096];
        kf_req_log_text(req, text, sizeof text);
        /* masked and escaped as kf_vlog() would */
        kf_mask_text(text, strlen(text), shown, sizeof shown, NULL, 0, KF_MASK_SECRETS | KF_MASK_ESCAPE);
        printf("log: kimifix[PID]: [%s] %.*s: %s\n", inprocess ? "inprocess" : "relay", (int)host0.n,
               host0.p, shown);
    }
    free(head);
    free(req);
    return 0;
}

static int valid_header_arg(const char *h)
{
    const char *c = strchr(h, ':');
    if (!c || c == h)
        return 0;
    for (const char *q = h; q < c; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *q))
            return 0;
    for (const char *q = c + 1; *q; q++)
        if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
            return 0;
    return 1;
}

int kf_cli_explain(int argc, char **argv)
{
    const char *file = NULL, *method = NULL, *target = NULL;
    int inprocess = 0, nh = 0;
    char *hdrs[MAX_H];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            puts("usage: kimifix explain [-f FILE] [--carrier relay|inprocess] METHOD URL "
                 "[-H 'Name: value']...");
            return 0;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--carrier") || !strcmp(a, "-H")) {
            if (i + 1 >= argc)
                return bad("missing argument after", a);
            const char *v = argv[++i];
            if (a[1] == 'f') {
                file = v;
            } else if (a[1] == '-') {
                if (strcmp(v, "relay") && strcmp(v, "inprocess"))
                    return bad("--carrier must be relay or inprocess", v);
                inprocess = !strcmp(v, "inprocess");
            } else {
                if (!valid_header_arg(v))
                    return bad("-H wants 'Name: value'", v);
                if (nh == MAX_H)
                    return bad("too many -H", NULL);
                hdrs[nh++] = argv[i];
            }
        } else if (a[0] == '-' && a[1]) {
            return bad("unknown option", a);
        } else if (!method) {
            method = a;
        } else if (!target) {
            target = a;
        } else {
            return bad("unexpected argument", a);
        }
    }
    if (!method || !target)
        return bad("usage: kimifix explain [-f FILE] [--carrier relay|inprocess] METHOD URL "
                   "[-H 'Name: value']...", NULL);
    for (const char *q = method; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f)
            return bad("bad method", method);
    url u;
    if (parse_url(target, &u))
        return 2;
    /* A broken rules file: explained as every carrier runs it, with the
     * built-in rules (kf_rules_policy.h); every error on stderr, exit 1. */
    char buf[4096];
    kf_rules_src src;
    if (!file)
        file = kf_rules_default_path(buf, sizeof buf);
    kf_ruleset *rs = kf_rules_load_policy(file, kf_cli_diag_stderr, NULL, &src);
    if (!rs)
        return bad("out of memory", NULL);
    int rc = explain(rs, &src, inprocess, method, &u, hdrs, nh);
    kf_ruleset_free(rs);
    return rc ? rc : src.fallback ? 1 : 0;
}
