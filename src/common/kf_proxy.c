/* kf_proxy.c - PROXY protocol v2 encoder and bounded decoder (see kf_proxy.h).
 *
 * Spec: haproxy doc/proxy-protocol.txt section 2.2. Only what kimifix needs:
 * TCP over IPv4/IPv6 (or LOCAL), TLVs AUTHORITY, our token and the client
 * context id; other TLVs
 * are skipped. Everything is checked against the announced length first,
 * so a hostile or truncated header can never make us read out of bounds.
 */
#include "kf_proxy.h"

#include <netinet/in.h>
#include <string.h>

static const unsigned char sig[KF_PROXY_SIG_LEN] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

int kf_proxy_valid_host(const char *s, size_t n)
{
    if (n == 0 || n > 253 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static unsigned char *put_tlv(unsigned char *p, unsigned type, const void *v, size_t n)
{
    p[0] = (unsigned char)type;
    p[1] = (unsigned char)(n >> 8);
    p[2] = (unsigned char)n;
    memcpy(p + 3, v, n);
    return p + 3 + n;
}

ssize_t kf_proxy_encode(void *buf, size_t cap, int local, const struct sockaddr *src,
                        const struct sockaddr *dst, const char *authority,
                        const unsigned char *token)
{
    return kf_proxy_encode_ctx(buf, cap, local, src, dst, authority, token, NULL);
}

ssize_t kf_proxy_encode_ctx(void *buf, size_t cap, int local, const struct sockaddr *src,
                            const struct sockaddr *dst, const char *authority,
                            const unsigned char *token, const unsigned char *ctx)
{
    unsigned char tmp[KF_PROXY_MAX], *p = tmp + KF_PROXY_HDR_MIN;
    unsigned char fam = 0x00;
    size_t alen = authority ? strlen(authority) : 0;

    if (alen > KF_PROXY_AUTH_MAX || (alen && !kf_proxy_valid_host(authority, alen)))
        return -1;
    if (!local) {
        if (!dst)
            return -1;
        if (src && src->sa_family != dst->sa_family)
            src = NULL;
        if (dst->sa_family == AF_INET) {
            const struct sockaddr_in *d = (const struct sockaddr_in *)dst;
            const struct sockaddr_in *s = (const struct sockaddr_in *)src;
            fam = 0x11;
            memset(p, 0, 12);
            if (s)
                memcpy(p, &s->sin_addr, 4);
            memcpy(p + 4, &d->sin_addr, 4);
            if (s)
                memcpy(p + 8, &s->sin_port, 2);
            memcpy(p + 10, &d->sin_port, 2);
            p += 12;
        } else if (dst->sa_family == AF_INET6) {
            const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)dst;
            const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src;
            fam = 0x21;
            memset(p, 0, 36);
            if (s)
                memcpy(p, &s->sin6_addr, 16);
            memcpy(p + 16, &d->sin6_addr, 16);
            if (s)
                memcpy(p + 32, &s->sin6_port, 2);
            memcpy(p + 34, &d->sin6_port, 2);
            p += 36;
        } else {
            return -1;
        }
    }
    if (alen)
        p = put_tlv(p, KF_PP2_TYPE_AUTHORITY, authority, alen);
    if (token)
        p = put_tlv(p, KF_PP2_TYPE_TOKEN, token, KF_PROXY_TOKEN_LEN);
    if (ctx)
        p = put_tlv(p, KF_PP2_TYPE_CTX, ctx, KF_PROXY_CTX_LEN);
    size_t total = (size_t)(p - tmp), body = total - KF_PROXY_HDR_MIN;
    if (total > cap)
        return -1;
    memcpy(tmp, sig, sizeof sig);
    tmp[12] = local ? 0x20 : 0x21; /* version 2, LOCAL or PROXY */
    tmp[13] = fam;
    tmp[14] = (unsigned char)(body >> 8);
    tmp[15] = (unsigned char)body;
    memcpy(buf, tmp, total);
    return (ssize_t)total;
}

ssize_t kf_proxy_total_len(const void *buf, size_t len)
{
    const unsigned char *b = buf;
    if (len < KF_PROXY_HDR_MIN)
        return -1;
    if (memcmp(b, sig, sizeof sig) || (b[12] & 0xF0) != 0x20 || (b[12] & 0x0F) > 1)
        return -1;
    size_t total = KF_PROXY_HDR_MIN + ((size_t)b[14] << 8 | b[15]);
    return total > KF_PROXY_MAX ? -1 : (ssize_t)total;
}

static int parse_tlvs(const unsigned char *p, const unsigned char *end, kf_proxy_info *out)
{
    while (p < end) {
        if (end - p < 3)
            return -1;
        unsigned type = p[0];
        size_t n = (size_t)p[1] << 8 | p[2];
        p += 3;
        if ((size_t)(end - p) < n)
            return -1;
        if (type == KF_PP2_TYPE_AUTHORITY) {
            if (n > KF_PROXY_AUTH_MAX || !kf_proxy_valid_host((const char *)p, n))
                return -1;
            memcpy(out->authority, p, n);
            out->authority[n] = 0;
        } else if (type == KF_PP2_TYPE_TOKEN) {
            if (n != KF_PROXY_TOKEN_LEN)
                return -1;
            memcpy(out->token, p, n);
            out->has_token = 1;
        } else if (type == KF_PP2_TYPE_CTX) {
            if (n != KF_PROXY_CTX_LEN)
                return -1;
            memcpy(out->ctx, p, n);
            out->has_ctx = 1;
        }
        p += n;
    }
    return 0;
}

ssize_t kf_proxy_parse(const void *buf, size_t len, kf_proxy_info *out)
{
    const unsigned char *b = buf;
    memset(out, 0, sizeof *out);
    /* Reject early on a wrong prefix so garbage is not waited for. */
    size_t k = len < sizeof sig ? len : sizeof sig;
    if (memcmp(b, sig, k))
        return -1;
    if (len < KF_PROXY_HDR_MIN)
        return 0;
    ssize_t total = kf_proxy_total_len(b, len);
    if (total < 0)
        return -1;
    if (len < (size_t)total)
        return 0;
    const unsigned char *p = b + KF_PROXY_HDR_MIN, *end = b + total;
    out->local = (b[12] & 0x0F) == 0;
    unsigned fam = b[13];
    size_t need = 0;
    if (fam == 0x11)
        need = 12;
    else if (fam == 0x21)
        need = 36;
    else if (fam != 0x00 || !out->local)
        return -1; /* we only accept TCP over IPv4/IPv6 for PROXY */
    if ((size_t)(end - p) < need)
        return -1;
    if (fam == 0x11 && !out->local) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src, *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, p, 4);
        memcpy(&d->sin_addr, p + 4, 4);
        memcpy(&s->sin_port, p + 8, 2);
        memcpy(&d->sin_port, p + 10, 2);
        out->family = AF_INET;
    } else if (fam == 0x21 && !out->local) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src,
                            *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, p, 16);
        memcpy(&d->sin6_addr, p + 16, 16);
        memcpy(&s->sin6_port, p + 32, 2);
        memcpy(&d->sin6_port, p + 34, 2);
        out->family = AF_INET6;
    } else {
        out->family = AF_UNSPEC;
    }
    p += need;
    if (parse_tlvs(p, end, out) < 0)
        return -1;
    return total;
}
