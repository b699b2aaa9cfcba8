/* doctor_report.c - the report `kimifix doctor` fills and prints
 * (doctor_report.h): facts, resolve hops, the verdict; text or JSON. */
#include "doctor_report.h"

#include <stdarg.h>
#include <stdio.h>

int dr_fmt(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

void dr_why(dr_report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

void dr_fact_add(dr_report *r, int problem, const char *key, const char *fmt, ...)
{
    if (problem)
        r->nproblems++;
    if (r->nfacts >= DR_MAX_FACTS)
        return;
    dr_fact *f = &r->fact[r->nfacts++];
    f->problem = problem;
    snprintf(f->key, sizeof f->key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->val, sizeof f->val, fmt, ap);
    va_end(ap);
}

void dr_hop_add(dr_report *r, const char *fmt, ...)
{
    if (r->nhops >= sizeof r->hop / sizeof r->hop[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->hop[r->nhops++], DR_VAL_MAX, fmt, ap);
    va_end(ap);
}

void dr_set_verdict(dr_report *r, const char *verdict, int exit_code, const char *fmt, ...)
{
    r->verdict = verdict;
    r->exit_code = exit_code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

/* ---- output ---- */

static void text_report(const dr_report *r, const char *cmd)
{
    if (cmd)
        printf("kimifix doctor: %s\n", cmd);
    for (unsigned i = 0; i < r->nhops; i++)
        printf("  %-12s %s\n", "resolve", r->hop[i]);
    for (unsigned i = 0; i < r->nfacts; i++)
        printf("%c %-12s %s\n", r->fact[i].problem ? '!' : ' ', r->fact[i].key, r->fact[i].val);
    printf("kimifix doctor: %s%s%s\n", r->verdict, r->reason[0] ? " -- " : "", r->reason);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0. */
static int utf8_len(const unsigned char *s)
{
    int n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* A JSON string; file names need not be UTF-8: invalid bytes become U+FFFD. */
static void json_str(const char *str)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    putchar('"');
    while (*s) {
        unsigned char c = *s;
        int n = c >= 0x80 ? utf8_len(s) : 1;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else if (n == 0)
            fputs("\\ufffd", stdout);
        else
            fwrite(s, 1, (size_t)n, stdout);
        s += n ? n : 1;
    }
    putchar('"');
}

static void json_report(const dr_report *r, const char *cmd)
{
    fputs("{\"command\":", stdout);
    json_str(cmd ? cmd : "");
    fputs(",\"resolve\":[", stdout);
    for (unsigned i = 0; i < r->nhops; i++) {
        if (i)
            putchar(',');
        json_str(r->hop[i]);
    }
    fputs("],\"program\":", stdout);
    json_str(r->exe);
    fputs(",\"facts\":[", stdout);
    for (unsigned i = 0; i < r->nfacts; i++) {
        fputs(i ? ",{\"key\":" : "{\"key\":", stdout);
        json_str(r->fact[i].key);
        fputs(",\"value\":", stdout);
        json_str(r->fact[i].val);
        printf(",\"problem\":%s}", r->fact[i].problem ? "true" : "false");
    }
    fputs("],\"verdict\":", stdout);
    json_str(r->verdict);
    fputs(",\"reason\":", stdout);
    json_str(r->reason);
    printf(",\"problems\":%u,\"exit\":%d}\n", r->nproblems, r->exit_code);
}

void dr_report_print(const dr_report *r, const char *cmd, int json)
{
    if (json)
        json_report(r, cmd);
    else
        text_report(r, cmd);
}
