/* rules.c - the relay's own rules: the user's file, followed when it
 * changes, and how often each rule rewrote a request.
 *
 * Source: the file kf_rules_default_path() names in the relay's
 * environment ($KIMIFIX_RULES, ~/.config/kimifix/rules, /etc/kimifix/rules),
 * else the built-ins. It is loaded by kf_rules_load_policy(): a broken file
 * means the built-ins and one error line (docs/rules.md, "When the rules
 * file is broken"), never the previous file.
 *
 * Following edits: every connection that needs rules takes a reference to
 * the current set with relay_rules_get(), which first compares the file's
 * (path, dev, ino, size, mtime) with what the current set was built from:
 * one stat() (and access() for the default locations) per such connection,
 * under a mutex nobody holds for longer than that, or than one load of a
 * changed file. A changed file is loaded then, so the connection that
 * noticed gets the new rules; connections already running keep the set
 * they took (refcounted, freed with its last connection). Why no timer or
 * inotify: "the next connection after the edit" must hold by construction,
 * and a check costs 3-4 us here (get + put; bench figure 15: about a tenth
 * of a bare loopback connect+accept+close in the same run), far less than
 * the TLS handshake every relayed connection does.
 *
 * Counters: a table of rule names (append-only, at most SLOTS_MAX), each
 * with an atomic count of requests that rule rewrote; a set maps its rule
 * i to a slot once, when it is loaded, so the hot path is a pointer scan
 * over the set's rules and one relaxed atomic add per rule that fired.
 * Counts are per name: an edited rule keeps counting where it left off.
 */
#include "relay.h"
#include "kf_paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "kf_log.h"
#include "kf_rules_hosts.h"
#include "kf_rules_policy.h"

#define SLOTS_MAX 512
#define SLOT_NONE 0xffffu
#define NAME_LEN 96

struct relay_rules {
    kf_ruleset *rs;
    atomic_uint refs;
    unsigned n;
    const kf_rule **rule; /* rule i of rs */
    uint16_t *slot;       /* its counter, or SLOT_NONE (table full) */
    char *state;          /* the policy line when the file is broken, else NULL */
    unsigned long gen;    /* a number no other set has (a client is told once per set) */
};

/* Where a set came from: the file's name and identity ("" = built-ins). */
typedef struct ident {
    char path[4096];
    kf_file_id f;
} ident;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static relay_rules *cur;       /* under mu; holds one reference of its own */
static ident cur_id;           /* under mu */
static char cur_state[4800];   /* under mu: "" or the policy line (FILE twice) */
static unsigned long reloads;  /* under mu */

static struct slot {
    char name[NAME_LEN];
    atomic_ulong hits;
} slots[SLOTS_MAX];
static atomic_uint nslots;     /* published; appended under mu */
static atomic_ulong rewritten; /* requests at least one rule changed */
static unsigned long gens;     /* under mu */

static void ident_now(ident *id)
{
    char buf[4096];
    const char *p = kf_rules_default_path(buf, sizeof buf);
    memset(id, 0, sizeof *id);
    if (!p)
        return;
    snprintf(id->path, sizeof id->path, "%s", p);
    kf_file_id_of(p, &id->f);
}

static int ident_eq(const ident *a, const ident *b)
{
    return !strcmp(a->path, b->path) && kf_file_id_eq(&a->f, &b->f);
}

/* Under mu. */
static uint16_t slot_for(const char *name)
{
    unsigned n = atomic_load_explicit(&nslots, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        if (!strcmp(slots[i].name, name))
            return (uint16_t)i;
    if (n >= SLOTS_MAX || strlen(name) >= NAME_LEN)
        return SLOT_NONE;
    snprintf(slots[n].name, sizeof slots[n].name, "%s", name);
    atomic_store_explicit(&nslots, n + 1, memory_order_release);
    return (uint16_t)n;
}

/* Warnings as they come; errors are said once, in the policy line. */
static void diag(void *ud, const char *line)
{
    (void)ud;
    if (!strstr(line, ": error: "))
        kf_log(KF_LOG_WARN, "relay: rules: %s", line);
}

static void holder_free(relay_rules *r)
{
    kf_ruleset_free(r->rs);
    free(r->rule);
    free(r->slot);
    free(r->state);
    free(r);
}

static void warn_uncovered(const kf_ruleset *rs);

/* Under mu. path NULL: the built-ins. The policy line goes into state
 * ("" when the file loaded) and, when broken, the relay's log. NULL: out
 * of memory (logged). */
static relay_rules *load(const char *path, char *state, size_t sn)
{
    kf_rules_src src;
    relay_rules *r = calloc(1, sizeof *r);
    if (r)
        r->rs = kf_rules_load_policy(path, diag, NULL, &src);
    if (r && r->rs) {
        r->n = kf_ruleset_count(r->rs);
        r->rule = calloc(r->n ? r->n : 1, sizeof *r->rule);
        r->slot = calloc(r->n ? r->n : 1, sizeof *r->slot);
    }
    if (!r || !r->rs || !r->rule || !r->slot) {
        if (r)
            holder_free(r);
        kf_log(KF_LOG_ERROR, "relay: rules: out of memory loading %s",
               path ? path : "the built-in rules");
        return NULL;
    }
    for (unsigned i = 0; i < r->n; i++) {
        r->rule[i] = kf_ruleset_rule(r->rs, i);
        r->slot[i] = slot_for(kf_rule_name(r->rule[i]));
    }
    atomic_init(&r->refs, 1);
    r->gen = ++gens;
    kf_rules_policy_line(&src, state, sn);
    if (src.fallback) {
        kf_log(KF_LOG_ERROR, "relay: rules: %s", state);
        r->state = strdup(state); /* NULL (no memory): the client is not told */
    }
    return r;
}

relay_rules *relay_rules_load(const char *path)
{
    static char state[4800]; /* under mu */
    pthread_mutex_lock(&mu);
    relay_rules *r = load(path, state, sizeof state);
    pthread_mutex_unlock(&mu);
    if (r)
        warn_uncovered(r->rs);
    return r;
}

int relay_rules_is_own(const char *path)
{
    char buf[4096];
    const char *own = kf_rules_default_path(buf, sizeof buf);
    return own ? !strcmp(own, path) : !*path;
}

const char *relay_rules_state(const relay_rules *r)
{
    return r ? r->state : NULL;
}

unsigned long relay_rules_gen(const relay_rules *r)
{
    return r ? r->gen : 0;
}

unsigned relay_rules_enabled(const relay_rules *r)
{
    unsigned on = 0;
    for (unsigned i = 0; r && i < r->n; i++)
        on += kf_rule_enabled(r->rule[i]) != 0;
    return on;
}

/* Rule hosts the relay's CA does not permit (it is made for the rules the
 * relay started with; a new CA would break every running client that
 * trusts the old one). */
static void warn_uncovered(const kf_ruleset *rs)
{
    char miss[1024];
    size_t used = 0;
    const char *have = ca_names(), *name;
    int wild;
    miss[0] = 0;
    for (unsigned i = 0; kf_rules_host_at(rs, i, &name, &wild); i++) {
        size_t n = strlen(name);
        if (!kf_proxy_valid_host(name + (*name == '.'), n - (*name == '.')))
            continue;
        int found = 0;
        for (const char *p = have; *p && !found; ) {
            size_t m = strcspn(p, " ");
            found = m == n && !strncasecmp(p, name, n);
            p += m + (p[m] == ' ');
        }
        int w = found ? 0 : snprintf(miss + used, sizeof miss - used, " %s", name);
        if (w > 0 && (size_t)w < sizeof miss - used)
            used += (size_t)w;
    }
    if (used)
        kf_log(KF_LOG_WARN, "relay: rules: the relay's CA does not cover%s: connections to %s "
               "fail until the relay restarts (`kimifix relay stop`; clients start it again)",
               miss, strchr(miss + 1, ' ') ? "them" : "it");
}

/* The set the relay started with, held for its whole life (below).
 * volatile: a store nobody reads would be optimised away, and LeakSanitizer
 * would then see the set as leaked once a reload replaced `cur`. */
static relay_rules *volatile first;

int relay_rules_init(void)
{
    pthread_mutex_lock(&mu);
    ident_now(&cur_id);
    cur = load(cur_id.path[0] ? cur_id.path : NULL, cur_state, sizeof cur_state);
    if (cur) {
        /* g_relay.rs is the set the relay started with (its CA is made for
         * it; relay_ctx_rules() returns it for "the relay's own rules"):
         * it lives as long as the relay. */
        atomic_fetch_add(&cur->refs, 1);
        first = cur;
        g_relay.rs = cur->rs;
    }
    pthread_mutex_unlock(&mu);
    return cur ? 0 : -1;
}

relay_rules *relay_rules_get(void)
{
    static ident id; /* under mu; static: workers have 256 KiB stacks */
    relay_rules *old = NULL, *r;
    pthread_mutex_lock(&mu);
    ident_now(&id);
    if (cur && !ident_eq(&id, &cur_id)) {
        /* Identity first, then the bytes: a file written again while it is
         * read differs from id next time and is read again then. */
        relay_rules *n = load(id.path[0] ? id.path : NULL, cur_state, sizeof cur_state);
        if (n) {
            old = cur;
            cur = n;
            cur_id = id;
            reloads++;
            unsigned on = relay_rules_enabled(n);
            if (!cur_state[0])
                kf_log(KF_LOG_INFO, "relay: rules: %s: %u rules in effect from the next connection",
                       id.path[0] ? id.path : "no rules file: the built-in rules", on);
            warn_uncovered(n->rs);
        }
    }
    r = cur;
    if (r)
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
    relay_rules_put(old);
    return r;
}

relay_rules *relay_rules_ref(relay_rules *r)
{
    if (r)
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void relay_rules_put(relay_rules *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        holder_free(r);
}

const kf_ruleset *relay_rules_set(const relay_rules *r)
{
    return r ? r->rs : g_relay.rs;
}

void relay_rules_hit(const relay_rules *r, const kf_req *req)
{
    if (!req->nfired)
        return;
    atomic_fetch_add_explicit(&rewritten, 1, memory_order_relaxed);
    for (unsigned i = 0; i < req->nfired; i++)
        for (unsigned j = 0; j < r->n; j++)
            if (r->rule[j] == req->fired[i]) {
                if (r->slot[j] != SLOT_NONE)
                    atomic_fetch_add_explicit(&slots[r->slot[j]].hits, 1, memory_order_relaxed);
                break;
            }
}

/* For STATUS: the source, its state, then `rule NAME COUNT` for every rule
 * in effect and every rule of an earlier set that rewrote something. */
size_t relay_rules_status(char *out, size_t n)
{
    size_t used = 0;
    unsigned char in_effect[SLOTS_MAX] = {0};
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(out + used, n - used, __VA_ARGS__);                                      \
        if (w_ < 0 || (size_t)w_ >= n - used)                                                      \
            return used;                                                                           \
        used += (size_t)w_;                                                                        \
    } while (0)
    if (!n)
        return 0;
    out[0] = 0;
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; cur && i < cur->n; i++)
        if (cur->slot[i] != SLOT_NONE && kf_rule_enabled(cur->rule[i]))
            in_effect[cur->slot[i]] = 1;
    char src[4200], state[sizeof cur_state];
    snprintf(src, sizeof src, "%s", cur_id.path[0] ? cur_id.path : "builtin");
    snprintf(state, sizeof state, "%s", cur_state[0] ? cur_state : "ok");
    unsigned long rl = reloads;
    pthread_mutex_unlock(&mu);
    PUT("rules_source %s\nrules_state %s\nrules_reloads %lu\nrewritten %lu\n", src, state, rl,
        atomic_load_explicit(&rewritten, memory_order_relaxed));
    unsigned ns = atomic_load_explicit(&nslots, memory_order_acquire);
    for (unsigned i = 0; i < ns; i++) {
        unsigned long h = atomic_load_explicit(&slots[i].hits, memory_order_relaxed);
        if (in_effect[i] || h)
            PUT("rule %s %lu\n", slots[i].name, h);
    }
#undef PUT
    return used;
}
