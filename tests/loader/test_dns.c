/* test_dns.c - the DNS answer parser (src/core/kf_dns.c): what it learns
 * from good answers and that it refuses malformed ones (truncation,
 * compression loops, huge counts, overruns). Each message is parsed from
 * an exact-size heap copy; tests/fuzz/fuzz_dns.c runs the same code under
 * ASan and UBSan. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dnsmsg.h"
#include "kf_dns.h"

/* Parse a message copied into an exact-size heap block (over-reads would
 * touch the allocator's redzone under ASan). Returns the answers' result
 * (-2 when the question was refused). */
static int parse(const dnsmsg *m, size_t n, char *qname, kf_dns_addr *out, int max)
{
    unsigned char *b = malloc(n ? n : 1);
    cr_assert(b);
    memcpy(b, m->b, n);
    size_t qend = 0;
    char q[KF_DNS_NAMEMAX];
    int r = -2;
    int ql = kf_dns_question(b, n, q, &qend);
    if (ql > 0) {
        cr_assert(qend <= n);
        cr_assert_eq((size_t)ql, strlen(q));
        if (qname)
            strcpy(qname, q);
        r = kf_dns_answers(b, n, qend, out, max);
    }
    free(b);
    return r;
}

static void assert_v4(const kf_dns_addr *a, const char *text)
{
    char t[INET6_ADDRSTRLEN];
    cr_assert_eq(a->family, AF_INET);
    cr_assert_str_eq(inet_ntop(AF_INET, a->a, t, sizeof t), text);
}

Test(dns, simple_answer)
{
    dnsmsg m;
    char q[KF_DNS_NAMEMAX];
    kf_dns_addr a[4];
    dm_simple(&m, "api.kimi.com", 10, 1, 2, 3);
    cr_assert_eq(parse(&m, m.n, q, a, 4), 1);
    cr_assert_str_eq(q, "api.kimi.com");
    assert_v4(&a[0], "10.1.2.3");
}

Test(dns, aaaa_answer)
{
    dnsmsg m;
    char q[KF_DNS_NAMEMAX], t[INET6_ADDRSTRLEN];
    kf_dns_addr a[4];
    dm_header(&m, 0x8180, 1, 1, 0, 0);
    dm_question(&m, "api.kimi.com", 28);
    dm_ptr(&m, 12);
    dm_rr_head(&m, 28, 16);
    for (int i = 0; i < 16; i++)
        dm_u8(&m, i == 0 ? 0x20 : i == 1 ? 0x01 : i == 15 ? 7 : 0);
    cr_assert_eq(parse(&m, m.n, q, a, 4), 1);
    cr_assert_eq(a[0].family, AF_INET6);
    cr_assert_str_eq(inet_ntop(AF_INET6, a[0].a, t, sizeof t), "2001::7");
}

Test(dns, names_are_case_insensitive_and_lowered)
{
    dnsmsg m;
    char q[KF_DNS_NAMEMAX];
    kf_dns_addr a[4];
    dm_header(&m, 0x8180, 1, 1, 0, 0);
    dm_question(&m, "API.Kimi.COM", 1);
    dm_name(&m, "api.KIMI.com"); /* owner spelled otherwise (0x20 randomisation) */
    dm_a(&m, 1, 2, 3, 4);
    cr_assert_eq(parse(&m, m.n, q, a, 4), 1);
    cr_assert_str_eq(q, "api.kimi.com");
}

/* CNAME chain in any order; records for other names are not taken. */
Test(dns, cname_chain_any_order)
{
    dnsmsg m;
    kf_dns_addr a[4];
    dm_header(&m, 0x8180, 1, 4, 0, 0);
    dm_question(&m, "api.kimi.com", 1);
    size_t edge = m.n; /* A record of the last name first */
    dm_name(&m, "edge.cdn.example");
    dm_a(&m, 10, 0, 0, 9);
    dm_name(&m, "unrelated.example");
    dm_a(&m, 10, 0, 0, 66);
    dm_name(&m, "mid.example");
    dm_rr_head(&m, 5, 2);
    dm_ptr(&m, edge);
    dm_ptr(&m, 12);
    dm_rr_head(&m, 5, 13); /* api.kimi.com CNAME mid.example (uncompressed) */
    dm_name(&m, "mid.example");
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), 1);
    assert_v4(&a[0], "10.0.0.9");
}

Test(dns, other_owner_ignored)
{
    dnsmsg m;
    kf_dns_addr a[4];
    dm_header(&m, 0x8180, 1, 1, 0, 0);
    dm_question(&m, "api.kimi.com", 1);
    dm_name(&m, "evil.example");
    dm_a(&m, 6, 6, 6, 6);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), 0);
}

Test(dns, at_most_max_addresses)
{
    dnsmsg m;
    kf_dns_addr a[KF_DNS_MAXADDR];
    dm_header(&m, 0x8180, 1, 20, 0, 0);
    dm_question(&m, "api.kimi.com", 1);
    for (int i = 0; i < 20; i++) {
        dm_ptr(&m, 12);
        dm_a(&m, 10, 0, 0, (unsigned)i);
    }
    cr_assert_eq(parse(&m, m.n, NULL, a, KF_DNS_MAXADDR), KF_DNS_MAXADDR);
    assert_v4(&a[15], "10.0.0.15");
}

/* Not answers worth reading: the question is refused. */
Test(dns, refused_headers)
{
    static const struct {
        unsigned flags, qd, type;
    } c[] = {
        { 0x0100, 1, 1 },  /* a query (QR clear) */
        { 0x8380, 1, 1 },  /* TC: truncated, the TCP retry brings the answer */
        { 0x8183, 1, 1 },  /* NXDOMAIN */
        { 0x8980, 1, 1 },  /* opcode 1 */
        { 0x8180, 2, 1 },  /* two questions */
        { 0x8180, 0, 1 },  /* none */
        { 0x8180, 1, 15 }, /* MX */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        dnsmsg m;
        kf_dns_addr a[4];
        dm_header(&m, c[i].flags, c[i].qd, 1, 0, 0);
        dm_question(&m, "api.kimi.com", c[i].type);
        dm_ptr(&m, 12);
        dm_a(&m, 1, 2, 3, 4);
        cr_assert_eq(parse(&m, m.n, NULL, a, 4), -2, "case %zu", i);
    }
}

Test(dns, class_not_in_refused)
{
    dnsmsg m;
    kf_dns_addr a[4];
    dm_header(&m, 0x8180, 1, 1, 0, 0);
    dm_name(&m, "api.kimi.com");
    dm_u16(&m, 1);
    dm_u16(&m, 3); /* CHAOS */
    dm_ptr(&m, 12);
    dm_a(&m, 1, 2, 3, 4);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -2);
}

Test(dns, qname_with_odd_bytes_refused)
{
    dnsmsg m;
    kf_dns_addr a[4];
    dm_simple(&m, "api kimi.com", 1, 2, 3, 4);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -2);
    dm_simple(&m, "api.kimi.com", 1, 2, 3, 4);
    m.b[13] = 0xC3; /* a non-ASCII byte inside the first label */
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -2);
}

/* Every proper prefix of a good answer is refused as a whole (or, past
 * the answer section, gives the same answer). */
Test(dns, truncated_anywhere)
{
    dnsmsg m;
    kf_dns_addr a[4];
    dm_header(&m, 0x8180, 1, 2, 0, 1);
    dm_question(&m, "api.kimi.com", 1);
    dm_ptr(&m, 12);
    dm_rr_head(&m, 5, 6);
    dm_u8(&m, 3);
    dm_u8(&m, 'c');
    dm_u8(&m, 'd');
    dm_u8(&m, 'n');
    dm_ptr(&m, 16); /* cdn.kimi.com */
    size_t cdn = m.n - 6;
    dm_ptr(&m, cdn);
    dm_a(&m, 10, 9, 8, 7);
    size_t end_an = m.n;
    dm_name(&m, "extra.example"); /* additional section */
    dm_a(&m, 1, 1, 1, 1);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), 1);
    assert_v4(&a[0], "10.9.8.7");
    for (size_t k = 0; k < m.n; k++) {
        int r = parse(&m, k, NULL, a, 4);
        if (k < end_an)
            cr_assert(r == -2 || r == -1, "prefix %zu gave %d", k, r);
        else
            cr_assert_eq(r, 1, "prefix %zu", k);
    }
}

Test(dns, compression_loops_refused)
{
    dnsmsg m;
    kf_dns_addr a[4];
    /* the answer's owner points at itself */
    dm_header(&m, 0x8180, 1, 1, 0, 0);
    dm_question(&m, "api.kimi.com", 1);
    size_t self = m.n;
    dm_ptr(&m, self);
    dm_a(&m, 1, 2, 3, 4);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -1);
    /* a label, then a pointer back to that label: reads it again forever */
    dm_header(&m, 0x8180, 1, 1, 0, 0);
    dm_question(&m, "api.kimi.com", 1);
    size_t lab = m.n;
    dm_u8(&m, 1);
    dm_u8(&m, 'x');
    dm_ptr(&m, lab);
    dm_a(&m, 1, 2, 3, 4);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -1);
    /* two pointers pointing at each other (one forward) */
    dm_header(&m, 0x8180, 1, 2, 0, 0);
    dm_question(&m, "api.kimi.com", 1);
    size_t p1 = m.n;
    dm_ptr(&m, p1 + 16); /* forward: to the second owner */
    dm_a(&m, 1, 2, 3, 4);
    cr_assert_eq(m.n, p1 + 16);
    dm_ptr(&m, p1);
    dm_a(&m, 1, 2, 3, 5);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -1);
    /* the question name points at itself */
    dm_header(&m, 0x8180, 1, 0, 0, 0);
    dm_ptr(&m, 12);
    dm_u16(&m, 1);
    dm_u16(&m, 1);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -2);
}

Test(dns, huge_counts_refused)
{
    dnsmsg m;
    kf_dns_addr a[4];
    dm_simple(&m, "api.kimi.com", 1, 2, 3, 4);
    m.b[6] = m.b[7] = 0xff; /* ANCOUNT 65535, one record present */
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -1);
    /* more records than the parser reads (64): refused, not partly read */
    dm_header(&m, 0x8180, 1, 65, 0, 0);
    dm_question(&m, "api.kimi.com", 1);
    for (int i = 0; i < 65; i++) {
        dm_ptr(&m, 12);
        dm_a(&m, 10, 0, 0, (unsigned)i);
    }
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -1);
    /* a huge QDCOUNT is not one question */
    dm_simple(&m, "api.kimi.com", 1, 2, 3, 4);
    m.b[4] = m.b[5] = 0xff;
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -2);
}

Test(dns, overruns_refused)
{
    dnsmsg m;
    kf_dns_addr a[4];
    /* rdlength past the end */
    dm_simple(&m, "api.kimi.com", 1, 2, 3, 4);
    m.b[m.n - 5] = 200;
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -1);
    /* CNAME data longer than its name */
    dm_header(&m, 0x8180, 1, 1, 0, 0);
    dm_question(&m, "api.kimi.com", 1);
    dm_ptr(&m, 12);
    dm_rr_head(&m, 5, 5);
    dm_ptr(&m, 12);
    dm_u8(&m, 0);
    dm_u8(&m, 0);
    dm_u8(&m, 0);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -1);
    /* an obsolete label type (0x40) */
    dm_header(&m, 0x8180, 1, 1, 0, 0);
    dm_question(&m, "api.kimi.com", 1);
    dm_u8(&m, 0x41);
    dm_u8(&m, 'x');
    dm_u8(&m, 0);
    dm_a(&m, 1, 2, 3, 4);
    cr_assert_eq(parse(&m, m.n, NULL, a, 4), -1);
}

/* 255 bytes is the most a name may take on the wire. */
Test(dns, long_names)
{
    dnsmsg m;
    kf_dns_addr a[4];
    char q[KF_DNS_NAMEMAX], name[300];
    /* 4 labels of 62 + 1 of 1: 4*63 + 2 + 1 = 255 bytes: the longest */
    memset(name, 'a', sizeof name);
    for (int i = 62; i < 4 * 63; i += 63)
        name[i] = '.';
    strcpy(name + 4 * 63, "b");
    dm_simple(&m, name, 1, 2, 3, 4);
    cr_assert_eq(parse(&m, m.n, q, a, 4), 1);
    cr_assert_eq(strlen(q), 253);
    /* one more byte: refused */
    strcpy(name + 4 * 63, "bc");
    dm_simple(&m, name, 1, 2, 3, 4);
    cr_assert_eq(parse(&m, m.n, q, a, 4), -2);
    /* too long only through a pointer in the answer: refused */
    dm_header(&m, 0x8180, 1, 1, 0, 0);
    dm_question(&m, "kimi.com", 1); /* 10 bytes at 12 */
    dm_u8(&m, 62);                  /* owner: 4 labels of 62 bytes... */
    for (int i = 0; i < 62; i++)
        dm_u8(&m, 'z');
    dm_u8(&m, 62);
    for (int i = 0; i < 62; i++)
        dm_u8(&m, 'z');
    dm_u8(&m, 62);
    for (int i = 0; i < 62; i++)
        dm_u8(&m, 'z');
    dm_u8(&m, 62);
    for (int i = 0; i < 62; i++)
        dm_u8(&m, 'z');
    dm_ptr(&m, 12); /* + kimi.com: 252 + 10 > 255 */
    dm_a(&m, 1, 2, 3, 4);
    cr_assert_eq(parse(&m, m.n, q, a, 4), -1);
}

Test(dns, absurd_arguments)
{
    char q[KF_DNS_NAMEMAX];
    size_t qend;
    kf_dns_addr a[1];
    unsigned char b[12] = { 0 };
    cr_assert_eq(kf_dns_question(NULL, 100, q, &qend), 0);
    cr_assert_eq(kf_dns_question(b, sizeof b, q, &qend), 0);
    cr_assert_eq(kf_dns_answers(NULL, 100, 12, a, 1), -1);
    cr_assert_eq(kf_dns_answers(b, sizeof b, 13, a, 1), -1);
    cr_assert_eq(kf_dns_answers(b, 70000, 12, a, 1), -1);
}
