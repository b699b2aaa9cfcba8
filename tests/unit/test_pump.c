/* test_pump.c - one write stays one write, at the pump (src/core/kf_pump.c).
 *
 * The client write patterns of tests/tls/kfpat.h go through the pump three
 * ways: a libc socket (the writev pump: vector calls), OpenSSL (one buffer
 * per call, all or nothing) and GnuTLS (one buffer per call, at most one
 * 16 KiB record taken per call). Each runs with the built-in rules (heads
 * rewritten) and without rules (every call passes as the caller made it:
 * the counts without the shim). Real calls and TLS records must be equal and
 * the output exactly the fixed requests. With faults (EAGAIN, short writes)
 * the bytes and the caller's accounting must stay exact, and the TLS sinks
 * keep the libraries' retry rule: after a failed call, the same pointer,
 * length and bytes must come back (OpenSSL's SSL_R_BAD_WRITE_RETRY).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "kf_rules.h"
#include "kf_stream.h"
#include "tls/kfpat.h"

#define REC 16384

enum carrier { C_LIBC, C_OPENSSL, C_GNUTLS };

typedef struct wsink {
    char *out;
    size_t len, cap;
    int tls;              /* the retry rule is checked */
    int gnutls;           /* at most one record per call */
    unsigned fail_every;  /* every n-th call fails (EAGAIN, WANT_WRITE) */
    unsigned short_every; /* libc: every n-th call takes only a part */
    unsigned calls, records, violations;
    const void *retry_p; /* a failed TLS call's arguments */
    size_t retry_n;
    char *retry_copy;
    uint64_t rng;
} wsink;

static kf_ruleset *builtin;

static void setup(void)
{
    builtin = kf_ruleset_builtin();
    cr_assert_not_null(builtin);
}

static void teardown(void)
{
    kf_ruleset_free(builtin);
}

static ssize_t take(wsink *w, const struct iovec *v, int cnt)
{
    w->calls++;
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += v[i].iov_len;
    if (w->retry_p) {
        if (cnt != 1 || v[0].iov_base != w->retry_p || total != w->retry_n ||
            memcmp(v[0].iov_base, w->retry_copy, total) != 0)
            w->violations++;
        free(w->retry_copy);
        w->retry_copy = NULL;
        w->retry_p = NULL;
    } else if (w->fail_every && w->calls % w->fail_every == 0) {
        if (w->tls) {
            w->retry_p = v[0].iov_base;
            w->retry_n = total;
            w->retry_copy = malloc(total);
            memcpy(w->retry_copy, v[0].iov_base, total);
        }
        errno = EAGAIN;
        return -1;
    }
    size_t n = total;
    if (w->gnutls && n > REC)
        n = REC;
    if (!w->tls && w->short_every && w->calls % w->short_every == 0 && n > 1) {
        w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull;
        n = 1 + (size_t)(w->rng >> 33) % (n - 1);
    }
    if (w->tls)
        w->records += (unsigned)((n + REC - 1) / REC);
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2;
        w->out = realloc(w->out, w->cap);
    }
    size_t took = 0;
    for (int i = 0; i < cnt && took < n; i++) {
        size_t k = v[i].iov_len < n - took ? v[i].iov_len : n - took;
        memcpy(w->out + w->len, v[i].iov_base, k);
        w->len += k;
        took += k;
    }
    return (ssize_t)took;
}

static ssize_t w_send(void *io, const void *b, size_t n)
{
    struct iovec v = { (void *)b, n };
    return take(io, &v, 1);
}

static ssize_t w_sendv(void *io, const struct iovec *iov, int cnt)
{
    return take(io, iov, cnt);
}

/* Write the pattern as its client would, through `car`. */
static void write_pattern(const struct kfpat *p, enum carrier car, const kf_ruleset *rs,
                          const char *host, wsink *w)
{
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = { .rs = rs, .host = host, .port = 443, .tls = car != C_LIBC };
    int mode = car == C_OPENSSL ? KF_WR_ALL_OR_NOTHING : KF_WR_PARTIAL;
    unsigned stuck = 0;
    for (int i = 0; i < p->nw; i++) {
        /* A vector pattern is one call over all pieces, resumed if short. */
        int first = i, last = p->vec ? p->nw - 1 : i;
        size_t off = p->w[first], end = p->w[last + 1];
        while (off < end) {
            struct iovec v[KFPAT_MAXW];
            int cnt = 0;
            for (int k = first; k <= last; k++) {
                size_t a = p->w[k] > off ? p->w[k] : off, b = p->w[k + 1];
                if (b > a)
                    v[cnt++] = (struct iovec){ p->buf + a, b - a };
            }
            ssize_t r = car == C_LIBC ? kf_stream_writev(&s, &c, v, cnt, w_send, w_sendv, w)
                                      : kf_stream_write(&s, &c, v[0].iov_base, v[0].iov_len, mode,
                                                        w_send, w);
            cr_assert_neq(r, 0);
            if (r > 0) {
                cr_assert_leq((size_t)r, end - off, "the pump took more than it was given");
                cr_assert(mode == KF_WR_PARTIAL || (size_t)r == end - off, "SSL_write: partial success");
                off += (size_t)r;
            }
            cr_assert_lt(++stuck, 100000u, "no progress");
        }
        i = last;
    }
    kf_stream_reset(&s);
}

struct result {
    unsigned calls, records;
};

/* Run pattern `name` through `car`; check the bytes; return the counts. */
static struct result one_run(const char *name, enum carrier car, int rules, const char *host,
                             unsigned fail_every, unsigned short_every)
{
    struct kfpat in, want;
    cr_assert_eq(kfpat_build(&in, name, host, 0), 0);
    /* Only api.kimi.com is rewritten by the built-in rules. */
    cr_assert_eq(kfpat_build(&want, name, host, rules && !strcmp(host, "api.kimi.com")), 0);
    wsink w = { .tls = car != C_LIBC, .gnutls = car == C_GNUTLS, .fail_every = fail_every,
                .short_every = short_every, .rng = fail_every * 31u + short_every };
    write_pattern(&in, car, rules ? builtin : NULL, host, &w);
    cr_assert(w.len == want.len && memcmp(w.out, want.buf, want.len) == 0,
              "%s via %d (rules %d, faults %u/%u): %zu bytes out, want %zu:\n%.*s", name, car, rules,
              fail_every, short_every, w.len, want.len, (int)(w.len < 300 ? w.len : 300), w.out);
    cr_assert_eq(w.violations, 0u, "%s via %d: a failed call was not retried with the same buffer",
                 name, car);
    free(w.out);
    free(w.retry_copy);
    free(in.buf);
    free(want.buf);
    return (struct result){ w.calls, w.records };
}

static const char *const patterns[] = { "one", "split", "node", "undici", "chunked", "pipeline", "big" };
#define NPAT (sizeof patterns / sizeof patterns[0])

TestSuite(pump, .init = setup, .fini = teardown);

Test(pump, rewritten_requests_take_as_many_calls_and_records_as_the_client_made)
{
    for (size_t i = 0; i < NPAT; i++)
        for (int car = C_LIBC; car <= C_GNUTLS; car++) {
            if (!strcmp(patterns[i], "node") && car != C_LIBC)
                continue; /* a vector call: libc only */
            struct result base = one_run(patterns[i], car, 0, "api.kimi.com", 0, 0);
            struct result kf = one_run(patterns[i], car, 1, "api.kimi.com", 0, 0);
            /* undici's head ends in the next write: held back, it joins it. */
            if (!strcmp(patterns[i], "undici")) {
                cr_assert_eq(kf.calls, base.calls - 1, "undici via %d: %u calls, %u without", car, kf.calls,
                             base.calls);
                continue;
            }
            /* OpenSSL takes 40 KB in one SSL_write; the shim sends the first
             * record's worth from its stage and the rest by reference: one
             * more SSL_write, the same records (hence socket writes). */
            unsigned extra = !strcmp(patterns[i], "big") && car == C_OPENSSL;
            cr_assert_eq(kf.calls, base.calls + extra, "%s via %d: %u real calls, %u without rules",
                         patterns[i], car, kf.calls, base.calls);
            cr_assert_eq(kf.records, base.records, "%s via %d: %u TLS records, %u without rules",
                         patterns[i], car, kf.records, base.records);
        }
}

Test(pump, faults_keep_bytes_accounting_and_the_retry_rule)
{
    static const unsigned fails[] = { 0, 1, 2, 3, 5 };
    static const unsigned shorts[] = { 0, 2, 3 };
    static const char *const hosts[] = { "api.kimi.com", "api.example.com" }; /* rewritten, in place */
    for (size_t i = 0; i < NPAT; i++)
        for (int car = C_LIBC; car <= C_GNUTLS; car++)
            for (size_t f = 0; f < sizeof fails / sizeof fails[0]; f++)
                for (size_t sh = 0; sh < sizeof shorts / sizeof shorts[0]; sh++)
                    for (size_t h = 0; h < 2; h++) {
                        if (!strcmp(patterns[i], "node") && car != C_LIBC)
                            continue;
                        if (fails[f] == 1 && car == C_LIBC)
                            continue; /* every call failing: no progress by design */
                        one_run(patterns[i], car, 1, hosts[h], fails[f], car == C_LIBC ? shorts[sh] : 0);
                    }
}
