/* kf_proxy.h - PROXY protocol v2 preamble: the shim -> relay steering header.
 *
 * The shim's connect() hook connects the client's socket to the relay on
 * loopback and writes this header first; it tells the relay where the
 * client wanted to go (dst), which name it resolved (TLV AUTHORITY, 0x02)
 * and proves it belongs to the relay's user (TLV KF_PP2_TYPE_TOKEN, 0xE0,
 * the 16-byte token from the relay's state file) and, when the client
 * registered a context on RUNDIR/relay.sock (kf_ctxmsg.h), the context's id
 * (TLV KF_PP2_TYPE_CTX, 0xE1, 16 raw bytes). Command LOCAL (with the
 * token) is the relay's control channel (`kimifix relay status`).
 *
 * Both functions are pure (no allocation, no I/O), libc-only, and safe to
 * call from a libc hook.
 */
#ifndef KF_PROXY_H
#define KF_PROXY_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#define KF_PROXY_SIG_LEN 12
#define KF_PROXY_HDR_MIN 16          /* signature + ver/cmd + family + length */
#define KF_PROXY_MAX 1024            /* longest header either side accepts */
#define KF_PROXY_TOKEN_LEN 16
#define KF_PP2_TYPE_AUTHORITY 0x02
#define KF_PP2_TYPE_TOKEN 0xE0
#define KF_PP2_TYPE_CTX 0xE1           /* client context id (contract A) */
#define KF_PROXY_CTX_LEN 16
#define KF_PROXY_AUTH_MAX 255

typedef struct kf_proxy_info {
    int local;                      /* command LOCAL (control), no addresses */
    int family;                     /* AF_INET, AF_INET6, or AF_UNSPEC */
    struct sockaddr_storage src;    /* as sent (the relay ignores it) */
    struct sockaddr_storage dst;    /* the client's original destination */
    char authority[KF_PROXY_AUTH_MAX + 1]; /* "" when absent */
    unsigned char token[KF_PROXY_TOKEN_LEN];
    int has_token;
    unsigned char ctx[KF_PROXY_CTX_LEN]; /* TLV 0xE1: the client's context id */
    int has_ctx;
} kf_proxy_info;

/* Encode a PROXY v2 header into buf. dst: sockaddr_in or sockaddr_in6 (NULL
 * with local=1 for a LOCAL command); src may be NULL (zeros of dst's
 * family); authority may be NULL or ""; token may be NULL. Returns the
 * length, or -1 (bad arguments, authority too long or invalid, cap too
 * small). KF_PROXY_MAX bytes always suffice. */
ssize_t kf_proxy_encode(void *buf, size_t cap, int local, const struct sockaddr *src,
                        const struct sockaddr *dst, const char *authority,
                        const unsigned char *token);
/* The same with the client's context id (ctx: KF_PROXY_CTX_LEN bytes, or
 * NULL for none). The longest header (IPv6, 255-byte authority, token,
 * context) is 348 bytes: KF_PROXY_MAX still suffices. */
ssize_t kf_proxy_encode_ctx(void *buf, size_t cap, int local, const struct sockaddr *src,
                            const struct sockaddr *dst, const char *authority,
                            const unsigned char *token, const unsigned char *ctx);

/* Parse a header at the start of buf[0..len). Returns the header's total
 * length (> 0) when complete and valid, 0 when more bytes are needed (at
 * most KF_PROXY_HDR_MIN, then the length field says how many), -1 when
 * invalid (not PROXY v2, too long, malformed TLVs, bad authority). Never
 * reads past buf+len. */
ssize_t kf_proxy_parse(const void *buf, size_t len, kf_proxy_info *out);

/* Total length announced by a complete 16-byte prefix, or -1 if invalid. */
ssize_t kf_proxy_total_len(const void *buf, size_t len);

/* Host names the relay accepts in AUTHORITY/SNI: 1..253 chars of
 * [A-Za-z0-9.-_], no leading dot. */
int kf_proxy_valid_host(const char *s, size_t n);

#endif
