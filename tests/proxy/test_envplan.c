/* test_envplan.c - the carrier choice and its variables
 * (src/common/kf_envplan.c, kf_envplan_url.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fakeenv.h"
#include "kf_envplan.h"

/* ---- URLs ---- */

Test(purl, full_url_with_escaped_credentials)
{
    kf_purl u;
    cr_assert_eq(kf_purl_parse("http://us%40er:p%3Ass%2Fw@proxy.corp:3128/", &u), 0);
    cr_expect_str_eq(u.scheme, "http");
    cr_expect_str_eq(u.host, "proxy.corp");
    cr_expect_eq(u.port, 3128);
    cr_expect_str_eq(u.user, "us@er");
    cr_expect_str_eq(u.pass, "p:ss/w");
    cr_expect(u.has_auth);
    char s[300];
    kf_purl_shown(&u, s, sizeof s);
    cr_expect_str_eq(s, "proxy.corp:3128");
}

Test(purl, defaults_and_forms)
{
    kf_purl u;
    cr_assert_eq(kf_purl_parse("proxy.corp:8080", &u), 0); /* no scheme: http, like curl and Go */
    cr_expect_str_eq(u.scheme, "http");
    cr_expect_eq(u.port, 8080);
    cr_expect(!u.has_auth);
    cr_assert_eq(kf_purl_parse("HTTP://proxy.corp", &u), 0);
    cr_expect_str_eq(u.scheme, "http");
    cr_expect_eq(u.port, 80);
    cr_assert_eq(kf_purl_parse("https://proxy.corp", &u), 0);
    cr_expect_eq(u.port, 443);
    cr_assert_eq(kf_purl_parse("socks5h://proxy.corp", &u), 0);
    cr_expect_eq(u.port, 1080);
    cr_assert_eq(kf_purl_parse("http://[fd00::1]:3128", &u), 0);
    cr_expect_str_eq(u.host, "fd00::1");
    char s[300];
    kf_purl_shown(&u, s, sizeof s);
    cr_expect_str_eq(s, "[fd00::1]:3128");
    cr_assert_eq(kf_purl_parse("http://a:b:c@h", &u), 0); /* password may hold ':' */
    cr_expect_str_eq(u.pass, "b:c");
    cr_assert_eq(kf_purl_parse("http://a@b@h", &u), 0);   /* the last '@' ends userinfo */
    cr_expect_str_eq(u.user, "a@b");
    cr_expect_str_eq(u.host, "h");
}

Test(purl, malformed_rejected)
{
    kf_purl u;
    const char *bad[] = {"", "http://", "http://:3128", "http://h:0", "http://h:65536",
                         "http://h:12x", "http://h:", "http://[::1", "http://[zz::1]:1",
                         "http://u%4@h", "http://u%00@h", "http://h/path", "http://h?x",
                         "http://bad host", "://h", "ht tp://h", NULL};
    for (int i = 0; bad[i]; i++)
        cr_expect_eq(kf_purl_parse(bad[i], &u), -1, "%s", bad[i]);
    cr_expect_eq(kf_purl_parse(NULL, &u), -1);
}

Test(purl, ours)
{
    kf_purl u;
    kf_purl_parse("http://kimifix:00@127.0.0.1:4000", &u);
    cr_expect(kf_purl_is_ours(&u));
    kf_purl_parse("http://kimifix-0123456789abcdef0123456789abcdef:00@[::1]:4000", &u);
    cr_expect(kf_purl_is_ours(&u));
    kf_purl_parse("http://kimifix:00@proxy.corp:4000", &u);
    cr_expect(!kf_purl_is_ours(&u));
    kf_purl_parse("http://alice:00@127.0.0.1:4000", &u);
    cr_expect(!kf_purl_is_ours(&u));
}

Test(purl, relay_url)
{
    kf_relay_state st = {.port = 4567};
    for (int i = 0; i < KF_PROXY_TOKEN_LEN; i++)
        st.token[i] = (unsigned char)(0xa0 + i);
    char url[200];
    cr_assert_eq(kf_relay_proxy_url(&st, NULL, url, sizeof url), 0);
    cr_expect_str_eq(url, "http://kimifix:a0a1a2a3a4a5a6a7a8a9aaabacadaeaf@127.0.0.1:4567");
    cr_assert_eq(kf_relay_proxy_url(&st, "0123456789abcdef0123456789abcdef", url, sizeof url), 0);
    cr_expect_str_eq(url, "http://kimifix-0123456789abcdef0123456789abcdef:"
                          "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf@127.0.0.1:4567");
    cr_expect_eq(kf_relay_proxy_url(&st, NULL, url, 20), -1);
}

/* ---- the user's proxy ---- */

#define OURS "http://kimifix:0011@127.0.0.1:4567"

Test(userproxy, order_and_saved_originals)
{
    kf_userproxy up;
    fe_clear();
    cr_expect_eq(kf_user_proxy(fake_get, 1, &up), 0);
    fe_set("ALL_PROXY", "http://all:1");
    cr_assert_eq(kf_user_proxy(fake_get, 1, &up), 1);
    cr_expect_str_eq(up.var, "ALL_PROXY");
    fe_set("HTTPS_PROXY", "http://upper:2");
    kf_user_proxy(fake_get, 1, &up);
    cr_expect_str_eq(up.var, "HTTPS_PROXY");
    fe_set("https_proxy", "http://lower:3");
    kf_user_proxy(fake_get, 1, &up);
    cr_expect_str_eq(up.var, "https_proxy");
    cr_expect_str_eq(up.shown, "http://lower:3");
    cr_expect(up.usable);
    /* http upstreams read the http variables */
    fe_set("http_proxy", "http://plain:4");
    kf_user_proxy(fake_get, 0, &up);
    cr_expect_str_eq(up.var, "http_proxy");
    /* kimifix changed https_proxy: the saved original counts */
    fe_set("https_proxy", OURS);
    fe_set("KIMIFIX_ORIG_https_proxy", "http://saved:5");
    kf_user_proxy(fake_get, 1, &up);
    cr_expect_str_eq(up.shown, "http://saved:5");
    /* saved as "": the user had none there; the next variable counts */
    fe_set("KIMIFIX_ORIG_https_proxy", "");
    kf_user_proxy(fake_get, 1, &up);
    cr_expect_str_eq(up.var, "HTTPS_PROXY");
}

Test(userproxy, relay_without_original_is_not_the_users)
{
    kf_userproxy up;
    fe_clear();
    fe_set("HTTPS_PROXY", OURS);
    cr_expect_eq(kf_user_proxy(fake_get, 1, &up), 0);
    cr_expect_eq(kf_env_relay_port(fake_get), 4567);
}

Test(userproxy, unusable_schemes)
{
    kf_userproxy up;
    fe_clear();
    fe_set("ALL_PROXY", "socks5h://user:pw@socks.corp");
    cr_assert_eq(kf_user_proxy(fake_get, 1, &up), 1);
    cr_expect(!up.usable);
    cr_expect_str_eq(up.shown, "socks5h://socks.corp:1080");
    fe_set("HTTPS_PROXY", "not a url");
    cr_assert_eq(kf_user_proxy(fake_get, 1, &up), 1);
    cr_expect(!up.usable);
    cr_expect_null(strstr(up.shown, "not a url"));
}

/* ---- the choice ---- */

static kf_carrier_choice pick(int no_preload, int tls_inprocess)
{
    kf_carrier_in in = {.get = fake_get, .no_preload = no_preload, .tls_inprocess = tls_inprocess};
    kf_carrier_choice c;
    kf_carrier_choose(&in, &c);
    cr_expect_null(strstr(c.why, "secret"), "credentials in why: %s", c.why);
    return c;
}

Test(choice, no_proxy_keeps_the_shim)
{
    fe_clear();
    cr_expect_eq(pick(0, 0).carrier, KF_CARRIER_SHIM);
    cr_expect_eq(pick(0, 1).carrier, KF_CARRIER_SHIM);
}

Test(choice, no_preload_means_proxy)
{
    fe_clear();
    kf_carrier_choice c = pick(1, 0);
    cr_expect_eq(c.carrier, KF_CARRIER_PROXY);
    cr_expect(strstr(c.why, "cannot load the shim"), "%s", c.why);
}

Test(choice, user_proxy_means_proxy_unless_tls_is_in_process)
{
    fe_clear();
    fe_set("HTTPS_PROXY", "http://u:secret@proxy.corp:3128");
    kf_carrier_choice c = pick(0, 0);
    cr_expect_eq(c.carrier, KF_CARRIER_PROXY);
    cr_expect(strstr(c.why, "proxy.corp:3128"), "%s", c.why);
    c = pick(0, 1);
    cr_expect_eq(c.carrier, KF_CARRIER_SHIM);
    cr_expect(!c.restore);
    cr_expect_eq(pick(1, 0).carrier, KF_CARRIER_PROXY);
}

Test(choice, inherited_relay_restored_where_tls_is_in_process)
{
    fe_clear();
    fe_set("HTTPS_PROXY", OURS);
    fe_set("KIMIFIX_ORIG_HTTPS_PROXY", "http://proxy.corp:3128");
    kf_carrier_choice c = pick(0, 1);
    cr_expect_eq(c.carrier, KF_CARRIER_SHIM);
    cr_expect(c.restore);
    c = pick(0, 0);
    cr_expect_eq(c.carrier, KF_CARRIER_PROXY);
    cr_expect(c.inherited);
    fe_set("KIMIFIX_ORIG_HTTPS_PROXY", ""); /* a static program's parent had no proxy */
    c = pick(0, 0);
    cr_expect_eq(c.carrier, KF_CARRIER_PROXY);
}

Test(choice, modes)
{
    fe_clear();
    fe_set("KIMIFIX_MODE", "proxy");
    kf_carrier_choice c = pick(0, 1);
    cr_expect_eq(c.carrier, KF_CARRIER_PROXY);
    cr_expect(c.forced);
    fe_set("KIMIFIX_MODE", "off");
    cr_expect_eq(pick(1, 0).carrier, KF_CARRIER_NONE);
    fe_set("KIMIFIX_MODE", "inprocess");
    fe_set("HTTPS_PROXY", "http://proxy.corp:3128");
    cr_expect_eq(pick(0, 0).carrier, KF_CARRIER_SHIM);
    cr_expect_eq(pick(1, 0).carrier, KF_CARRIER_NONE);
    fe_set("KIMIFIX_MODE", "relay");
    cr_expect_eq(pick(0, 0).carrier, KF_CARRIER_PROXY);
}

Test(choice, proxy_the_relay_cannot_chain_through)
{
    fe_clear();
    fe_set("ALL_PROXY", "socks5://socks.corp:1080");
    kf_carrier_choice c = pick(0, 0);
    cr_expect_eq(c.carrier, KF_CARRIER_SHIM);
    cr_expect(strstr(c.why, "socks5://socks.corp:1080"), "%s", c.why);
    c = pick(1, 0);
    cr_expect_eq(c.carrier, KF_CARRIER_NONE);
    cr_expect(strstr(c.why, "unfixed"), "%s", c.why);
    fe_set("KIMIFIX_MODE", "proxy"); /* forcing cannot make a socks chain */
    cr_expect_eq(pick(0, 0).carrier, KF_CARRIER_SHIM);
}

/* ---- the variables ---- */

static const char *planned(const kf_envplan *p, const char *name, int *found)
{
    *found = 0;
    const char *v = NULL;
    for (unsigned i = 0; i < p->n; i++)
        if (!strcmp(p->v[i].name, name)) {
            *found = 1;
            v = p->v[i].value;
        }
    return v;
}

#define EXPECT_SET(p, name, val)                                                                 \
    do {                                                                                         \
        int f_;                                                                                  \
        const char *v_ = planned(p, name, &f_);                                                  \
        cr_expect(f_ && v_ && !strcmp(v_, val), "%s = %s, want %s", name, f_ ? v_ : "(not set)", \
                  val);                                                                          \
    } while (0)
#define EXPECT_UNSET(p, name)                                                    \
    do {                                                                         \
        int f_;                                                                  \
        const char *v_ = planned(p, name, &f_);                                  \
        cr_expect(f_ && !v_, "%s: want unset, got %s", name, f_ ? v_ : "nothing"); \
    } while (0)
#define EXPECT_UNTOUCHED(p, name)                             \
    do {                                                      \
        int f_;                                               \
        planned(p, name, &f_);                                \
        cr_expect(!f_, "%s: should not be touched", name);    \
    } while (0)

Test(plan, proxy_variables_and_saved_originals)
{
    kf_envplan p;
    fe_clear();
    fe_set("HTTPS_PROXY", "http://proxy.corp:3128");
    fe_set("NO_PROXY", "internal.corp");
    fe_set("ALL_PROXY", "http://proxy.corp:3128");
    kf_envplan_init(&p);
    kf_envplan_proxy(&p, fake_get, OURS);
    cr_assert(!p.full);
    for (const char *const *v = kf_proxy_vars; *v; v++)
        EXPECT_SET(&p, *v, OURS);
    EXPECT_SET(&p, "KIMIFIX_ORIG_HTTPS_PROXY", "http://proxy.corp:3128");
    EXPECT_SET(&p, "KIMIFIX_ORIG_https_proxy", "");
    EXPECT_UNTOUCHED(&p, "NO_PROXY");
    EXPECT_UNTOUCHED(&p, "no_proxy");
    EXPECT_UNTOUCHED(&p, "ALL_PROXY");
    /* the original is saved before the variable changes */
    unsigned orig = 99, var = 99;
    for (unsigned i = 0; i < p.n; i++) {
        if (!strcmp(p.v[i].name, "KIMIFIX_ORIG_HTTPS_PROXY"))
            orig = i;
        if (!strcmp(p.v[i].name, "HTTPS_PROXY"))
            var = i;
    }
    cr_expect_lt(orig, var);
}

Test(plan, a_child_keeps_existing_originals)
{
    kf_envplan p;
    fe_clear();
    fe_set("HTTPS_PROXY", OURS);
    fe_set("KIMIFIX_ORIG_HTTPS_PROXY", "http://proxy.corp:3128");
    kf_envplan_init(&p);
    kf_envplan_proxy(&p, fake_get, "http://kimifix:0011@127.0.0.1:5555"); /* relay moved */
    EXPECT_UNTOUCHED(&p, "KIMIFIX_ORIG_HTTPS_PROXY");
    EXPECT_SET(&p, "HTTPS_PROXY", "http://kimifix:0011@127.0.0.1:5555");
    /* a relay URL found without an original is not recorded as the user's */
    EXPECT_SET(&p, "KIMIFIX_ORIG_https_proxy", "");
    kf_envplan_init(&p);
    kf_envplan_proxy(&p, fake_get, OURS); /* nothing changes: nothing set */
    EXPECT_UNTOUCHED(&p, "HTTPS_PROXY");
}

Test(plan, restore_puts_the_users_values_back)
{
    kf_envplan p;
    fe_clear();
    fe_set("HTTPS_PROXY", OURS);
    fe_set("KIMIFIX_ORIG_HTTPS_PROXY", "http://proxy.corp:3128");
    fe_set("https_proxy", OURS);
    fe_set("KIMIFIX_ORIG_https_proxy", "");
    fe_set("HTTP_PROXY", "http://user.set.it.later:1");
    kf_envplan_init(&p);
    kf_envplan_restore(&p, fake_get);
    EXPECT_SET(&p, "HTTPS_PROXY", "http://proxy.corp:3128");
    EXPECT_UNSET(&p, "https_proxy");
    EXPECT_UNTOUCHED(&p, "HTTP_PROXY"); /* no saved original: never ours */
}

static char *real_get(const char *name) { return getenv(name); }

Test(plan, apply_sets_and_unsets_in_order)
{
    kf_envplan p;
    kf_envplan_init(&p);
    setenv("KF_T_A", "old", 1);
    setenv("KF_T_B", "gone", 1);
    unsetenv("KIMIFIX_ORIG_KF_T_A");
    kf_envplan_set(&p, real_get, "KF_T_A", "new");
    p.v[p.n].name = "KF_T_B";
    p.v[p.n++].value = NULL;
    cr_assert_eq(kf_envplan_apply(&p, setenv, unsetenv), 0);
    cr_expect_str_eq(getenv("KF_T_A"), "new");
    cr_expect_str_eq(getenv("KIMIFIX_ORIG_KF_T_A"), "old");
    cr_expect_null(getenv("KF_T_B"));
    p.full = 1;
    cr_expect_eq(kf_envplan_apply(&p, setenv, unsetenv), -1);
    cr_expect_eq(errno, E2BIG);
}

Test(plan, full_pool_applies_nothing)
{
    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    kf_envplan p;
    kf_envplan_init(&p);
    fe_clear();
    for (int i = 0; i < 20 && !p.full; i++)
        kf_envplan_set(&p, fake_get, "BIGVAR", big);
    cr_expect(p.full);
}

/* The trust variables come from kf_trust (its data dir is XDG_DATA_HOME). */
Test(plan, trust_variables_need_the_ca)
{
    char dir[] = "/tmp/kf-envplan-XXXXXX", sub[200], ca[300];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/kimifix", dir);
    setenv("XDG_DATA_HOME", dir, 1);
    setenv("XDG_RUNTIME_DIR", dir, 1);
    unsetenv("SSL_CERT_FILE");
    unsetenv("KIMIFIX_ORIG_SSL_CERT_FILE");
    kf_envplan p;
    kf_envplan_init(&p);
    cr_expect(!kf_envplan_ca_exists());
    cr_expect_eq(kf_envplan_trust(&p, real_get), -1);
    mkdir(sub, 0700);
    snprintf(ca, sizeof ca, "%s/ca.pem", sub);
    int fd = open(ca, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_expect(kf_envplan_ca_exists());
    cr_expect_gt(kf_envplan_trust(&p, real_get), 0);
    /* No DATADIR/ca-bundle.pem yet (the relay writes it): the system
     * bundle + the CA combined in the runtime dir (kf_trust.c), never a
     * path to a file that does not exist. */
    char want[300];
    snprintf(want, sizeof want, "%s/kimifix/trust-", dir);
    int f;
    const char *v = planned(&p, "SSL_CERT_FILE", &f);
    cr_expect(f && v && !strncmp(v, want, strlen(want)) && access(v, R_OK) == 0,
              "SSL_CERT_FILE = %s, want an existing %s*.pem", f ? v : "(not set)", want);
    EXPECT_SET(&p, "KIMIFIX_ORIG_SSL_CERT_FILE", "");
    unlink(ca);
    rmdir(sub);
}
