/* check_rule.c - `kimifix check --names` (the effective rules' names, one
 * per line: what the shell completions offer) and `kimifix check --rule
 * NAME` (that rule as `kimifix check` prints it, with where it comes from
 * and, when disabled, what disabled it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void kf_cli_rule_names(const kf_ruleset *rs)
{
    unsigned n = kf_ruleset_count(rs);
    for (unsigned i = 0; i < n; i++) {
        const char *name = kf_rule_name(kf_ruleset_rule(rs, i));
        unsigned j = 0;
        while (j < i && strcmp(kf_rule_name(kf_ruleset_rule(rs, j)), name))
            j++;
        if (j == i) /* a file's rule may reuse a disabled built-in's name */
            puts(name);
    }
}

/* The dump prints one paragraph per rule (blank lines between); keep the
 * paragraphs whose "rule NAME" line (commented out when disabled) names
 * the rule. */
typedef struct para {
    const char *name;
    char *text;
    size_t len, cap;
    int match, found;
} para;

static void para_end(para *p)
{
    if (p->match && p->len) {
        fputs(p->text, stdout);
        p->found = 1;
    }
    p->len = 0;
    p->match = 0;
}

static int rule_line(const char *line, const char *name)
{
    size_t n = strlen(name);
    if (!strncmp(line, "# ", 2))
        line += 2;
    return !strncmp(line, "rule ", 5) && !strncmp(line + 5, name, n) &&
           (line[5 + n] == 0 || line[5 + n] == ' ');
}

static void para_line(void *ud, const char *line)
{
    para *p = ud;
    if (!*line) {
        para_end(p);
        return;
    }
    size_t l = strlen(line);
    if (p->len + l + 2 > p->cap) {
        size_t nc = (p->cap + l + 2) * 2;
        char *t = realloc(p->text, nc);
        if (!t)
            return;
        p->text = t;
        p->cap = nc;
    }
    memcpy(p->text + p->len, line, l);
    p->len += l;
    p->text[p->len++] = '\n';
    p->text[p->len] = 0;
    p->match |= rule_line(line, p->name);
}

int kf_cli_rule_show(const kf_ruleset *rs, const char *name)
{
    para p = {.name = name};
    kf_ruleset_dump(rs, para_line, &p);
    para_end(&p);
    free(p.text);
    if (!p.found)
        fprintf(stderr, "kimifix check: no rule named '%s' (kimifix check --names lists them)\n",
                name);
    return p.found ? 0 : 1;
}
