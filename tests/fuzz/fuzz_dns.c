/* fuzz_dns.c - libFuzzer target for the DNS answer reader (kf_dns_question,
 * kf_dns_answers), which the shim runs on every datagram a program reads
 * from port 53: the DNS server's bytes, hostile by assumption.
 *
 * Invariants beyond "no sanitizer report":
 *  - the question name is NUL-terminated, at most 253 characters, lower
 *    case, printable, no empty label, its length the value returned; qend
 *    within the message;
 *  - the answer count is -1 or 0..max, and never more than max (tried with
 *    max 1 and KF_DNS_MAXADDR: the first k agree);
 *  - families are AF_INET/AF_INET6 with the unused bytes zero;
 *  - bytes after the message do not change the answer when the answer was
 *    read (every record lies inside); the input is never written.
 * Build: make fuzz (clang) or make fuzz-smoke.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "kf_dns.h"

static void check_name(const char *q)
{
    size_t l = strlen(q);
    if (l == 0 || l > 253 || q[0] == '.' || q[l - 1] == '.' || strstr(q, ".."))
        abort();
    for (size_t i = 0; i < l; i++)
        if ((unsigned char)q[i] <= 0x20 || (unsigned char)q[i] >= 0x7f || (q[i] >= 'A' && q[i] <= 'Z'))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > KF_DNS_MSGMAX)
        return 0;
    /* exact-size heap copy: ASan sees any over-read; a second copy checks
     * that the reader never writes */
    uint8_t *buf = malloc(size ? size : 1), *orig = malloc(size ? size : 1);
    if (!buf || !orig)
        abort();
    memcpy(buf, data, size);
    memcpy(orig, data, size);
    char q[KF_DNS_NAMEMAX];
    size_t qend = 0;
    int ql = kf_dns_question(buf, size, q, &qend);
    if (ql < 0)
        abort();
    if (ql > 0) {
        check_name(q);
        if ((size_t)ql != strlen(q))
            abort();
        if (qend > size)
            abort();
        kf_dns_addr a[KF_DNS_MAXADDR], one[1];
        int k = kf_dns_answers(buf, size, qend, a, KF_DNS_MAXADDR);
        int k1 = kf_dns_answers(buf, size, qend, one, 1);
        if (k < -1 || k > KF_DNS_MAXADDR || (k < 0) != (k1 < 0) || (k > 0 && k1 != 1) ||
            (k == 0 && k1 != 0))
            abort();
        if (k > 0 && memcmp(&a[0], &one[0], sizeof one[0]))
            abort();
        for (int i = 0; i < k; i++) {
            if (a[i].family != AF_INET && a[i].family != AF_INET6)
                abort();
            for (int j = a[i].family == AF_INET ? 4 : 16; j < 16; j++)
                if (a[i].a[j])
                    abort();
        }
        /* trailing garbage after a message whose answers were read */
        if (k >= 0 && size + 7 <= KF_DNS_MSGMAX) {
            uint8_t *longer = malloc(size + 7);
            if (!longer)
                abort();
            memcpy(longer, buf, size);
            memset(longer + size, 0xC0, 7);
            kf_dns_addr b[KF_DNS_MAXADDR];
            char q2[KF_DNS_NAMEMAX];
            size_t qend2;
            if (!kf_dns_question(longer, size + 7, q2, &qend2) || strcmp(q, q2) || qend2 != qend ||
                kf_dns_answers(longer, size + 7, qend2, b, KF_DNS_MAXADDR) != k ||
                (k > 0 && memcmp(a, b, (size_t)k * sizeof a[0])))
                abort();
            free(longer);
        }
    }
    if (memcmp(buf, orig, size))
        abort();
    free(buf);
    free(orig);
    return 0;
}
