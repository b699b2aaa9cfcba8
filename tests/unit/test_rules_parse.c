/* test_rules_parse.c - the rules language: every directive, every error
 * message (exact text), quoting, comments, defaults off / disable, dump. */
#include <errno.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_rules.h"

static char diag[16384];

static void collect(void *ud, const char *line)
{
    (void)ud;
    strncat(diag, line, sizeof diag - strlen(diag) - 2);
    strcat(diag, "\n");
}

static kf_ruleset *load(const char *text, int *nerr)
{
    diag[0] = '\0';
    return kf_ruleset_load_text(text, strlen(text), "t.rules", collect, NULL, nerr);
}

/* The text must fail with exactly these diagnostics (each line ends in \n). */
static void expect_diag(const char *text, const char *want)
{
    int nerr = -1;
    kf_ruleset *rs = load(text, &nerr);
    cr_assert_null(rs, "accepted: %s", text);
    cr_assert_gt(nerr, 0);
    cr_assert_str_eq(diag, want, "for input:\n%s", text);
}

static kf_ruleset *expect_ok(const char *text)
{
    int nerr = -1;
    kf_ruleset *rs = load(text, &nerr);
    cr_assert_not_null(rs, "rejected:\n%s\n%s", text, diag);
    cr_assert_eq(nerr, 0);
    return rs;
}

static char dump[65536];

static void dump_line(void *ud, const char *line)
{
    (void)ud;
    strncat(dump, line, sizeof dump - strlen(dump) - 2);
    strcat(dump, "\n");
}

/* The dump from the user's part on ("# rules from ..."). */
static const char *user_dump(const kf_ruleset *rs)
{
    dump[0] = '\0';
    kf_ruleset_dump(rs, dump_line, NULL);
    const char *u = strstr(dump, "# rules from ");
    cr_assert_not_null(u, "%s", dump);
    return u;
}

static const kf_rule *find(const kf_ruleset *rs, const char *name)
{
    for (unsigned i = 0; i < kf_ruleset_count(rs); i++)
        if (!strcmp(kf_rule_name(kf_ruleset_rule(rs, i)), name))
            return kf_ruleset_rule(rs, i);
    return NULL;
}

/* ---- accepted input ---- */

Test(rules_parse, every_directive_roundtrips_through_dump)
{
    kf_ruleset *rs = expect_ok("# a comment\n"
                               "defaults off\n"
                               "\n"
                               "rule all-conds   # trailing comment\n"
                               "    host API.Example.com *.Example.org:8443 [::1]:8080\n"
                               "    path ~ ^/a/(b+)/c$\n"
                               "    method GET POST\n"
                               "    header X-Msh-Platform kimi_*\n"
                               "    header Accept \"*json*\"\n"
                               "    key sk-?*\n"
                               "    rewrite-path /x/\\1/\\0\\\\\n"
                               "    squash-slashes\n"
                               "    set-header X-A \"a b\"\n"
                               "    add-header X-B 2\n"
                               "    remove-header X-C\n"
                               "    upstream Other.example.com:444\n"
                               "rule prefix\n"
                               "path /v1/\n"
                               "set-header X-Empty \"\"\n"
                               "connect-to api.kimi.com:443 127.0.0.1:8443\n"
                               "connect-to API.moonshot.ai [::1]:9000\n");
    cr_assert_str_eq(user_dump(rs),
                     "# rules from t.rules (2)\n"
                     "\n"
                     "rule all-conds    # t.rules:4\n"
                     "    host api.example.com *.example.org:8443 [::1]:8080\n"
                     "    path ~ ^/a/(b+)/c$\n"
                     "    method GET POST\n"
                     "    header X-Msh-Platform kimi_*\n"
                     "    header Accept *json*\n"
                     "    key sk-?*\n"
                     "    rewrite-path /x/\\1/\\0\\\\\n"
                     "    squash-slashes\n"
                     "    set-header X-A \"a b\"\n"
                     "    add-header X-B 2\n"
                     "    remove-header X-C\n"
                     "    upstream other.example.com:444\n"
                     "\n"
                     "rule prefix    # t.rules:17\n"
                     "    path /v1/\n"
                     "    set-header X-Empty \"\"\n"
                     "\n"
                     "connect-to api.kimi.com:443 127.0.0.1:8443    # t.rules:20\n"
                     "connect-to api.moonshot.ai [::1]:9000    # t.rules:21\n");
    cr_assert_eq(kf_ruleset_count(rs) > 2, 1);
    cr_assert_str_eq(kf_rule_origin(find(rs, "prefix")), "t.rules:17");
    kf_ruleset_free(rs);
}

Test(rules_parse, dump_reparses_to_the_same_dump)
{
    const char *text = "defaults off\n"
                       "rule q\n"
                       "  header X \"a \\\"b\\\" \\\\ #c\"\n"
                       "  set-header Y \"x\\\\1 y\"\n";
    kf_ruleset *rs = expect_ok(text);
    char first[4096];
    snprintf(first, sizeof first, "%s", user_dump(rs));
    cr_assert(strstr(first, "    header X \"a \\\"b\\\" \\\\ #c\"\n"), "%s", first);
    /* feed the user part back in */
    const char *body = strstr(first, "rule q");
    char again[4096];
    snprintf(again, sizeof again, "defaults off\n%s", body);
    kf_ruleset *rs2 = expect_ok(again);
    const char *second = user_dump(rs2);
    cr_assert_str_eq(strstr(second, "rule q"), strstr(first, "rule q"));
    kf_ruleset_free(rs);
    kf_ruleset_free(rs2);
}

Test(rules_parse, quoting_and_comments)
{
    kf_ruleset *rs = expect_ok("defaults off\n"
                               "rule a\n"
                               "  set-header X-1 a#b\n"      /* '#' ends the line: value "a" */
                               "  set-header X-2 \"a#b\"\n"  /* quoted: kept */
                               "  set-header X-3 ab\"c d\"e\n" /* quotes join into one word */
                               "\t# indented comment\n"
                               "  set-header X-4 \"\\q\"\n"); /* unknown escape kept as is */
    const char *d = user_dump(rs);
    cr_assert(strstr(d, "    set-header X-1 a\n"), "%s", d);
    cr_assert(strstr(d, "    set-header X-2 \"a#b\"\n"), "%s", d);
    cr_assert(strstr(d, "    set-header X-3 \"abc de\"\n"), "%s", d);
    cr_assert(strstr(d, "    set-header X-4 \\q\n"), "%s", d);
    kf_ruleset_free(rs);
}

Test(rules_parse, crlf_and_no_final_newline)
{
    kf_ruleset *rs = expect_ok("defaults off\r\nrule a\r\n  remove-header X");
    cr_assert(strstr(user_dump(rs), "    remove-header X\n"));
    kf_ruleset_free(rs);
}

Test(rules_parse, empty_file_is_builtins_only)
{
    kf_ruleset *rs = expect_ok("");
    kf_ruleset *b = kf_ruleset_builtin();
    cr_assert_not_null(b);
    cr_assert_eq(kf_ruleset_count(rs), kf_ruleset_count(b));
    cr_assert_gt(kf_ruleset_count(b), 5);
    for (unsigned i = 0; i < kf_ruleset_count(b); i++) {
        cr_assert(kf_rule_enabled(kf_ruleset_rule(b, i)));
        cr_assert_eq(strncmp(kf_rule_origin(kf_ruleset_rule(b, i)), "builtin:", 8), 0);
    }
    kf_ruleset_free(rs);
    kf_ruleset_free(b);
}

Test(rules_parse, defaults_off_disables_every_builtin)
{
    kf_ruleset *rs = expect_ok("# nothing else\ndefaults off\n");
    kf_ruleset *b = kf_ruleset_builtin();
    cr_assert_eq(kf_ruleset_count(rs), kf_ruleset_count(b));
    for (unsigned i = 0; i < kf_ruleset_count(rs); i++)
        cr_assert_not(kf_rule_enabled(kf_ruleset_rule(rs, i)));
    dump[0] = '\0';
    kf_ruleset_dump(rs, dump_line, NULL);
    cr_assert(strstr(dump, "# built-in rules ("), "%s", dump);
    cr_assert(strstr(dump, ": off, by 'defaults off' at t.rules:2\n"), "%s", dump);
    cr_assert(strstr(dump, "# disabled by t.rules:2\n# rule kimi-squash-slashes    # builtin:"), "%s", dump);
    cr_assert(strstr(dump, "#     squash-slashes\n"), "%s", dump);
    kf_ruleset_free(rs);
    kf_ruleset_free(b);
    /* `defaults on` undoes it */
    rs = expect_ok("defaults off\ndefaults on\n");
    for (unsigned i = 0; i < kf_ruleset_count(rs); i++)
        cr_assert(kf_rule_enabled(kf_ruleset_rule(rs, i)));
    kf_ruleset_free(rs);
}

Test(rules_parse, disable_one_builtin_and_reuse_its_name)
{
    kf_ruleset *rs = expect_ok("rule kimi-platform-kimi-code-cli\n"
                               "  host api.kimi.com\n"
                               "  set-header X-Mine 1\n"
                               "disable kimi-platform-kimi-code-cli\n");
    unsigned n = 0;
    for (unsigned i = 0; i < kf_ruleset_count(rs); i++) {
        const kf_rule *r = kf_ruleset_rule(rs, i);
        if (strcmp(kf_rule_name(r), "kimi-platform-kimi-code-cli"))
            continue;
        n++;
        if (!strncmp(kf_rule_origin(r), "builtin:", 8))
            cr_assert_not(kf_rule_enabled(r));
        else
            cr_assert(kf_rule_enabled(r));
    }
    cr_assert_eq(n, 2);
    dump[0] = '\0';
    kf_ruleset_dump(rs, dump_line, NULL);
    cr_assert(strstr(dump, "# disabled by t.rules:4\n# rule kimi-platform-kimi-code-cli    # builtin:"),
              "%s", dump);
    kf_ruleset_free(rs);
}

Test(rules_parse, user_agent_warns_but_loads)
{
    kf_ruleset *rs = expect_ok("rule ua\n  host api.kimi.com\n  set-header User-Agent KimiCLI/1.49.0\n");
    cr_assert_str_eq(diag, "t.rules:3: warning: set-header User-Agent: Moonshot's Kimi Code guidelines "
                           "forbid falsifying client identity; accounts that sent a fake User-Agent "
                           "were terminated\n");
    kf_ruleset_free(rs);
    rs = expect_ok("rule ua\n  remove-header user-agent\n");
    cr_assert(strstr(diag, "t.rules:2: warning: remove-header user-agent: Moonshot's"), "%s", diag);
    kf_ruleset_free(rs);
    /* a condition on User-Agent does not touch it: no warning */
    rs = expect_ok("rule ua\n  header User-Agent curl/*\n  set-header X 1\n");
    cr_assert_str_eq(diag, "");
    kf_ruleset_free(rs);
}

Test(rules_parse, load_from_file_and_missing_file)
{
    char path[] = "/tmp/kf-rules-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "rule f\n  set-header X 1\n  bogus\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    diag[0] = '\0';
    int nerr = 0;
    cr_assert_null(kf_ruleset_load(path, collect, NULL, &nerr));
    cr_assert_eq(nerr, 1);
    char want[256];
    snprintf(want, sizeof want, "%s:3: error: unknown directive 'bogus'\n", path);
    cr_assert_str_eq(diag, want);
    unlink(path);
    diag[0] = '\0';
    cr_assert_null(kf_ruleset_load("/nonexistent/kimifix.rules", collect, NULL, &nerr));
    cr_assert_eq(nerr, 1);
    cr_assert_str_eq(diag, "/nonexistent/kimifix.rules:0: error: cannot open: No such file or directory\n");
    kf_ruleset *rs = kf_ruleset_load(NULL, collect, NULL, &nerr);
    cr_assert_not_null(rs, "NULL path: built-ins only");
    cr_assert_eq(nerr, 0);
    kf_ruleset_free(rs);
}

Test(rules_parse, default_path_lookup)
{
    char buf[512];
    setenv("KIMIFIX_RULES", "/some/where.rules", 1);
    cr_assert_str_eq(kf_rules_default_path(buf, sizeof buf), "/some/where.rules");
    errno = 0;
    cr_assert_null(kf_rules_default_path(buf, 5), "does not fit");
    cr_assert_eq(errno, ENAMETOOLONG, "said why: the shim retries with a larger buffer");
    unsetenv("KIMIFIX_RULES");
    /* ~/.config/kimifix/rules too long for the buffer: not /etc's file
     * instead (the user's may exist), but "too long" */
    setenv("HOME", "/a/home/whose/rules/path/is/longer/than/the/buffer", 1);
    errno = 0;
    cr_assert_null(kf_rules_default_path(buf, 40));
    cr_assert_eq(errno, ENAMETOOLONG);
    char home[] = "/tmp/kf-home-XXXXXX";
    cr_assert_not_null(mkdtemp(home));
    setenv("HOME", home, 1);
    const char *p = kf_rules_default_path(buf, sizeof buf);
    if (access("/etc/kimifix/rules", R_OK) == 0)
        cr_assert_str_eq(p, "/etc/kimifix/rules");
    else
        cr_assert_null(p, "nothing exists: no file");
    if (!p)
        cr_assert_neq(errno, ENAMETOOLONG, "none is not too long");
    char dir[600], file[700];
    snprintf(dir, sizeof dir, "%s/.config", home);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/.config/kimifix", home);
    mkdir(dir, 0700);
    snprintf(file, sizeof file, "%s/rules", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_assert_str_eq(kf_rules_default_path(buf, sizeof buf), file);
    unlink(file);
    rmdir(dir);
    snprintf(dir, sizeof dir, "%s/.config", home);
    rmdir(dir);
    rmdir(home);
}

/* ---- errors: exact messages ---- */

Test(rules_parse, error_unknown_directive_and_outside_rule)
{
    expect_diag("frobnicate x\n", "t.rules:1: error: unknown directive 'frobnicate'\n");
    expect_diag("\n# c\nhost api.kimi.com\n",
                "t.rules:3: error: 'host' outside a rule (start a block with 'rule NAME')\n");
    expect_diag("set-header X y\n",
                "t.rules:1: error: 'set-header' outside a rule (start a block with 'rule NAME')\n");
    /* connect-to ends a block */
    expect_diag("rule a\n set-header X 1\nconnect-to a b:1\n remove-header Y\n",
                "t.rules:4: error: 'remove-header' outside a rule (start a block with 'rule NAME')\n");
}

Test(rules_parse, error_rule_line)
{
    expect_diag("rule\n  set-header X 1\n", "t.rules:1: error: rule: expected NAME\n");
    expect_diag("rule a b\n  set-header X 1\n", "t.rules:1: error: rule: expected NAME\n");
    expect_diag("rule a/b\n  set-header X 1\n",
                "t.rules:1: error: rule: bad name 'a/b' (use letters, digits, '_', '.', '-')\n");
    expect_diag("rule a\n  set-header X 1\nrule a\n  set-header X 2\n",
                "t.rules:3: error: rule a already defined at t.rules:1\n");
    expect_diag("rule a\n  host h\nrule b\n  set-header X 1\n", "t.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n", "t.rules:1: error: rule a has no action\n");
}

Test(rules_parse, error_builtin_name_needs_disable)
{
    kf_ruleset *b = kf_ruleset_builtin();
    const kf_rule *r = find(b, "kimi-squash-slashes");
    cr_assert_not_null(r);
    char want[256];
    snprintf(want, sizeof want,
             "t.rules:2: error: rule kimi-squash-slashes already defined at %s; disable it first\n",
             kf_rule_origin(r));
    expect_diag("\nrule kimi-squash-slashes\n  squash-slashes\n", want);
    kf_ruleset_free(b);
    /* disabling after the rule is fine too */
    kf_ruleset_free(expect_ok("rule kimi-squash-slashes\n  squash-slashes\ndisable kimi-squash-slashes\n"));
    kf_ruleset_free(expect_ok("defaults off\nrule kimi-squash-slashes\n  squash-slashes\n"));
}

Test(rules_parse, error_quotes_words_nul)
{
    expect_diag("rule a\n  set-header X \"abc\n", "t.rules:2: error: unterminated quote\nt.rules:1: error: rule a has no action\n");
    char many[1024] = "rule a\n  host";
    for (int i = 0; i < 70; i++)
        strcat(many, " h");
    strcat(many, "\n  set-header X 1\n");
    expect_diag(many, "t.rules:2: error: too many words on one line (at most 64)\n");
    static const char nul[] = "rule a\n  set-header X a\0b\n";
    diag[0] = '\0';
    int nerr = 0;
    cr_assert_null(kf_ruleset_load_text(nul, sizeof nul - 1, "t.rules", collect, NULL, &nerr));
    cr_assert_str_eq(diag, "t.rules:2: error: NUL byte in the line\nt.rules:1: error: rule a has no action\n");
}

Test(rules_parse, error_host)
{
    expect_diag("rule a\n host\n set-header X 1\n", "t.rules:2: error: host: expected HOST [HOST...]\n");
    expect_diag("rule a\n host a b\n host c\n set-header X 1\n",
                "t.rules:3: error: rule a: only one 'host' line per rule (first at line 2); put "
                "alternatives on one line\n");
    expect_diag("rule a\n host a/b\n set-header X 1\n",
                "t.rules:2: error: host: bad host 'a/b' (use a name, *.suffix, or [IPv6], with an optional :port)\n");
    expect_diag("rule a\n host *\n set-header X 1\n",
                "t.rules:2: error: host: bad host '*' (use a name, *.suffix, or [IPv6], with an optional :port)\n");
    expect_diag("rule a\n host a:0 b:65536 c:x d:\n set-header X 1\n",
                "t.rules:2: error: host: bad port '0' in 'a:0' (1-65535)\n"
                "t.rules:2: error: host: bad port '65536' in 'b:65536' (1-65535)\n"
                "t.rules:2: error: host: bad port 'x' in 'c:x' (1-65535)\n"
                "t.rules:2: error: host: bad port '' in 'd:' (1-65535)\n");
    expect_diag("rule a\n host [zz::1]\n set-header X 1\n", "t.rules:2: error: host: bad IPv6 address '[zz::1]'\n");
}

Test(rules_parse, error_path)
{
    expect_diag("rule a\n path\n set-header X 1\n", "t.rules:2: error: path: expected /PREFIX or ~ REGEX\n");
    expect_diag("rule a\n path ~\n set-header X 1\n", "t.rules:2: error: path: expected /PREFIX or ~ REGEX\n");
    expect_diag("rule a\n path /a /b\n set-header X 1\n", "t.rules:2: error: path: expected /PREFIX or ~ REGEX\n");
    expect_diag("rule a\n path v1/\n set-header X 1\n", "t.rules:2: error: path: prefix must start with '/': 'v1/'\n");
    expect_diag("rule a\n path ~ \"\"\n set-header X 1\n", "t.rules:2: error: path: empty regular expression\n");
    expect_diag("rule a\n path /a\n path /b\n set-header X 1\n",
                "t.rules:3: error: rule a: only one 'path' line per rule (first at line 2); put "
                "alternatives on one line\n");
    /* regcomp's own message follows the pattern */
    int nerr;
    kf_ruleset *rs = load("rule a\n path ~ ^/(a\n set-header X 1\n", &nerr);
    cr_assert_null(rs);
    cr_assert_eq(nerr, 1);
    static const char want[] = "t.rules:2: error: path: bad regular expression '^/(a': ";
    cr_assert_eq(strncmp(diag, want, sizeof want - 1), 0, "%s", diag);
    cr_assert_gt(strlen(diag), sizeof want, "regerror text follows");
}

Test(rules_parse, error_method_header_key)
{
    expect_diag("rule a\n method\n set-header X 1\n", "t.rules:2: error: method: expected METHOD [METHOD...]\n");
    expect_diag("rule a\n method get\n set-header X 1\n",
                "t.rules:2: error: method: bad method 'get' (methods are case-sensitive: write GET, POST, ...)\n");
    expect_diag("rule a\n method GET\n method POST\n set-header X 1\n",
                "t.rules:3: error: rule a: only one 'method' line per rule (first at line 2); put "
                "alternatives on one line\n");
    expect_diag("rule a\n header X\n set-header X 1\n",
                "t.rules:2: error: header: expected NAME GLOB (quote a GLOB with spaces)\n");
    expect_diag("rule a\n header X a b\n set-header X 1\n",
                "t.rules:2: error: header: expected NAME GLOB (quote a GLOB with spaces)\n");
    expect_diag("rule a\n header \"X Y\" a\n set-header X 1\n", "t.rules:2: error: header: bad header name 'X Y'\n");
    expect_diag("rule a\n key\n set-header X 1\n", "t.rules:2: error: key: expected GLOB\n");
    expect_diag("rule a\n key a\n key b\n set-header X 1\n",
                "t.rules:3: error: rule a: only one 'key' line per rule (first at line 2); put "
                "alternatives on one line\n");
    /* several header lines are fine (AND) */
    kf_ruleset_free(expect_ok("rule a\n header X 1\n header Y 2\n set-header Z 3\n"));
}

Test(rules_parse, error_rewrite_path)
{
    expect_diag("rule a\n rewrite-path\n", "t.rules:2: error: rewrite-path: expected TEMPLATE\nt.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n path /x\n rewrite-path v1\n",
                "t.rules:3: error: rewrite-path: template must start with '/': 'v1'\nt.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n rewrite-path /a\\x\n",
                "t.rules:2: error: rewrite-path: bad escape '\\x' (use \\0-\\9 or \\\\)\nt.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n rewrite-path /a?b\n",
                "t.rules:2: error: rewrite-path: '?' not allowed in the template (the query is always kept)\n"
                "t.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n rewrite-path \"/a b\"\n",
                "t.rules:2: error: rewrite-path: template must not contain spaces or control characters\n"
                "t.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n path /x\n rewrite-path /\\1\n",
                "t.rules:3: error: rewrite-path: \\1 needs a 'path ~ REGEX' condition with groups\n");
    expect_diag("rule a\n rewrite-path /\\2\n path ~ ^/(x)$\n",
                "t.rules:2: error: rewrite-path: \\2 but the path regex has 1 group\n");
    /* \0 and \\ need no group; the condition may follow the action */
    kf_ruleset_free(expect_ok("rule a\n rewrite-path /p\\0\\\\\n"));
    kf_ruleset_free(expect_ok("rule a\n rewrite-path /\\1\n path ~ ^/(x)$\n"));
}

Test(rules_parse, error_header_actions)
{
    expect_diag("rule a\n squash-slashes now\n",
                "t.rules:2: error: squash-slashes: expected no arguments\nt.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n set-header X\n",
                "t.rules:2: error: set-header: expected NAME VALUE (quote a value with spaces)\n"
                "t.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n set-header X a b\n",
                "t.rules:2: error: set-header: expected NAME VALUE (quote a value with spaces)\n"
                "t.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n add-header X\n",
                "t.rules:2: error: add-header: expected NAME VALUE (quote a value with spaces)\n"
                "t.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n remove-header\n",
                "t.rules:2: error: remove-header: expected NAME\nt.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n set-header X: 1\n set-header Y 2\n", "t.rules:2: error: set-header: bad header name 'X:'\n");
    expect_diag("rule a\n set-header Content-Length 5\n set-header Y 2\n",
                "t.rules:2: error: set-header: Content-Length frames the body; kimifix never changes framing\n");
    expect_diag("rule a\n remove-header transfer-encoding\n set-header Y 2\n",
                "t.rules:2: error: remove-header: transfer-encoding frames the body; kimifix never changes framing\n");
    expect_diag("rule a\n add-header Content-length 1\n set-header Y 2\n",
                "t.rules:2: error: add-header: Content-length frames the body; kimifix never changes framing\n");
    expect_diag("rule a\n set-header X \"a\rb\"\n set-header Y 2\n",
                "t.rules:2: error: set-header: header values must not contain CR, LF, NUL or other control characters\n");
    expect_diag("rule a\n add-header Host h\n set-header Y 2\n",
                "t.rules:2: error: add-header: a request has one Host header; use set-header or upstream\n");
    expect_diag("rule a\n remove-header HOST\n set-header Y 2\n",
                "t.rules:2: error: remove-header: HTTP/1.1 requires a Host header\n");
}

Test(rules_parse, error_upstream_connect_to)
{
    expect_diag("rule a\n upstream\n", "t.rules:2: error: upstream: expected HOST[:PORT]\nt.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n upstream h:99999\n",
                "t.rules:2: error: upstream: bad port '99999' in 'h:99999' (1-65535)\nt.rules:1: error: rule a has no action\n");
    expect_diag("rule a\n upstream *.h\n", "t.rules:2: error: upstream: bad host '*.h'\nt.rules:1: error: rule a has no action\n");
    expect_diag("connect-to a\n", "t.rules:1: error: connect-to: expected HOST[:PORT] ADDR:PORT\n");
    expect_diag("connect-to a 127.0.0.1\n", "t.rules:1: error: connect-to: '127.0.0.1' needs a port (ADDR:PORT)\n");
    expect_diag("connect-to a:x 127.0.0.1:1\n", "t.rules:1: error: connect-to: bad port 'x' in 'a:x' (1-65535)\n");
    expect_diag("connect-to a [::1\n", "t.rules:1: error: connect-to: bad address '[::1'\n");
}

Test(rules_parse, error_defaults_disable)
{
    expect_diag("defaults maybe\n", "t.rules:1: error: defaults: expected 'on' or 'off'\n");
    expect_diag("defaults\n", "t.rules:1: error: defaults: expected 'on' or 'off'\n");
    expect_diag("disable\n", "t.rules:1: error: disable: expected NAME\n");
    expect_diag("disable a b\n", "t.rules:1: error: disable: expected NAME\n");
    expect_diag("\ndisable no-such-rule\n",
                "t.rules:2: error: disable: no built-in rule named 'no-such-rule' (see 'kimifix check')\n");
    /* disable ends a block */
    expect_diag("rule a\n set-header X 1\ndisable kimi-squash-slashes\n set-header Y 1\n",
                "t.rules:4: error: 'set-header' outside a rule (start a block with 'rule NAME')\n");
}

Test(rules_parse, keeps_going_and_counts_every_error)
{
    int nerr = 0;
    kf_ruleset *rs = load("bogus\n"
                          "rule a\n"
                          "  host a:0\n"
                          "  set-header Content-Length 1\n"
                          "  set-header X ok\n"
                          "rule b\n"
                          "  method get\n",
                          &nerr);
    cr_assert_null(rs);
    cr_assert_eq(nerr, 5);
    cr_assert_str_eq(diag, "t.rules:1: error: unknown directive 'bogus'\n"
                           "t.rules:3: error: host: bad port '0' in 'a:0' (1-65535)\n"
                           "t.rules:4: error: set-header: Content-Length frames the body; kimifix never "
                           "changes framing\n"
                           "t.rules:7: error: method: bad method 'get' (methods are case-sensitive: write "
                           "GET, POST, ...)\n"
                           "t.rules:6: error: rule b has no action\n");
}

Test(rules_parse, null_diag_is_fine)
{
    int nerr = 0;
    cr_assert_null(kf_ruleset_load_text("bogus\nbogus\n", 12, "x", NULL, NULL, &nerr));
    cr_assert_eq(nerr, 2);
    cr_assert_null(kf_ruleset_load_text("bogus\n", 6, "x", NULL, NULL, NULL));
}

Test(rules_parse, connect_to_lookup)
{
    kf_ruleset *rs = expect_ok("connect-to api.kimi.com:443 127.0.0.1:8443\n"
                               "connect-to API.Kimi.com [::1]:9000\n"
                               "connect-to other localhost:1\n");
    const char *addr = NULL;
    unsigned port = 0;
    cr_assert_eq(kf_rules_connect_to(rs, "api.kimi.com", 443, &addr, &port), 1);
    cr_assert_str_eq(addr, "127.0.0.1");
    cr_assert_eq(port, 8443);
    cr_assert_eq(kf_rules_connect_to(rs, "API.KIMI.COM", 80, &addr, &port), 1, "port 0 entry: any port");
    cr_assert_str_eq(addr, "::1");
    cr_assert_eq(port, 9000);
    cr_assert_eq(kf_rules_connect_to(rs, "other", 5, &addr, &port), 1);
    cr_assert_str_eq(addr, "localhost");
    cr_assert_eq(kf_rules_connect_to(rs, "none", 443, &addr, &port), 0);
    const char *h;
    unsigned hp;
    cr_assert_eq(kf_rules_connect_to_at(rs, 1, &h, &hp, &addr, &port), 1);
    cr_assert_str_eq(h, "api.kimi.com");
    cr_assert_eq(hp, 0);
    cr_assert_eq(kf_rules_connect_to_at(rs, 3, &h, &hp, &addr, &port), 0);
    kf_ruleset_free(rs);
}

Test(rules_parse, host_relevance)
{
    kf_ruleset *rs = expect_ok("defaults off\n"
                               "rule a\n  host api.kimi.com *.example.org:8443\n  set-header X 1\n"
                               "rule b\n  host api.moonshot.ai\n  upstream api.kimi.com\n");
    cr_assert(kf_rules_host_relevant(rs, "API.kimi.com", 443));
    cr_assert(kf_rules_host_relevant(rs, "a.example.org", 8443));
    cr_assert(kf_rules_host_relevant(rs, "a.example.org", 0), "port 0 = any");
    cr_assert_not(kf_rules_host_relevant(rs, "a.example.org", 443));
    cr_assert_not(kf_rules_host_relevant(rs, "example.org", 8443));
    cr_assert_not(kf_rules_host_relevant(rs, "auth.kimi.com", 443));
    cr_assert(kf_rules_host_needs_upstream(rs, "api.moonshot.ai", 443));
    cr_assert_not(kf_rules_host_needs_upstream(rs, "api.kimi.com", 443));
    kf_ruleset_free(rs);
    rs = expect_ok("defaults off\nrule any\n  set-header X 1\n");
    cr_assert(kf_rules_host_relevant(rs, "anything.example", 1), "no host condition: every host");
    cr_assert_not(kf_rules_host_needs_upstream(rs, "anything.example", 1));
    kf_ruleset_free(rs);
    /* disabled rules do not count */
    rs = expect_ok("defaults off\n");
    cr_assert_not(kf_rules_host_relevant(rs, "api.kimi.com", 443));
    kf_ruleset_free(rs);
    rs = kf_ruleset_builtin();
    cr_assert(kf_rules_host_relevant(rs, "api.kimi.com", 443));
    cr_assert(kf_rules_host_relevant(rs, "api.moonshot.cn", 443));
    cr_assert(kf_rules_host_needs_upstream(rs, "api.moonshot.ai", 443));
    cr_assert_not(kf_rules_host_relevant(rs, "auth.kimi.com", 443));
    cr_assert_not(kf_rules_host_relevant(rs, "api.anthropic.com", 443));
    kf_ruleset_free(rs);
}
