/* kf_noproxy.c - NO_PROXY matching (kf_noproxy.h).
 *
 * One pass over the list, one entry at a time in a stack buffer; an entry
 * that cannot be understood (overlong, bad port, bad range) matches
 * nothing, as in curl and Go: a typo must not send traffic elsewhere.
 */
#include "kf_noproxy.h"
#include "kf_str.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_MAX 300

typedef struct ipaddr {
    int bits; /* 32 or 128; 0 = not an IP literal */
    unsigned char a[16];
} ipaddr;

static void parse_ip(const char *s, ipaddr *ip)
{
    ip->bits = 0;
    if (inet_pton(AF_INET, s, ip->a) == 1)
        ip->bits = 32;
    else if (inet_pton(AF_INET6, s, ip->a) == 1)
        ip->bits = 128;
}

/* Copy s[0..n) into out without [brackets] and trailing dots. */
static int clean_host(const char *s, size_t n, char *out, size_t cap)
{
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    while (n && s[n - 1] == '.')
        n--;
    if (!n || n >= cap)
        return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

/* "1".."65535" -> value, else 0. */
static unsigned parse_port(const char *s)
{
    unsigned v = 0;
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || (v = v * 10 + (unsigned)(*s - '0')) > 65535)
            return 0;
    }
    return v;
}

static int prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full))
        return 0;
    if (!rest)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

/* host ends with "." + dom, or is dom. */
static int domain_match(const char *host, const char *dom)
{
    size_t hl = strlen(host), dl = strlen(dom);
    if (!dl || dl > hl)
        return 0;
    if (!kf_ascii_ieq(host + hl - dl, dom))
        return 0;
    return hl == dl || host[hl - dl - 1] == '.';
}

/* CIDR entry "addr/bits" against an IP host. */
static int cidr_match(char *e, const ipaddr *h)
{
    char *slash = strchr(e, '/');
    *slash = 0;
    ipaddr net;
    parse_ip(e, &net);
    char *end;
    long bits = strtol(slash + 1, &end, 10);
    if (!net.bits || !h->bits || net.bits != h->bits || *end || slash[1] == 0 || bits < 0 ||
        bits > net.bits)
        return 0;
    return prefix_eq(net.a, h->a, (unsigned)bits);
}

/* One entry (NUL-terminated, trimmed, non-empty). */
static int entry_match(char *e, const char *host, const ipaddr *hip, unsigned port)
{
    if (!strcmp(e, "*"))
        return 1;
    if (strchr(e, '/'))
        return cidr_match(e, hip);
    unsigned want = 0;
    char *colon = strrchr(e, ':');
    char *rb = strrchr(e, ']');
    /* A port follows the last ':' of "name:port", "v4:port" or "[v6]:port";
     * a bare IPv6 literal has several colons and no port. */
    if (colon && (rb ? colon == rb + 1 : strchr(e, ':') == colon)) {
        if (!(want = parse_port(colon + 1)))
            return 0;
        *colon = 0;
    }
    if (want && want != port)
        return 0;
    if (!strncmp(e, "*.", 2))
        e++;
    if (e[0] == '.')
        e++;
    char name[ENTRY_MAX];
    if (clean_host(e, strlen(e), name, sizeof name) < 0)
        return 0;
    ipaddr eip;
    parse_ip(name, &eip);
    if (eip.bits)
        return hip->bits == eip.bits && !memcmp(hip->a, eip.a, (size_t)eip.bits / 8);
    return !hip->bits && domain_match(host, name);
}

int kf_noproxy_match(const char *list, const char *host, unsigned port)
{
    char h[ENTRY_MAX], e[ENTRY_MAX];
    if (!list || !*list || !host || clean_host(host, strlen(host), h, sizeof h) < 0)
        return 0;
    ipaddr hip;
    parse_ip(h, &hip);
    for (const char *p = list; *p;) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (n && n < sizeof e) {
            memcpy(e, p, n);
            e[n] = 0;
            if (entry_match(e, h, &hip, port))
                return 1;
        }
        p += n;
    }
    return 0;
}

const char *kf_noproxy_env(kf_getenv_fn get)
{
    const char *v = get("no_proxy");
    return v && *v ? v : get("NO_PROXY"); /* empty = unset, as Go and Python read it */
}
