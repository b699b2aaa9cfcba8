/* test_trust_core.c - the client's side of "trust both ways" and of the
 * context registration (libc-only core): kf_ctxmsg (format, parse, reply,
 * this process's registration), the PROXY v2 context TLV, kf_trust (trust
 * variables, saved originals, trust sources), kf_trustjava, kf_progid,
 * kf_distrust. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kf_ctxmsg.h"
#include "kf_distrust.h"
#include "kf_log.h"
#include "kf_paths.h"
#include "kf_progid.h"
#include "kf_proxy.h"
#include "kf_trust.h"
#include "kf_trustjava.h"

static char tmpd[64];

static void mk_tmp(void)
{
    snprintf(tmpd, sizeof tmpd, "/tmp/kftrust-core.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpd));
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpd);
    cr_expect_eq(system(cmd), 0);
}

static void put(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *p)
{
    static char buf[1 << 20];
    FILE *f = fopen(p, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int str_is(kf_str s, const char *lit)
{
    return s.p && s.n == strlen(lit) && !memcmp(s.p, lit, s.n);
}

/* ---- the registration message ---- */

static ssize_t sample(char *buf, size_t cap)
{
    kf_ctxmsg_buf b;
    kf_ctxmsg_begin(&b, buf, cap, KF_CTXMSG_CTX);
    cr_assert_eq(kf_ctxmsg_add(&b, "trust", "/etc/corp.pem"), 0);
    cr_assert_eq(kf_ctxmsg_add(&b, "trust", "/home/u/certs"), 0);
    cr_assert_eq(kf_ctxmsg_add(&b, "rules", "builtin"), 0);
    cr_assert_eq(kf_ctxmsg_add(&b, "log", "fd"), 0);
    cr_assert_eq(kf_ctxmsg_add(&b, "level", "info"), 0);
    cr_assert_eq(kf_ctxmsg_add(&b, "exe", "/usr/bin/node"), 0);
    cr_assert_eq(kf_ctxmsg_add(&b, "buildid", "9c81348976100179"), 0);
    cr_assert_eq(kf_ctxmsg_add(&b, "proxy", "http://u:p@proxy:3128"), 0);
    cr_assert_eq(kf_ctxmsg_add(&b, "noproxy", "localhost,.corp"), 0);
    cr_assert_eq(kf_ctxmsg_add(&b, "future-key", "ignored by this relay"), 0);
    return kf_ctxmsg_end(&b);
}

Test(ctxmsg, roundtrip_every_prefix)
{
    char buf[KF_CTXMSG_MAX];
    ssize_t n = sample(buf, sizeof buf);
    cr_assert_gt(n, 0);
    kf_ctxmsg m;
    const char *why;
    cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)n, &m, &why), n, "%s", why);
    cr_assert_eq(m.kind, KF_CTXMSG_CTX);
    cr_assert_eq(m.ntrust, 2);
    cr_assert(str_is(m.trust[0], "/etc/corp.pem"));
    cr_assert(str_is(m.trust[1], "/home/u/certs"));
    cr_assert(str_is(m.rules, "builtin"));
    cr_assert(str_is(m.log, "fd"));
    cr_assert(str_is(m.level, "info"));
    cr_assert(str_is(m.exe, "/usr/bin/node"));
    cr_assert(str_is(m.buildid, "9c81348976100179"));
    cr_assert(str_is(m.proxy, "http://u:p@proxy:3128"));
    cr_assert(str_is(m.noproxy, "localhost,.corp"));
    cr_assert_null(m.cacerts.p);
    for (ssize_t i = 0; i < n; i++)
        cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)i, &m, &why), 0, "prefix %zd: %s", i, why);
    /* bytes after the empty line are not part of the request */
    memcpy(buf + n, "junk", 4);
    cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)n + 4, &m, &why), n);
}

static ssize_t parse_text(const char *t, const char **why)
{
    kf_ctxmsg m;
    return kf_ctxmsg_parse(t, strlen(t), &m, why);
}

Test(ctxmsg, rejects_malformed)
{
    const char *why;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n\r\n",            /* not ours */
        "kfctx 2\n\n",                       /* unknown version */
        "kfctx 1\nrules a\nrules b\n\n",     /* repeated singular key */
        "kfctx 1\ntrust relative.pem\n\n",   /* not absolute */
        "kfctx 1\ntrust \n\n",               /* empty path */
        "kfctx 1\nexe /a\rb\n\n",            /* control byte */
        "kfctx 1\nEXE /a\n\n",               /* key syntax */
        "kfctx 1\n /a\n\n",                  /* empty key */
        "kfctx 1\nabcdefghijabcdefghijabcdefghijabc x\n\n", /* key over 32 */
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse_text(bad[i], &why), -1, "accepted: %s", bad[i]);
    /* a wrong first line is refused before the request is complete */
    cr_expect_eq(parse_text("GET ", &why), -1);
    cr_expect_eq(parse_text("kfct", &why), 0);
    cr_expect_eq(parse_text("kfja", &why), 0);
    /* 17 trust lines */
    char big[KF_CTXMSG_MAX];
    size_t o = (size_t)snprintf(big, sizeof big, "kfctx 1\n");
    for (int i = 0; i < 17; i++)
        o += (size_t)snprintf(big + o, sizeof big - o, "trust /t%d\n", i);
    snprintf(big + o, sizeof big - o, "\n");
    cr_expect_eq(parse_text(big, &why), -1);
    cr_expect_str_eq(why, "too many trust lines");
    /* a value over 4096 bytes; a request that never ends within 8 KiB */
    memset(big, 'a', sizeof big);
    memcpy(big, "kfctx 1\nexe /", 13);
    kf_ctxmsg m;
    cr_expect_eq(kf_ctxmsg_parse(big, 13 + 4200, &m, &why), -1);
    memcpy(big, "kfctx 1\nexe /a\nexe2 /", 21);
    for (size_t i = 21; i + 15 <= sizeof big; i += 16)
        memcpy(big + i, "\nunknown-key xx", 15); /* valid lines, no end */
    cr_expect_eq(kf_ctxmsg_parse(big, sizeof big, &m, &why), -1);
    cr_expect_str_eq(why, "request too long");
}

Test(ctxmsg, builder_refuses_unsafe_values_and_overflow)
{
    char buf[64];
    kf_ctxmsg_buf b;
    kf_ctxmsg_begin(&b, buf, sizeof buf, KF_CTXMSG_JAVA);
    cr_expect_eq(kf_ctxmsg_add(&b, "cacerts", "/a\nexe /evil"), -1);
    cr_expect_eq(kf_ctxmsg_add(&b, "trust", "rel"), -1);
    cr_expect_eq(kf_ctxmsg_add(&b, "cacerts", "/etc/ssl/certs/java/cacerts"), 0);
    ssize_t n = kf_ctxmsg_end(&b);
    cr_assert_gt(n, 0);
    kf_ctxmsg m;
    const char *why;
    cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)n, &m, &why), n);
    cr_expect_eq(m.kind, KF_CTXMSG_JAVA);
    cr_expect(str_is(m.cacerts, "/etc/ssl/certs/java/cacerts"));
    cr_expect_null(m.exe.p);
    kf_ctxmsg_begin(&b, buf, sizeof buf, KF_CTXMSG_CTX);
    kf_ctxmsg_add(&b, "exe", "/a/very/long/path/that/does/not/fit/in/sixty/four/bytes/x");
    cr_expect_eq(kf_ctxmsg_end(&b), -1);
}

Test(ctxmsg, replies_and_ids)
{
    char r[KF_CTXMSG_REPLY_MAX], hex[33];
    unsigned char id[16], back[16];
    for (int i = 0; i < 16; i++)
        id[i] = (unsigned char)(i * 17);
    kf_ctx_id_hex(id, hex);
    cr_assert_str_eq(hex, "00112233445566778899aabbccddeeff");
    size_t n = kf_ctxmsg_reply(r, sizeof r, 1, hex);
    kf_str v;
    cr_assert_eq(kf_ctxmsg_parse_reply(r, n, &v), 1);
    cr_assert_eq(kf_ctx_id_parse(v, back), 0);
    cr_assert_eq(memcmp(id, back, 16), 0);
    cr_assert_eq(kf_ctxmsg_parse_reply(r, n - 1, &v), 0); /* no newline yet */
    n = kf_ctxmsg_reply(r, sizeof r, 0, "bad\nthing");
    cr_assert_eq(kf_ctxmsg_parse_reply(r, n, &v), -1);
    cr_assert_eq(v.n, 9);
    cr_assert_eq(memcmp(v.p, "bad?thing", 9), 0);
    cr_assert_eq(kf_ctxmsg_parse_reply("what\n", 5, &v), -1);
    cr_assert_eq(v.n, 0);
    cr_assert_eq(kf_ctx_id_parse((kf_str){"00112233445566778899aabbccddeefg", 32}, back), -1);
    cr_assert_eq(kf_ctx_id_parse((kf_str){"0011", 4}, back), -1);
}

/* ---- PROXY v2 context TLV ---- */

Test(ctxmsg, proxy_tlv_roundtrip)
{
    unsigned char b[KF_PROXY_MAX], tok[16] = {1}, ctx[16];
    for (int i = 0; i < 16; i++)
        ctx[i] = (unsigned char)(0xC0 + i);
    struct sockaddr_in6 d = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    inet_pton(AF_INET6, "2001:db8::1", &d.sin6_addr);
    char host[256];
    memset(host, 'a', 253); /* the longest name the relay accepts */
    host[253] = 0;
    ssize_t n = kf_proxy_encode_ctx(b, sizeof b, 0, NULL, (struct sockaddr *)&d, host, tok, ctx);
    cr_assert_gt(n, 0);
    cr_assert_leq(n, KF_PROXY_MAX);
    kf_proxy_info pi;
    cr_assert_eq(kf_proxy_parse(b, (size_t)n, &pi), n);
    cr_assert(pi.has_ctx);
    cr_assert(pi.has_token);
    cr_assert_eq(memcmp(pi.ctx, ctx, 16), 0);
    for (ssize_t i = 0; i < n; i++)
        cr_assert_eq(kf_proxy_parse(b, (size_t)i, &pi), 0);
    /* without: no context */
    n = kf_proxy_encode(b, sizeof b, 0, NULL, (struct sockaddr *)&d, NULL, tok);
    cr_assert_eq(kf_proxy_parse(b, (size_t)n, &pi), n);
    cr_assert_not(pi.has_ctx);
    /* a context TLV of the wrong length is malformed */
    unsigned char bad[KF_PROXY_MAX];
    n = kf_proxy_encode_ctx(bad, sizeof bad, 0, NULL, (struct sockaddr *)&d, NULL, NULL, ctx);
    bad[n - 17] = 15; /* length low byte: 16 -> 15 */
    bad[15] -= 1;     /* header length follows */
    cr_assert_eq(kf_proxy_parse(bad, (size_t)n - 1, &pi), -1);
}

/* ---- trust variables ---- */

static char run_dir[128], data_dir[128], ca_path[4200];

/* Every trust variable and its recorded original unset. */
static void clear_trust_vars(void)
{
    for (int i = 0; kf_trust_var_name(i); i++) {
        char o[64];
        unsetenv(kf_trust_var_name(i));
        snprintf(o, sizeof o, "KIMIFIX_ORIG_%s", kf_trust_var_name(i));
        unsetenv(o);
    }
}

static void trust_world(void)
{
    mk_tmp();
    snprintf(run_dir, sizeof run_dir, "%s/run", tmpd);
    mkdir(run_dir, 0700);
    setenv("XDG_RUNTIME_DIR", run_dir, 1);
    snprintf(data_dir, sizeof data_dir, "%s/data", tmpd);
    setenv("XDG_DATA_HOME", data_dir, 1);
    clear_trust_vars();
}

static void make_ca(void)
{
    char dd[4096];
    cr_assert_eq(kf_data_dir(dd, sizeof dd, 1), 0);
    snprintf(ca_path, sizeof ca_path, "%s/ca.pem", dd);
    put(ca_path, "OURS\n");
}

static const kf_trust_var *var(const kf_trust_var *v, const char *name)
{
    for (int i = 0; i < KF_TRUST_NVARS; i++)
        if (!strcmp(v[i].name, name))
            return &v[i];
    cr_assert_fail("no variable %s", name);
    return NULL;
}

Test(trust, unset_set_inherited_and_originals)
{
    trust_world();
    kf_trust_plan plan;
    const kf_trust_var *v = plan.v;
    cr_assert_eq(kf_trust_env(&plan), -1); /* no CA yet */
    make_ca();
    /* git and cargo read their own config files next: never set when unset */
    cr_assert_eq(kf_trust_env(&plan), KF_TRUST_NVARS - 2);
    cr_assert_str_eq(v[0].name, "NODE_EXTRA_CA_CERTS");
    cr_assert_str_eq(var(v, "NODE_EXTRA_CA_CERTS")->value, ca_path); /* extra: ours only */
    cr_assert_str_eq(var(v, "DENO_CERT")->value, ca_path);
    cr_assert_str_eq(var(v, "GIT_SSL_CAINFO")->value, "");
    cr_assert_str_eq(var(v, "CARGO_HTTP_CAINFO")->value, "");
    for (int i = 0; i < KF_TRUST_NVARS; i++) {
        if (!v[i].value[0])
            continue;
        cr_expect(v[i].set_orig, "%s: the first layer records the original", v[i].name);
        cr_expect_str_eq(v[i].orig, "", "%s was unset", v[i].name);
    }
    /* the user's own file: combined, never replaced */
    char user[256];
    snprintf(user, sizeof user, "%s/mine.pem", tmpd);
    put(user, "THEIRS\n");
    setenv("NODE_EXTRA_CA_CERTS", user, 1);
    setenv("GIT_SSL_CAINFO", user, 1);
    cr_assert_eq(kf_trust_env(&plan), KF_TRUST_NVARS - 1); /* CARGO_HTTP_CAINFO stays unset */
    const kf_trust_var *n = var(v, "NODE_EXTRA_CA_CERTS");
    cr_assert(n->combined);
    cr_assert_eq(strncmp(n->value, run_dir, strlen(run_dir)), 0, "%s", n->value);
    cr_assert_str_eq(slurp(n->value), "THEIRS\n\nOURS\n");
    cr_assert_str_eq(n->orig, user);
    cr_assert_str_eq(var(v, "GIT_SSL_CAINFO")->value, n->value); /* same sources, one file */
    /* the answers are packed: a process start touches ~one page of the plan */
    cr_assert_lt(plan.used, 4096, "%zu", plan.used);
    /* inherited from a parent under kimifix: left alone, ORIG kept */
    setenv("NODE_EXTRA_CA_CERTS", n->value, 1);
    setenv("KIMIFIX_ORIG_NODE_EXTRA_CA_CERTS", user, 1);
    cr_assert_eq(kf_trust_env(&plan), KF_TRUST_NVARS - 2);
    cr_assert_str_eq(var(v, "NODE_EXTRA_CA_CERTS")->value, "");
    cr_assert_not(var(v, "NODE_EXTRA_CA_CERTS")->set_orig);
    /* an ORIG that exists (even empty) is kept by later layers */
    setenv("KIMIFIX_ORIG_DENO_CERT", "", 1);
    cr_assert_eq(kf_trust_env(&plan), KF_TRUST_NVARS - 2);
    cr_assert_not(var(v, "DENO_CERT")->set_orig);
    /* a user file that cannot be read adds nothing to the runtime: ours
     * alone, and the original is recorded (the relay reports it missing) */
    setenv("CARGO_HTTP_CAINFO", "/nonexistent/ca.pem", 1);
    cr_assert_eq(kf_trust_env(&plan), KF_TRUST_NVARS - 1);
    cr_assert_str_eq(var(v, "CARGO_HTTP_CAINFO")->value, ca_path);
    cr_assert_str_eq(var(v, "CARGO_HTTP_CAINFO")->orig, "/nonexistent/ca.pem");
    cr_assert(var(v, "CARGO_HTTP_CAINFO")->set_orig);
    rm_tmp();
}

static char set_log[2048];
static int record_set(const char *name, const char *value, int overwrite)
{
    (void)overwrite;
    size_t o = strlen(set_log);
    snprintf(set_log + o, sizeof set_log - o, "%s=%s;", name, value);
    return 0;
}

Test(trust, apply_records_originals_first)
{
    trust_world();
    make_ca();
    char user[256];
    snprintf(user, sizeof user, "%s/mine.pem", tmpd);
    put(user, "THEIRS\n");
    setenv("SSL_CERT_FILE", user, 1);
    kf_trust_plan plan;
    const kf_trust_var *v = plan.v;
    /* CURL_CA_BUNDLE stays unset (curl reads SSL_CERT_FILE next), and git's
     * and cargo's */
    cr_assert_eq(kf_trust_env(&plan), KF_TRUST_NVARS - 3);
    set_log[0] = 0;
    cr_assert_eq(kf_trust_apply(&plan, record_set), KF_TRUST_NVARS - 3);
    char want[9000];
    snprintf(want, sizeof want, "KIMIFIX_ORIG_SSL_CERT_FILE=%s;SSL_CERT_FILE=%s;", user,
             var(v, "SSL_CERT_FILE")->value);
    cr_assert(strstr(set_log, want), "%s", set_log);
    cr_assert(strstr(set_log, "KIMIFIX_ORIG_NODE_EXTRA_CA_CERTS=;NODE_EXTRA_CA_CERTS="), "%s", set_log);
    /* with the real setenv: a child layer sees ours and keeps the original */
    kf_trust_apply(&plan, setenv);
    cr_assert_str_eq(getenv("KIMIFIX_ORIG_SSL_CERT_FILE"), user);
    cr_assert_eq(kf_trust_env(&plan), 0);
    cr_assert_str_eq(getenv("KIMIFIX_ORIG_SSL_CERT_FILE"), user);
    rm_tmp();
}

/* A child of a process under kimifix (kf_trust_env's inherited fast path,
 * which skips the directories' checks): nothing to set while every
 * variable names our files; the CA must still be there; a variable the
 * user set since (a shell under the agent) takes the full way again. */
Test(trust, inherited_child_sets_nothing_until_something_changed)
{
    trust_world();
    make_ca();
    kf_trust_plan plan;
    const kf_trust_var *v = plan.v;
    cr_assert_eq(kf_trust_env(&plan), KF_TRUST_NVARS - 2);
    kf_trust_apply(&plan, setenv);
    /* the child: everything already ours, nothing set, nothing recorded */
    cr_assert_eq(kf_trust_env(&plan), 0);
    for (int i = 0; i < KF_TRUST_NVARS; i++) {
        cr_expect_str_eq(v[i].value, "", "%s", v[i].name);
        cr_expect_not(v[i].set_orig, "%s", v[i].name);
        cr_expect_str_eq(v[i].name, kf_trust_var_name(i));
    }
    /* its CA gone: no trust (no steering), as for a first layer */
    char moved[4300];
    snprintf(moved, sizeof moved, "%s.away", ca_path);
    cr_assert_eq(rename(ca_path, moved), 0);
    cr_assert_eq(kf_trust_env(&plan), -1);
    cr_assert_eq(rename(moved, ca_path), 0);
    /* the user pointed one variable at a file of theirs since: combined */
    char user[256];
    snprintf(user, sizeof user, "%s/mine.pem", tmpd);
    put(user, "THEIRS\n");
    setenv("REQUESTS_CA_BUNDLE", user, 1);
    cr_assert_eq(kf_trust_env(&plan), 1);
    cr_assert(var(v, "REQUESTS_CA_BUNDLE")->combined);
    cr_assert_str_eq(slurp(var(v, "REQUESTS_CA_BUNDLE")->value), "THEIRS\n\nOURS\n");
    /* a variable the parent set, unset since: set again */
    setenv("REQUESTS_CA_BUNDLE", var(v, "REQUESTS_CA_BUNDLE")->value, 1);
    unsetenv("DENO_CERT");
    cr_assert_eq(kf_trust_env(&plan), 1);
    cr_assert_str_eq(var(v, "DENO_CERT")->value, ca_path);
    rm_tmp();
}

/* An unset "replace" variable whose reader consults another setting of the
 * user next stays unset: setting it would hide that setting (a company's
 * TLS-inspecting CA in SSL_CERT_FILE only: the curl tool reads it when
 * CURL_CA_BUNDLE is unset, and would not if kimifix set CURL_CA_BUNDLE). */
Test(trust, unset_yields_to_what_the_reader_reads_next)
{
    trust_world();
    make_ca();
    unsetenv("SSL_CERT_DIR");
    unsetenv("HTTPS_CA_FILE");
    char user[256];
    snprintf(user, sizeof user, "%s/corp.pem", tmpd);
    put(user, "CORP\n");
    kf_trust_plan plan;
    const kf_trust_var *v = plan.v;
    /* nothing set: curl, requests and LWP get system + ours */
    kf_trust_env(&plan);
    cr_assert_neq(var(v, "CURL_CA_BUNDLE")->value[0], 0);
    cr_assert_neq(var(v, "REQUESTS_CA_BUNDLE")->value[0], 0);
    cr_assert_neq(var(v, "PERL_LWP_SSL_CA_FILE")->value[0], 0);
    /* SSL_CERT_FILE (curl's next): CURL_CA_BUNDLE left; SSL_CERT_FILE combined */
    setenv("SSL_CERT_FILE", user, 1);
    kf_trust_env(&plan);
    cr_assert_str_eq(var(v, "CURL_CA_BUNDLE")->value, "");
    cr_assert(var(v, "SSL_CERT_FILE")->combined);
    cr_assert_str_eq(slurp(var(v, "SSL_CERT_FILE")->value), "CORP\n\nOURS\n");
    /* the same seen from a child of a kimifix process: the user's value is
     * the recorded original */
    kf_trust_apply(&plan, setenv);
    kf_trust_env(&plan);
    cr_assert_str_eq(getenv("KIMIFIX_ORIG_SSL_CERT_FILE"), user);
    cr_assert_null(getenv("CURL_CA_BUNDLE"));
    unsetenv("SSL_CERT_FILE");
    unsetenv("KIMIFIX_ORIG_SSL_CERT_FILE");
    /* SSL_CERT_DIR (a directory: curl's capath) too */
    setenv("SSL_CERT_DIR", tmpd, 1);
    kf_trust_env(&plan);
    cr_assert_str_eq(var(v, "CURL_CA_BUNDLE")->value, "");
    unsetenv("SSL_CERT_DIR");
    /* CURL_CA_BUNDLE (requests' next): REQUESTS_CA_BUNDLE left, CURL combined */
    clear_trust_vars();
    setenv("CURL_CA_BUNDLE", user, 1);
    kf_trust_env(&plan);
    cr_assert_str_eq(var(v, "REQUESTS_CA_BUNDLE")->value, "");
    cr_assert(var(v, "CURL_CA_BUNDLE")->combined);
    /* a parent's CURL_CA_BUNDLE over an unset original does not count */
    setenv("KIMIFIX_ORIG_CURL_CA_BUNDLE", "", 1);
    setenv("CURL_CA_BUNDLE", var(v, "CURL_CA_BUNDLE")->value, 1);
    kf_trust_env(&plan);
    cr_assert_neq(var(v, "REQUESTS_CA_BUNDLE")->value[0], 0);
    unsetenv("CURL_CA_BUNDLE");
    unsetenv("KIMIFIX_ORIG_CURL_CA_BUNDLE");
    /* HTTPS_CA_FILE (LWP's next) */
    setenv("HTTPS_CA_FILE", user, 1);
    kf_trust_env(&plan);
    cr_assert_str_eq(var(v, "PERL_LWP_SSL_CA_FILE")->value, "");
    unsetenv("HTTPS_CA_FILE");
    rm_tmp();
}

/* A REPLACE variable the user did not set: the relay's ca-bundle.pem while
 * it is newer than the system bundle, else a bundle made from the current
 * system file (an update-ca-certificates after the relay started). */
Test(trust, system_bundle_followed)
{
    const char *sys = kf_trust_system_bundle();
    cr_assert_not_null(sys, "no system CA bundle on this machine (ca-certificates)");
    trust_world();
    make_ca();
    char bundle[4200], dd[4096];
    kf_data_dir(dd, sizeof dd, 0);
    snprintf(bundle, sizeof bundle, "%s/ca-bundle.pem", dd);
    put(bundle, "SYSTEM AT RELAY START\nOURS\n");
    kf_trust_plan plan;
    const kf_trust_var *v = plan.v;
    kf_trust_env(&plan);
    cr_assert_str_eq(var(v, "SSL_CERT_FILE")->value, bundle);
    /* the system bundle is newer than that copy: follow it */
    struct timespec old[2] = {{1000000, 0}, {1000000, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, bundle, old, 0), 0);
    kf_trust_env(&plan);
    const char *val = var(v, "SSL_CERT_FILE")->value;
    cr_assert_eq(strncmp(val, run_dir, strlen(run_dir)), 0, "%s", val);
    char *text = slurp(val);
    cr_assert_not_null(text);
    cr_assert(strstr(text, "BEGIN CERTIFICATE") && strstr(text, "OURS\n"));
    cr_assert_str_eq(var(v, "REQUESTS_CA_BUNDLE")->value, val);
    rm_tmp();
}

/* ---- trust sources ---- */

static char src_log[4096];
static int record_src(void *ud, const char *path, const char *v)
{
    (void)ud;
    size_t o = strlen(src_log);
    snprintf(src_log + o, sizeof src_log - o, "%s<%s;", path, v);
    return 0;
}

Test(trust, sources_originals_not_ours_once_each)
{
    trust_world();
    char ours[256];
    snprintf(ours, sizeof ours, "%s/kimifix/trust-0123.pem", run_dir);
    setenv("KIMIFIX_ORIG_NODE_EXTRA_CA_CERTS", "/b.pem", 1);
    setenv("NODE_EXTRA_CA_CERTS", ours, 1);        /* kimifix's own: not a source */
    setenv("SSL_CERT_FILE", "/a.pem", 1);           /* no ORIG: V itself */
    setenv("REQUESTS_CA_BUNDLE", "/a.pem", 1);      /* listed once */
    setenv("KIMIFIX_ORIG_CURL_CA_BUNDLE", "", 1);   /* was unset */
    setenv("CURL_CA_BUNDLE", "relative.pem", 1);    /* not absolute: ignored */
    setenv("SSL_CERT_DIR", "/d1::/d2", 1);
    const char *sys = kf_trust_system_bundle();
    cr_assert_not_null(sys);
    setenv("GIT_SSL_CAINFO", sys, 1); /* the system store is always there: not a source */
    src_log[0] = 0;
    cr_assert_eq(kf_trust_sources(record_src, NULL), 4);
    cr_assert_str_eq(src_log, "/b.pem<NODE_EXTRA_CA_CERTS;/a.pem<SSL_CERT_FILE;"
                              "/d1<SSL_CERT_DIR;/d2<SSL_CERT_DIR;");
    /* at most 16 */
    char dirs[2048] = "";
    for (int i = 0; i < 20; i++)
        snprintf(dirs + strlen(dirs), sizeof dirs - strlen(dirs), "/x%d:", i);
    setenv("SSL_CERT_DIR", dirs, 1);
    cr_assert_eq(kf_trust_sources(record_src, NULL), KF_TRUST_SOURCES_MAX);
    rm_tmp();
}

/* This process's registration: what the shim will send. */
Test(ctxmsg, self_registration)
{
    trust_world();
    setenv("SSL_CERT_FILE", "/corp/ca.pem", 1);
    setenv("KIMIFIX_RULES", "/etc/my.rules", 1);
    setenv("KIMIFIX_LOG", "stderr", 1);
    unsetenv("KIMIFIX_DEBUG");
    char buf[KF_CTXMSG_MAX];
    int fd = 99;
    ssize_t n = kf_ctxmsg_self(buf, sizeof buf, "/etc/ssl/certs/java/cacerts", &fd);
    cr_assert_gt(n, 0);
    kf_ctxmsg m;
    const char *why;
    cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)n, &m, &why), n, "%s", why);
    cr_assert_eq(m.ntrust, 2);
    cr_assert(str_is(m.trust[0], "/corp/ca.pem"));
    cr_assert(str_is(m.trust[1], "/etc/ssl/certs/java/cacerts"));
    cr_assert(str_is(m.rules, "/etc/my.rules"));
    /* The log is not open on stderr here: nothing to hand over. */
    cr_assert_null(m.log.p);
    cr_assert_eq(fd, -1);
    /* Logging to stderr: fd 2 goes to the relay as `log fd` (it holds it
     * only while this process lives: ctxlog.c) ... */
    kf_log_open("stderr");
    n = kf_ctxmsg_self(buf, sizeof buf, NULL, &fd);
    cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)n, &m, &why), n);
    cr_assert(str_is(m.log, "fd"));
    cr_assert_eq(fd, 2);
    /* ... unless fd 2 is no longer the stderr the log was opened on. */
    char tmpl[] = "/tmp/kf-stderr-XXXXXX";
    int saved = dup(2), other = mkstemp(tmpl); /* surely not the stderr we had */
    unlink(tmpl);
    dup2(other, 2);
    n = kf_ctxmsg_self(buf, sizeof buf, NULL, &fd);
    dup2(saved, 2);
    close(saved);
    close(other);
    cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)n, &m, &why), n);
    cr_assert_null(m.log.p, "fd 2 was reused: not handed over");
    cr_assert_eq(fd, -1);
    kf_log_open("off");
    cr_assert(str_is(m.level, "info"));
    char exe[4096], id[KF_BUILDID_MAX];
    cr_assert_eq(kf_progid_self(exe, sizeof exe, id, sizeof id), 0);
    cr_assert(str_is(m.exe, exe));
    cr_assert(str_is(m.buildid, id));
    cr_assert_null(m.proxy.p); /* steered clients connected directly */
    setenv("KIMIFIX_LOG", "off", 1);
    n = kf_ctxmsg_self(buf, sizeof buf, NULL, &fd);
    cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)n, &m, &why), n);
    cr_assert(str_is(m.log, "off"));
    cr_assert_eq(fd, -1);
    setenv("KIMIFIX_LOG", "rel.log", 1); /* relative to the client's directory */
    n = kf_ctxmsg_self(buf, sizeof buf, NULL, &fd);
    cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)n, &m, &why), n);
    char cwd[4096], want[4200];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/rel.log", cwd);
    cr_assert(str_is(m.log, want));
    unsetenv("KIMIFIX_LOG");
    n = kf_ctxmsg_self(buf, sizeof buf, NULL, &fd);
    cr_assert_eq(kf_ctxmsg_parse(buf, (size_t)n, &m, &why), n);
    cr_assert(str_is(m.level, "warn")); /* the shim's default: warnings to stderr */
    rm_tmp();
}

/* ---- program identity ---- */

static size_t note(unsigned char *p, size_t align, unsigned type, const char *name,
                   const unsigned char *desc, unsigned dn)
{
    unsigned nn = (unsigned)strlen(name) + 1;
    memcpy(p, &nn, 4);
    memcpy(p + 4, &dn, 4);
    memcpy(p + 8, &type, 4);
    memcpy(p + 12, name, nn);
    size_t d = (12 + nn + align - 1) & ~(align - 1);
    memcpy(p + d, desc, dn);
    return (d + dn + align - 1) & ~(align - 1);
}

Test(progid, build_id_from_notes)
{
    unsigned char area[256], desc[20], prop[16] = {0};
    for (int i = 0; i < 20; i++)
        desc[i] = (unsigned char)(0xA0 + i);
    const char *want = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3";
    char hex[KF_BUILDID_MAX];
    for (size_t align = 4; align <= 8; align += 4) {
        memset(area, 0, sizeof area);
        size_t o = note(area, align, 5, "GNU", prop, sizeof prop); /* a property note first */
        o += note(area + o, align, 3, "GNU", desc, sizeof desc);
        cr_assert_eq(kf_buildid_from_notes(area, o, align, hex, sizeof hex), 0);
        cr_assert_str_eq(hex, want);
        for (size_t k = 0; k < o; k++) /* every truncation: bounded, never a false id */
            cr_assert(kf_buildid_from_notes(area, k, align, hex, sizeof hex) == -1 ||
                          !strcmp(hex, want), "align %zu, %zu bytes", align, k);
    }
    unsigned huge = 0xFFFFFFF0u;
    memcpy(area, &huge, 4);
    cr_assert_eq(kf_buildid_from_notes(area, 64, 4, hex, sizeof hex), -1);
    cr_assert_eq(kf_buildid_from_notes(area, 0, 4, hex, sizeof hex), -1);
}

Test(progid, self_matches_readelf)
{
    char exe[4096], id[KF_BUILDID_MAX], cmd[4200], line[512], *got = NULL;
    cr_assert_eq(kf_progid_self(exe, sizeof exe, id, sizeof id), 0);
    snprintf(cmd, sizeof cmd, "readelf -n '%s' 2>/dev/null", exe);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    while (fgets(line, sizeof line, p))
        if ((got = strstr(line, "Build ID: "))) {
            got += 10;
            got[strcspn(got, "\n")] = 0;
            break;
        }
    pclose(p);
    cr_assert_not_null(got, "readelf shows no build id for %s", exe);
    cr_assert_str_eq(id, got);
    cr_assert_eq(kf_buildid_stat("/proc/self/exe", id, sizeof id), 0);
    cr_assert_eq(strncmp(id, "stat:", 5), 0);
}

/* ---- learned distrust ---- */

Test(distrust, record_check_modes)
{
    mk_tmp();
    char d[128], path[4200];
    snprintf(d, sizeof d, "%s/data", tmpd);
    mkdir(d, 0700);
    cr_assert_eq(kf_distrust_check(d, "/usr/bin/prog", "abcd", NULL), 0);
    cr_assert_eq(kf_distrust_record(d, "/usr/bin/prog", "abcd", "unknown_ca", "api.kimi.com"), 1);
    cr_assert_eq(kf_distrust_record(d, "/usr/bin/prog", "abcd", "unknown_ca", "api.kimi.com"), 0);
    kf_distrust_rec r;
    cr_assert_eq(kf_distrust_check(d, "/usr/bin/prog", "abcd", &r), 1);
    cr_assert_str_eq(r.alert, "unknown_ca");
    cr_assert_str_eq(r.host, "api.kimi.com");
    cr_assert_gt(r.when, 0);
    cr_assert_eq(kf_distrust_check(d, "/usr/bin/prog", "abce", NULL), 0); /* rebuilt: new program */
    cr_assert_eq(kf_distrust_check(d, "/usr/bin/other", "abcd", NULL), 0);
    struct stat st;
    kf_distrust_path(d, "/usr/bin/prog", "abcd", path, sizeof path);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/distrust", d);
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    cr_assert_eq(kf_distrust_record(d, "/x\ny", "1", "unknown_ca", "h"), -1); /* no line breaks */
    cr_assert_eq(kf_distrust_record(d, "/usr/bin/two", "ef01", "bad_certificate", "h"), 1);
    /* a record others could have written is not believed */
    chmod(path, 0622);
    cr_assert_eq(kf_distrust_check(d, "/usr/bin/prog", "abcd", NULL), 0);
    chmod(path, 0600);
    /* nor one whose content names another program (a hash collision) */
    put(path, "kimifix-distrust 1\nexe /usr/bin/evil\nbuildid abcd\n");
    chmod(path, 0600);
    cr_assert_eq(kf_distrust_check(d, "/usr/bin/prog", "abcd", NULL), 0);
    rm_tmp();
}

static int count_rec(void *ud, const char *path, const kf_distrust_rec *r)
{
    (void)path;
    (void)r;
    ++*(int *)ud;
    return 0;
}

Test(distrust, each_lists_valid_records)
{
    mk_tmp();
    char d[128], junk[256];
    snprintf(d, sizeof d, "%s/data", tmpd);
    mkdir(d, 0700);
    kf_distrust_record(d, "/a", "1", "unknown_ca", "h");
    kf_distrust_record(d, "/b", "2", "certificate_unknown", "h");
    snprintf(junk, sizeof junk, "%s/distrust/0123456789abcdef", d);
    put(junk, "not a record\n");
    int n = 0;
    cr_assert_eq(kf_distrust_each(d, count_rec, &n), 2);
    cr_assert_eq(n, 2);
    rm_tmp();
}

/* ---- Java ---- */

Test(java, options)
{
    char v[256], out[512];
    const char *o = "-Xmx1g -Djavax.net.ssl.trustStore=/a.jks -Dx=1 -Djavax.net.ssl.trustStore=/b.p12";
    cr_assert_eq(kf_java_opt(o, KF_JAVA_OPT_STORE, v, sizeof v), 1);
    cr_assert_str_eq(v, "/b.p12"); /* the last one wins, as in the JVM */
    cr_assert_eq(kf_java_opt(o, KF_JAVA_OPT_PASS, v, sizeof v), 0);
    cr_assert_eq(kf_java_opt("-Djavax.net.ssl.trustStorePassword=", KF_JAVA_OPT_PASS, v, sizeof v), 1);
    cr_assert_str_eq(v, "");
    cr_assert_eq(kf_java_opt(NULL, KF_JAVA_OPT_STORE, v, sizeof v), 0);
    static const char argv[] = "java\0-Djavax.net.ssl.trustStore=/c.jks\0Main.java\0";
    cr_assert_eq(kf_java_opt_argv(argv, sizeof argv - 1, KF_JAVA_OPT_STORE, v, sizeof v), 1);
    cr_assert_str_eq(v, "/c.jks");
    cr_assert_eq(kf_java_opts_with("-Xmx1g", "/d/s.p12", out, sizeof out), 0);
    cr_assert_str_eq(out, "-Xmx1g -Djavax.net.ssl.trustStore=/d/s.p12 "
                          "-Djavax.net.ssl.trustStoreType=PKCS12");
    cr_assert_eq(kf_java_opts_with(NULL, "/d/s.p12", out, sizeof out), 0);
    cr_assert_eq(strncmp(out, "-Djavax", 7), 0);
    cr_assert_eq(kf_java_opts_with("", "/my dir/s.p12", out, sizeof out), -1);
}

Test(java, default_store_and_store_name)
{
    mk_tmp();
    char p[512], got[4096], a[4200], b[4200];
    snprintf(p, sizeof p, "%s/jdk/lib/security", tmpd);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p %s %s/jdk/lib/server %s/data/kimifix", p, tmpd, tmpd);
    cr_assert_eq(system(cmd), 0);
    snprintf(p, sizeof p, "%s/jdk/lib/security/cacerts", tmpd);
    put(p, "JKS");
    snprintf(a, sizeof a, "%s/jdk/lib/server", tmpd); /* where libjvm.so lives */
    cr_assert_eq(kf_java_default_store(a, got, sizeof got), 0);
    cr_assert(strstr(got, "/jdk/lib/security/cacerts"), "%s", got);
    snprintf(p, sizeof p, "%s/jdk/lib/security/jssecacerts", tmpd);
    put(p, "JKS2");
    cr_assert_eq(kf_java_default_store(a, got, sizeof got), 0);
    cr_assert(strstr(got, "/jssecacerts"), "%s", got);
    cr_assert_eq(kf_java_default_store("/", got, sizeof got), -1);
    char data[256], ca[300];
    snprintf(data, sizeof data, "%s/data/kimifix", tmpd);
    cr_assert_eq(kf_java_store_path(data, got, a, sizeof a), -1); /* no CA yet */
    snprintf(ca, sizeof ca, "%s/ca.pem", data);
    put(ca, "CA1");
    cr_assert_eq(kf_java_store_path(data, got, a, sizeof a), 0);
    cr_assert_eq(kf_java_store_path(data, got, b, sizeof b), 0);
    cr_assert_str_eq(a, b); /* stable */
    cr_assert(strstr(a, "/java/trust-") && strstr(a, ".p12"), "%s", a);
    put(ca, "CA2 (a new kimifix CA)");
    cr_assert_eq(kf_java_store_path(data, got, b, sizeof b), 0);
    cr_assert_str_neq(a, b);
    rm_tmp();
}
