/* kf_rules_apply.c - match rules against a request and apply their actions.
 *
 * This runs on every request head a carrier sees, inside the client's
 * write path: no allocation (new strings go to req->scratch, everything
 * else is a view into the ruleset), cheapest conditions first (host, then
 * method, path prefix, headers and key, and only then a regex).
 */
#include <pthread.h>
#include <string.h>

#include "kf_rules_int.h"
#include "kf_word.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KF_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(thread_sanitizer)
#define KF_SANITIZED 1
#endif
#endif
#ifndef KF_SANITIZED
#define KF_SANITIZED 0
#endif

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* hp->name is lower case. */
int kf_host_match(const kf_hostpat *hp, kf_str host, unsigned port)
{
    if (hp->port && port && hp->port != port)
        return 0;
    if (hp->port && !port)
        return 0;
    if (hp->wild) {
        /* ".example.com" matches "a.example.com", not "example.com" */
        if (host.n <= hp->name.n)
            return 0;
        host.p += host.n - hp->name.n;
        host.n = hp->name.n;
    } else if (host.n != hp->name.n) {
        return 0;
    }
    if (memcmp(host.p, hp->name.p, host.n) == 0)
        return 1; /* hosts are usually written in lower case already */
    for (size_t i = 0; i < host.n; i++)
        if (lower((unsigned char)host.p[i]) != (unsigned char)hp->name.p[i])
            return 0;
    return 1;
}

static int host_ok(const kf_rule *r, kf_str host, unsigned port)
{
    if (r->nhosts == 0)
        return 1;
    for (unsigned i = 0; i < r->nhosts; i++)
        if (kf_host_match(&r->hosts[i], host, port))
            return 1;
    return 0;
}

/* Where the first live header of a name is, as a condition just found it:
 * a set-header action of the same rule on that name (the platform fix)
 * starts there instead of looking again. Valid until an action runs. */
typedef struct find_hint {
    kf_str name;
    int first;
} find_hint;

static int value_ok(const kf_hcond *c, kf_str v)
{
    if (c->exact)
        return v.n == c->glob_n && (v.n == 0 || memcmp(v.p, c->glob, v.n) == 0);
    return kf_glob(c->glob, v);
}

static int header_ok(const kf_req *req, const kf_hcond *c, find_hint *hint)
{
    int i = kf_req_find_header(req, c->name, 0);
    hint->name = c->name;
    hint->first = i;
    for (; i >= 0; i = kf_req_find_header(req, c->name, (unsigned)i + 1))
        if (value_ok(c, req->hdr[i].value))
            return 1;
    return 0;
}

static int find_first(const kf_req *req, kf_str name, const find_hint *hint)
{
    if (hint->name.p && kf_str_ieq(hint->name, name))
        return hint->first;
    return kf_req_find_header(req, name, 0);
}

/* The path starts with the rule's literal prefix? Its last byte first: the
 * built-in prefixes share "/coding/" and differ near their ends. */
static int prefix_ok(kf_str path, kf_str pre)
{
    if (path.n < pre.n)
        return 0;
    if (pre.n == 0)
        return 1;
    return path.p[pre.n - 1] == pre.p[pre.n - 1] && kf_same_bytes(path.p, pre.p, pre.n - 1);
}

#define MAX_GROUPS 10

/* Rules sharing a host list (the defaults come in runs of them) share one
 * host check until an action changes the request. */
typedef struct host_cache {
    unsigned group; /* ~0u: no answer yet */
    int ok;
} host_cache;

/* Why a lock around regexec(): glibc's regexec() holds a lock inside the
 * compiled pattern for the whole match. A fork() while another thread is
 * matching would leave the child's copy of that lock taken forever, and the
 * child's first match would hang. kf_rules_fork_prepare() (a pthread_atfork
 * handler of every carrier that forks) takes this lock for writing, so no
 * match is in flight across fork(). A match attempted by the forking
 * thread itself (a signal handler writing during fork) cannot wait for its
 * own lock: it is reported as no match, and the bytes pass unchanged. */
static pthread_rwlock_t regex_fork_lock = PTHREAD_RWLOCK_INITIALIZER;
/* initial-exec: no allocation on a thread's first access (signal-safe) */
static __thread __attribute__((tls_model("initial-exec"))) int forking_thread;

void kf_rules_fork_prepare(void)
{
    kf_rules_lazy_fork_prepare();
    pthread_rwlock_wrlock(&regex_fork_lock);
    forking_thread = 1;
}

void kf_rules_fork_parent(void)
{
    forking_thread = 0;
    pthread_rwlock_unlock(&regex_fork_lock);
    kf_rules_lazy_fork_parent();
}

/* In the child the lock's recorded writer is the parent's thread id, which
 * the child's only thread no longer has: start over with a fresh lock. */
void kf_rules_fork_child(void)
{
    forking_thread = 0;
    pthread_rwlock_init(&regex_fork_lock, NULL);
    kf_rules_lazy_fork_child();
}

static int regexec_locked(const regex_t *re, const char *s, size_t nm, regmatch_t *m, int flags)
{
    if (forking_thread ? pthread_rwlock_tryrdlock(&regex_fork_lock) != 0
                       : pthread_rwlock_rdlock(&regex_fork_lock) != 0)
        return REG_NOMATCH;
    int rc = regexec(re, s, nm, m, flags);
    pthread_rwlock_unlock(&regex_fork_lock);
    return rc;
}

/* Match r's regex against path with glibc, filling m[0..nm). */
static int path_regexec(const kf_rule *r, kf_str path, size_t nm, regmatch_t *m)
{
#if defined(REG_STARTEND) && !KF_SANITIZED
    /* The path is a view into the client's head, not NUL-terminated:
     * REG_STARTEND bounds the match without a copy. */
    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)path.n;
    return regexec_locked(r->re, path.p ? path.p : "", nm, m, REG_STARTEND) == 0;
#else
    /* No REG_STARTEND, or ASan, whose regexec interceptor reads up to a
     * NUL even with REG_STARTEND (a false positive): match a copy. The
     * offsets are the same in the copy and in the path. */
    char tmp[8192];
    if (path.n >= sizeof tmp)
        return 0;
    if (path.n)
        memcpy(tmp, path.p, path.n);
    tmp[path.n] = '\0';
    return regexec_locked(r->re, tmp, nm, m, 0) == 0;
#endif
}

/* Does r match? On a regex match m[0..MAX_GROUPS) holds the groups. */
static int rule_matches(const kf_rule *r, const kf_req *req, regmatch_t *m, host_cache *hc,
                        find_hint *hint)
{
    if (hc->group != r->host_group) {
        hc->group = r->host_group;
        hc->ok = host_ok(r, req->host, req->port);
    }
    if (!hc->ok)
        return 0;
    if (r->nmethods) {
        unsigned i = 0;
        while (i < r->nmethods && !kf_str_eq(r->methods[i], req->method))
            i++;
        if (i == r->nmethods)
            return 0;
    }
    if (r->path_kind != KF_PATH_ANY && !prefix_ok(req->path, r->path_prefix))
        return 0;
    for (unsigned i = 0; i < r->nhconds; i++)
        if (!header_ok(req, &r->hconds[i], hint))
            return 0;
    if (r->key_glob && !kf_glob(r->key_glob, kf_req_api_key(req)))
        return 0;
    if (r->path_kind != KF_PATH_REGEX)
        return 1;
    size_t nm = (size_t)r->uses_groups + 1;
    /* kf_pat answers yes/no for its whole subset, and sub-matches for the
     * patterns pinned to regexec's (kf_rules_parse.c choose_matcher). */
    int hit = r->pat.ops && (nm == 1 || r->pat_groups)
                  ? kf_pat_match_from(&r->pat, req->path.p ? req->path.p : "", req->path.n, m, nm,
                                      r->pat_known)
                  : r->re && path_regexec(r, req->path, nm, m);
    if (!hit)
        return 0;
    for (size_t i = nm; i < MAX_GROUPS; i++)
        m[i].rm_so = m[i].rm_eo = -1;
    return 1;
}

/* Build the new path at the end of scratch; commit only if it differs. */
static int set_path_from_scratch(kf_req *req, size_t start, size_t len)
{
    kf_str np = { req->scratch + start, len };
    if (kf_str_eq(np, req->path))
        return 0; /* leave scratch_used as it was: nothing committed */
    req->scratch_used = start + len;
    req->path = np;
    req->changed |= KF_CHG_PATH;
    return 1;
}

static int do_rewrite(kf_req *req, kf_str tpl, kf_str path, const regmatch_t *m)
{
    size_t start = req->scratch_used, o = start;
    for (size_t i = 0; i < tpl.n;) {
        const char *src = &tpl.p[i];
        size_t n;
        if (tpl.p[i] != '\\' || i + 1 == tpl.n) {
            /* a literal run up to the next backslash: one copy */
            const char *bs = memchr(src + 1, '\\', tpl.n - i - 1);
            n = bs ? (size_t)(bs - src) : tpl.n - i;
            i += n;
        } else {
            char e = tpl.p[i + 1];
            i += 2;
            n = 1;
            if (e == '0') {
                src = path.p;
                n = path.n;
            } else if (e >= '1' && e <= '9') {
                const regmatch_t *g = &m[e - '0'];
                src = path.p + (g->rm_so < 0 ? 0 : g->rm_so);
                n = g->rm_so < 0 || g->rm_eo < g->rm_so ? 0 : (size_t)(g->rm_eo - g->rm_so);
            } else {
                src = &tpl.p[i - 1]; /* "\\": one backslash */
            }
        }
        if (n > KF_SCRATCH - o)
            return 0; /* no room: leave the request alone */
        if (n)
            memcpy(req->scratch + o, src, n);
        o += n;
    }
    return set_path_from_scratch(req, start, o - start);
}

static int do_squash(kf_req *req)
{
    kf_str p = req->path;
    if (!kf_has_double_slash(p.p, p.n))
        return 0;
    size_t start = req->scratch_used, o = start;
    if (p.n > KF_SCRATCH - o)
        return 0;
    for (size_t i = 0; i < p.n; i++) {
        if (p.p[i] == '/' && o > start && req->scratch[o - 1] == '/')
            continue;
        req->scratch[o++] = p.p[i];
    }
    return set_path_from_scratch(req, start, o - start);
}

/* Header i's state changes: the writer starts looking there. */
static void set_state(kf_req *req, unsigned i, unsigned char state)
{
    req->hdr[i].state = state;
    if (i < req->hdr_first_change)
        req->hdr_first_change = i;
}

/* set-header semantics: the first live NAME keeps its spelling and gets
 * the value, later ones are removed; appended when absent. */
static int do_set_header(kf_req *req, kf_str name, kf_str value, const find_hint *hint)
{
    int chg = 0;
    int i = find_first(req, name, hint);
    if (i < 0) {
        if (kf_req_add_header(req, name, value, (kf_str){ NULL, 0 }) != 0)
            return 0;
        kf_hdr *h = &req->hdr[req->nhdr - 1];
        set_state(req, req->nhdr - 1, KF_HDR_ADDED);
        h->orig_value = (kf_str){ NULL, 0 };
        chg = 1;
    } else {
        kf_hdr *h = &req->hdr[i];
        if (!kf_str_eq(h->value, value)) {
            h->value = value;
            if (h->state == KF_HDR_ORIG)
                set_state(req, (unsigned)i, KF_HDR_CHANGED);
            chg = 1;
        }
        for (int j = kf_req_find_header(req, name, (unsigned)i + 1); j >= 0;
             j = kf_req_find_header(req, name, (unsigned)j + 1)) {
            set_state(req, (unsigned)j, KF_HDR_REMOVED);
            chg = 1;
        }
    }
    if (chg)
        req->changed |= KF_CHG_HEADERS;
    return chg;
}

static int do_remove_header(kf_req *req, kf_str name)
{
    int chg = 0;
    for (int j = kf_req_find_header(req, name, 0); j >= 0;
         j = kf_req_find_header(req, name, (unsigned)j + 1)) {
        set_state(req, (unsigned)j, KF_HDR_REMOVED);
        chg = 1;
    }
    if (chg)
        req->changed |= KF_CHG_HEADERS;
    return chg;
}

static int do_upstream(kf_req *req, const kf_action *a)
{
    unsigned port = a->port ? a->port : (req->tls ? 443 : 80);
    if (kf_str_ieq(req->host, a->host) && req->port == port)
        return 0; /* already there: leave even the Host header's spelling alone */
    do_set_header(req, a->name, a->value, &(find_hint){ { NULL, 0 }, -1 });
    req->upstream_host = a->host;
    req->upstream_port = a->port;
    req->host = a->host;
    req->port = port;
    req->changed |= KF_CHG_UPSTREAM;
    return 1;
}

/* Path actions only make sense on an origin-form target ("/..."): never
 * turn "OPTIONS *", an authority or an absolute URL into something else. */
static int origin_form(const kf_req *req)
{
    return req->path.n && req->path.p[0] == '/';
}

static int do_action(kf_req *req, const kf_action *a, kf_str match_path, const regmatch_t *m,
                     const find_hint *hint)
{
    switch (a->kind) {
    case KF_ACT_REWRITE_PATH:
        return origin_form(req) ? do_rewrite(req, a->name, match_path, m) : 0;
    case KF_ACT_SQUASH_SLASHES:
        return origin_form(req) ? do_squash(req) : 0;
    case KF_ACT_SET_HEADER: {
        int chg = do_set_header(req, a->name, a->value, hint);
        if (chg && a->is_host)
            kf_req_set_host(req, a->value); /* later rules see the new host */
        return chg;
    }
    case KF_ACT_ADD_HEADER:
        if (kf_req_add_header(req, a->name, a->value, (kf_str){ NULL, 0 }) != 0)
            return 0;
        set_state(req, req->nhdr - 1, KF_HDR_ADDED);
        req->hdr[req->nhdr - 1].orig_value = (kf_str){ NULL, 0 };
        req->changed |= KF_CHG_HEADERS;
        return 1;
    case KF_ACT_REMOVE_HEADER:
        return do_remove_header(req, a->name);
    case KF_ACT_UPSTREAM:
        return do_upstream(req, a);
    default:
        return 0;
    }
}

int kf_rules_apply(const kf_ruleset *rs, kf_req *req, unsigned caps)
{
    req->orig_path = req->path;
    req->orig_host = req->host;
    req->upstream_host = (kf_str){ NULL, 0 };
    req->upstream_port = 0;
    req->changed = 0;
    req->hdr_first_change = ~0u;
    req->nfired = 0;
    req->nskipped = 0;
    if (!rs)
        return 0;
    host_cache hc = { ~0u, 0 };
    const kf_rule *rules = rs->rules;
    const unsigned *active = rs->active, nactive = rs->nactive; /* active may be NULL: none */
    for (unsigned k = 0; k < nactive; k++) {
        const kf_rule *r = &rules[active[k]];
        regmatch_t m[MAX_GROUPS];
        find_hint hint; /* set by a header condition */
        if (!rule_matches(r, req, m, &hc, &hint))
            continue;
        if (!r->nhconds)
            hint.name.p = NULL;
        if (r->needs_upstream && !(caps & KF_CAP_UPSTREAM)) {
            /* All or nothing: half a routing rule (path mapped, host not)
             * would send the request somewhere that cannot serve it. */
            if (req->nskipped < KF_MAX_FIRED)
                req->skipped[req->nskipped++] = r;
            continue;
        }
        kf_str match_path = req->path; /* groups point into this */
        kf_str host = req->host;
        unsigned port = req->port;
        int chg = 0;
        for (unsigned i = 0; i < r->nacts; i++) {
            chg |= do_action(req, &r->acts[i], match_path, m, &hint);
            hint.name.p = NULL; /* the headers may have changed */
        }
        if (chg) {
            /* host_ok() reads host and port alone */
            if (req->host.p != host.p || req->host.n != host.n || req->port != port)
                hc.group = ~0u;
            if (req->nfired < KF_MAX_FIRED)
                req->fired[req->nfired++] = r;
        }
    }
    if ((req->changed & KF_CHG_PATH) && kf_str_eq(req->path, req->orig_path))
        req->changed &= ~KF_CHG_PATH;
    return (int)req->nfired;
}
