/* fuzz_stream.c - libFuzzer target for the HTTP/1 stream rewriter.
 *
 * The input is a byte stream a client might write. It is rewritten once in
 * a single write, then again split at points derived from the input's
 * first bytes through a sink that takes short counts and fails with EAGAIN
 * (both pump modes). Any difference, any broken caller contract, any
 * sanitizer report is a finding. Build: make fuzz (clang).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kf_rules.h"
#include "kf_stream.h"
#include "../unit/stream_util.h"

static kf_ruleset *rs;

static size_t run(const uint8_t *p, size_t n, unsigned seed, int mode, char **out)
{
    kf_stream s;
    kf_stream_init(&s);
    kf_ctx c = { .rs = rs, .tls = 1, .host = "api.kimi.com" };
    sink k = { .max_per_send = seed ? 1 + seed % 9 : 0, .fail_every = seed % 4, .rng = seed + 1 };
    if (k.fail_every == 1)
        k.fail_every = 2;
    uint64_t r = seed;
    size_t off = 0;
    while (off < n) {
        size_t piece = seed ? 1 + (size_t)(tu_rand(&r) % 64) : n;
        if (piece > n - off)
            piece = n - off;
        if (caller_write(&s, &c, &k, (const char *)p + off, piece, mode) != 0)
            abort();
        off += piece;
    }
    kf_stream_reset(&s);
    *out = k.buf;
    return k.len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rs)
        rs = kf_ruleset_builtin();
    if (size < 2)
        return 0;
    unsigned seed = (unsigned)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    char *a, *b, *c;
    size_t na = run(data, size, 0, KF_WR_PARTIAL, &a);
    size_t nb = run(data, size, seed | 1, KF_WR_PARTIAL, &b);
    size_t nc = run(data, size, seed | 1, KF_WR_ALL_OR_NOTHING, &c);
    if (na != nb || na != nc || (na && (memcmp(a, b, na) || memcmp(a, c, na))))
        abort();
    free(a);
    free(b);
    free(c);
    return 0;
}
