/* doctor_trust.c - trust both ways in `kimifix doctor` (docs/doctor.md):
 * the upstream trust sources the relay would use for CMD (this shell's
 * environment, as the shim registers them: kf_trust_sources), and what the
 * relay learned about CMD refusing the kimifix CA (kf_distrust.h).
 */
#include "doctor.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kf_distrust.h"
#include "kf_paths.h"
#include "kf_progid.h"
#include "kf_trust.h"
#include "kf_trustjava.h"

struct srcs {
    char text[DR_VAL_MAX];
    size_t o;
};

static void append(struct srcs *s, const char *fmt, const char *a, const char *b, const char *c)
{
    if (s->o >= sizeof s->text - 1)
        return;
    int w = snprintf(s->text + s->o, sizeof s->text - s->o, fmt, a, b, c);
    s->o = w < 0 ? s->o : s->o + (size_t)w < sizeof s->text ? s->o + (size_t)w : sizeof s->text - 1;
}

static int add_src(void *ud, const char *path, const char *var)
{
    struct stat st;
    const char *state = stat(path, &st) < 0 ? "; missing: skipped" : S_ISDIR(st.st_mode) ? "; a directory" : "";
    append(ud, " + %s (%s%s)", path, var, state);
    return 0;
}

/* A JDK launcher: JAVA_HOME/bin/java with JAVA_HOME/lib/libjli.so. */
static int jdk_store(const char *exe, char *store, size_t n)
{
    char dir[PATH_MAX], jli[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s", exe);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return -1;
    *slash = 0;
    snprintf(jli, sizeof jli, "%s/../lib/libjli.so", dir);
    if (access(jli, F_OK) != 0)
        return -1;
    return kf_java_default_store(dir, store, n);
}

static void sources(dr_report *r, const char *exe)
{
    struct srcs s = {.o = 0};
    const char *sys = kf_trust_system_bundle();
    append(&s, "system store (OpenSSL's hashed directory%s%s%s)", sys ? " + " : "", sys ? sys : "", "");
    kf_trust_sources(add_src, &s);
    char store[PATH_MAX];
    if (jdk_store(exe, store, sizeof store) == 0)
        append(&s, " + %s (%s%s)", store, "the JDK's own store", "");
    const char *up = secure_getenv("KIMIFIX_UPSTREAM_CA");
    if (up && *up)
        dr_fact_add(r, 0, "upstream", "verified against KIMIFIX_UPSTREAM_CA=%s only (tests)", up);
    else
        dr_fact_add(r, 0, "upstream", "verified against the %s; never the kimifix CA", s.text);
}

static void when_text(long long when, char *out, size_t n)
{
    time_t t = (time_t)when;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M UTC", &tm))
        snprintf(out, n, "?");
}

static void learned_fact(dr_report *r, int problem, const char *path, const kf_distrust_rec *d)
{
    char when[64];
    when_text(d->when, when, sizeof when);
    dr_fact_add(r, problem, "learned",
                "%s (build %.16s) refused the kimifix CA (TLS alert %s on %s, %s): its TLS "
                "connections to rule hosts go direct, unfixed; delete %s to try again",
                d->exe, d->buildid, d->alert, d->host, when, path);
}

void dr_trust(dr_report *r)
{
    char exe[PATH_MAX], id[KF_BUILDID_MAX], data[4096], path[4300];
    if (!r->exe[0] || !realpath(r->exe, exe))
        return;
    sources(r, exe);
    ef_elf e;
    int got = -1;
    if (ef_open(&e, exe) == 0) { /* the build id the shim reads from memory */
        got = ef_build_id(&e, id, sizeof id);
        ef_close(&e);
    }
    kf_distrust_rec d;
    if ((got < 0 && kf_buildid_stat(exe, id, sizeof id) < 0) ||
        kf_data_dir(data, sizeof data, 0) < 0 || !kf_distrust_check(data, exe, id, &d))
        return;
    kf_distrust_path(data, exe, id, path, sizeof path);
    learned_fact(r, 1, path, &d);
    if (r->verdict && !strcmp(r->verdict, DR_RELAY))
        dr_set_verdict(r, DR_UNREACHABLE, 1, "learned: %s refuses the kimifix CA, so kimifix "
                       "sends its connections direct, unfixed (delete %s to try again)", exe, path);
}

static int each_learned(void *ud, const char *path, const kf_distrust_rec *d)
{
    learned_fact(ud, 0, path, d);
    return 0;
}

unsigned dr_trust_learned(dr_report *r)
{
    char data[4096];
    if (kf_data_dir(data, sizeof data, 0) < 0)
        return 0;
    return (unsigned)kf_distrust_each(data, each_learned, r);
}
