/* test_relay_unit.c - unit tests for the relay's pure parts: the PROXY v2
 * encoder/decoder (round trips, every truncation, random garbage), the
 * state file, private directories, rule hosts, and the
 * response tap's JSON error extraction and framing. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_log.h"
#include "kf_paths.h"
#include "kf_proxy.h"
#include "kf_rules.h"
#include "kf_rules_hosts.h"
#include "kf_steer.h"
#include "relay.h"

static const unsigned char tok[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static struct sockaddr_in v4(const char *a, unsigned port)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, a, &s.sin_addr);
    return s;
}

Test(proxy, roundtrip_v4)
{
    unsigned char b[KF_PROXY_MAX];
    struct sockaddr_in d = v4("203.0.113.7", 443);
    ssize_t n = kf_proxy_encode(b, sizeof b, 0, NULL, (struct sockaddr *)&d, "api.kimi.com", tok);
    cr_assert_gt(n, 16);
    kf_proxy_info pi;
    cr_assert_eq(kf_proxy_parse(b, (size_t)n, &pi), n);
    cr_assert_eq(pi.family, AF_INET);
    cr_assert_not(pi.local);
    struct sockaddr_in *o = (struct sockaddr_in *)&pi.dst;
    cr_assert_eq(o->sin_addr.s_addr, d.sin_addr.s_addr);
    cr_assert_eq(ntohs(o->sin_port), 443);
    cr_assert_str_eq(pi.authority, "api.kimi.com");
    cr_assert(pi.has_token);
    cr_assert_eq(memcmp(pi.token, tok, 16), 0);
    /* every proper prefix: need more (0), never success or a crash */
    for (ssize_t i = 0; i < n; i++)
        cr_assert_eq(kf_proxy_parse(b, (size_t)i, &pi), 0, "prefix %zd", i);
}

Test(proxy, roundtrip_v6_and_local)
{
    unsigned char b[KF_PROXY_MAX];
    struct sockaddr_in6 d = {.sin6_family = AF_INET6, .sin6_port = htons(8443)};
    inet_pton(AF_INET6, "2001:db8::1", &d.sin6_addr);
    ssize_t n = kf_proxy_encode(b, sizeof b, 0, NULL, (struct sockaddr *)&d, NULL, tok);
    kf_proxy_info pi;
    cr_assert_eq(kf_proxy_parse(b, (size_t)n, &pi), n);
    cr_assert_eq(pi.family, AF_INET6);
    cr_assert_eq(memcmp(&((struct sockaddr_in6 *)&pi.dst)->sin6_addr, &d.sin6_addr, 16), 0);
    cr_assert_str_eq(pi.authority, "");
    n = kf_proxy_encode(b, sizeof b, 1, NULL, NULL, NULL, tok);
    cr_assert_eq(kf_proxy_parse(b, (size_t)n, &pi), n);
    cr_assert(pi.local);
    cr_assert(pi.has_token);
}

Test(proxy, rejects)
{
    unsigned char b[KF_PROXY_MAX];
    struct sockaddr_in d = v4("127.0.0.1", 80);
    kf_proxy_info pi;
    cr_assert_eq(kf_proxy_encode(b, sizeof b, 0, NULL, (struct sockaddr *)&d, "bad host", tok), -1);
    cr_assert_eq(kf_proxy_encode(b, 10, 0, NULL, (struct sockaddr *)&d, NULL, tok), -1);
    cr_assert_eq(kf_proxy_parse("GET / HTTP/1.1\r\n\r\n", 18, &pi), -1);
    cr_assert_eq(kf_proxy_parse("PROXY TCP4 1.2.3.4", 18, &pi), -1); /* v1 is not accepted */
    ssize_t n = kf_proxy_encode(b, sizeof b, 0, NULL, (struct sockaddr *)&d, "a.b", tok);
    unsigned char c[KF_PROXY_MAX];
    memcpy(c, b, (size_t)n);
    c[n - 17] = 15; /* token TLV with a wrong length */
    cr_assert_eq(kf_proxy_parse(c, (size_t)n, &pi), -1);
    memcpy(c, b, (size_t)n);
    c[14] = 0xff; /* announced length beyond KF_PROXY_MAX */
    cr_assert_eq(kf_proxy_parse(c, (size_t)n, &pi), -1);
    memcpy(c, b, (size_t)n);
    c[13] = 0x12; /* UDP */
    cr_assert_eq(kf_proxy_parse(c, (size_t)n, &pi), -1);
}

Test(proxy, random_garbage_after_signature)
{
    unsigned char b[KF_PROXY_MAX + 16];
    struct sockaddr_in d = v4("127.0.0.1", 80);
    kf_proxy_info pi;
    srand(42);
    for (int round = 0; round < 20000; round++) {
        ssize_t n = kf_proxy_encode(b, sizeof b, 0, NULL, (struct sockaddr *)&d, "x.y", tok);
        int flips = 1 + rand() % 4;
        for (int f = 0; f < flips; f++)
            b[12 + rand() % (n - 12)] = (unsigned char)rand();
        size_t len = (size_t)(rand() % (n + 8));
        ssize_t r = kf_proxy_parse(b, len, &pi);
        cr_assert(r >= -1 && r <= (ssize_t)len);
        if (r > 0 && pi.authority[0])
            cr_assert(kf_proxy_valid_host(pi.authority, strlen(pi.authority)));
    }
}

static char tmpd[64];

static void mk_tmp(void)
{
    snprintf(tmpd, sizeof tmpd, "/tmp/kfrelay-unit.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpd));
}

Test(paths, state_roundtrip_and_modes)
{
    mk_tmp();
    kf_relay_state st = {.port = 4321, .v6 = 1, .pid = getpid(), .started = 99};
    memcpy(st.token, tok, 16);
    cr_assert_eq(kf_relay_state_write(tmpd, &st), 0);
    kf_relay_state rd;
    cr_assert_eq(kf_relay_state_read(tmpd, &rd), 0);
    cr_assert_eq(rd.port, 4321);
    cr_assert_eq(rd.pid, getpid());
    cr_assert_eq(rd.v6, 1);
    cr_assert_eq(memcmp(rd.token, tok, 16), 0);
    cr_assert(kf_relay_state_alive(&rd));
    char p[128];
    struct stat sb;
    kf_path_join(p, sizeof p, tmpd, KF_RELAY_STATE_FILE);
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    chmod(p, 0644); /* readable by others: not trusted */
    cr_assert_eq(kf_relay_state_read(tmpd, &rd), -1);
    unlink(p);
    cr_assert_eq(kf_relay_state_read(tmpd, &rd), -1);
    rmdir(tmpd);
}

Test(paths, private_dir_checks)
{
    mk_tmp();
    char d[128], l[128];
    snprintf(d, sizeof d, "%s/priv", tmpd);
    cr_assert_eq(kf_private_dir(d, 1), 0);
    struct stat sb;
    stat(d, &sb);
    cr_assert_eq(sb.st_mode & 0777, 0700);
    chmod(d, 0777);
    cr_assert_eq(kf_private_dir(d, 1), -1); /* other-writable: refused */
    chmod(d, 0700);
    snprintf(l, sizeof l, "%s/link", tmpd);
    symlink(d, l);
    cr_assert_eq(kf_private_dir(l, 0), -1); /* a symlink: refused */
    unlink(l);
    rmdir(d);
    rmdir(tmpd);
}

Test(paths, runtime_and_data_dirs)
{
    mk_tmp();
    char x[128], b[4096];
    snprintf(x, sizeof x, "%s/run", tmpd);
    mkdir(x, 0700);
    setenv("XDG_RUNTIME_DIR", x, 1);
    cr_assert_eq(kf_runtime_dir(b, sizeof b, 1), 0);
    cr_assert(strstr(b, "/run/kimifix"));
    setenv("XDG_DATA_HOME", "", 1);
    snprintf(x, sizeof x, "%s/home", tmpd);
    setenv("HOME", x, 1);
    cr_assert_eq(kf_data_dir(b, sizeof b, 1), 0);
    cr_assert(strstr(b, "/home/.local/share/kimifix"));
    unsetenv("XDG_RUNTIME_DIR");
    cr_assert_eq(kf_runtime_dir(b, sizeof b, 0) == 0 || 1, 1);
    char want[64];
    snprintf(want, sizeof want, "/tmp/kimifix-%u", (unsigned)geteuid());
    cr_assert_str_eq(b, want);
}

/* Trust variables: tests/trust/test_trust_core.c (trust-ctx). */

Test(rules, hosts_listed)
{
    const char *txt = "rule any\n  set-header X-A b\n"
                      "rule w\n  host *.example.org\n  set-header X-B c\n";
    kf_ruleset *rs = kf_ruleset_load_text(txt, strlen(txt), "t", NULL, NULL, NULL);
    cr_assert_not_null(rs);
    cr_assert(kf_rules_host_listed(rs, "api.kimi.com", 443));
    cr_assert(kf_rules_host_listed(rs, "API.Kimi.COM.", 0));
    cr_assert(kf_rules_host_listed(rs, "a.example.org", 443));
    cr_assert_not(kf_rules_host_listed(rs, "example.org", 443));
    /* a rule without host condition does not list every host */
    cr_assert_not(kf_rules_host_listed(rs, "evil.example.com", 443));
    cr_assert(kf_rules_host_relevant(rs, "evil.example.com", 443));
    const char *n;
    int wild, found_wild = 0, count = 0;
    for (unsigned i = 0; kf_rules_host_at(rs, i, &n, &wild); i++) {
        count++;
        if (wild) {
            cr_assert_str_eq(n, ".example.org");
            found_wild = 1;
        }
        for (unsigned j = 0; j < i; j++) {
            const char *m;
            int w2;
            kf_rules_host_at(rs, j, &m, &w2);
            cr_assert(strcmp(m, n), "duplicate %s", n);
        }
    }
    cr_assert(found_wild);
    cr_assert_geq(count, 5);
    kf_ruleset_free(rs);
}

Test(tap, json_message)
{
    char m[200];
    const char *a = "{\"error\":{\"message\":\"Kimi For Coding is \\\"only\\\" for agents\","
                    "\"type\":\"access_terminated_error\"}}";
    cr_assert(tap_json_message(a, strlen(a), m, sizeof m));
    cr_assert_str_eq(m, "Kimi For Coding is \"only\" for agents");
    const char *b = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\" : \"The engine\\nis overloaded\"}}";
    cr_assert(tap_json_message(b, strlen(b), m, sizeof m));
    cr_assert_str_eq(m, "The engine is overloaded");
    cr_assert_not(tap_json_message("{\"ok\":1}", 8, m, sizeof m));
    cr_assert_not(tap_json_message("{\"message\":", 11, m, sizeof m)); /* cut short */
}

Test(tap, framing_pairs_responses)
{
    /* Keep-alive responses fed 1 byte at a time: chunked with extension and
     * trailer, a 100 Continue, an error with a JSON body, a HEAD answer
     * (Content-Length but no body); the log must pair each with its request. */
    mk_tmp();
    char logp[128], text[4096] = "";
    snprintf(logp, sizeof logp, "%s/log", tmpd);
    cr_assert_eq(kf_log_open(logp), 0);
    kf_log_set_level(KF_LOG_DEBUG);
    resp_tap *t = tap_new("h");
    tap_request(t, "GET /a", 0, 1);
    tap_request(t, "POST /b", 0, 1);
    tap_request(t, "HEAD /c", 1, 1);
    tap_request(t, "GET /d", 0, 0);
    tap_request(t, "GET /e", 0, 0);
    const char *err = "{\"error\":{\"message\":\"nope\"}}";
    char s[1024];
    snprintf(s, sizeof s,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
             "HTTP/1.1 100 Continue\r\n\r\n"
             "HTTP/1.1 403 Forbidden\r\nContent-Length: %zu\r\n\r\n%s"
             "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
             "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
             strlen(err), err);
    for (size_t i = 0; s[i]; i++)
        tap_feed(t, s + i, 1);
    tap_finish(t);
    tap_free(t);
    kf_log_close();
    FILE *f = fopen(logp, "r");
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cr_assert(strstr(text, "[relay] h: GET /a => 200\n"), "%s", text);
    cr_assert(strstr(text, "[relay] h: POST /b => 403: nope\n"), "%s", text);
    cr_assert(strstr(text, "[relay] h: HEAD /c => 200\n"), "%s", text);
    cr_assert(strstr(text, "[relay] h: GET /d => 404\n"), "%s", text);
    cr_assert(strstr(text, "[relay] h: GET /e => no response\n"), "%s", text);
}

Test(steer, wanted_matrix)
{
    kf_ruleset *rs = kf_ruleset_builtin();
    cr_assert_not_null(rs);
    /* auto: in-process when the TLS is interposable, unless upstream is needed */
    cr_assert_not(kf_steer_wanted(rs, "api.kimi.com", 443, KF_MODE_AUTO, 1));
    cr_assert(kf_steer_wanted(rs, "api.kimi.com", 443, KF_MODE_AUTO, 0));
    cr_assert(kf_steer_wanted(rs, "api.moonshot.ai", 443, KF_MODE_AUTO, 1)); /* sk-kimi- routing */
    cr_assert(kf_steer_wanted(rs, "api.kimi.com", 443, KF_MODE_RELAY, 1));
    cr_assert_not(kf_steer_wanted(rs, "api.kimi.com", 443, KF_MODE_INPROCESS, 0));
    cr_assert_not(kf_steer_wanted(rs, "api.kimi.com", 443, KF_MODE_OFF, 0));
    /* never a host the rules do not name */
    cr_assert_not(kf_steer_wanted(rs, "auth.kimi.com", 443, KF_MODE_RELAY, 0));
    cr_assert_not(kf_steer_wanted(rs, "example.com", 443, KF_MODE_RELAY, 0));
    kf_ruleset_free(rs);
}

static int listener(unsigned *port)
{
    struct sockaddr_in a = v4("127.0.0.1", 0);
    socklen_t l = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    listen(fd, 4);
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

Test(steer, preamble_then_fallback_direct)
{
    unsigned rport, dport;
    int rl = listener(&rport), dl = listener(&dport);
    kf_relay_state st = {.port = rport};
    memcpy(st.token, tok, 16);
    kf_steer_io io = {.connect = connect, .write = write};
    struct sockaddr_in d = v4("198.51.100.9", 443);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    cr_assert_eq(kf_steer_connect(fd, (struct sockaddr *)&d, sizeof d, "api.kimi.com", &st, &io), 0);
    cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    int a = accept(rl, NULL, NULL);
    unsigned char b[KF_PROXY_MAX];
    ssize_t n = read(a, b, sizeof b);
    kf_proxy_info pi;
    cr_assert_eq(kf_proxy_parse(b, (size_t)n, &pi), n);
    cr_assert_str_eq(pi.authority, "api.kimi.com");
    cr_assert_eq(((struct sockaddr_in *)&pi.dst)->sin_addr.s_addr, d.sin_addr.s_addr);
    close(a);
    close(fd);
    /* relay gone: -1, and the same socket can still connect directly */
    close(rl);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(kf_steer_connect(fd, (struct sockaddr *)&d, sizeof d, NULL, &st, &io), -1);
    struct sockaddr_in direct = v4("127.0.0.1", dport);
    cr_assert_eq(connect(fd, (struct sockaddr *)&direct, sizeof direct), 0);
    close(fd);
    close(dl);
}
