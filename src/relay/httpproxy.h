/* httpproxy.h - the relay as an HTTP proxy (the proxy carrier,
 * docs/relay.md): the pure parts, fed by the relay's event loop. No I/O,
 * no allocation, no blocking; every function works on bytes the caller
 * received and fills buffers the caller sends.
 *
 *   httpproxy.c        find the proxy request head (incrementally, capped
 *                      at 16 KiB), parse it: CONNECT host:port (authority
 *                      form, [v6] literals) or an absolute-form http:// URL;
 *                      Proxy-Authorization: Basic kimifix[-CTXID]:TOKENHEX
 *                      checked in constant time; the relay's own port refused
 *   httpproxy_head.c   the head an absolute-form request goes upstream with
 *                      (origin form, our proxy headers gone, Connection:
 *                      close); base64
 *   httpproxy_reply.c  the answers (200, 400, 403, 407, 408, 431, 502, 504)
 *                      and their log lines (407s rate-limited)
 *
 * After `200 Connection established` the connection is either handled
 * like a steered one (a host an enabled rule names: dst = the CONNECT
 * target, authority = its host) or a blind byte tunnel (any other host):
 * hp_rule_host() says which.
 */
#ifndef KF_HTTPPROXY_H
#define KF_HTTPPROXY_H

#include <stddef.h>
#include <sys/types.h>

#include "kf_proxy.h"
#include "kf_rules.h"

#define HP_HEAD_MAX (16 * 1024)
#define HP_CTXID_LEN 32 /* hex chars of a client context id (contract A) */

/* ---- finding the head ---- */

typedef struct hp_scan {
    size_t off;     /* bytes of the connection already scanned */
    int phase;      /* request line: method, target, version, then headers */
    int count;      /* bytes seen in the current request-line phase */
    int eol;        /* 0 mid-line, 1 at line start, 2 line start + CR */
} hp_scan;          /* all zero to start */

enum { HP_SCAN_MORE = 0, HP_SCAN_BAD = -1, HP_SCAN_TOO_BIG = -2 };

/* buf[0..len): everything received so far on the connection (the same
 * bytes each call, more of them). Returns the head's length (> 0) once its
 * empty line is in, HP_SCAN_MORE, HP_SCAN_BAD (the request line is not
 * `METHOD SP TARGET SP HTTP/1.x`: said at its first wrong byte) or
 * HP_SCAN_TOO_BIG (HP_HEAD_MAX bytes without an end). Each byte is looked
 * at once over all calls. */
ssize_t hp_scan_head(hp_scan *s, const char *buf, size_t len);

/* ---- parsing it ---- */

enum hp_kind { HP_CONNECT = 1, HP_ABSOLUTE = 2 };

/* Verdicts: HP_OK, or the status the client gets. */
enum hp_status {
    HP_OK = 0,
    HP_400 = 400, HP_403 = 403, HP_407 = 407, HP_408 = 408, HP_431 = 431,
    HP_502 = 502, HP_504 = 504
};

typedef struct hp_cfg {
    const unsigned char *token; /* the relay's KF_PROXY_TOKEN_LEN bytes */
    unsigned relay_port;        /* refused as a CONNECT target on loopback */
} hp_cfg;

typedef struct hp_req {
    int kind;                   /* enum hp_kind */
    char method[24];
    char host[256];             /* lower case; an IP literal without [brackets] */
    int host_ip;                /* 4 or 6 for an IP literal, else 0 */
    unsigned port;              /* CONNECT: as given; http://: as given or 80 */
    char ctxid[HP_CTXID_LEN + 1]; /* from the user name kimifix-CTXID; "" = none */
    /* absolute form: the origin-form target inside the head ("" = "/") */
    size_t target_off, target_len;
    char why[256];              /* why it was refused (no secrets) */
} hp_req;

/* Parse a complete head (hp_scan_head's length). Returns HP_OK or the
 * status to answer with (req->why says why): 400 malformed request line,
 * not a proxy request, bad target or port outside 1-65535; 407 missing or
 * wrong credentials (checked before anything about the target is said);
 * 403 CONNECT to the relay's own port. */
int hp_parse(const char *head, size_t n, const hp_cfg *cfg, hp_req *req);

/* 1 when an enabled rule names req's host (then: terminate TLS and
 * rewrite, as for a steered connection); 0: blind tunnel. */
int hp_rule_host(const kf_ruleset *rs, const hp_req *req);

/* Constant-time check of a Proxy-Authorization value against the token.
 * Returns 1 and fills ctxid (HP_CTXID_LEN + 1 bytes, "" for plain
 * "kimifix") when right, 0 otherwise. */
int hp_auth_ok(const char *value, size_t n, const unsigned char *token, char *ctxid);

/* ---- the head upstream (absolute form) ---- */

/* The head an absolute-form request goes upstream with: origin-form target,
 * Host = the URL's authority, Proxy-Authorization, Proxy-Connection,
 * Keep-Alive and the headers Connection names removed, `Connection: close`
 * (one request per client connection: the relay forwards nothing after the
 * first request). head/n: the parsed head. Returns the length written, or
 * -1 when cap is too small (n + 300 always suffices). */
ssize_t hp_upstream_head(const char *head, size_t n, const hp_req *req, char *out, size_t cap);

/* base64 (RFC 4648, with padding). encode: -1 when cap is too small
 * (4 * ((n + 2) / 3) + 1 suffices). decode: strict (padding required, no
 * blanks); -1 on bad input or overflow. Both NUL-terminate. */
ssize_t hp_b64_encode(const void *in, size_t n, char *out, size_t cap);
ssize_t hp_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* ---- answers ---- */

/* "HTTP/1.1 200 Connection established\r\n\r\n" */
extern const char hp_established[];

/* The complete answer for a status (Connection: close; 407 with
 * Proxy-Authenticate: Basic realm="kimifix"; 502/504 with a JSON body
 * like the relay's other 502s). why: one line for the body, no secrets.
 * Returns the length, or -1 when cap is too small (1400 suffices). */
ssize_t hp_reply(int status, const char *why, char *out, size_t cap);

/* Rate limit for repeated log lines: at most one per HP_LOG_EVERY_MS, the
 * next one saying how many were left out. */
#define HP_LOG_EVERY_MS 10000
typedef struct hp_limit {
    long next_ms;
    unsigned dropped;
} hp_limit;
/* 1 when a line may be logged now (*dropped gets the count left out
 * since the last one), 0 when it is to be left out. */
int hp_limit_allow(hp_limit *l, long now_ms, unsigned *dropped);

/* The one log line for a refused proxy request (kf_log; 407s through lim,
 * which may be NULL). req may be NULL (nothing parsed). */
void hp_log_refusal(int status, const hp_req *req, const char *why, hp_limit *lim, long now_ms);

#endif
