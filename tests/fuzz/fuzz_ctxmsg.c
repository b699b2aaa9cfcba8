/* fuzz_ctxmsg.c - libFuzzer target for what relay.sock reads from any
 * process of the user (kf_ctxmsg_parse), the reply the shim reads back
 * (kf_ctxmsg_parse_reply), and the note parser the shim and the doctor run
 * on program headers (kf_buildid_from_notes).
 *
 * Invariants beyond "no sanitizer report":
 *  - parse returns -1, 0, or a length <= min(len, KF_CTXMSG_MAX) ending
 *    with the empty line; every view lies inside the request;
 *  - a complete request parses the same from exactly its bytes, every
 *    proper prefix of it says "need more", and rebuilding it with the
 *    builder gives a request that parses to the same values;
 *  - a reply's value lies inside the reply line; build ids are hex.
 * Build: make fuzz (clang) or make fuzz-smoke.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kf_ctxmsg.h"
#include "kf_progid.h"

static void inside(kf_str v, const uint8_t *b, size_t n)
{
    if (v.p && ((const uint8_t *)v.p < b || (const uint8_t *)v.p + v.n > b + n))
        abort();
}

static int same(kf_str a, kf_str b)
{
    return (!a.p && !b.p) || (a.p && b.p && a.n == b.n && !memcmp(a.p, b.p, a.n));
}

static void add(kf_ctxmsg_buf *b, const char *key, kf_str v, char *tmp)
{
    if (!v.p)
        return;
    memcpy(tmp, v.p, v.n);
    tmp[v.n] = 0;
    if (kf_ctxmsg_add(b, key, tmp) < 0 && !b->overflow)
        abort(); /* a value the parser accepted is a value the builder writes */
}

static void roundtrip(const kf_ctxmsg *m)
{
    static char out[KF_CTXMSG_MAX * 2], tmp[KF_CTXMSG_VALUE_MAX + 1];
    kf_ctxmsg_buf b;
    kf_ctxmsg_begin(&b, out, sizeof out, m->kind);
    for (unsigned i = 0; i < m->ntrust; i++)
        add(&b, "trust", m->trust[i], tmp);
    add(&b, "rules", m->rules, tmp);
    add(&b, "log", m->log, tmp);
    add(&b, "level", m->level, tmp);
    add(&b, "exe", m->exe, tmp);
    add(&b, "buildid", m->buildid, tmp);
    add(&b, "proxy", m->proxy, tmp);
    add(&b, "noproxy", m->noproxy, tmp);
    add(&b, "cacerts", m->cacerts, tmp);
    add(&b, "storepass", m->storepass, tmp);
    ssize_t n = kf_ctxmsg_end(&b);
    if (n < 0)
        return; /* the known keys alone can exceed 8 KiB only if the input did */
    kf_ctxmsg again;
    const char *why;
    if (kf_ctxmsg_parse(out, (size_t)n, &again, &why) != n || again.kind != m->kind ||
        again.ntrust != m->ntrust)
        abort();
    for (unsigned i = 0; i < m->ntrust; i++)
        if (!same(m->trust[i], again.trust[i]))
            abort();
    if (!same(m->rules, again.rules) || !same(m->exe, again.exe) || !same(m->log, again.log) ||
        !same(m->buildid, again.buildid) || !same(m->proxy, again.proxy) ||
        !same(m->cacerts, again.cacerts))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kf_ctxmsg m, again;
    const char *why;
    uint8_t *buf = malloc(size ? size : 1); /* exact size: ASan sees over-reads */
    if (!buf)
        abort();
    memcpy(buf, data, size);
    ssize_t r = kf_ctxmsg_parse((const char *)buf, size, &m, &why);
    if (r < -1 || r > (ssize_t)size || r > KF_CTXMSG_MAX || !why)
        abort();
    if (r > 0) {
        size_t n = (size_t)r;
        if (buf[n - 1] != '\n' || (n >= 2 && buf[n - 2] != '\n'))
            abort();
        for (unsigned i = 0; i < m.ntrust; i++)
            inside(m.trust[i], buf, n);
        inside(m.exe, buf, n);
        inside(m.buildid, buf, n);
        inside(m.log, buf, n);
        if (kf_ctxmsg_parse((const char *)buf, n, &again, &why) != r)
            abort();
        for (size_t k = 0; k < n; k++)
            if (kf_ctxmsg_parse((const char *)buf, k, &again, &why) != 0)
                abort();
        roundtrip(&m);
    }
    kf_str v;
    int rr = kf_ctxmsg_parse_reply((const char *)buf, size, &v);
    if (rr < -1 || rr > 1)
        abort();
    inside(v.n ? v : (kf_str){NULL, 0}, buf, size);
    char hex[KF_BUILDID_MAX];
    for (size_t align = 4; align <= 8; align += 4)
        if (kf_buildid_from_notes(buf, size, align, hex, sizeof hex) == 0 &&
            strspn(hex, "0123456789abcdef") != strlen(hex))
            abort();
    free(buf);
    return 0;
}
