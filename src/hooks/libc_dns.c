/* libc_dns.c - getaddrinfo/gethostbyname* hooks, and the address -> name
 * memory they share with names learned from DNS answers (dns_learn.c).
 *
 * Three jobs:
 *  - a name with a `connect-to` entry is answered with the entry's address
 *    (numeric: no DNS query leaves the machine for it);
 *  - every rule-relevant name resolved is remembered (address -> name, a
 *    small bounded table), so connect() can name its destination: that
 *    name picks the port-specific connect-to entry and is the default Host;
 *  - programs with their own DNS client (c-ares) never call the resolver
 *    hooks: the receive hooks (libc_recv.c) hand us each answer they read
 *    from port 53 and the same table learns from it (kf_dns_learn).
 * Without rules (off, or a bad file) everything goes straight through.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fdtab.h"
#include "libc_dns.h"
#include "kf_shim.h"

/* ---- address -> name memory ---- */

#define KF_DNS_MAX 64

struct kf_dns_ent {
    int family;
    unsigned char addr[16];
    char name[KF_HOSTMAX];
};

static pthread_mutex_t kf_dns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kf_dns_ent kf_dns[KF_DNS_MAX];
static unsigned kf_dns_n, kf_dns_next;

/* Normalise to (family, bytes): v4-mapped IPv6 counts as IPv4. */
static int kf_addr_key(const struct sockaddr *sa, int *family, unsigned char out[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        *family = AF_INET;
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(out, &a->s6_addr[12], 4);
            *family = AF_INET;
        } else {
            memcpy(out, a, 16);
            *family = AF_INET6;
        }
        return 1;
    }
    return 0;
}

static void kf_dns_remember_raw(int family, const void *addr, const char *name)
{
    size_t alen = family == AF_INET ? 4 : 16;
    size_t l = strnlen(name, KF_HOSTMAX - 1);
    if (kf_reentered())
        return; /* a signal handler inside the shim: never wait (kf_shim.h) */
    unsigned held = kf_lock(&kf_dns_lock, KF_HOLD_DNS);
    struct kf_dns_ent *e = NULL;
    for (unsigned i = 0; i < kf_dns_n; i++)
        if (kf_dns[i].family == family && memcmp(kf_dns[i].addr, addr, alen) == 0)
            e = &kf_dns[i]; /* latest name for an address wins */
    if (!e) {
        e = &kf_dns[kf_dns_next];
        kf_dns_next = (kf_dns_next + 1) % KF_DNS_MAX;
        if (kf_dns_n < KF_DNS_MAX)
            kf_dns_n++;
    }
    e->family = family;
    memset(e->addr, 0, sizeof e->addr);
    memcpy(e->addr, addr, alen);
    memcpy(e->name, name, l);
    e->name[l] = 0;
    kf_unlock(&kf_dns_lock, held);
}

void kf_dns_remember(const struct sockaddr *sa, const char *name)
{
    int fam;
    unsigned char a[16];
    if (sa && name && kf_addr_key(sa, &fam, a))
        kf_dns_remember_raw(fam, a, name);
}

int kf_dns_name_of(const struct sockaddr *sa, char *name, size_t n)
{
    int fam, found = 0;
    unsigned char a[16];
    if (!sa || !kf_addr_key(sa, &fam, a) || n == 0 || kf_reentered())
        return 0; /* a handler's connect goes unnamed: direct, untracked */
    size_t alen = fam == AF_INET ? 4 : 16;
    unsigned held = kf_lock(&kf_dns_lock, KF_HOLD_DNS);
    for (unsigned i = 0; i < kf_dns_n; i++)
        if (kf_dns[i].family == fam && memcmp(kf_dns[i].addr, a, alen) == 0) {
            size_t l = strnlen(kf_dns[i].name, n - 1);
            memcpy(name, kf_dns[i].name, l);
            name[l] = 0;
            found = 1;
        }
    kf_unlock(&kf_dns_lock, held);
    return found;
}

void kf_dns_prepare(void) { pthread_mutex_lock(&kf_dns_lock); }
void kf_dns_parent(void) { pthread_mutex_unlock(&kf_dns_lock); }
void kf_dns_child(void)
{
    pthread_mutex_init(&kf_dns_lock, NULL);
}

/* ---- helpers ---- */

static int kf_is_numeric(const char *node)
{
    unsigned char b[16];
    return inet_pton(AF_INET, node, b) == 1 || inet_pton(AF_INET6, node, b) == 1;
}

static unsigned kf_service_port(const char *service)
{
    if (!service)
        return 0;
    char *end;
    unsigned long v = strtoul(service, &end, 10);
    if (*service && !*end && v < 65536)
        return (unsigned)v;
    if (strcmp(service, "http") == 0)
        return 80;
    if (strcmp(service, "https") == 0)
        return 443;
    return 0; /* other named services: unknown port */
}

/* The connect-to address for `name`: port-specific when the port is known,
 * else the first entry for that host. */
static const char *kf_connect_to_addr(const kf_ruleset *rs, const char *name, unsigned port)
{
    const char *addr, *h;
    unsigned ap, hp;
    if (port)
        return kf_rules_connect_to(rs, name, port, &addr, &ap) ? addr : NULL;
    for (unsigned i = 0; kf_rules_connect_to_at(rs, i, &h, &hp, &addr, &ap); i++)
        if (kf_ascii_ieq(h, name))
            return addr;
    return NULL;
}

/* ---- getaddrinfo ---- */

static int kf_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                          struct addrinfo **res)
{
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        KF_REAL(getaddrinfo);
    const kf_ruleset *rs = kf_shim_rules();
    if (!rs || kf_is_numeric(node))
        return real(node, service, hints, res);

    unsigned port = kf_service_port(service);
    const char *addr = kf_connect_to_addr(rs, node, port);
    int rc;
    if (addr) {
        struct addrinfo h;
        if (hints) {
            h = *hints;
        } else {
            memset(&h, 0, sizeof h);
            h.ai_flags = AI_V4MAPPED;
        }
        if (kf_is_numeric(addr)) {
            /* An explicit address: interface configuration is irrelevant. */
            h.ai_flags |= AI_NUMERICHOST;
            h.ai_flags &= ~AI_ADDRCONFIG;
        }
        rc = real(addr, service, &h, res);
        kf_log(KF_LOG_DEBUG, "[libc] connect-to: %s resolved as %s%s", node, addr,
               rc ? " (failed)" : "");
    } else {
        rc = real(node, service, hints, res);
        if (rc != 0 || !kf_rules_host_relevant(rs, node, port))
            return rc;
    }
    if (rc == 0)
        for (struct addrinfo *ai = *res; ai; ai = ai->ai_next)
            kf_dns_remember(ai->ai_addr, node);
    return rc;
}

static int kf_getaddrinfo_hook(const char *node, const char *service, const struct addrinfo *hints,
                          struct addrinfo **res)
{
    if (!node)
        return KF_REAL(getaddrinfo)(node, service, hints, res);
    return kf_getaddrinfo(node, service, hints, res);
}

KF_EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                          struct addrinfo **res)
{
    return kf_getaddrinfo_hook(node, service, hints, res);
}

/* ---- gethostbyname family ---- */

/* Lay a one-address hostent out in buf. Returns 0 or ERANGE. */
static int kf_fill_hostent(struct hostent *h, char *buf, size_t len, const char *name, int af,
                           const void *addr)
{
    size_t alen = af == AF_INET ? 4 : 16, nlen = strlen(name) + 1;
    size_t need = 3 * sizeof(char *) + 16 + nlen + sizeof(char *);
    if (len < need)
        return ERANGE;
    /* pointers first (aligned by the caller's buffer start, rounded up) */
    uintptr_t p = ((uintptr_t)buf + sizeof(char *) - 1) & ~(uintptr_t)(sizeof(char *) - 1);
    if (p + need > (uintptr_t)buf + len)
        return ERANGE;
    char **list = (char **)p;
    char **aliases = list + 2;
    char *a = (char *)(aliases + 1);
    char *n = a + 16;
    memcpy(a, addr, alen);
    memcpy(n, name, nlen);
    list[0] = a;
    list[1] = NULL;
    aliases[0] = NULL;
    h->h_name = n;
    h->h_aliases = aliases;
    h->h_addrtype = af;
    h->h_length = (int)alen;
    h->h_addr_list = list;
    return 0;
}

/* connect-to answer for (name, af): 1 with the address bytes in out. */
static int kf_hostent_connect_to(const char *name, int af, unsigned char out[16])
{
    const kf_ruleset *rs = kf_shim_rules();
    const char *addr;
    if (!rs || !name || kf_is_numeric(name) || !(addr = kf_connect_to_addr(rs, name, 0)))
        return 0;
    if (inet_pton(af, addr, out) == 1)
        return 1;
    if (af == AF_INET6 && inet_pton(AF_INET, addr, out + 12) == 1) {
        memset(out, 0, 10); /* v4-mapped */
        out[10] = out[11] = 0xff;
        return 1;
    }
    return 0;
}

static void kf_hostent_remember(const char *name, const struct hostent *h)
{
    const kf_ruleset *rs = kf_shim_rules();
    if (!rs || !h || !name || kf_is_numeric(name) || !kf_rules_host_relevant(rs, name, 0))
        return;
    if (h->h_addrtype != AF_INET && h->h_addrtype != AF_INET6)
        return;
    for (char **a = h->h_addr_list; a && *a; a++) {
        unsigned char b[16] = { 0 };
        memcpy(b, *a, h->h_addrtype == AF_INET ? 4 : 16);
        if (h->h_addrtype == AF_INET6 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *)b))
            kf_dns_remember_raw(AF_INET, b + 12, name);
        else
            kf_dns_remember_raw(h->h_addrtype, b, name);
    }
}

static void kf_remember_ct(const char *name, int af, const unsigned char *a)
{
    if (af == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a))
        kf_dns_remember_raw(AF_INET, a + 12, name);
    else
        kf_dns_remember_raw(af, a, name);
}

/* Like libc's, the non-reentrant forms answer from static storage. */
static struct hostent kf_static_he;
static char kf_static_buf[512];

static struct hostent *kf_gethostbyname2(const char *name, int af)
{
    unsigned char a[16];
    if ((af == AF_INET || af == AF_INET6) && kf_hostent_connect_to(name, af, a) &&
        kf_fill_hostent(&kf_static_he, kf_static_buf, sizeof kf_static_buf, name, af, a) == 0) {
        kf_remember_ct(name, af, a);
        return &kf_static_he;
    }
    struct hostent *h = KF_REAL(gethostbyname2)(name, af);
    kf_hostent_remember(name, h);
    return h;
}

static struct hostent *kf_gethostbyname(const char *name)
{
    unsigned char a[16];
    if (kf_hostent_connect_to(name, AF_INET, a))
        return kf_gethostbyname2(name, AF_INET);
    struct hostent *h = KF_REAL(gethostbyname)(name);
    kf_hostent_remember(name, h);
    return h;
}

KF_EXPORT struct hostent *gethostbyname(const char *name)
{
    return kf_gethostbyname(name);
}

KF_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
    return kf_gethostbyname2(name, af);
}

static int kf_gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
                               size_t buflen, struct hostent **result, int *h_errnop)
{
    unsigned char a[16];
    if ((af == AF_INET || af == AF_INET6) && kf_hostent_connect_to(name, af, a)) {
        int e = kf_fill_hostent(ret, buf, buflen, name, af, a);
        if (e) {
            *result = NULL;
            if (h_errnop)
                *h_errnop = NETDB_INTERNAL;
            errno = e;
            return e;
        }
        kf_remember_ct(name, af, a);
        *result = ret;
        if (h_errnop)
            *h_errnop = 0;
        return 0;
    }
    int rc = KF_REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop);
    if (rc == 0 && *result)
        kf_hostent_remember(name, *result);
    return rc;
}

static int kf_gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
                              struct hostent **result, int *h_errnop)
{
    unsigned char a[16];
    if (kf_hostent_connect_to(name, AF_INET, a))
        return kf_gethostbyname2_r(name, AF_INET, ret, buf, buflen, result, h_errnop);
    int rc = KF_REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop);
    if (rc == 0 && *result)
        kf_hostent_remember(name, *result);
    return rc;
}

KF_EXPORT int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
                              struct hostent **result, int *h_errnop)
{
    return kf_gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
}

KF_EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
                               size_t buflen, struct hostent **result, int *h_errnop)
{
    return kf_gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
}
