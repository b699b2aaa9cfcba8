/* test_steer.c - the shim's relay steering (src/hooks/steer.c) under a real
 * program (steerclient) with LD_PRELOAD=libkimifix.so.
 *
 * A fake relay (a loopback listener that records bytes) and a fake upstream
 * stand in for the real ones; a private XDG_RUNTIME_DIR holds a relay.state
 * naming the fake relay (pid: this test process, alive) and a private
 * XDG_DATA_HOME a kimifix CA file, so nothing of the tester's is touched and
 * no real relay is ever started. `connect-to api.kimi.com:443 127.0.0.1:UP`
 * gives the name an address without DNS: the original destination the
 * preamble must carry is 127.0.0.1:UP.
 */
#include "steer_world.h"

TestSuite(steer, .timeout = 60);

/* KIMIFIX_MODE=relay: every connection to a rule host goes to the relay,
 * with the preamble; getpeername() still shows the original destination. */
static void steered(int nonblock)
{
    struct rec relay, up;
    rec_start(&relay);
    rec_start(&up);
    struct world w;
    world_init(&w, relay.port, up.port);
    run(&w, "relay", 2, nonblock, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&relay, 2);
    cr_expect_eq(relay.n, 2, "relay saw %d connection(s)\n%s", relay.n, w.err);
    cr_expect_eq(up.n, 0, "upstream reached directly");
    for (int i = 0; i < relay.n && i < 2; i++)
        expect_preamble(&w, &relay, i, up.port);
    char peer[64];
    snprintf(peer, sizeof peer, "peer=127.0.0.1:%d ", up.port);
    cr_expect_eq(count(w.err, peer), 2, "getpeername: want %s\n%s", peer, w.err);
    cr_expect_eq(count(w.err, "kimifix["), 0, "unexpected log lines:\n%s", w.err);
    rec_stop(&relay);
    rec_stop(&up);
    world_free(&w);
}

Test(steer, relay_mode_blocking) { steered(0); }
Test(steer, relay_mode_nonblocking_connect_returns_0) { steered(1); }

/* The relay's port is dead (its run lock held, nothing listening): the
 * client goes direct (same socket) and the log says why once, not per
 * connection nor once more at connect() after the constructor. */
Test(steer, relay_down_goes_direct_one_log_line)
{
    struct rec up;
    rec_start(&up);
    struct world w;
    world_init(&w, dead_port(), up.port);
    run(&w, "relay", 3, 1, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&up, 3);
    cr_expect_eq(up.n, 3, "%s", w.err);
    for (int i = 0; i < up.n && i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "hello %d\n", i);
        cr_expect_str_eq(up.data[i], want, "direct connection %d carried a preamble?", i);
    }
    cr_expect_eq(count(w.err, "relay: not running ("), 1, "%s", w.err);
    cr_expect_eq(count(w.err, "kimifix["), 1, "%s", w.err);
    rec_stop(&up);
    world_free(&w);
}

/* KIMIFIX_MODE=inprocess never steers, even with a relay running. */
Test(steer, inprocess_never_steers)
{
    struct rec relay, up;
    rec_start(&relay);
    rec_start(&up);
    struct world w;
    world_init(&w, relay.port, up.port);
    run(&w, "inprocess", 2, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&up, 2);
    cr_expect_eq(up.n, 2);
    cr_expect_eq(relay.n, 0, "steered in inprocess mode");
    cr_expect(strstr(w.err, "trust NODE_EXTRA_CA_CERTS=\n"), "trust set in inprocess mode:\n%s", w.err);
    rec_stop(&relay);
    rec_stop(&up);
    world_free(&w);
}

/* Auto mode, a program with no TLS library the hooks see (like a static
 * TLS build): its TLS connection to a rule host is steered. */
Test(steer, auto_mode_no_visible_tls_is_steered)
{
    struct rec relay, up;
    rec_start(&relay);
    rec_start(&up);
    struct world w;
    world_init(&w, relay.port, up.port);
    run(&w, NULL, 1, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    rec_wait(&relay, 1);
    cr_expect_eq(relay.n, 1, "%s", w.err);
    cr_expect_eq(up.n, 0);
    if (relay.n)
        expect_preamble(&w, &relay, 0, up.port);
    rec_stop(&relay);
    rec_stop(&up);
    world_free(&w);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static const char *var(const char *err, const char *name, char *out, size_t n)
{
    char key[64];
    snprintf(key, sizeof key, "trust %s=", name);
    const char *p = strstr(err, key);
    if (!p)
        return NULL;
    p += strlen(key);
    snprintf(out, n, "%.*s", (int)strcspn(p, "\n"), p);
    return out;
}

/* The constructor sets the trust variables before main: unset ones point
 * at the kimifix CA files; a user's NODE_EXTRA_CA_CERTS is combined with
 * ours into the runtime dir. */
Test(steer, trust_variables_set_before_main)
{
    struct rec relay;
    rec_start(&relay);
    struct world w;
    world_init(&w, relay.port, dead_port());
    char v[512], user[400];
    run(&w, "relay", 0, 0, NULL);
    cr_expect_eq(w.status, 0, "%s", w.err);
    cr_assert(var(w.err, "NODE_EXTRA_CA_CERTS", v, sizeof v), "%s", w.err);
    const char *text = slurp(v);
    cr_expect(text && strstr(text, "KIMIFIX-TEST-CA"), "NODE_EXTRA_CA_CERTS=%s: no kimifix CA", v);
    cr_assert(var(w.err, "SSL_CERT_FILE", v, sizeof v));
    text = slurp(v);
    cr_expect(text && strstr(text, "SYSTEM CAS") && strstr(text, "KIMIFIX-TEST-CA"), "SSL_CERT_FILE=%s", v);
    cr_assert(var(w.err, "REQUESTS_CA_BUNDLE", v, sizeof v));
    cr_expect(v[0], "REQUESTS_CA_BUNDLE unset");

    snprintf(user, sizeof user, "%s/user-ca.pem", w.dir);
    put(user, "USER-CA\n");
    run(&w, "relay", 0, 0, user);
    cr_assert(var(w.err, "NODE_EXTRA_CA_CERTS", v, sizeof v), "%s", w.err);
    cr_expect(!strncmp(v, w.run, strlen(w.run)), "combined file %s not in the runtime dir", v);
    text = slurp(v);
    cr_expect(text && strstr(text, "USER-CA") && strstr(text, "KIMIFIX-TEST-CA"),
              "combined %s: %s", v, text ? text : "(unreadable)");
    rec_stop(&relay);
    world_free(&w);
}

/* Issue 14 part 5: no fixed limit on steered sockets. 1000 connections to
 * the rule host open at once, all steered: each delivers the preamble with
 * its own original destination and then its HTTP request unchanged (the
 * relay rewrites it; an in-process rewrite here would be a second one),
 * and getpeername() answers the original destination for every one. The
 * old 128-entry ring forgot 872 of them. */
Test(steer, thousand_concurrent_steered_sockets, .timeout = 180)
{
    enum { N = 1000 };
    struct rec relay, up;
    rec_start(&relay);
    rec_start(&up);
    struct world w;
    world_init(&w, relay.port, up.port);
    w.hold = 1;
    run(&w, "relay", N, 0, NULL);
    cr_expect_eq(w.status, 0, "%.2000s", w.err);
    rec_wait(&relay, N);
    cr_expect_eq(relay.n, N, "relay saw %d connection(s)", relay.n);
    cr_expect_eq(up.n, 0, "upstream reached directly");
    char peer[64];
    snprintf(peer, sizeof peer, "peer=127.0.0.1:%d ", up.port);
    cr_expect_eq(count(w.err, peer), N, "getpeername answered the original destination %d times",
                 count(w.err, peer));
    cr_expect_eq(count(w.err, "kimifix["), 0, "unexpected log lines:\n%.2000s", w.err);
    int good = 0;
    for (int i = 0; i < relay.n && i < N; i++) {
        kf_proxy_info pi;
        ssize_t hl = kf_proxy_parse(relay.data[i], relay.len[i], &pi);
        const struct sockaddr_in *d = (const struct sockaddr_in *)&pi.dst;
        char want[160];
        int wl = snprintf(want, sizeof want, "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: "
                          "api.kimi.com\r\nX-N: %d\r\nContent-Length: 0\r\n\r\n", i);
        int ok = hl > 0 && ntohs(d->sin_port) == up.port && pi.has_token &&
                 relay.len[i] - (size_t)hl == (size_t)wl && !memcmp(relay.data[i] + hl, want, (size_t)wl);
        if (!ok && i - good < 3)
            cr_log_error("connection %d: %zu bytes, preamble %zd: %.*s", i, relay.len[i], hl,
                         (int)relay.len[i], relay.data[i]);
        good += ok;
    }
    cr_expect_eq(good, N, "%d of %d connections carried the preamble and the request unchanged",
                 good, N);
    rec_stop(&relay);
    rec_stop(&up);
    world_free(&w);
}
