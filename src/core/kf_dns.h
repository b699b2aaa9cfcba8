/* kf_dns.h - reading DNS answers (RFC 1035) the process received: which
 * addresses does the answer give for the name it asked about?
 *
 * The shim's receive hooks (src/hooks/libc_recv.c) hand it every datagram
 * (and every length-prefixed TCP message) read from a socket whose peer
 * port is 53; libc_dns.c then remembers address -> name as the resolver
 * hooks do. Programs with their own DNS client (c-ares: Node's
 * dns.resolve*, Envoy, curl built with c-ares) never tell getaddrinfo the
 * name, so this is how connect() learns it.
 *
 * Pure: no allocation, no I/O, no locks, bounded work (every compression
 * pointer must point strictly below the previous one, names are at most
 * 255 bytes, CNAME chains at most KF_DNS_MAXCHAIN names). Malformed input
 * is refused as a whole (nothing is learned from it); it is never fatal.
 */
#ifndef KF_DNS_H
#define KF_DNS_H

#include <stddef.h>

#define KF_DNS_NAMEMAX 254  /* text name incl. NUL: at most 253 characters */
#define KF_DNS_MAXCHAIN 8   /* question name + CNAME targets followed */
#define KF_DNS_MAXADDR 16   /* addresses taken from one answer */
#define KF_DNS_MSGMAX 65535 /* a TCP message's 16-bit length */

enum { KF_DNS_A = 1, KF_DNS_CNAME = 5, KF_DNS_AAAA = 28 };

typedef struct kf_dns_addr {
    int family;              /* AF_INET or AF_INET6 */
    unsigned char a[16];     /* 4 or 16 bytes, network order */
} kf_dns_addr;

/* Header and question. When msg is a successful answer worth reading (QR
 * set, opcode QUERY, RCODE NOERROR, TC clear, exactly one question, class
 * IN, type A or AAAA) writes the question name in lower case without the
 * trailing dot to qname (KF_DNS_NAMEMAX bytes) and the offset of the answer
 * section to *qend, and returns the name's length (> 0). Returns 0
 * otherwise (malformed,
 * not a response, an error answer, another type, a name with bytes no host
 * name has). Cheap: it never looks at the answer section. */
int kf_dns_question(const unsigned char *msg, size_t n, char *qname, size_t *qend);

/* The A/AAAA records of the answer section that belong to the question
 * name, directly or through CNAMEs (in any order), at most `max` (the
 * rest are dropped). Call after kf_dns_question() returned 1, with its
 * qend. Returns the number written to out, or -1 when the answer section
 * is malformed (truncated, a bad name, a record that overruns the
 * message, a count larger than the records present): learn nothing then. */
int kf_dns_answers(const unsigned char *msg, size_t n, size_t qend, kf_dns_addr *out, int max);

#endif
