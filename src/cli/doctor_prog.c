/* doctor_prog.c - what the final ELF program is, and which carrier can fix
 * it (field-notes §4):
 *
 *   unreachable  secure execution (setuid/setgid/file capabilities), a
 *                library missing, or no preload and no proxy carrier
 *   proxy        no preload carries it (Go, static, musl, a class/machine
 *                the shim is not built for): the relay as its HTTP proxy
 *   relay        TLS compiled in: Bun, Node SEA, official Node, standalone
 *                Python, OpenSSL exported by the program, other TLS stacks
 *   libcurl      libcurl in the closure of DT_NEEDED
 *   openssl      shared libssl (or a Python whose _ssl links it)
 *   gnutls       shared libgnutls
 *   libc         none of these: plain HTTP only
 */
#include "doctor.h"

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "kf_mode.h"
#include "kf_paths.h"

static const char *const trust_openssl =
    "yes: the shim sets SSL_CERT_FILE to the system CAs plus the kimifix CA (OpenSSL's default "
    "store), unless the program loads its own CA file";
static const char *const trust_gnutls =
    "GnuTLS ignores SSL_CERT_FILE: for the relay path (upstream rules, --mode relay) give the "
    "program the CA (wget --ca-certificate=.../ca.pem) or add it to the system store";
static const char *const trust_libcurl =
    "not needed: the libcurl hooks apply upstream rules by rewriting the URL";
static const char *const trust_java =
    "no: Java keeps its own trust store: keytool -importcert -file .../ca.pem -keystore FILE, "
    "then -Djavax.net.ssl.trustStore=FILE";
static const char *const trust_unknown =
    "depends on its TLS library: SSL_CERT_FILE is set for it; a bundled CA list (certifi, "
    "webpki-roots) will not trust the relay";

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void describe(dr_prog *p, dr_report *r, const struct stat *st)
{
    const ef_elf *e = &p->elf;
    char mb[32];
    const char *kind = e->type == ET_EXEC ? "executable"
                       : e->type == ET_DYN ? (e->has_interp ? "PIE executable" : "shared object")
                                           : "not an executable";
    const char *link = e->has_interp ? "dynamically linked"
                       : e->has_dynamic ? "static-pie (no interpreter)"
                                        : "statically linked";
    dr_fact_add(r, 0, "program", "%s (ELF%d %s %s, %s, %lld bytes)", p->path, e->is64 ? 64 : 32,
                ef_machine_name(e->machine, mb, sizeof mb), kind, link, (long long)st->st_size);
    if (e->has_interp)
        dr_fact_add(r, 0, "interpreter", "%s (%s)", e->interp,
                    strstr(e->interp, "musl") ? "musl"
                    : strstr(e->interp, "ld-linux") ? "glibc"
                                                    : "unknown libc");
}

/* The direct DT_NEEDED list, and where TLS libraries come from. */
static void libraries(dr_prog *p, dr_report *r)
{
    const kf_ldtree *t = p->tree;
    char line[DR_VAL_MAX] = "";
    size_t used = 0;
    unsigned missing = 0;
    for (unsigned i = 1; i <= t->n; i++) {
        if (!t->lib[i].path[0])
            missing++;
        if (t->lib[i].depth != 1)
            continue;
        int w = snprintf(line + used, sizeof line - used, "%s%s%s", used ? ", " : "",
                         t->lib[i].name, t->lib[i].path[0] ? "" : " (NOT FOUND)");
        if (w < 0 || (size_t)w >= sizeof line - used)
            break;
        used += (size_t)w;
    }
    if (p->elf.has_dynamic)
        dr_fact_add(r, 0, "needs", "%s", used ? line : "(nothing)");
    if (p->elf.runpath[0] || p->elf.rpath[0])
        dr_fact_add(r, 0, "search path", "%s%s", p->elf.runpath[0] ? "RUNPATH " : "RPATH ",
                    p->elf.runpath[0] ? p->elf.runpath : p->elf.rpath);
    if (missing)
        dr_fact_add(r, 1, "missing", "%u librar%s not found (the program would not start; "
                    "LD_LIBRARY_PATH?)", missing, missing == 1 ? "y" : "ies");
    static const char *const tls[] = {"libcurl", "libssl.so", "libgnutls", "libnss3",
                                      "libwolfssl", "libmbedtls", "libnode.so", "libjvm.so"};
    for (size_t k = 0; k < sizeof tls / sizeof tls[0]; k++) {
        unsigned i = kf_ld_find(t, tls[k]);
        if (!i)
            continue;
        const kf_ldlib *l = &t->lib[i];
        dr_fact_add(r, 0, "library", "%s -> %s%s%s", l->name, l->path[0] ? l->path : "NOT FOUND",
                    l->depth > 1 ? " via " : "", l->depth > 1 ? t->lib[l->parent].name : "");
    }
    if (t->truncated)
        dr_fact_add(r, 0, "note", "more than %d libraries: the rest were not looked at",
                    KF_LD_MAX_LIBS);
}

/* LD_PRELOAD is ignored (or restricted to setuid libraries in system
 * directories) when the kernel sets AT_SECURE. */
static const char *secure_exec(const char *path, const struct stat *st)
{
    if (st->st_mode & S_ISUID)
        return "setuid";
    if ((st->st_mode & S_ISGID) && (st->st_mode & S_IXGRP))
        return "setgid";
    if (getxattr(path, "security.capability", NULL, 0) > 0)
        return "file capabilities";
    return NULL;
}

/* The class/machine of the shim the wrapper would preload. */
static int shim_mismatch(const ef_elf *e, char *why, size_t n)
{
    char shim[PATH_MAX], mb[32], mb2[32];
    ef_elf *s = malloc(sizeof *s);
    int bad = 0;
    if (s && dr_shim_path(shim, sizeof shim) == 0 && ef_open(s, shim) == 0) {
        if (s->is64 != e->is64 || s->machine != e->machine) {
            bad = 1;
            dr_fmt(why, n, "the program is ELF%d %s, the shim %s is ELF%d %s: ld.so refuses it",
                   e->is64 ? 64 : 32, ef_machine_name(e->machine, mb, sizeof mb), shim,
                   s->is64 ? 64 : 32, ef_machine_name(s->machine, mb2, sizeof mb2));
        }
        ef_close(s);
    }
    free(s);
    return bad;
}

/* Why no preload can carry the program: DR_SHIM_OK, DR_SHIM_NONE (why:
 * static, static-pie, Go, musl, another class or machine) or
 * DR_SHIM_SECURE (setuid, setgid, file capabilities). */
static int shim_blocker(dr_prog *p, dr_report *r, const struct stat *st, char *why, size_t n)
{
    const ef_elf *e = &p->elf;
    const char *sec = secure_exec(p->path, st);
    if (sec) {
        dr_fact_add(r, 1, "secure-exec", "%s: the loader runs it in secure-execution mode", sec);
        dr_fmt(why, n, "%s program: ld.so ignores LD_PRELOAD in secure-execution mode (it would "
                       "load only when run by its owner without privilege change), and kimifix "
                       "gives a privileged program no proxy",
               sec);
        return DR_SHIM_SECURE;
    }
    if (dr_rt_go(p, r))
        dr_fmt(why, n, "Go program: %s; Go makes its own system calls and carries its own TLS, so "
                       "no hook and no connect() steering can reach it",
               e->has_interp ? "even dynamically linked (cgo)"
                             : "statically linked, it cannot load a preload library at all");
    else if (!e->has_interp)
        dr_fmt(why, n, "%s: no program interpreter, so nothing loads LD_PRELOAD libraries",
               e->has_dynamic ? "static-pie program" : "statically linked program");
    else if (strstr(e->interp, "musl"))
        dr_fmt(why, n, "musl program (%s): libkimifix.so is built for glibc and cannot be "
                       "preloaded into it",
               e->interp);
    else if (!shim_mismatch(e, why, n))
        return DR_SHIM_OK;
    return DR_SHIM_NONE;
}

/* No preload carries it: the proxy carrier (kf_envplan.h) when the
 * environment allows one, else unreachable. */
static void no_shim(dr_prog *p, dr_report *r, const char *why)
{
    dr_fact_add(r, 0, "preload", "%s", why);
    kf_carrier_choice c;
    dr_carrier(r, p, 1, &c);
    if (c.carrier != KF_CARRIER_PROXY) {
        dr_set_verdict(r, DR_UNREACHABLE, 1, "%s; %s", why, c.why);
        return;
    }
    dr_set_verdict(r, DR_PROXY, 0,
                   "via the relay as its HTTP proxy%s%s -- kimifix sets HTTPS_PROXY and "
                   "HTTP_PROXY (the relay) and SSL_CERT_FILE (with the kimifix CA): fixed when the "
                   "program honours them, as Go's net/http, reqwest, Deno and Bun do",
                   p->runtime ? ", " : "", p->runtime ? p->runtime : "");
}

static int unreachable(dr_prog *p, dr_report *r, const struct stat *st)
{
    char why[DR_VAL_MAX];
    int b = shim_blocker(p, r, st, why, sizeof why);
    if (b == DR_SHIM_SECURE) {
        dr_set_verdict(r, DR_UNREACHABLE, 1, "%s", why);
        return 1;
    }
    if (b == DR_SHIM_NONE) {
        no_shim(p, r, why);
        return 1;
    }
    for (unsigned i = 1; i <= p->tree->n; i++)
        if (!p->tree->lib[i].path[0]) {
            dr_set_verdict(r, DR_UNREACHABLE, 1,
                           "%s is not found: the program cannot start in this environment "
                           "(does its launcher set LD_LIBRARY_PATH?)",
                           p->tree->lib[i].name);
            return 1;
        }
    return 0;
}

int dr_shim_reach(const char *path, char *why, size_t n)
{
    dr_prog p;
    struct stat st;
    memset(&p, 0, sizeof p);
    p.path = path;
    dr_fmt(why, n, "%s: cannot read it", path);
    dr_report *r = calloc(1, sizeof *r); /* facts nobody prints */
    int rc = DR_SHIM_OK;
    if (r && stat(path, &st) == 0 && ef_open(&p.elf, path) == 0) {
        rc = shim_blocker(&p, r, &st, why, n);
        ef_close(&p.elf);
    }
    free(r);
    return rc;
}

/* No runtime decided: look at the libraries. */
static void generic(dr_prog *p, dr_report *r)
{
    const kf_ldtree *t = p->tree;
    unsigned curl = kf_ld_find(t, "libcurl"), ssl = kf_ld_find(t, "libssl.so"),
             gnutls = kf_ld_find(t, "libgnutls"), jvm = kf_ld_find(t, "libjvm.so");
    if (curl) {
        p->carrier = DR_LIBCURL;
        p->trust = trust_libcurl;
        dr_fmt(p->why, sizeof p->why,
               "%s: the libcurl hooks fix URL and headers before libcurl builds the request "
               "(HTTP/2 too); its TLS (%s) and plain sockets are hooked as well",
               t->lib[curl].name,
               !strncmp(t->lib[curl].name, "libcurl-gnutls", 14) ? "GnuTLS" : "OpenSSL");
    } else if (ssl) {
        p->carrier = DR_OPENSSL;
        p->trust = trust_openssl;
        dr_fmt(p->why, sizeof p->why, "shared %s: the SSL_write hooks see each request in plaintext",
               t->lib[ssl].name);
    } else if (gnutls) {
        p->carrier = DR_GNUTLS;
        p->trust = trust_gnutls;
        dr_fmt(p->why, sizeof p->why,
               "shared %s: the gnutls_record_send hook sees each request in plaintext",
               t->lib[gnutls].name);
    } else if (jvm || !strcmp(base(p->path), "java")) {
        p->runtime = "Java";
        p->carrier = DR_RELAY;
        p->trust = trust_java;
        dr_fmt(p->why, sizeof p->why,
               "Java's TLS (JSSE) is written in Java: no hook sees its plaintext; connect() is "
               "steered to the relay");
    } else if (p->ssl_write == 1 || p->ssl_write_ex == 1) {
        p->carrier = DR_RELAY;
        p->trust = trust_openssl;
        dr_fmt(p->why, sizeof p->why,
               "OpenSSL/BoringSSL compiled into the program (SSL_write defined, calls direct): "
               "no TLS hook sees its plaintext; connect() is steered to the relay");
    } else if (kf_ld_find(t, "libnss3") || kf_ld_find(t, "libwolfssl") ||
               kf_ld_find(t, "libmbedtls")) {
        p->carrier = DR_RELAY;
        p->trust = trust_unknown;
        dr_fmt(p->why, sizeof p->why,
               "a TLS library kimifix does not hook (NSS, wolfSSL, mbed TLS): connect() is "
               "steered to the relay");
    } else {
        p->carrier = DR_LIBC;
        p->trust = trust_unknown;
        if (r->script_shell[0])
            dr_fmt(p->why, sizeof p->why,
                   "a %s script: the shell itself only does plain HTTP, but every program it "
                   "starts inherits LD_PRELOAD: run kimifix doctor on those (curl, python3, ...)",
                   r->script_shell);
        else
            dr_fmt(p->why, sizeof p->why,
                   "no TLS library: plain HTTP is rewritten by the libc socket hooks; HTTPS from "
                   "TLS compiled into it (rustls, ...) would be steered to the relay");
    }
}

static void mode_note(dr_report *r, const char *carrier)
{
    int mode = kf_mode_parse(getenv("KIMIFIX_MODE"));
    if (mode == KF_MODE_OFF)
        dr_fact_add(r, 1, "mode", "KIMIFIX_MODE=off: kimifix will not rewrite anything");
    else if (mode == KF_MODE_INPROCESS && !strcmp(carrier, DR_RELAY))
        dr_fact_add(r, 1, "mode", "KIMIFIX_MODE=inprocess forbids the relay this program needs");
    else if (mode == KF_MODE_RELAY)
        dr_fact_add(r, 0, "mode", "KIMIFIX_MODE=relay: every connection to a rule host goes "
                                  "through the relay");
}

void dr_analyze(dr_report *r)
{
    dr_prog p;
    memset(&p, 0, sizeof p);
    p.path = r->exe;
    struct stat st;
    if (stat(p.path, &st) != 0) {
        dr_set_verdict(r, DR_UNREACHABLE, 2, "%s: cannot stat it", p.path);
        return;
    }
    int rc = ef_open(&p.elf, p.path);
    if (rc == -1) {
        dr_set_verdict(r, DR_UNREACHABLE, 2, "%s: cannot read it", p.path);
        return;
    }
    if (rc < 0) {
        dr_set_verdict(r, DR_UNREACHABLE, 1, "%s: %s%s", p.path,
                       rc == -2 ? "not an ELF program" : "malformed ELF: ", rc == -2 ? "" : p.elf.err);
        return;
    }
    p.tree = calloc(1, sizeof *p.tree);
    if (!p.tree) {
        ef_close(&p.elf);
        dr_set_verdict(r, DR_UNREACHABLE, 2, "out of memory");
        return;
    }
    describe(&p, r, &st);
    kf_ld_closure(&p.elf, p.path, p.tree);
    libraries(&p, r);
    p.ssl_write = ef_defines(&p.elf, "SSL_write");
    p.ssl_write_ex = ef_defines(&p.elf, "SSL_write_ex");
    if (p.ssl_write == 1 || p.ssl_write_ex == 1)
        dr_fact_add(r, 0, "exports", "%s%s%s (TLS compiled into the program)",
                    p.ssl_write == 1 ? "SSL_write" : "", p.ssl_write == 1 && p.ssl_write_ex == 1 ? ", " : "",
                    p.ssl_write_ex == 1 ? "SSL_write_ex" : "");
    if (!unreachable(&p, r, &st)) {
        if (!dr_rt_bun(&p, r) && !dr_rt_node(&p, r) && !dr_rt_python(&p, r))
            dr_rt_php(&p, r);
        if (!p.carrier)
            generic(&p, r);
        if (!p.trust && !strcmp(p.carrier, DR_LIBCURL))
            p.trust = trust_libcurl;
        if (!p.trust)
            p.trust = trust_unknown;
        dr_fact_add(r, 0, "relay trust", "%s", p.trust);
        mode_note(r, p.carrier);
        dr_carrier(r, &p, 0, NULL);
        const char *where = !strcmp(p.carrier, DR_RELAY) ? "via the relay"
                            : !strcmp(p.carrier, DR_LIBC) ? "in-process, plain HTTP only"
                                                          : "in-process";
        dr_set_verdict(r, p.carrier, 0, "%s%s%s -- %s", where, p.runtime ? ", " : "",
                       p.runtime ? p.runtime : "", p.why);
    }
    free(p.tree);
    ef_close(&p.elf);
}
