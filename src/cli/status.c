/* status.c - `kimifix status`: is kimifix on in this shell (shell.h), by
 * which carrier, through which relay, with which rules.
 *
 * Exit status: 0 when on (through `kimifix shell`, or an LD_PRELOAD
 * naming libkimifix.so inherited from `kimifix CMD`), 1 when off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kf_envplan.h"
#include "kf_rules_policy.h"
#include "kf_steer.h"
#include "shell.h"

/* The libkimifix.so entry of LD_PRELOAD, or NULL. */
static const char *preloaded(char *buf, size_t n)
{
    const char *pre = getenv("LD_PRELOAD");
    if (!pre)
        return NULL;
    snprintf(buf, n, "%s", pre);
    char *save = NULL;
    for (char *t = strtok_r(buf, ": ", &save); t; t = strtok_r(NULL, ": ", &save)) {
        const char *b = strrchr(t, '/');
        if (!strcmp(b ? b + 1 : t, "libkimifix.so"))
            return t;
    }
    return NULL;
}

static void relay_line(void)
{
    kf_relay_state st;
    unsigned named = kf_env_relay_port(getenv);
    if (kf_relay_lookup(&st, NULL, 0) < 0) {
        printf("  relay:    not running (a program that needs it starts it%s)\n",
               named ? "; the proxy variables name one that is gone" : "");
        return;
    }
    printf("  relay:    running, pid %ld, 127.0.0.1:%u\n", (long)st.pid, st.port);
    if (named && named != st.port)
        printf("  proxy:    the proxy variables name port %u, a relay that is gone: run "
               "eval \"$(kimifix shell)\" again\n", named);
    else if (named)
        printf("  proxy:    HTTPS_PROXY and co. name the relay (the proxy carrier)\n");
}

static void rules_line(void)
{
    char buf[4096], line[5200];
    kf_rules_src src;
    const char *path = kf_rules_default_path(buf, sizeof buf);
    kf_ruleset *rs = kf_rules_load_policy(path, NULL, NULL, &src);
    if (src.fallback)
        printf("  rules:    %s\n", kf_rules_policy_line(&src, line, sizeof line));
    else
        printf("  rules:    %s (%u rules)\n", path ? path : "built-in rules only",
               rs ? kf_ruleset_count(rs) : 0);
    kf_ruleset_free(rs);
}

/* The names the undo record lists, as "A, B, C" (the KIMIFIX_ORIG_
 * records counted, not listed). */
static void undo_names(char *out, size_t n)
{
    const char *rec = getenv("KIMIFIX_SHELL_UNDO");
    char *copy = strdup(rec ? rec : "");
    kf_shell_rec r[64];
    int k = copy ? kf_shell_undo_parse(copy, r, 64) : -1, orig = 0;
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < k; i++) {
        if (!strncmp(r[i].name, "KIMIFIX_ORIG_", 13)) {
            orig++;
            continue;
        }
        int w = snprintf(out + used, n - used, "%s%s", used ? ", " : "", r[i].name);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    if (orig && used < n)
        snprintf(out + used, n - used, "; your values saved in %d KIMIFIX_ORIG_* variables", orig);
    if (k < 0)
        snprintf(out, n, "(KIMIFIX_SHELL_UNDO is damaged: `kimifix off` only takes libkimifix.so "
                         "out of LD_PRELOAD)");
    free(copy);
}

static const char *carrier_text(const char *name)
{
    if (!strcmp(name, "shim"))
        return "shim (LD_PRELOAD: in-process hooks, connections of compiled-in TLS steered to the "
               "relay)";
    if (!strcmp(name, "proxy"))
        return "proxy (the relay is every program's HTTP proxy; a program whose TLS the hooks see "
               "keeps your own proxy and is fixed in-process)";
    return name;
}

int kf_cli_status(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fputs("usage: kimifix status\n", argc > 1 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc > 1 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    const char *on = getenv("KIMIFIX_SHELL"), *mode = getenv("KIMIFIX_MODE");
    char pbuf[4096], names[2048];
    const char *lib = preloaded(pbuf, sizeof pbuf);
    if (!on && !lib) {
        printf("kimifix: off in this shell (turn it on: eval \"$(kimifix shell)\")\n");
        return 1;
    }
    if (on) {
        char sh[16];
        snprintf(sh, sizeof sh, "%.*s", (int)strcspn(on, " "), on);
        const char *carrier = on + strcspn(on, " ");
        printf("kimifix: on in this shell (%s, `kimifix shell`; `kimifix off` ends it)\n", sh);
        printf("  carrier:  %s\n", *carrier ? carrier_text(carrier + 1) : "?");
    } else {
        printf("kimifix: on for this process and its children (LD_PRELOAD from `kimifix CMD`; "
               "not `kimifix shell`, so `kimifix off` does not apply)\n");
    }
    printf("  library:  %s\n", lib ? lib : "not in LD_PRELOAD (removed since?): programs run "
                                           "without kimifix");
    if (mode && *mode)
        printf("  mode:     %s (KIMIFIX_MODE)\n", mode);
    relay_line();
    rules_line();
    if (on) {
        undo_names(names, sizeof names);
        printf("  set:      %s\n", names);
    }
    return lib ? 0 : 1;
}
