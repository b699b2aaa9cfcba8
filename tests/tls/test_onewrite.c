/* test_onewrite.c - one write stays one write (issue 14.2).
 *
 * Each pattern of kfpat.h is written by wpat_client twice, under the call
 * counter wcount.c: without the shim (the baseline) and with it
 * (KIMIFIX_MODE=inprocess, the counter below it). Where the shim rewrites,
 * the rewritten requests must leave in as many real write-family calls as
 * the client made without it, and over TLS in as many application-data
 * records (counted by the recording server); the bytes must be exactly the
 * fixed requests. Only a head the client wrote in pieces may take fewer
 * calls (the shim holds it until it is complete).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kfpat.h"
#include "tlsrec.h"
#include "tlsrun.h"

#ifndef KF_TEST_BUILD
#define KF_TEST_BUILD "build"
#endif

#define BIN KF_TEST_BUILD "/tests/tls/"
#define CERTS KF_TEST_BUILD "/tests/tls/certs"
#define LIB KF_TEST_BUILD "/libkimifix.so"
#define WCOUNT BIN "libwcount.so"

struct seen {
    long calls, bytes;
    int records;
    char sizes[256];
};

/* Run the pattern once; check what arrived; return the counts. */
static struct seen run_pattern(const char *tr, const char *pattern, const char *op, int shim)
{
    int plain = !strcmp(tr, "plain");
    tlsrec *r = tlsrec_start(CERTS, plain ? TLSREC_PLAIN : 0);
    cr_assert(r, "recording server did not start");
    char port[16], env_port[48], report[64], env_report[96];
    snprintf(port, sizeof port, "%d", tlsrec_port(r));
    snprintf(env_port, sizeof env_port, "KFCOUNT_PORT=%s", port);
    snprintf(report, sizeof report, "/tmp/kfcount-%d-%s-%s-%d", (int)getpid(), tr, pattern, shim);
    snprintf(env_report, sizeof env_report, "KFCOUNT_REPORT=%s", report);
    const char *argv[] = { BIN "wpat_client", tr, port, "api.kimi.com", CERTS "/ca.pem", pattern, op, NULL };
    const char *env[] = { env_port, env_report, "KIMIFIX_MODE=inprocess", NULL };
    struct out o = tls_run(argv, env, shim ? LIB ":" WCOUNT : WCOUNT);
    cr_assert_eq(o.status, 0, "%s %s %s (shim %d) failed", tr, pattern, op, shim);
    cr_assert_eq(tlsrec_wait(r, 1, 20000), 1, "the connection did not end");
    struct kfpat want;
    cr_assert_eq(kfpat_build(&want, pattern, "api.kimi.com", shim), 0);
    const struct tlsrec_conn *c = tlsrec_conn(r, 0);
    cr_assert(c->len == want.len && memcmp(c->data, want.buf, want.len) == 0,
              "%s %s (shim %d): %zu bytes arrived, want %zu:\n%.*s", tr, pattern, shim, c->len, want.len,
              (int)(c->len < 400 ? c->len : 400), c->data ? c->data : "");
    struct seen s = { 0, 0, c->records, "" };
    char *rep = slurp(report);
    cr_assert_eq(sscanf(rep, "calls=%ld bytes=%ld sizes=%255s", &s.calls, &s.bytes, s.sizes) >= 2, 1,
                 "no report from the counter: %s", rep);
    cr_assert_eq((size_t)s.bytes >= want.len, 1, "the counter saw %ld bytes, the server %zu", s.bytes,
                 want.len);
    cr_assert(shim ? strstr(o.err, "kimi-coding-double-v1") != NULL : 1, "no rewrite logged: %s", o.err);
    free(rep);
    unlink(report);
    free(want.buf);
    free_out(&o);
    tlsrec_stop(r);
    return s;
}

/* The shim's counts equal the baseline's (or, `fewer_ok`, do not exceed them). */
static void same_counts(const char *tr, const char *pattern, const char *op, int fewer_ok)
{
    struct seen base = run_pattern(tr, pattern, op, 0);
    struct seen kf = run_pattern(tr, pattern, op, 1);
    cr_assert_gt(base.calls, 0, "the counter saw no call: is it below the shim?");
    if (fewer_ok) {
        cr_assert_leq(kf.calls, base.calls, "%s %s: %ld calls with the shim (%s), %ld without (%s)", tr,
                      pattern, kf.calls, kf.sizes, base.calls, base.sizes);
        cr_assert_leq(kf.records, base.records, "%s %s: %d records with the shim, %d without", tr,
                      pattern, kf.records, base.records);
        return;
    }
    cr_assert_eq(kf.calls, base.calls, "%s %s %s: %ld calls with the shim (sizes %s), %ld without (%s)",
                 tr, pattern, op, kf.calls, kf.sizes, base.calls, base.sizes);
    cr_assert_eq(kf.records, base.records, "%s %s: %d TLS records with the shim, %d without", tr,
                 pattern, kf.records, base.records);
}

/* libc: write / send / sendto / sendmsg / writev on a plain socket. */
Test(onewrite, plain_one_write) { same_counts("plain", "one", "write", 0); }
Test(onewrite, plain_one_send) { same_counts("plain", "one", "send", 0); }
Test(onewrite, plain_one_sendto) { same_counts("plain", "one", "sendto", 0); }
Test(onewrite, plain_one_sendmsg) { same_counts("plain", "one", "sendmsg", 0); }
Test(onewrite, plain_head_then_body) { same_counts("plain", "split", "write", 0); }
Test(onewrite, plain_node_writev_iovecs) { same_counts("plain", "node", "write", 0); }
Test(onewrite, plain_node_sendmsg_iovecs) { same_counts("plain", "node", "sendmsg", 0); }
Test(onewrite, plain_undici_crlf_next_write) { same_counts("plain", "undici", "write", 1); }
Test(onewrite, plain_requests_chunked_small_writes) { same_counts("plain", "chunked", "send", 0); }
Test(onewrite, plain_pipelined) { same_counts("plain", "pipeline", "write", 0); }
Test(onewrite, plain_big_body) { same_counts("plain", "big", "write", 0); }

/* OpenSSL: SSL_write (all-or-nothing) and SSL_write_ex. */
Test(onewrite, openssl_one) { same_counts("openssl", "one", "", 0); }
Test(onewrite, openssl_ex_one) { same_counts("openssl_ex", "one", "", 0); }
Test(onewrite, openssl_head_then_body) { same_counts("openssl", "split", "", 0); }
Test(onewrite, openssl_undici_crlf_next_write) { same_counts("openssl", "undici", "", 1); }
Test(onewrite, openssl_ex_requests_chunked_small_writes) { same_counts("openssl_ex", "chunked", "", 0); }
Test(onewrite, openssl_pipelined) { same_counts("openssl", "pipeline", "", 0); }
Test(onewrite, openssl_big_body_records) { same_counts("openssl", "big", "", 0); }

/* GnuTLS: gnutls_record_send, at most 16 KiB per call. */
Test(onewrite, gnutls_one) { same_counts("gnutls", "one", "", 0); }
Test(onewrite, gnutls_head_then_body) { same_counts("gnutls", "split", "", 0); }
Test(onewrite, gnutls_requests_chunked_small_writes) { same_counts("gnutls", "chunked", "", 0); }
Test(onewrite, gnutls_pipelined) { same_counts("gnutls", "pipeline", "", 0); }
Test(onewrite, gnutls_big_body_16k_per_call) { same_counts("gnutls", "big", "", 0); }
