/* test_noproxy.c - NO_PROXY semantics (src/common/kf_noproxy.c). */
#include <criterion/criterion.h>

#include "fakeenv.h"
#include "kf_noproxy.h"

fakeenv fe;

#define YES(list, host, port) cr_expect(kf_noproxy_match(list, host, port), "%s ~ %s:%u", list, host, port)
#define NO(list, host, port) cr_expect(!kf_noproxy_match(list, host, port), "%s !~ %s:%u", list, host, port)

Test(noproxy, empty_and_null_match_nothing)
{
    NO(NULL, "api.kimi.com", 443);
    NO("", "api.kimi.com", 443);
    NO(" , ,", "api.kimi.com", 443);
    NO("api.kimi.com", NULL, 443);
    NO("api.kimi.com", "", 443);
}

Test(noproxy, star_matches_everything)
{
    YES("*", "api.kimi.com", 443);
    YES("foo, *", "10.0.0.1", 0);
    NO("*.", "api.kimi.com", 443); /* "*." is no wildcard: it names "" (nothing) */
}

Test(noproxy, plain_name_matches_itself_and_subdomains)
{
    YES("kimi.com", "kimi.com", 443);
    YES("kimi.com", "api.kimi.com", 443);
    YES("KIMI.com", "Api.Kimi.COM", 443);
    NO("kimi.com", "notkimi.com", 443);
    NO("kimi.com", "kimi.com.evil.org", 443);
    NO("api.kimi.com", "kimi.com", 443);
}

Test(noproxy, leading_dot_and_star_dot_are_suffixes)
{
    YES(".kimi.com", "api.kimi.com", 443);
    YES(".kimi.com", "kimi.com", 443); /* curl and Python; Go would say no */
    YES("*.kimi.com", "api.kimi.com", 443);
    NO(".kimi.com", "xkimi.com", 443);
}

Test(noproxy, trailing_dots_ignored)
{
    YES("kimi.com.", "api.kimi.com", 443);
    YES("kimi.com", "api.kimi.com.", 443);
}

Test(noproxy, separators_and_blanks)
{
    YES("foo.org,  api.kimi.com ,bar", "api.kimi.com", 443);
    YES("foo.org api.kimi.com", "api.kimi.com", 443);
    YES("foo.org\tapi.kimi.com", "api.kimi.com", 443);
}

Test(noproxy, ports_restrict)
{
    YES("api.kimi.com:443", "api.kimi.com", 443);
    NO("api.kimi.com:443", "api.kimi.com", 80);
    NO("api.kimi.com:443", "api.kimi.com", 0);
    NO("api.kimi.com:0", "api.kimi.com", 0);      /* bad port: entry ignored */
    NO("api.kimi.com:99999", "api.kimi.com", 443);
    NO("api.kimi.com:x", "api.kimi.com", 443);
    YES("10.1.2.3:8080", "10.1.2.3", 8080);
    NO("10.1.2.3:8080", "10.1.2.3", 80);
}

Test(noproxy, ip_literals)
{
    YES("127.0.0.1", "127.0.0.1", 80);
    NO("127.0.0.1", "127.0.0.2", 80);
    YES("::1", "::1", 443);
    YES("::1", "[::1]", 443);
    YES("[::1]", "::1", 443);
    YES("[::1]:443", "::1", 443);
    NO("[::1]:443", "::1", 80);
    YES("0:0::1", "::1", 443);                     /* compared as addresses */
    NO("127.0.0.1", "localhost", 80);              /* never resolved */
    NO("api.kimi.com", "127.0.0.1", 443);
}

Test(noproxy, cidr_ranges)
{
    YES("10.0.0.0/8", "10.200.1.1", 443);
    NO("10.0.0.0/8", "11.0.0.1", 443);
    YES("192.168.4.0/22", "192.168.7.255", 443);
    NO("192.168.4.0/22", "192.168.8.0", 443);
    YES("0.0.0.0/0", "8.8.8.8", 443);
    YES("fe80::/10", "fe80::1234", 443);
    NO("fe80::/10", "fec0::1", 443);
    NO("10.0.0.0/8", "ten.example", 443);          /* names never match a range */
    NO("10.0.0.0/33", "10.0.0.1", 443);            /* bad prefix: ignored */
    NO("10.0.0.0/", "10.0.0.1", 443);
    NO("10.0.0.0/8", "::ffff:10.0.0.1", 443);      /* other family */
}

Test(noproxy, overlong_entry_ignored)
{
    char list[800];
    memset(list, 'a', 400);
    strcpy(list + 400, ".kimi.com,other.org");
    NO(list, "api.kimi.com", 443);
    YES(list, "other.org", 443);
}

Test(noproxy, env_prefers_lower_case)
{
    fe_clear();
    cr_expect_null(kf_noproxy_env(fake_get));
    fe_set("NO_PROXY", "a.org");
    cr_expect_str_eq(kf_noproxy_env(fake_get), "a.org");
    fe_set("no_proxy", "");
    cr_expect_str_eq(kf_noproxy_env(fake_get), "a.org"); /* empty counts as unset */
    fe_set("no_proxy", "b.org");
    cr_expect_str_eq(kf_noproxy_env(fake_get), "b.org");
}
