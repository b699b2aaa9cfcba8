/* dns_learn.c - names from DNS answers the program reads itself (the
 * receive hooks in libc_recv.c hand each one to kf_dns_learn), remembered
 * address -> name in the resolver hooks' table (libc_dns.c), so connect()
 * can name, steer and connect-to a destination that no hooked resolver
 * produced (c-ares, Node's dns.resolve*). docs/loader.md.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "dnsfd.h"
#include "fdtab.h"
#include "libc_dns.h"
#include "kf_dns.h"
#include "kf_rules_hosts.h"
#include "kf_shim.h"

static void kf_learn_remember(const kf_dns_addr *a, const char *name)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, a->a, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, a->a, 16);
    }
    kf_dns_remember((const struct sockaddr *)&ss, name);
}

static int kf_learn_connect_to(const kf_ruleset *rs, const char *q)
{
    const char *h, *addr;
    unsigned port, aport;
    for (unsigned i = 0; kf_rules_connect_to_at(rs, i, &h, &port, &addr, &aport); i++)
        if (kf_ascii_ieq(h, q))
            return 1;
    return 0;
}

/* Which question names are worth reading an answer for: the hosts enabled
 * rules name (kf_rules_host_at: exact, or ".suffix" for subdomains) and
 * the connect-to hosts. kf_rules_host_listed() walks every rule; this
 * table, built once per ruleset (rulesets are immutable, never freed),
 * keeps an answer about any other name at a few comparisons. */
#define KF_LEARN_MAX 64
#define KF_LEARN_POOL 4096
struct kf_learn_name {
    const char *name; /* lower case, in the pool */
    size_t len;
    int wild;
};
static struct {
    _Atomic(const kf_ruleset *) rs; /* the ruleset the table is for */
    unsigned n;
    int overflow; /* more names than fit: ask the rules each time */
    size_t used;
    struct kf_learn_name e[KF_LEARN_MAX];
    char pool[KF_LEARN_POOL];
} kf_learn;
static pthread_mutex_t kf_learn_lock = PTHREAD_MUTEX_INITIALIZER;

static void kf_learn_add(const char *name, int wild)
{
    size_t l = strlen(name);
    if (kf_learn.n == KF_LEARN_MAX || l + 1 > KF_LEARN_POOL - kf_learn.used) {
        kf_learn.overflow = 1;
        return;
    }
    char *p = kf_learn.pool + kf_learn.used;
    for (size_t i = 0; i <= l; i++)
        p[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    kf_learn.used += l + 1;
    kf_learn.e[kf_learn.n].name = p;
    kf_learn.e[kf_learn.n].len = l;
    kf_learn.e[kf_learn.n++].wild = wild;
}

/* 1 when the table is for rs (built now if needed); 0 when another thread
 * (or this one, interrupted by a signal handler) is building it. */
static int kf_learn_ready(const kf_ruleset *rs)
{
    if (atomic_load_explicit(&kf_learn.rs, memory_order_acquire) == rs)
        return 1;
    if (pthread_mutex_trylock(&kf_learn_lock) != 0)
        return 0;
    if (atomic_load(&kf_learn.rs) != rs) {
        const char *h, *addr;
        unsigned port, aport;
        int wild;
        kf_learn.n = 0;
        kf_learn.used = 0;
        kf_learn.overflow = 0;
        for (unsigned i = 0; kf_rules_host_at(rs, i, &h, &wild); i++)
            kf_learn_add(h, wild);
        for (unsigned i = 0; kf_rules_connect_to_at(rs, i, &h, &port, &addr, &aport); i++)
            kf_learn_add(h, 0);
        atomic_store_explicit(&kf_learn.rs, rs, memory_order_release);
    }
    pthread_mutex_unlock(&kf_learn_lock);
    return 1;
}

/* q: lower case (kf_dns_question), ql bytes. */
static int kf_learn_wants(const kf_ruleset *rs, const char *q, size_t ql)
{
    if (!kf_learn_ready(rs))
        return 0;
    if (kf_learn.overflow)
        return kf_rules_host_listed(rs, q, 0) || kf_learn_connect_to(rs, q);
    for (unsigned i = 0; i < kf_learn.n; i++) {
        const struct kf_learn_name *e = &kf_learn.e[i];
        if (e->wild ? ql > e->len && memcmp(q + ql - e->len, e->name, e->len) == 0
                    : ql == e->len && memcmp(q, e->name, ql) == 0)
            return 1;
    }
    return 0;
}

/* Cheap for answers about other names: the question is parsed and checked
 * against the table first; the answer section only for listed names. */
void kf_dns_learn(const unsigned char *msg, size_t n)
{
    const kf_ruleset *rs = kf_shim_rules();
    char name[KF_DNS_NAMEMAX];
    size_t qend;
    int ql;
    if (!rs || (ql = kf_dns_question(msg, n, name, &qend)) <= 0 ||
        !kf_learn_wants(rs, name, (size_t)ql))
        return;
    kf_dns_addr a[KF_DNS_MAXADDR];
    int k = kf_dns_answers(msg, n, qend, a, KF_DNS_MAXADDR);
    if (k < 0) {
        kf_log(KF_LOG_DEBUG, "[dns] an answer about %s is malformed: ignored", name);
        return;
    }
    for (int i = 0; i < k; i++) {
        kf_learn_remember(&a[i], name);
        if (kf_log_enabled(KF_LOG_DEBUG)) {
            char t[INET6_ADDRSTRLEN];
            kf_log(KF_LOG_DEBUG, "[dns] %s is %s (from a DNS answer the program read)", name,
                   inet_ntop(a[i].family, a[i].a, t, sizeof t) ? t : "?");
        }
    }
}
