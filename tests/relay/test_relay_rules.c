/* test_relay_rules.c - the relay's own rules (src/relay/rules.c): the file
 * followed by every relay_rules_get(), a broken edit = the built-ins (the
 * policy of kf_rules_policy.h), sets that outlive an edit while a
 * connection holds them, per-rule counters, and all of it from threads
 * while the file changes under them (bounded by construction: a fixed
 * number of edits and of takes). Each Criterion test runs in its own
 * process, so rules.c's state starts fresh. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_log.h"
#include "kf_rules.h"
#include "relay.h"

static char dir[64], path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kfrules.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/rules", dir);
    setenv("KIMIFIX_RULES", path, 1);
    kf_log_open("/dev/null");
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

/* Write the file anew (a new size each time: an edit within one mtime tick
 * is still seen). */
static void put_file(const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *last_name(const relay_rules *r)
{
    const kf_ruleset *rs = relay_rules_set(r);
    return kf_rule_name(kf_ruleset_rule(rs, kf_ruleset_count(rs) - 1));
}

static unsigned builtin_count(void)
{
    kf_ruleset *b = kf_ruleset_builtin();
    unsigned n = kf_ruleset_count(b);
    kf_ruleset_free(b);
    return n;
}

static const kf_rule *rule_named(const relay_rules *r, const char *name)
{
    const kf_ruleset *rs = relay_rules_set(r);
    for (unsigned i = 0; i < kf_ruleset_count(rs); i++)
        if (!strcmp(kf_rule_name(kf_ruleset_rule(rs, i)), name))
            return kf_ruleset_rule(rs, i);
    return NULL;
}

TestSuite(relay_rules, .init = setup, .fini = teardown, .timeout = 60);

Test(relay_rules, an_edit_is_the_next_take)
{
    put_file("rule first\n    host api.kimi.com\n    set-header X-A 1\n");
    cr_assert_eq(relay_rules_init(), 0);
    relay_rules *a = relay_rules_get();
    cr_assert_str_eq(last_name(a), "first");
    cr_assert_eq(relay_rules_set(a), g_relay.rs, "the first set is the one the relay started with");
    relay_rules *same = relay_rules_get();
    cr_assert_eq(same, a, "an unchanged file is not read again");
    relay_rules_put(same);

    put_file("rule second\n    host api.kimi.com\n    set-header X-Second 1\n");
    relay_rules *b = relay_rules_get();
    cr_assert_neq(b, a);
    cr_assert_str_eq(last_name(b), "second");
    cr_assert_str_eq(last_name(a), "first", "a connection's set outlives the edit");
    relay_rules_put(a);

    put_file("rule third\n    host api.kimi.com\n    set-header X-Third-Edit 1\n");
    relay_rules *c = relay_rules_get();
    cr_assert_str_eq(last_name(c), "third");
    cr_assert_str_eq(last_name(b), "second");
    relay_rules_put(b); /* b's last reference: freed (ASan: no use after) */
    relay_rules_put(c);

    unlink(path); /* KIMIFIX_RULES names a missing file: an error, the built-ins */
    relay_rules *d = relay_rules_get();
    cr_assert_eq(kf_ruleset_count(relay_rules_set(d)), builtin_count());
    relay_rules_put(d);
}

Test(relay_rules, a_broken_edit_is_the_builtins_not_the_previous_file)
{
    put_file("rule mine\n    host api.kimi.com\n    set-header X-Mine 1\n");
    cr_assert_eq(relay_rules_init(), 0);
    relay_rules *a = relay_rules_get();
    cr_assert_eq(kf_ruleset_count(relay_rules_set(a)), builtin_count() + 1);
    put_file("rule mine\n    host api.kimi.com\n    set-header X-Mine 1\nrule broken\n    bogus x\n");
    relay_rules *b = relay_rules_get();
    cr_assert_eq(kf_ruleset_count(relay_rules_set(b)), builtin_count());
    cr_assert_null(rule_named(b, "mine"));
    char st[8192];
    size_t n = relay_rules_status(st, sizeof st);
    cr_assert_eq(n, strlen(st));
    cr_assert(strstr(st, "rules_state ") && strstr(st, "rules:5: error: unknown directive 'bogus'") &&
                  strstr(st, "the file is ignored, the built-in rules are in effect\n"),
              "%s", st);
    cr_assert(strstr(st, "rules_reloads 1\n"), "%s", st);
    relay_rules_put(a);
    relay_rules_put(b);
}

Test(relay_rules, counts_per_rule_across_edits)
{
    put_file("rule mine\n    host api.kimi.com\n    set-header X-Mine 1\n");
    cr_assert_eq(relay_rules_init(), 0);
    relay_rules *a = relay_rules_get();
    kf_req req;
    memset(&req, 0, sizeof req);
    req.fired[0] = rule_named(a, "kimi-coding-double-v1");
    req.fired[1] = rule_named(a, "mine");
    cr_assert(req.fired[0] && req.fired[1]);
    req.nfired = 2;
    relay_rules_hit(a, &req);
    relay_rules_hit(a, &req);
    put_file("rule mine\n    host api.kimi.com\n    set-header X-Mine-Edited 1\n");
    relay_rules *b = relay_rules_get();
    req.fired[0] = rule_named(b, "mine");
    req.nfired = 1;
    relay_rules_hit(b, &req);
    req.nfired = 0;
    relay_rules_hit(b, &req); /* nothing fired: not a rewrite */
    char st[8192];
    relay_rules_status(st, sizeof st);
    cr_assert(strstr(st, "\nrule kimi-coding-double-v1 2\n"), "%s", st);
    cr_assert(strstr(st, "\nrule mine 3\n"), "an edited rule counts on:\n%s", st);
    cr_assert(strstr(st, "\nrule kimi-squash-slashes 0\n"), "rules in effect are listed:\n%s", st);
    cr_assert(strstr(st, "\nrewritten 3\n"), "%s", st);
    cr_assert(strstr(st, "rules_source ") && strstr(st, "rules_state ok\n"), "%s", st);
    relay_rules_put(a);
    relay_rules_put(b);
    /* A short buffer gets whole lines only. */
    char small[64];
    size_t n = relay_rules_status(small, sizeof small);
    cr_assert_lt(n, sizeof small);
    cr_assert(n == 0 || small[n - 1] == '\n', "%.*s", (int)n, small);
}

#define THREADS 4
#define TAKES 3000
#define EDITS 61

static void *taker(void *arg)
{
    (void)arg;
    for (int i = 0; i < TAKES; i++) {
        relay_rules *r = relay_rules_get();
        const kf_rule *dv1 = rule_named(r, "kimi-coding-double-v1");
        kf_req req;
        memset(&req, 0, sizeof req);
        req.fired[0] = dv1;
        req.nfired = dv1 != NULL;
        relay_rules_hit(r, &req);
        relay_rules_put(r);
    }
    return NULL;
}

Test(relay_rules, threads_take_while_the_file_changes)
{
    put_file("# start\n");
    cr_assert_eq(relay_rules_init(), 0);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, taker, NULL), 0);
    char text[4096];
    for (int e = 0; e < EDITS; e++) {
        /* every edit a different size; every third one broken */
        int n = snprintf(text, sizeof text, "rule edit%d\n    host api.kimi.com\n    set-header X-E %0*d\n%s",
                         e, e + 1, e, e % 3 == 2 ? "bogus\n" : "");
        cr_assert_lt(n, (int)sizeof text);
        put_file(text);
        relay_rules_put(relay_rules_get());
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    relay_rules *r = relay_rules_get();
    cr_assert_str_eq(last_name(r), "edit60", "the last edit");
    relay_rules_put(r);
    char st[8192];
    relay_rules_status(st, sizeof st);
    char want[64];
    snprintf(want, sizeof want, "\nrule kimi-coding-double-v1 %d\n", THREADS * TAKES);
    cr_assert(strstr(st, want), "every take counted once:\n%s", st);
}
