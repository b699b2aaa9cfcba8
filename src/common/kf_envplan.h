/* kf_envplan.h - the carrier a client gets, and the environment that
 * gives it (docs/relay.md, "Proxy carrier").
 *
 * kimifix reaches a client in one of two ways:
 *   shim   LD_PRELOAD: in-process hooks, and connect() steered to the relay
 *          for TLS the hooks cannot see;
 *   proxy  the relay is the client's HTTP proxy: HTTPS_PROXY & co. name it
 *          (http://kimifix[-CTX]:TOKEN@127.0.0.1:PORT), trust variables name
 *          the kimifix CA. For programs no preload reaches (static, Go) and
 *          for clients behind a proxy of their own (their connect() only
 *          sees that proxy; the host is in the CONNECT line). The relay then
 *          chains to the user's proxy (saved in KIMIFIX_ORIG_*).
 * LD_PRELOAD stays set either way: interposable children still get their
 * in-process fixes.
 *
 * Used by the wrapper (`kimifix CMD`, src/cli/carrier.c) before exec and
 * by the shim's constructor (src/hooks/carrier.c), so that plain
 * `LD_PRELOAD=libkimifix.so CMD` chooses as the wrapper does. libc only,
 * no allocation, no hooked function.
 *
 * Saved originals (contract C): when kimifix first changes a variable V,
 * KIMIFIX_ORIG_V records the user's value ("" when V was unset); a later
 * layer (a child) keeps an existing KIMIFIX_ORIG_V.
 */
#ifndef KF_ENVPLAN_H
#define KF_ENVPLAN_H

#include <stddef.h>

#include "kf_noproxy.h"
#include "kf_paths.h"

enum kf_carrier {
    KF_CARRIER_NONE = 0, /* kimifix off, or nothing can carry this client */
    KF_CARRIER_SHIM,     /* in-process hooks + connect() steering */
    KF_CARRIER_PROXY     /* the relay as the client's HTTP proxy */
};

/* ---- proxy URLs (kf_envplan_url.c) ---- */

#define KF_PURL_MAX 2048

typedef struct kf_purl {
    char scheme[16];           /* lower case; "http" when the URL had none */
    char host[256];            /* without [brackets] */
    unsigned port;             /* as given, else the scheme's default */
    char user[256], pass[256]; /* percent-decoded; "" when absent */
    int has_auth;              /* the URL had userinfo */
} kf_purl;

/* Parse [scheme://][user[:pass]@]host[:port][/...]. 0, or -1 (malformed,
 * bad escape, port outside 1-65535, host not a name or IP literal). */
int kf_purl_parse(const char *url, kf_purl *out);
/* "host:port" ("[v6]:port"): all that a log line or error text may show. */
void kf_purl_shown(const kf_purl *u, char *out, size_t n);
/* A URL naming a kimifix relay: loopback host, user "kimifix[-ID]". */
int kf_purl_is_ours(const kf_purl *u);

/* The relay as a proxy: http://kimifix[-CTXID]:TOKENHEX@127.0.0.1:PORT
 * (ctxid NULL or "": no client context). 0, or -1 when it does not fit. */
int kf_relay_proxy_url(const kf_relay_state *st, const char *ctxid, char *out, size_t n);

/* ---- the user's own proxy ---- */

typedef struct kf_userproxy {
    const char *var;        /* where it came from ("https_proxy", ...); NULL: none */
    char url[KF_PURL_MAX];  /* the value, credentials included: never log it */
    kf_purl u;
    int usable;             /* http:// (the relay chains with CONNECT) */
    char shown[300];        /* scheme://host:port, for messages */
} kf_userproxy;

/* The proxy the user's environment names for https (https=1) or http
 * upstreams: the first set of https_proxy, HTTPS_PROXY (http_proxy,
 * HTTP_PROXY), all_proxy, ALL_PROXY. A variable kimifix changed counts
 * with its KIMIFIX_ORIG_ value; one naming a kimifix relay never counts.
 * 1 when found (out filled, also when unusable or malformed: then usable
 * is 0), 0 when none. */
int kf_user_proxy(kf_getenv_fn get, int https, kf_userproxy *out);

/* The relay port named by a proxy variable kimifix set (HTTPS_PROXY,
 * https_proxy, HTTP_PROXY, http_proxy), or 0. */
unsigned kf_env_relay_port(kf_getenv_fn get);
/* The client-context id (kf_lease.h) in the user name of the relay URL such
 * a variable holds (`kimifix-ID`): 1 with id filled, 0 when there is none
 * (id ""). n: KF_LEASE_ID_HEX + 1 suffices. */
int kf_env_relay_ctxid(kf_getenv_fn get, char *id, size_t n);

/* ---- the choice ---- */

typedef struct kf_carrier_in {
    kf_getenv_fn get;
    int no_preload;    /* wrapper: CMD cannot load the shim (static, Go, musl) */
    int tls_inprocess; /* shim: a shared libssl, GnuTLS or libcurl is loaded and
                        * the program's TLS is not compiled in: the in-process
                        * hooks see its plaintext */
} kf_carrier_in;

typedef struct kf_carrier_choice {
    int carrier;       /* enum kf_carrier */
    int forced;        /* KIMIFIX_MODE=proxy */
    int inherited;     /* a proxy variable already names a kimifix relay */
    int restore;       /* shim: put the user's proxy variables back (this
                        * process is fixed in-process, through its own proxy) */
    char why[600];     /* one line, no credentials */
    kf_userproxy up;   /* the user's proxy for https (up.var NULL: none) */
} kf_carrier_choice;

/* Decide from KIMIFIX_MODE, the proxy variables and in's facts:
 *   off -> none; inprocess -> shim (none when no preload loads);
 *   a user proxy the relay cannot chain through (socks5://, https://) ->
 *     shim (none when no preload loads): going direct would break a client
 *     that needs its proxy;
 *   proxy (forced), a user proxy, a kimifix proxy inherited, or no preload
 *     -> proxy; but in the shim, a process whose TLS the hooks see keeps
 *     (or gets back) the user's own proxy and is fixed in-process, unless
 *     forced: its TLS library may not read any CA variable (GnuTLS,
 *     Debian's libcurl), so the relay's certificate would break it. */
void kf_carrier_choose(const kf_carrier_in *in, kf_carrier_choice *out);

/* "proxy", "shim" or "none". */
const char *kf_carrier_name(int carrier);

/* ---- the variables (applied in order) ---- */

#define KF_ENVPLAN_MAX 48
#define KF_ENVPLAN_POOL 24576

typedef struct kf_envset {
    const char *name;
    const char *value;  /* NULL: unset */
} kf_envset;

/* The counters first: every process start under the shim initialises a
 * plan, and a page touched for the first time costs ~10 us on a VM. */
typedef struct kf_envplan {
    unsigned n;
    int full;           /* something did not fit: apply nothing */
    size_t used;
    kf_envset v[KF_ENVPLAN_MAX];
    char pool[KF_ENVPLAN_POOL];
} kf_envplan;

void kf_envplan_init(kf_envplan *p);
/* Every proxy variable the ecosystem reads (upper and lower case, WS, npm,
 * global-agent) = url; NO_PROXY/no_proxy and ALL_PROXY are kept. */
void kf_envplan_proxy(kf_envplan *p, kf_getenv_fn get, const char *url);
/* Each proxy variable kimifix changed back to its KIMIFIX_ORIG_ value
 * (unset when that is ""). */
void kf_envplan_restore(kf_envplan *p, kf_getenv_fn get);
/* The trust variables (kf_trust.h), each combined with the user's own file.
 * Returns how many, or -1 when the kimifix CA does not exist yet. */
int kf_envplan_trust(kf_envplan *p, kf_getenv_fn get);
/* Set (value NULL: unset) one variable of kimifix's own (KIMIFIX_RULES,
 * LD_PRELOAD, ...): no KIMIFIX_ORIG_ record. */
void kf_envplan_put(kf_envplan *p, const char *name, const char *value);
/* Set one variable (with its KIMIFIX_ORIG_ when kimifix first changes it). */
void kf_envplan_set(kf_envplan *p, kf_getenv_fn get, const char *name, const char *value);
/* setenv/unsetenv in order. 0, or -1 (errno; plan full: E2BIG). */
int kf_envplan_apply(const kf_envplan *p, int (*set)(const char *, const char *, int),
                     int (*unset)(const char *));

/* The kimifix CA exists (the relay makes it on its first start). */
int kf_envplan_ca_exists(void);

/* The proxy variables kimifix sets, NULL-terminated. */
extern const char *const kf_proxy_vars[];

#endif
