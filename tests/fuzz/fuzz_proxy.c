/* fuzz_proxy.c - libFuzzer target for the PROXY v2 preamble decoder
 * (kf_proxy_parse, kf_proxy_total_len), which the relay runs on the first
 * bytes of every loopback connection: hostile input by design.
 *
 * Invariants beyond "no sanitizer report":
 *  - the result is -1, 0, or a length <= min(len, KF_PROXY_MAX);
 *  - a complete header (r > 0) is announced by kf_proxy_total_len, every
 *    proper prefix of it parses as 0 (need more) and never as invalid
 *    when the first 16 bytes are the same, and the bytes after it do not
 *    change the answer;
 *  - what was parsed encodes back (kf_proxy_encode) to a header that
 *    parses to the same destination, authority and token;
 *  - the authority is a valid host name, NUL-terminated.
 * Build: make fuzz (clang) or make fuzz-smoke.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kf_proxy.h"

static void same_info(const kf_proxy_info *a, const kf_proxy_info *b)
{
    if (a->local != b->local || a->family != b->family || a->has_token != b->has_token ||
        strcmp(a->authority, b->authority) != 0)
        abort();
    if (a->has_token && memcmp(a->token, b->token, KF_PROXY_TOKEN_LEN))
        abort();
    if (a->family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->dst, *y = (const void *)&b->dst;
        if (x->sin_port != y->sin_port || memcmp(&x->sin_addr, &y->sin_addr, 4))
            abort();
    } else if (a->family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->dst, *y = (const void *)&b->dst;
        if (x->sin6_port != y->sin6_port || memcmp(&x->sin6_addr, &y->sin6_addr, 16))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kf_proxy_info info, again;
    /* Copy into an exact-size heap block so ASan sees any over-read. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    ssize_t r = kf_proxy_parse(buf, size, &info);
    if (r < -1 || r > (ssize_t)size || r > KF_PROXY_MAX)
        abort();
    if (size >= KF_PROXY_HDR_MIN) {
        ssize_t t = kf_proxy_total_len(buf, size);
        if (r > 0 && t != r)
            abort();
        if (r == 0 && (t < 0 || (size_t)t <= size))
            abort(); /* "need more" although the announced header is all there */
    }
    if (r > 0) {
        size_t n = (size_t)r;
        if (strlen(info.authority) > KF_PROXY_AUTH_MAX ||
            (info.authority[0] && !kf_proxy_valid_host(info.authority, strlen(info.authority))))
            abort();
        /* Exactly the header, and every prefix of it. */
        if (kf_proxy_parse(buf, n, &again) != r)
            abort();
        same_info(&info, &again);
        for (size_t k = 0; k < n; k++) {
            ssize_t p = kf_proxy_parse(buf, k, &again);
            if (p != 0)
                abort();
        }
        /* Round trip through the encoder (the shim's side). */
        uint8_t enc[KF_PROXY_MAX];
        const struct sockaddr *dst = info.local ? NULL : (const struct sockaddr *)&info.dst;
        ssize_t e = kf_proxy_encode(enc, sizeof enc, info.local, NULL, dst,
                                    info.authority, info.has_token ? info.token : NULL);
        if (e <= 0 || kf_proxy_parse(enc, (size_t)e, &again) != e)
            abort();
        same_info(&info, &again);
        /* Too small a buffer is refused, never overrun. */
        if (kf_proxy_encode(enc, (size_t)e - 1, info.local, NULL, dst, info.authority,
                            info.has_token ? info.token : NULL) != -1)
            abort();
    }
    free(buf);
    return 0;
}
