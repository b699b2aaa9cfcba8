/* doctor_rt.c - runtimes whose ELF alone does not tell where TLS lives:
 * Go (own syscalls and TLS), Bun (BoringSSL compiled in), Node (OpenSSL
 * compiled in, or Debian's shared libnode + libssl; single executables),
 * Python (TLS lives in the _ssl extension module, loaded at run time),
 * PHP (extensions, curl among them, loaded with RTLD_DEEPBIND). */
#include "doctor.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GO_MAGIC "\xff Go buildinf:"
#define BUN_TRAILER "\n---- Bun! ----\n"
#define SEA_FUSE "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:"

const char *const dr_trust_node =
    "yes: the shim sets NODE_EXTRA_CA_CERTS to the kimifix CA before the program starts";

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- Go ---- */

/* Version from a build info blob (Go >= 1.18 inlines it: flags bit 2,
 * a varint length and the string at offset 32). */
static void go_version(const ef_elf *e, uint64_t off, char *out, size_t n)
{
    unsigned char b[32 + 10 + 64];
    out[0] = 0;
    if (ef_read(e, off, b, 32 + 10) != 0 || !(b[15] & 2))
        return;
    uint64_t len = 0;
    unsigned k = 32, shift = 0;
    while (k < 42 && shift < 63) {
        len |= (uint64_t)(b[k] & 0x7f) << shift;
        shift += 7;
        if (!(b[k++] & 0x80))
            break;
    }
    if (len == 0 || len >= n || len > 64 || ef_read(e, off + k, b, (size_t)len) != 0)
        return;
    for (uint64_t i = 0; i < len; i++)
        out[i] = (b[i] >= 0x20 && b[i] < 0x7f) ? (char)b[i] : '?';
    out[len] = 0;
}

int dr_rt_go(dr_prog *p, dr_report *r)
{
    const ef_elf *e = &p->elf;
    uint64_t off = 0, size = 0, at[1] = {0};
    const char *pats[] = {GO_MAGIC};
    size_t lens[] = {sizeof GO_MAGIC - 1};
    char magic[14], ver[80] = "";
    int found = 0;
    if (ef_section(e, ".go.buildinfo", &off, &size) && size >= 32 &&
        ef_read(e, off, magic, sizeof magic) == 0 && !memcmp(magic, GO_MAGIC, 14))
        found = 1;
    else if (e->shnum == 0 && ef_scan(e, 0, e->size, pats, lens, 1, at)) /* stripped of sections */
        found = 1, off = at[0];
    if (found)
        go_version(e, off, ver, sizeof ver);
    else if (ef_has_note(e, "Go"))
        found = 1;
    if (!found)
        return 0;
    p->runtime = "Go";
    dr_fact_add(r, 0, "runtime", "Go%s%s (build info found)", ver[0] ? " " : "", ver);
    return 1;
}

/* ---- Bun ---- */

static int bun_section(void *ud, const char *name, uint64_t off, uint64_t size)
{
    (void)off;
    int *kind = ud;
    if (!strcmp(name, ".bun") && size > 0)
        *kind = 2; /* the embedded application of `bun build --compile` */
    else if (!*kind)
        *kind = 1;
    return 0;
}

int dr_rt_bun(dr_prog *p, dr_report *r)
{
    const ef_elf *e = &p->elf;
    int kind = 0;
    ef_sections(e, ".bun", bun_section, &kind);
    ef_sections(e, ".note.bun", bun_section, &kind);
    if (!kind && e->size > 64) { /* older Bun: a trailer at the end of the file */
        const char *pats[] = {BUN_TRAILER};
        size_t lens[] = {sizeof BUN_TRAILER - 1};
        uint64_t tail = e->size > 4096 ? 4096 : e->size;
        if (ef_scan(e, e->size - tail, tail, pats, lens, 1, NULL))
            kind = 2;
    }
    if (!kind)
        return 0;
    p->runtime = "Bun";
    p->carrier = DR_RELAY;
    p->trust = dr_trust_node;
    dr_fact_add(r, 0, "runtime", "Bun%s", kind == 2 ? ", a single-file executable (bun build "
                                                      "--compile; Claude Code's native binary is one)"
                                                    : "");
    dr_fmt(p->why, sizeof p->why,
           "Bun carries BoringSSL compiled in: no TLS hook sees its plaintext; connect() is "
           "steered to the relay");
    return 1;
}

/* ---- Node ---- */

static int rodata(void *ud, const char *name, uint64_t off, uint64_t size)
{
    (void)name;
    dr_prog *p = ud;
    const char *pats[] = {SEA_FUSE};
    size_t lens[] = {sizeof SEA_FUSE - 1};
    uint64_t at[1];
    char c;
    if (ef_scan(&p->elf, off, size, pats, lens, 1, at) &&
        ef_read(&p->elf, at[0] + lens[0], &c, 1) == 0)
        return c == '1' ? 2 : 1;
    return 0;
}

/* 0: no fuse, 1: fuse present (a Node binary), 2: fuse flipped (a SEA). */
static int sea_fuse(dr_prog *p)
{
    if (p->elf.shnum == 0)
        return rodata(p, "", 0, p->elf.size);
    int r = ef_sections(&p->elf, ".rodata", rodata, p);
    return r ? r : ef_sections(&p->elf, ".data", rodata, p);
}

int dr_rt_node(dr_prog *p, dr_report *r)
{
    const ef_elf *e = &p->elf;
    int fuse = sea_fuse(p);
    int blob = ef_has_note(e, "NODE_SEA_BLOB") || ef_section(e, "NODE_SEA_BLOB", NULL, NULL);
    unsigned libnode = kf_ld_find(p->tree, "libnode.so");
    int napi = ef_defines(e, "napi_create_object") == 1;
    const char *b = base(p->path);
    if (!fuse && !blob && !libnode && !napi && strcmp(b, "node") && strcmp(b, "nodejs"))
        return 0;
    p->trust = dr_trust_node;
    if (fuse == 2 || blob) {
        p->runtime = "Node single executable";
        p->carrier = DR_RELAY;
        dr_fact_add(r, 0, "runtime", "Node single executable application (SEA: %s)",
                    blob ? "NODE_SEA_BLOB present" : "fuse flipped");
        dr_fmt(p->why, sizeof p->why,
               "a Node single executable carries OpenSSL compiled in: no TLS hook sees its "
               "plaintext; connect() is steered to the relay");
        return 1;
    }
    p->runtime = "Node";
    if (libnode && kf_ld_find(p->tree, "libssl.so")) {
        unsigned s = kf_ld_find(p->tree, "libssl.so");
        dr_fact_add(r, 0, "runtime", "Node on a shared libnode (%s) with shared %s (Debian's nodejs)",
                    p->tree->lib[libnode].name, p->tree->lib[s].name);
        p->carrier = DR_OPENSSL;
        dr_fmt(p->why, sizeof p->why,
               "Node's TLS is the shared %s: the SSL_write hook sees each request in plaintext",
               p->tree->lib[s].name);
        return 1;
    }
    if (p->ssl_write == 1 || p->ssl_write_ex == 1) {
        dr_fact_add(r, 0, "runtime", "Node with OpenSSL compiled in (official/nodesource build)");
        p->carrier = DR_RELAY;
        dr_fmt(p->why, sizeof p->why,
               "this Node carries OpenSSL compiled in (SSL_write is defined in the program, calls "
               "are direct): no TLS hook sees its plaintext; connect() is steered to the relay");
        return 1;
    }
    dr_fact_add(r, 0, "runtime", "Node (TLS library not identified)");
    return 1; /* the generic checks decide */
}

/* ---- Python ---- */

/* "3.11" from python3.11, libpython3.11.so.1.0, ... */
static int py_version(const char *s, char *out, size_t n)
{
    const char *p = strstr(s, "python");
    if (!p)
        return -1;
    p += 6;
    size_t l = strspn(p, "0123456789.");
    while (l && p[l - 1] == '.')
        l--;
    if (!l || !strchr(p, '.') || l >= n)
        return -1;
    memcpy(out, p, l);
    out[l] = 0;
    return 0;
}

/* lib-dynload/_ssl*.so below the installation prefix of the interpreter. */
static int find_ssl_module(const char *exe, const char *ver, char *out, size_t n)
{
    char prefix[PATH_MAX];
    dr_fmt(prefix, sizeof prefix, "%s", exe);
    for (int i = 0; i < 2; i++) { /* .../bin/python3.11 -> ... */
        char *s = strrchr(prefix, '/');
        if (!s)
            return -1;
        *s = 0;
    }
    static const char *const libdirs[] = {"lib", "lib64", "lib32"};
    for (size_t i = 0; i < sizeof libdirs / sizeof libdirs[0]; i++) {
        char dir[PATH_MAX];
        if (dr_fmt(dir, sizeof dir, "%s/%s/python%s/lib-dynload", prefix, libdirs[i], ver) != 0)
            continue;
        DIR *d = opendir(dir);
        if (!d)
            continue;
        struct dirent *de;
        int found = 0;
        while (!found && (de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (!strncmp(de->d_name, "_ssl.", 5) && l > 3 && !strcmp(de->d_name + l - 3, ".so"))
                found = dr_fmt(out, n, "%s/%s", dir, de->d_name) == 0;
        }
        closedir(d);
        if (found)
            return 0;
    }
    return -1;
}

static const char *const trust_python =
    "urllib, http.client, httpx: yes via SSL_CERT_FILE; requests: yes via REQUESTS_CA_BUNDLE "
    "(the shim sets both); aiohttp or code that passes certifi.where() itself: no -- append the "
    "kimifix ca.pem to that bundle or pass ssl.create_default_context(cafile=.../ca.pem)";

/* The _ssl module links OpenSSL: shared (hookable) or static (relay). */
static void python_ssl(dr_prog *p, dr_report *r, const char *mod)
{
    ef_elf *m = malloc(sizeof *m);
    kf_ldtree *t = malloc(sizeof *t);
    if (!m || !t || ef_open(m, mod) != 0) {
        dr_fact_add(r, 1, "python ssl", "%s: cannot read it", mod);
        free(m);
        free(t);
        return;
    }
    kf_ld_closure(m, mod, t);
    unsigned s = kf_ld_find(t, "libssl.so");
    if (s && t->lib[s].path[0]) {
        dr_fact_add(r, 0, "python ssl", "%s links the shared %s (%s)", mod, t->lib[s].name,
                    t->lib[s].path);
        p->carrier = DR_OPENSSL;
        dr_fmt(p->why, sizeof p->why,
               "Python's _ssl uses the shared %s: the SSL_write_ex hook sees each request in "
               "plaintext",
               t->lib[s].name);
    } else if (s) {
        dr_fact_add(r, 1, "python ssl", "%s needs %s, which is not found", mod, t->lib[s].name);
    } else if (ef_defines(m, "SSL_write_ex") == 1 || ef_defines(m, "SSL_write") == 1) {
        dr_fact_add(r, 0, "python ssl", "%s has OpenSSL linked in statically", mod);
        p->carrier = DR_RELAY;
        dr_fmt(p->why, sizeof p->why,
               "Python's _ssl carries OpenSSL linked in statically (a standalone build): no TLS "
               "hook sees its plaintext; connect() is steered to the relay");
    } else {
        dr_fact_add(r, 0, "python ssl", "%s: no OpenSSL found in it or its libraries", mod);
    }
    ef_close(m);
    free(m);
    free(t);
}

int dr_rt_python(dr_prog *p, dr_report *r)
{
    char ver[16] = "";
    unsigned lp = kf_ld_find(p->tree, "libpython");
    int named = !strncmp(base(p->path), "python", 6);
    if (!named && !lp && ef_defines(&p->elf, "Py_BytesMain") != 1)
        return 0;
    if (py_version(base(p->path), ver, sizeof ver) != 0 && lp)
        py_version(p->tree->lib[lp].name, ver, sizeof ver);
    static char rt[32];
    dr_fmt(rt, sizeof rt, "Python%s%s", ver[0] ? " " : "", ver);
    p->runtime = rt;
    p->trust = trust_python;
    dr_fact_add(r, 0, "runtime", "%s%s%s", rt, lp ? " on " : "", lp ? p->tree->lib[lp].name : "");
    char mod[PATH_MAX];
    if (ver[0] && find_ssl_module(p->path, ver, mod, sizeof mod) == 0) {
        python_ssl(p, r, mod);
        return 1;
    }
    /* No _ssl extension file: built in (python-build-standalone does this). */
    int in_exe = p->ssl_write_ex == 1;
    int in_lib = 0;
    if (!in_exe && lp && p->tree->lib[lp].path[0]) {
        ef_elf *l = malloc(sizeof *l);
        if (l && ef_open(l, p->tree->lib[lp].path) == 0) {
            in_lib = ef_defines(l, "SSL_write_ex") == 1;
            ef_close(l);
        }
        free(l);
    }
    if (in_exe || in_lib) {
        dr_fact_add(r, 0, "python ssl", "built in, with OpenSSL linked in statically (%s)",
                    in_exe ? "in the interpreter" : p->tree->lib[lp].name);
        p->carrier = DR_RELAY;
        dr_fmt(p->why, sizeof p->why,
               "this Python carries OpenSSL linked in statically (a standalone build such as "
               "uv's): no TLS hook sees its plaintext; connect() is steered to the relay");
    } else {
        dr_fact_add(r, 0, "python ssl", "no _ssl module found under the interpreter's prefix");
    }
    return 1;
}

/* ---- PHP: extensions loaded with RTLD_DEEPBIND (docs/loader.md) ---- */

/* The extension directory compiled into the interpreter (PHP_EXTENSION_DIR,
 * e.g. "/usr/lib/php/20220829"): the NUL-terminated string around the first
 * "/lib/php/20" in the file. */
static int php_ext_dir(const ef_elf *e, char *out, size_t n)
{
    static const char pat[] = "/lib/php/20";
    const char *pats[] = {pat};
    size_t lens[] = {sizeof pat - 1};
    uint64_t at = 0;
    char b[256];
    if (!ef_scan(e, 0, e->size, pats, lens, 1, &at))
        return -1;
    uint64_t from = at > 128 ? at - 128 : 0;
    size_t len = sizeof b - 1;
    if (from + len > e->size)
        len = (size_t)(e->size - from);
    if (ef_read(e, from, b, len) != 0)
        return -1;
    b[len] = 0;
    size_t s = (size_t)(at - from), t = s;
    while (s > 0 && b[s - 1] >= 0x21 && b[s - 1] < 0x7f)
        s--;
    while (t < len && b[t] >= 0x21 && b[t] < 0x7f)
        t++;
    if (b[s] != '/' || t - s >= n)
        return -1;
    memcpy(out, b + s, t - s);
    out[t - s] = 0;
    return 0;
}

/* What the curl extension links: its libcurl (index in t), or 0. */
static unsigned php_curl_ext(const char *so, kf_ldtree *t)
{
    ef_elf *m = malloc(sizeof *m);
    unsigned c = 0;
    if (m && ef_open(m, so) == 0) {
        kf_ld_closure(m, so, t);
        c = kf_ld_find(t, "libcurl");
        ef_close(m);
    }
    free(m);
    return c;
}

int dr_rt_php(dr_prog *p, dr_report *r)
{
    if (ef_defines(&p->elf, "php_module_startup") != 1 || ef_defines(&p->elf, "php_load_extension") != 1)
        return 0;
    p->runtime = "PHP";
    char dir[PATH_MAX], so[PATH_MAX];
    int have_dir = php_ext_dir(&p->elf, dir, sizeof dir) == 0;
    dr_fact_add(r, 0, "runtime", "PHP (extension directory %s)", have_dir ? dir : "not found");
    const char *off = getenv("KIMIFIX_DEEPBIND");
    int bound = !off || strcmp(off, "off") != 0;
    dr_fact_add(r, !bound, "deepbind",
                "PHP loads its extensions with RTLD_DEEPBIND: their calls bypass LD_PRELOAD. %s",
                bound ? "The shim binds its hooks into them as they load"
                      : "KIMIFIX_DEEPBIND=off: the shim leaves them alone, so requests made by "
                        "extensions (curl) go out unfixed");
    kf_ldtree *t = calloc(1, sizeof *t);
    unsigned c = 0;
    if (t && have_dir && dr_fmt(so, sizeof so, "%s/curl.so", dir) == 0 && (c = php_curl_ext(so, t)))
        dr_fact_add(r, 0, "extension", "curl.so -> %s%s", t->lib[c].name,
                    t->lib[c].path[0] ? "" : " (NOT FOUND)");
    else
        dr_fact_add(r, 0, "extension", "no curl extension (%s)", have_dir ? so : "no directory");
    if (c && bound) {
        p->carrier = DR_LIBCURL;
        dr_fmt(p->why, sizeof p->why,
               "PHP's curl extension (%s, loaded with RTLD_DEEPBIND: the shim binds its hooks "
               "into it) -> %s: the libcurl hooks fix URL and headers; PHP's own https:// "
               "streams go through the shared libssl (openssl hooks)",
               so, t->lib[c].name);
    }
    free(t);
    return 1;
}
