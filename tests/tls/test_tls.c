/* test_tls.c - the TLS and libcurl hook families, driven through real
 * programs under LD_PRELOAD=libkimifix.so against a recording TLS server
 * (tlsrec.c, threads of this test process, never preloaded).
 *
 * Paths come from the build: KF_TEST_BUILD (the build dir, absolute) and
 * KF_TEST_SRC (the source tree). Certificates: $(B)/tests/tls/certs, made
 * by mk/tls.mk with tests/tls/mkcerts.sh before the run.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "kfreq.h"
#include "tlsrec.h"
#include "tlsrun.h"

#ifndef KF_TEST_BUILD
#define KF_TEST_BUILD "build"
#endif
#ifndef KF_TEST_SRC
#define KF_TEST_SRC "."
#endif

#define BIN KF_TEST_BUILD "/tests/tls/"
#define CERTS KF_TEST_BUILD "/tests/tls/certs"
#define CA CERTS "/ca.pem"
#define LIB KF_TEST_BUILD "/libkimifix.so"

/* Run argv with LD_PRELOAD=the library when `preload` (tlsrun.h). */
static struct out run(const char *const argv[], const char *const extra[], int preload)
{
    return tls_run(argv, extra, preload ? LIB : NULL);
}

static tlsrec *server(int flags)
{
    tlsrec *r = tlsrec_start(CERTS, flags);
    cr_assert(r, "recording server did not start (certs in " CERTS "?)");
    return r;
}

static void expect_conns(tlsrec *r, int n)
{
    cr_assert_eq(tlsrec_wait(r, n, 60000), n, "server saw %d of %d connections",
                 tlsrec_wait(r, n, 0), n);
}

/* The recorded bytes of connection i equal exp[0..n). */
static void expect_bytes(tlsrec *r, int i, const char *exp, size_t n)
{
    const struct tlsrec_conn *c = tlsrec_conn(r, i);
    cr_assert(c, "no connection %d", i);
    size_t k = 0;
    while (k < n && k < c->len && exp[k] == c->data[k])
        k++;
    cr_assert(c->len == n && k == n,
              "conn %d: got %zu bytes, want %zu; first difference at %zu:\n got: %.80s\nwant: %.80s", i,
              c->len, n, k, c->data ? c->data + (k > 20 ? k - 20 : 0) : "",
              exp + (k > 20 ? k - 20 : 0));
}

static void expect_fixed(tlsrec *r, int i, const char *host, size_t body)
{
    size_t n;
    char *exp = kfreq_fixed(host, body, &n);
    expect_bytes(r, i, exp, n);
    free(exp);
}

static void expect_orig(tlsrec *r, int i, const char *host, const char *path, size_t body)
{
    size_t n;
    char *exp = kfreq_make(host, path, body, &n);
    expect_bytes(r, i, exp, n);
    free(exp);
}

static int retries_of(const struct out *o)
{
    const char *p = strstr(o->out, "retries=");
    return p ? atoi(p + 8) : -1;
}

/* ---------------- one client case, table-driven ----------------
 *
 * A case names the server (flags), the client's arguments and what must
 * come out: its exit status 0, strings in its output and log, retries it
 * reports, the connections the server saw and, on each, the fixed request
 * (or the original one, byte for byte). Defaults: SNI api.kimi.com, under
 * the shim, one connection, fixed, a 13-byte body. */
struct tcase {
    int flags;               /* the server's TLSREC_* */
    const char *sni, *mode;  /* NULL sni: api.kimi.com */
    const char *more[8];     /* ossl_client's extra arguments */
    const char *alpn;        /* gnutls_client's offered ALPN ("": none) */
    int no_shim;             /* run without the shim */
    int conns;               /* 0: one */
    int orig;                /* the requests arrive unchanged (else fixed) */
    int unchecked;           /* only the connection count is checked */
    const char *path;        /* orig: the path sent (NULL: KFREQ_PATH) */
    long body;               /* 0: 13 bytes */
    const char *out, *log;   /* must appear in the output / the log */
    int retries;             /* the client must report retries */
    const char *server_alpn; /* the protocol the server must have agreed */
};

static char *itoa_port(tlsrec *r, char *buf)
{
    sprintf(buf, "%d", tlsrec_port(r));
    return buf;
}

static void check_case(tlsrec *r, struct out *o, const struct tcase *c)
{
    const char *sni = c->sni ? c->sni : "api.kimi.com";
    size_t body = c->body ? (size_t)c->body : 13;
    int conns = c->conns ? c->conns : 1;
    cr_assert_eq(o->status, 0, "%s%s", o->out, o->err);
    if (c->out)
        cr_assert(strstr(o->out, c->out), "want \"%s\" in: %s", c->out, o->out);
    if (c->log)
        cr_assert(strstr(o->err, c->log), "want \"%s\" in the log: %s", c->log, o->err);
    if (c->retries)
        cr_assert_gt(retries_of(o), 0, "no retry happened: the case proves nothing (%s)", o->out);
    expect_conns(r, conns);
    if (c->server_alpn)
        cr_assert_str_eq(tlsrec_conn(r, 0)->alpn, c->server_alpn);
    for (int i = 0; i < conns && !c->unchecked; i++) {
        if (c->orig)
            expect_orig(r, i, sni, c->path ? c->path : KFREQ_PATH, body);
        else
            expect_fixed(r, i, sni, body);
    }
    free_out(o);
}

/* ---------------- OpenSSL ---------------- */

static struct out ossl(tlsrec *r, const char *sni, const char *mode, const char *const more[], int preload)
{
    char port[16];
    const char *argv[32] = { BIN "ossl_client", "-p", itoa_port(r, port), "-s", sni, "-c", CA, "-m", mode };
    int n = 9;
    for (int i = 0; more && more[i]; i++)
        argv[n++] = more[i];
    argv[n] = NULL;
    return run(argv, NULL, preload);
}

static void ossl_case(const struct tcase *c)
{
    tlsrec *r = server(c->flags);
    struct out o = ossl(r, c->sni ? c->sni : "api.kimi.com", c->mode, c->more, !c->no_shim);
    check_case(r, &o, c);
}

#define OSSL(...) ossl_case(&(const struct tcase){ __VA_ARGS__ })
#define OK200 "status=HTTP/1.1 200 OK"
#define H11_200 "alpn=http/1.1 status=HTTP/1.1 200 OK"

Test(openssl, one_write) { OSSL(.mode = "one", .out = OK200, .log = "kimi-coding-double-v1"); }
Test(openssl, byte_per_write) { OSSL(.mode = "bytes"); }
Test(openssl, write_ex) { OSSL(.mode = "ex"); }
Test(openssl, write_ex_byte_per_write) { OSSL(.mode = "exbytes"); }
Test(openssl, nonblocking_want_write_slow_reader, .timeout = 120)
{
    OSSL(.flags = TLSREC_SLOW, .mode = "nb", .more = { "-b", "300000" }, .body = 300000, .retries = 1);
}
Test(openssl, nonblocking_split_head_slow_reader, .timeout = 120)
{
    OSSL(.flags = TLSREC_SLOW, .mode = "nbsplit", .more = { "-b", "200000", "-k", "17" }, .body = 200000,
         .retries = 1);
}
Test(openssl, other_host_byte_exact) { OSSL(.sni = "example.org", .mode = "one", .orig = 1); }
Test(openssl, other_path_byte_exact)
{
    OSSL(.mode = "bytes", .more = { "-P", "/v1/other" }, .orig = 1, .path = "/v1/other");
}
Test(openssl, baseline_without_shim) { OSSL(.mode = "one", .no_shim = 1, .orig = 1); }
Test(openssl, threads_each_connection_fixed, .timeout = 120) { OSSL(.mode = "threads", .conns = 64); }
/* fork with a half-written head in flight: the child's own connection and
 * the parent's are both fixed (objtab and head pools survive fork). */
Test(openssl, fork_with_head_in_flight) { OSSL(.mode = "fork", .conns = 2); }

Test(openssl, split_at_every_byte, .timeout = 120)
{
    tlsrec *r = server(0);
    struct out o = ossl(r, "api.kimi.com", "splitall", NULL, 1);
    cr_assert_eq(o.status, 0);
    size_t n;
    char *req = kfreq_make("api.kimi.com", KFREQ_PATH, 13, &n);
    int conns = (int)(strstr(req, "\r\n\r\n") + 4 - req) + 1; /* split points 1..head+1 */
    free(req);
    expect_conns(r, conns);
    for (int i = 0; i < conns; i++)
        expect_fixed(r, i, "api.kimi.com", 13);
    free_out(&o);
}

Test(openssl, mode_off_passes_through)
{
    tlsrec *r = server(0);
    char port[16];
    const char *argv[] = { BIN "ossl_client", "-p", itoa_port(r, port), "-s", "api.kimi.com",
                           "-c", CA, "-m", "one", NULL };
    const char *env[] = { "KIMIFIX_MODE=off", NULL };
    struct out o = run(argv, env, 1);
    check_case(r, &o, &(const struct tcase){ .orig = 1 });
}

/* An SSL reused with SSL_clear: the first connection's verdict (other
 * host: pass) must not stick to the second (api.kimi.com: fix). */
Test(openssl, ssl_clear_reuse_new_verdict)
{
    tlsrec *r = server(0);
    struct out o = ossl(r, "api.kimi.com", "clear", NULL, 1);
    cr_assert_eq(o.status, 0);
    expect_conns(r, 2);
    cr_assert_str_eq(tlsrec_conn(r, 0)->sni, "example.org");
    expect_orig(r, 0, "example.org", KFREQ_PATH, 13);
    expect_fixed(r, 1, "api.kimi.com", 13);
    free_out(&o);
}
/* ---------------- ALPN ---------------- */

/* No SSL_connect: the first SSL_write runs the handshake (ALPN must be
 * fixed before it). */
Test(alpn, implicit_handshake_in_first_write)
{
    OSSL(.flags = TLSREC_H2, .mode = "implicit", .more = { "-a", "h2,http/1.1" }, .out = H11_200);
}
Test(alpn, relevant_sni_ctx_list_drops_h2)
{
    OSSL(.flags = TLSREC_H2, .mode = "one", .more = { "-a", "h2,http/1.1" }, .out = H11_200);
}
Test(alpn, relevant_sni_ssl_list_drops_h2)
{
    OSSL(.flags = TLSREC_H2, .mode = "one", .more = { "-a", "h2,http/1.1", "-A" }, .out = "alpn=http/1.1 ");
}
Test(alpn, h2_only_list_becomes_http11)
{
    OSSL(.flags = TLSREC_H2, .mode = "one", .more = { "-a", "h2" }, .out = "alpn=http/1.1 ", .unchecked = 1);
}
Test(alpn, other_sni_keeps_h2)
{
    OSSL(.flags = TLSREC_H2, .sni = "example.org", .mode = "one", .more = { "-a", "h2,http/1.1", "-n" },
         .out = "alpn=h2 ", .server_alpn = "h2", .orig = 1);
}
/* Node's pattern: the first SSL_write runs the handshake on a non-blocking
 * socket, answers -1/WANT_READ and is retried with the same buffer. */
Test(alpn, nonblocking_handshake_in_first_write_retried)
{
    OSSL(.flags = TLSREC_H2 | TLSREC_SLOW_HANDSHAKE, .mode = "nbhs", .more = { "-a", "h2,http/1.1" },
         .out = H11_200, .retries = 1);
}

/* ---------------- missing libraries ---------------- */

Test(safety, hooks_without_the_library_fail_safely)
{
    const char *argv[] = { BIN "nolib_client", NULL };
    struct out base = run(argv, NULL, 0);
    cr_assert_str_eq(base.out, "absent\n");
    struct out o = run(argv, NULL, 1);
    cr_assert_eq(o.status, 0, "crashed? %s", o.err);
    cr_assert(strstr(o.out, "SSL_write=-1\n"), "%s", o.out);
    cr_assert(strstr(o.out, "SSL_write_ex=0 written=0\n"), "%s", o.out);
    cr_assert(strstr(o.out, "SSL_connect=-1\n"), "%s", o.out);
    cr_assert(strstr(o.out, "gnutls_record_send=-59\n"), "%s", o.out);      /* GNUTLS_E_INTERNAL_ERROR */
    cr_assert(strstr(o.out, "gnutls_handshake=-59\n"), "%s", o.out);
    cr_assert(strstr(o.out, "curl_easy_setopt=2\n"), "%s", o.out);           /* CURLE_FAILED_INIT */
    cr_assert(strstr(o.out, "curl_easy_perform=2\n"), "%s", o.out);
    cr_assert(strstr(o.out, "curl_multi_add_handle=4\n"), "%s", o.out);      /* CURLM_INTERNAL_ERROR */
    cr_assert(strstr(o.err, "not found"), "no log line: %s", o.err);
    free_out(&base);
    free_out(&o);
}

/* ---------------- GnuTLS ---------------- */

static void gtls_case(const struct tcase *c)
{
    tlsrec *r = server(c->flags);
    char port[16], body[32];
    snprintf(body, sizeof body, "%ld", c->body ? c->body : 13);
    const char *argv[] = { BIN "gnutls_client", itoa_port(r, port), c->sni ? c->sni : "api.kimi.com", CA,
                           c->mode, c->alpn ? c->alpn : "", body, NULL };
    struct out o = run(argv, NULL, !c->no_shim);
    check_case(r, &o, c);
}

#define GTLS(...) gtls_case(&(const struct tcase){ __VA_ARGS__ })

Test(gnutls, one_send) { GTLS(.mode = "one", .out = OK200, .log = "kimi-coding-double-v1"); }
Test(gnutls, byte_per_send) { GTLS(.mode = "bytes"); }
Test(gnutls, record_send2_seen_once) { GTLS(.mode = "send2"); }
Test(gnutls, large_body_short_records) { GTLS(.mode = "one", .body = 100000); }
Test(gnutls, nonblocking_again_null_retry_slow_reader, .timeout = 120)
{
    GTLS(.flags = TLSREC_SLOW, .mode = "nb", .body = 300000, .retries = 1);
}
Test(gnutls, alpn_relevant_drops_h2) { GTLS(.flags = TLSREC_H2, .mode = "one", .alpn = "h2,http/1.1", .out = H11_200); }
Test(gnutls, alpn_other_keeps_h2_byte_exact)
{
    GTLS(.flags = TLSREC_H2, .sni = "example.org", .mode = "one", .alpn = "h2,http/1.1", .out = "alpn=h2 ",
         .orig = 1);
}

/* ---------------- libcurl ---------------- */

static const char CURL_BODY[] = "{\"model\":\"k\"}";

/* What a libcurl request on conn i must look like after the fix. */
static void expect_curl_fixed(tlsrec *r, int i)
{
    const struct tlsrec_conn *c = tlsrec_conn(r, i);
    cr_assert(c && c->data, "no data on connection %d", i);
    cr_assert(strncmp(c->data, "POST /coding/v1/messages HTTP/1.1\r\n", 35) == 0, "conn %d: %.60s", i,
              c->data);
    cr_assert(memmem(c->data, c->len, "\r\nX-Msh-Platform: kimi_cli\r\n", 28), "%.*s", (int)c->len, c->data);
    cr_assert(memmem(c->data, c->len, "\r\nx-api-key: sk-kimi-SECRETSECRET\r\n", 35));
    cr_assert(memmem(c->data, c->len, "\r\nUser-Agent: kftest-curl/1\r\n", 29));
    cr_assert(!memmem(c->data, c->len, "\r\nAccept:", 9), "the user's \"Accept:\" entry was lost");
    cr_assert(c->len > sizeof CURL_BODY - 1 &&
              memcmp(c->data + c->len - (sizeof CURL_BODY - 1), CURL_BODY, sizeof CURL_BODY - 1) == 0);
}

static struct out curl_prog(const char *prog, tlsrec *r, const char *ver, const char *mode)
{
    char ct[64];
    snprintf(ct, sizeof ct, "api.kimi.com:443:127.0.0.1:%d", tlsrec_port(r));
    const char *argv[] = { prog, "https://api.kimi.com/coding/v1/v1/messages", CA, ct, ver, mode, NULL };
    return run(argv, NULL, 1);
}

static void curl_case(const char *prog, const char *ver, const char *mode, int transfers)
{
    tlsrec *r = server(0);
    struct out o = curl_prog(prog, r, ver, mode);
    cr_assert_eq(o.status, 0);
    int ok = 0;
    for (const char *p = o.out; (p = strstr(p, "code=200 rc=0 body=ok")); p++)
        ok++;
    cr_assert_eq(ok, transfers, "%s", o.out);
    int conns = tlsrec_count(r);
    cr_assert(conns >= 1);
    expect_conns(r, conns);
    for (int i = 0; i < conns; i++)
        expect_curl_fixed(r, i);
    cr_assert(strstr(o.err, "[libcurl]") && strstr(o.err, "kimi-coding-double-v1"), "log: %s", o.err);
    cr_assert(!strstr(o.err, "SECRETSECRET"), "a secret reached the log: %s", o.err);
    free_out(&o);
}

#define CURL_OSSL BIN "curl_client"
#define CURL_GNUTLS BIN "curl_client_gnutls"

Test(libcurl_openssl, http11) { curl_case(CURL_OSSL, "h1", "easy", 1); }
Test(libcurl_openssl, default_alpn) { curl_case(CURL_OSSL, "default", "easy", 1); }
Test(libcurl_openssl, multi) { curl_case(CURL_OSSL, "h1", "multi", 1); }
Test(libcurl_openssl, duphandle) { curl_case(CURL_OSSL, "h1", "dup", 2); }
Test(libcurl_openssl, reset) { curl_case(CURL_OSSL, "h1", "reset", 2); }
Test(libcurl_openssl, perform_twice) { curl_case(CURL_OSSL, "h1", "twice", 2); }
Test(libcurl_gnutls, http11) { curl_case(CURL_GNUTLS, "h1", "easy", 1); }
Test(libcurl_gnutls, default_alpn) { curl_case(CURL_GNUTLS, "default", "easy", 1); }
Test(libcurl_gnutls, multi) { curl_case(CURL_GNUTLS, "h1", "multi", 1); }
Test(libcurl_gnutls, duphandle) { curl_case(CURL_GNUTLS, "h1", "dup", 2); }

/* An sk-kimi- key sent to the platform host: the rule routes the request
 * to api.kimi.com (`upstream`, honoured by rewriting the URL) and maps the
 * path. api.moonshot.ai itself leads nowhere (port 1): only the rewritten
 * URL can reach the test server. */
static void curl_upstream_case(const char *prog)
{
    tlsrec *r = server(0);
    char ct[128];
    snprintf(ct, sizeof ct, "api.kimi.com:443:127.0.0.1:%d,api.moonshot.ai:443:127.0.0.1:1",
             tlsrec_port(r));
    const char *argv[] = { prog, "https://api.moonshot.ai/anthropic/v1/messages", CA, ct, "h1", "easy", NULL };
    struct out o = run(argv, NULL, 1);
    cr_assert_eq(o.status, 0, "%s %s", o.out, o.err);
    expect_conns(r, 1);
    const struct tlsrec_conn *c = tlsrec_conn(r, 0);
    cr_assert_str_eq(c->sni, "api.kimi.com");
    cr_assert(strncmp(c->data, "POST /coding/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\n", 53) == 0,
              "%.80s", c->data);
    cr_assert(strstr(o.err, "moonshot-sk-kimi-to-kimi"), "log: %s", o.err);
    cr_assert(!strstr(o.err, "SECRETSECRET"), "a secret reached the log: %s", o.err);
    free_out(&o);
}

Test(libcurl_openssl, upstream_key_routing) { curl_upstream_case(CURL_OSSL); }
Test(libcurl_gnutls, upstream_key_routing) { curl_upstream_case(CURL_GNUTLS); }

/* ---------------- curl CLI ---------------- */

Test(curl_cli, http11)
{
    tlsrec *r = server(TLSREC_H2);
    char ct[64];
    snprintf(ct, sizeof ct, "api.kimi.com:443:127.0.0.1:%d", tlsrec_port(r));
    const char *argv[] = { "/usr/bin/curl", "-sS", "--http1.1", "--cacert", CA, "--connect-to", ct,
                           "-H", "X-Msh-Platform: kimi_code_cli", "-H", "x-api-key: sk-kimi-SECRETSECRET",
                           "-d", "{}", "https://api.kimi.com/coding/v1/v1/messages", NULL };
    struct out o = run(argv, NULL, 1);
    cr_assert_eq(o.status, 0);
    cr_assert_str_eq(o.out, "ok");
    expect_conns(r, 1);
    const struct tlsrec_conn *c = tlsrec_conn(r, 0);
    cr_assert(strncmp(c->data, "POST /coding/v1/messages HTTP/1.1\r\n", 35) == 0, "%.60s", c->data);
    cr_assert(memmem(c->data, c->len, "\r\nX-Msh-Platform: kimi_cli\r\n", 28));
    cr_assert(!strstr(o.err, "SECRETSECRET"), "a secret reached the log: %s", o.err);
    free_out(&o);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

/* Run argv (with "%PORT%" replaced by the port) against nghttpd, an HTTP/2
 * server: its verbose log shows the :path and headers that arrived (the TLS
 * stream is binary HTTP/2, so only the libcurl layer can have fixed them). */
static char *with_nghttpd(const char *argv_tpl[], struct out *o)
{
    if (access("/usr/sbin/nghttpd", X_OK) != 0)
        cr_skip_test("nghttpd (nghttp2-server) not installed");
    char dir[] = "/tmp/kftls-h2-XXXXXX";
    cr_assert(mkdtemp(dir));
    char log[96], port[16], ct[64];
    snprintf(log, sizeof log, "%s/nghttpd.log", dir);
    int p = free_port();
    snprintf(port, sizeof port, "%d", p);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/usr/sbin/nghttpd", "nghttpd", "-v", "-d", dir, "-a", "127.0.0.1", port,
              CERTS "/key.pem", CERTS "/cert.pem", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000; i++) { /* wait until it listens (hang guard: 60 s) */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)p),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            break;
        usleep(20000);
    }
    snprintf(ct, sizeof ct, "api.kimi.com:443:127.0.0.1:%d", p);
    const char *argv[32];
    int n = 0;
    for (; argv_tpl[n] && n < 31; n++)
        argv[n] = strcmp(argv_tpl[n], "%CT%") == 0 ? ct : argv_tpl[n];
    argv[n] = NULL;
    *o = run(argv, NULL, 1);
    /* nghttpd logs the request's headers as they arrive, before it answers:
     * once the client has its answer they are in the log (waiting for
     * them is a hang guard, not a delay). */
    for (int i = 0; i < 3000; i++) {
        char *l = slurp(log);
        int have = l && strstr(l, ":path:");
        free(l);
        if (have)
            break;
        usleep(20000);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char *l = slurp(log);
    unlink(log);
    rmdir(dir);
    return l;
}

static void expect_h2_fixed(const char *l)
{
    cr_assert(strstr(l, ":path: /coding/v1/messages\n"), "nghttpd saw: %s", l);
    cr_assert(strstr(l, "x-msh-platform: kimi_cli"), "nghttpd saw: %s", l);
    cr_assert(!strstr(l, "/v1/v1/"), "%s", l);
}

Test(curl_cli, http2_fixed_by_libcurl_layer, .timeout = 60)
{
    const char *argv[] = { "/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_version}", "--cacert", CA,
                           "--connect-to", "%CT%", "-H", "X-Msh-Platform: kimi_code_cli", "-d", "{}",
                           "https://api.kimi.com/coding/v1/v1/messages", NULL };
    struct out o;
    char *l = with_nghttpd(argv, &o);
    cr_assert_eq(o.status, 0);
    cr_assert_str_eq(o.out, "2", "curl did not keep HTTP/2: %s", o.out);
    expect_h2_fixed(l);
    free(l);
    free_out(&o);
}

static void libcurl_h2_case(const char *prog)
{
    const char *argv[] = { prog, "https://api.kimi.com/coding/v1/v1/messages", CA, "%CT%", "default", "easy",
                           NULL };
    struct out o;
    char *l = with_nghttpd(argv, &o);
    cr_assert(strstr(o.out, "code=404 rc=0") && strstr(o.out, "http=2"), "%s", o.out);
    expect_h2_fixed(l);
    free(l);
    free_out(&o);
}

Test(libcurl_openssl, http2_keeps_h2_and_fixed, .timeout = 60) { libcurl_h2_case(CURL_OSSL); }
Test(libcurl_gnutls, http2_keeps_h2_and_fixed, .timeout = 60) { libcurl_h2_case(CURL_GNUTLS); }

/* ---------------- Python (RTLD_LOCAL libssl, SSL_write_ex) ---------------- */

Test(python, urllib_and_http_client, .timeout = 60)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("/usr/bin/python3 not installed");
    tlsrec *r = server(0);
    char port[16];
    const char *argv[] = { "/usr/bin/python3", KF_TEST_SRC "/tests/tls/py_client.py", itoa_port(r, port), CA,
                           NULL };
    struct out o = run(argv, NULL, 1);
    cr_assert_eq(o.status, 0, "python failed (crash?): %s", o.err);
    cr_assert(strstr(o.out, "urllib 200 ok") && strstr(o.out, "http.client 200 ok"), "%s", o.out);
    expect_conns(r, 2);
    for (int i = 0; i < 2; i++) {
        const struct tlsrec_conn *c = tlsrec_conn(r, i);
        cr_assert(strncmp(c->data, "POST /coding/v1/messages HTTP/1.1\r\n", 35) == 0, "%.60s", c->data);
        cr_assert(memmem(c->data, c->len, "\r\nX-Msh-Platform: kimi_cli\r\n", 28));
    }
    cr_assert(strstr(o.err, "[openssl]"), "log: %s", o.err);
    free_out(&o);
}

/* Real name resolution: a rules file's connect-to steers api.kimi.com to
 * the test server (the libc layer answers getaddrinfo and connect). */
static const char *connect_to_rules(tlsrec *r, char *path, size_t n)
{
    snprintf(path, n, "/tmp/kftls-rules-%d", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "connect-to api.kimi.com:443 127.0.0.1:%d\n", tlsrec_port(r));
    fclose(f);
    return path;
}

Test(python, urllib_via_connect_to_rules, .timeout = 60)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("/usr/bin/python3 not installed");
    tlsrec *r = server(0);
    char rules[64], env_rules[96];
    connect_to_rules(r, rules, sizeof rules);
    snprintf(env_rules, sizeof env_rules, "KIMIFIX_RULES=%s", rules);
    const char *code =
        "import ssl,sys,urllib.request as u\n"
        "ctx=ssl.create_default_context(cafile=sys.argv[1])\n"
        "q=u.Request('https://api.kimi.com/coding/v1/v1/messages',data=b'{}',method='POST',"
        "headers={'Content-Type':'application/json','X-Msh-Platform':'kimi_code_cli'})\n"
        "print('urllib',u.urlopen(q,context=ctx).status)\n";
    const char *argv[] = { "/usr/bin/python3", "-c", code, CA, NULL };
    const char *env[] = { env_rules, NULL };
    struct out o = run(argv, env, 1);
    unlink(rules);
    cr_assert_eq(o.status, 0, "%s", o.err);
    cr_assert(strstr(o.out, "urllib 200"), "%s", o.out);
    expect_conns(r, 1);
    const struct tlsrec_conn *c = tlsrec_conn(r, 0);
    cr_assert_str_eq(c->sni, "api.kimi.com");
    cr_assert(strncmp(c->data, "POST /coding/v1/messages HTTP/1.1\r\n", 35) == 0, "%.60s", c->data);
    free_out(&o);
}

/* ---------------- wget (GnuTLS) ---------------- */

Test(wget, post_via_connect_to_rules, .timeout = 60)
{
    if (access("/usr/bin/wget", X_OK) != 0)
        cr_skip_test("wget not installed");
    tlsrec *r = server(TLSREC_H2);
    char rules[64], env_rules[96];
    connect_to_rules(r, rules, sizeof rules);
    snprintf(env_rules, sizeof env_rules, "KIMIFIX_RULES=%s", rules);
    const char *argv[] = { "/usr/bin/wget", "-q", "-O", "-", "--ca-certificate=" CA,
                           "--header=X-Msh-Platform: kimi_code_cli", "--header=x-api-key: sk-kimi-SECRETSECRET",
                           "--post-data={}", "https://api.kimi.com/coding/v1/v1/messages", NULL };
    const char *env[] = { env_rules, NULL };
    struct out o = run(argv, env, 1);
    unlink(rules);
    cr_assert_eq(o.status, 0, "%s", o.err);
    cr_assert_str_eq(o.out, "ok");
    expect_conns(r, 1);
    const struct tlsrec_conn *c = tlsrec_conn(r, 0);
    cr_assert(strncmp(c->data, "POST /coding/v1/messages HTTP/1.1\r\n", 35) == 0, "%.60s", c->data);
    cr_assert(memmem(c->data, c->len, "\r\nX-Msh-Platform: kimi_cli\r\n", 28));
    cr_assert(strstr(o.err, "[gnutls]"), "log: %s", o.err);
    cr_assert(!strstr(o.err, "SECRETSECRET"), "a secret reached the log: %s", o.err);
    free_out(&o);
}
