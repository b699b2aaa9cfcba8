/* kf_trust.c - trust variables, saved originals, trust sources (kf_trust.h). */
#include "kf_sys.h"
#include "kf_trust.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_noproxy.h"
#include "kf_paths.h"
#include "kf_str.h"

/* When a "replace" variable is unset, its reader does not always fall back
 * to the system bundle: curl reads SSL_CERT_DIR and SSL_CERT_FILE,
 * requests reads CURL_CA_BUNDLE, LWP reads HTTPS_CA_FILE, git and cargo
 * their own config files (http.sslCAInfo, http.cainfo). Setting the
 * variable would hide what the user configured there (a company's
 * TLS-inspecting CA): so it is set only when nothing the reader consults
 * next is set by the user (yields), and never when that is a config file
 * we cannot see (KF_KEEP_UNSET). */
#define KF_KEEP_UNSET "-"

static const struct {
    const char *name, *orig;
    int kind;
    const char *yields[2]; /* unset: left so when the user set one of these */
} vars[KF_TRUST_NVARS] = {
    {"NODE_EXTRA_CA_CERTS", KF_TRUST_ORIG_PREFIX "NODE_EXTRA_CA_CERTS", KF_TRUST_EXTRA, {0}}, /* Node, Bun */
    {"SSL_CERT_FILE", KF_TRUST_ORIG_PREFIX "SSL_CERT_FILE", KF_TRUST_REPLACE, {0}}, /* OpenSSL, Go, rustls */
    {"REQUESTS_CA_BUNDLE", KF_TRUST_ORIG_PREFIX "REQUESTS_CA_BUNDLE", KF_TRUST_REPLACE,
     {"CURL_CA_BUNDLE"}},
    {"CURL_CA_BUNDLE", KF_TRUST_ORIG_PREFIX "CURL_CA_BUNDLE", KF_TRUST_REPLACE, /* curl, pip */
     {"SSL_CERT_FILE", "SSL_CERT_DIR"}},
    {"DENO_CERT", KF_TRUST_ORIG_PREFIX "DENO_CERT", KF_TRUST_EXTRA, {0}},
    {"GIT_SSL_CAINFO", KF_TRUST_ORIG_PREFIX "GIT_SSL_CAINFO", KF_TRUST_REPLACE, {KF_KEEP_UNSET}},
    {"CARGO_HTTP_CAINFO", KF_TRUST_ORIG_PREFIX "CARGO_HTTP_CAINFO", KF_TRUST_REPLACE, {KF_KEEP_UNSET}},
    {"PERL_LWP_SSL_CA_FILE", KF_TRUST_ORIG_PREFIX "PERL_LWP_SSL_CA_FILE", KF_TRUST_REPLACE,
     {"HTTPS_CA_FILE"}},
};

/* The user set NAME (in a child of a kimifix process: the recorded original). */
static int user_set(const char *name)
{
    const char *v = kf_user_env(secure_getenv, name);
    return v && *v;
}

/* 1 when variable i, unset, is to stay unset (see vars[]). */
static int unset_stays(int i)
{
    for (int k = 0; k < 2 && vars[i].yields[k]; k++)
        if (!strcmp(vars[i].yields[k], KF_KEEP_UNSET) || user_set(vars[i].yields[k]))
            return 1;
    return 0;
}

const char *kf_trust_var_name(int i)
{
    return i >= 0 && i < KF_TRUST_NVARS ? vars[i].name : i == KF_TRUST_NVARS ? "SSL_CERT_DIR" : NULL;
}

const char *kf_trust_system_bundle(void)
{
    static const char *const paths[] = {
        "/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu, Arch, Alpine */
        "/etc/pki/tls/certs/ca-bundle.crt",   /* Fedora, RHEL */
        "/etc/ssl/ca-bundle.pem",             /* openSUSE */
        "/etc/ssl/cert.pem",
    };
    for (unsigned i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (access(paths[i], R_OK) == 0)
            return paths[i];
    return NULL;
}

/* The system store itself (the relay always has it): the bundle file, or
 * the directory it lives in (Debian's hashed directory, /etc/ssl/certs). */
int kf_trust_is_system(const char *path)
{
    const char *sys = kf_trust_system_bundle();
    char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];
    if (!sys || !realpath(path, a) || !realpath(sys, b))
        return 0;
    if (!strcmp(a, b))
        return 1;
    const char *slash = strrchr(sys, '/');
    size_t dn = slash ? (size_t)(slash - sys) : 0;
    if (!dn || dn >= sizeof dir)
        return 0;
    memcpy(dir, sys, dn);
    dir[dn] = 0;
    return realpath(dir, b) && !strcmp(a, b);
}

static int has_prefix(const char *s, const char *dir)
{
    size_t n = strlen(dir);
    return n && !strncmp(s, dir, n) && s[n] == '/';
}

static int is_ours_in(const char *path, const char *data, const char *run)
{
    return has_prefix(path, data) || has_prefix(path, run);
}

int kf_trust_is_ours(const char *path)
{
    char d[4096] = "", r[4096] = "";
    kf_data_dir_path(d, sizeof d); /* the name is enough: no check needed */
    kf_runtime_dir(r, sizeof r, 0); /* (the check picks /tmp or the fallback) */
    return is_ours_in(path, d, r);
}

unsigned long long kf_trust_fnv(unsigned long long h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static int copy_into(int out, const char *path)
{
    char buf[4096];
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (kf_sys_write(out, buf, (size_t)n) != n)
            rc = -1;
    kf_sys_close(in);
    return n < 0 ? -1 : rc;
}

/* Make dst = theirs + "\n" + ours (tmp file, rename). Its own frame: the
 * path buffer is paid only when a file is made, not by every process
 * start that finds it made (kf_trust.h: start-up). */
__attribute__((noinline)) static int combine_write(const char *dst, const char *theirs,
                                                   const char *ours)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", dst, (long)getpid()) >= (int)sizeof tmp)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -1;
    int ok = copy_into(fd, theirs) == 0 && kf_sys_write(fd, "\n", 1) == 1 && copy_into(fd, ours) == 0;
    ok &= kf_sys_close(fd) == 0;
    if (!ok || rename(tmp, dst) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int kf_trust_combine(char *dst, size_t n, const char *dir, const char *theirs, const char *ours)
{
    struct stat a, b;
    if (stat(theirs, &a) < 0 || !S_ISREG(a.st_mode) || stat(ours, &b) < 0)
        return -1;
    unsigned long long h = KF_TRUST_FNV_INIT;
    h = kf_trust_fnv(h, theirs, strlen(theirs) + 1);
    h = kf_trust_fnv(h, ours, strlen(ours) + 1);
    long long k[10] = {(long long)a.st_dev, (long long)a.st_ino, (long long)a.st_size,
                       (long long)a.st_mtim.tv_sec, (long long)a.st_mtim.tv_nsec,
                       (long long)b.st_dev, (long long)b.st_ino, (long long)b.st_size,
                       (long long)b.st_mtim.tv_sec, (long long)b.st_mtim.tv_nsec};
    h = kf_trust_fnv(h, k, sizeof k);
    /* DIR/trust-%016llx.pem, without snprintf: a start that finds the file
     * made pays for no vfprintf pages (kf_trust.h: start-up). */
    char name[sizeof "/trust-0123456789abcdef.pem"];
    memcpy(name, "/trust-", 7);
    for (int i = 0; i < 16; i++)
        name[7 + i] = "0123456789abcdef"[(h >> (60 - 4 * i)) & 15];
    memcpy(name + 23, ".pem", 5);
    if (kf_cat3(dst, n, dir, name, NULL) < 0)
        return -1;
    struct stat c;
    if (lstat(dst, &c) == 0 && S_ISREG(c.st_mode) && c.st_uid == geteuid())
        return 0;
    return combine_write(dst, theirs, ours);
}

static int newer_or_same(const struct stat *a, const struct stat *b)
{
    return a->st_mtim.tv_sec > b->st_mtim.tv_sec ||
           (a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec >= b->st_mtim.tv_nsec);
}

/* For a REPLACE variable the user did not set: the system bundle + ours.
 * The relay writes DATADIR/ca-bundle.pem when it starts; once the system
 * bundle changes (update-ca-certificates) that copy is stale, and a
 * combined file made from the current bundle takes its place. */
static int system_plus_ours(char *dst, size_t n, const char *data, const char *run, int have_run,
                            const char *ca)
{
    const char *sys = kf_trust_system_bundle();
    struct stat b, s, c;
    /* dst holds DATADIR/ca-bundle.pem until something better is found */
    if (!kf_path_join(dst, n, data, "ca-bundle.pem"))
        return -1;
    int have_b = lstat(dst, &b) == 0 && S_ISREG(b.st_mode) && b.st_uid == geteuid();
    if (!sys) /* no system file: the runtime used its directory only */
        return have_b || kf_cat3(dst, n, ca, "", NULL) >= 0 ? 0 : -1;
    if (have_b && stat(sys, &s) == 0 && stat(ca, &c) == 0 && newer_or_same(&b, &s) &&
        newer_or_same(&b, &c))
        return 0;
    if (have_run && kf_trust_combine(dst, n, run, sys, ca) == 0)
        return 0;
    /* stale beats nothing */
    return have_b && kf_path_join(dst, n, data, "ca-bundle.pem") ? 0 : -1;
}

/* The plan's arena: strings one after another, so a process start touches
 * only the bytes it writes (a page, not one per PATH_MAX buffer). */
static char *arena_tail(kf_trust_plan *p, size_t *room)
{
    *room = sizeof p->arena - p->used;
    return p->arena + p->used;
}

static const char *arena_keep(kf_trust_plan *p)
{
    const char *s = p->arena + p->used;
    p->used += strlen(s) + 1;
    return s;
}

/* What kf_trust_env decided for one variable. The path makers
 * (system_plus_ours, kf_trust_combine) return 0 / -1, i.e. TV_NEW /
 * TV_LEAVE. */
enum {
    TV_LEAVE = -1, /* left as it is */
    TV_NEW = 0,    /* a new path, just written at the arena's tail: keep it */
    TV_SET = 1     /* v->value already points at a kept string */
};

/* Variable i's names and kind; nothing to set yet. */
static void var_reset(kf_trust_var *v, int i)
{
    v->name = vars[i].name;
    v->kind = vars[i].kind;
    v->orig_name = vars[i].orig;
    v->value = "";
    v->combined = 0;
}

/* The runtime dir's possible names (kf_runtime_dir_names), kept at the
 * arena's tail. */
static int run_names(kf_trust_plan *p, const char *out[3])
{
    size_t room;
    char *t = arena_tail(p, &room);
    int k = kf_runtime_dir_names(t, room, out);
    if (k)
        p->used += (size_t)(out[k - 1] - t) + strlen(out[k - 1]) + 1;
    return k;
}

/* A child of a process under kimifix (most starts: the agent's shells,
 * git, compilers): every variable already names one of our files, or
 * stays unset. Nothing will be set, so neither directory's check is
 * needed (the parent checked them before it pointed the variables
 * there): only the CA must still be readable. The plan then sets nothing.
 * 0: not so, the full work follows (kf_trust_env). Saves the start eight
 * system calls (two opens of a directory, their stats and closes). */
static int inherited_ours(kf_trust_plan *p)
{
    size_t room;
    char *t = arena_tail(p, &room);
    if (kf_data_dir_path(t, room) < 0)
        return 0;
    const char *data = arena_keep(p), *run[3];
    int nrun = -1;
    for (int i = 0; i < KF_TRUST_NVARS; i++) {
        const char *cur = secure_getenv(vars[i].name);
        if (!cur || !*cur) {
            if (!unset_stays(i))
                return 0;
            continue;
        }
        if (has_prefix(cur, data))
            continue;
        if (nrun < 0)
            nrun = run_names(p, run);
        int ours = 0;
        for (int k = 0; k < nrun && !ours; k++)
            ours = has_prefix(cur, run[k]);
        if (!ours)
            return 0;
    }
    t = arena_tail(p, &room);
    if (!kf_path_join(t, room, data, "ca.pem") || access(t, R_OK) < 0)
        return 0;
    for (int i = 0; i < KF_TRUST_NVARS; i++) {
        var_reset(&p->v[i], i);
        p->v[i].orig = "";
        p->v[i].set_orig = 0;
    }
    return 1;
}

int kf_trust_env(kf_trust_plan *p)
{
    size_t room;
    char *t;
    p->used = 0;
    if (inherited_ours(p))
        return 0;
    p->used = 0;
    t = arena_tail(p, &room);
    if (kf_data_dir(t, room, 0) < 0)
        return -1;
    const char *data = arena_keep(p);
    t = arena_tail(p, &room);
    if (!kf_path_join(t, room, data, "ca.pem") || access(t, R_OK) < 0)
        return -1;
    const char *ca = arena_keep(p);
    t = arena_tail(p, &room);
    t[0] = 0; /* its name is kept even when it cannot be made: is_ours_in */
    int have_run = kf_runtime_dir(t, room, 1) == 0;
    const char *run = arena_keep(p);
    int count = 0;
    /* Every process under the shim comes here before main, often with the
     * same file in several variables (a company CA in all of them): each
     * distinct answer is worked out once (kf_trust.h: start-up cost). */
    const kf_trust_var *unset_replace = NULL;
    for (int i = 0; i < KF_TRUST_NVARS; i++) {
        kf_trust_var *v = &p->v[i];
        var_reset(v, i);
        const char *cur = secure_getenv(v->name);
        v->orig = cur ? cur : "";
        v->set_orig = secure_getenv(v->orig_name) == NULL;
        const kf_trust_var *same = NULL;
        if (cur && *cur) {
            for (int j = 0; j < i && !same; j++)
                if (!strcmp(p->v[j].orig, cur))
                    same = &p->v[j];
        } else if (v->kind == KF_TRUST_REPLACE) {
            same = unset_replace;
        }
        int rc = TV_LEAVE;
        t = arena_tail(p, &room);
        if ((!cur || !*cur) && unset_stays(i)) {
            rc = TV_LEAVE; /* its reader consults the user's setting next */
        } else if (same) {
            v->value = same->value;
            v->combined = same->combined;
            rc = v->value[0] ? TV_SET : TV_LEAVE;
        } else if (!cur || !*cur) {
            if (v->kind == KF_TRUST_EXTRA)
                v->value = ca, rc = TV_SET;
            else
                rc = system_plus_ours(t, room, data, run, have_run, ca);
            if (v->kind == KF_TRUST_REPLACE)
                unset_replace = v;
        } else if (is_ours_in(cur, data, run)) {
            rc = TV_LEAVE; /* already ours (inherited from a parent under kimifix) */
        } else if (access(cur, R_OK) < 0) {
            /* the user's file cannot be read: the runtime gets nothing from
             * it (Node warns and goes on) - so ours alone is theirs + ours;
             * the original is kept, and the relay logs it as missing */
            v->value = ca, rc = TV_SET;
        } else {
            /* the user's own file: combined with ours, never replaced */
            rc = have_run ? kf_trust_combine(t, room, run, cur, ca) : TV_LEAVE;
            v->combined = rc == TV_NEW;
        }
        if (rc == TV_NEW)
            v->value = arena_keep(p);
        if (rc == TV_LEAVE) {
            v->value = "";
            v->combined = 0;
            v->set_orig = 0;
            continue;
        }
        count++;
    }
    return count;
}

int kf_trust_apply(const kf_trust_plan *p,
                   int (*set)(const char *name, const char *value, int overwrite))
{
    const kf_trust_var *v = p->v;
    int n = 0;
    for (int i = 0; i < KF_TRUST_NVARS; i++) {
        if (!v[i].value[0])
            continue;
        /* ORIG first: v[i].orig points into the environment entry of V. */
        if (v[i].set_orig)
            set(v[i].orig_name, v[i].orig, 1);
        if (set(v[i].name, v[i].value, 1) == 0)
            n++;
    }
    return n;
}

/* ---- sources ---- */

/* Paths offered so far: views into the environment (stable during the
 * call), so no copy per path and nothing static (thread-safe). */
struct seen {
    unsigned n;
    const char *p[KF_TRUST_SOURCES_MAX];
    size_t len[KF_TRUST_SOURCES_MAX];
};

/* Offer one candidate path (p[0..len)); 1 when fn asked to stop. */
static int offer(struct seen *s, const char *p, size_t len, const char *var,
                 int (*fn)(void *, const char *, const char *), void *ud)
{
    char path[4096];
    if (!len || p[0] != '/' || len >= sizeof path || s->n >= KF_TRUST_SOURCES_MAX)
        return 0;
    for (unsigned i = 0; i < s->n; i++)
        if (s->len[i] == len && !memcmp(s->p[i], p, len))
            return 0;
    memcpy(path, p, len);
    path[len] = 0;
    if (kf_trust_is_ours(path) || kf_trust_is_system(path))
        return 0; /* ours is never a source; the system store always is */
    s->p[s->n] = p;
    s->len[s->n++] = len;
    return fn(ud, path, var) != 0;
}

/* Every ':'-separated piece of a directory list. */
static int offer_list(struct seen *s, const char *value, const char *var,
                      int (*fn)(void *, const char *, const char *), void *ud)
{
    while (value && *value) {
        size_t k = strcspn(value, ":");
        if (offer(s, value, k, var, fn, ud))
            return 1;
        value += k + (value[k] == ':');
    }
    return 0;
}

int kf_trust_sources(int (*fn)(void *ud, const char *path, const char *var), void *ud)
{
    static const char *const dirvar[2] = {"SSL_CERT_DIR", KF_TRUST_ORIG_PREFIX "SSL_CERT_DIR"};
    struct seen s = {0};
    for (int i = 0; i <= KF_TRUST_NVARS; i++) {
        const char *name = i < KF_TRUST_NVARS ? vars[i].name : dirvar[0];
        const char *orig = i < KF_TRUST_NVARS ? vars[i].orig : dirvar[1];
        const char *o = secure_getenv(orig), *cur = secure_getenv(name);
        int stop = i < KF_TRUST_NVARS ? (o && offer(&s, o, strlen(o), name, fn, ud)) ||
                                            (cur && offer(&s, cur, strlen(cur), name, fn, ud))
                                      : offer_list(&s, o, name, fn, ud) ||
                                            offer_list(&s, cur, name, fn, ud);
        if (stop)
            break;
    }
    return (int)s.n;
}
