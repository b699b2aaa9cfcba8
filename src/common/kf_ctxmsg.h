/* kf_ctxmsg.h - the client-context registration with the relay (contract A).
 *
 * A client (the shim on its first steered connection, the wrapper for the
 * proxy carrier) tells the relay, once, what it would have used without
 * kimifix: its trust sources, rules, log, executable. The relay answers
 * with a 16-byte id that later connections carry (PROXY v2 TLV 0xE1, or
 * the proxy username `kimifix-ID`). Transport: RUNDIR/relay.sock (a Unix
 * stream socket in the 0700 runtime dir; the relay checks SO_PEERCRED).
 *
 * Request (at most KF_CTXMSG_MAX bytes): text lines `key value\n`, ended
 * by an empty line; optionally one fd passed with SCM_RIGHTS (`log fd`).
 *
 *     kfctx 1                first line (or `kfjava 1`, see below)
 *     trust PATH             repeatable (<= 16), absolute
 *     rules PATH|builtin
 *     log fd|PATH|off
 *     level debug|info|warn
 *     exe PATH
 *     buildid HEX            or stat:DEV:INO:SIZE:MTIME
 *     proxy URL
 *     noproxy LIST
 *
 * `kfjava 1` asks for a Java trust store (the JDK's entries plus the
 * kimifix CA, PKCS12): key `cacerts PATH` (the store the JDK would use),
 * optional `storepass X` (never logged). Reply `ok PATH`.
 *
 * Reply: `ok VALUE\n` (kfctx: 32 hex chars) or `err WHY\n`.
 * Unknown keys are ignored (a newer client, an older relay); a repeated
 * key other than `trust`, a key over 32 bytes, a value over
 * KF_CTXMSG_VALUE_MAX bytes or with control bytes make it invalid.
 *
 * Everything here is libc-only and allocation-free. The client side uses
 * raw system calls (syscall(2)), so the shim can call it from a hook: it
 * never re-enters the shim's own connect/sendmsg/recv/close hooks.
 */
#ifndef KF_CTXMSG_H
#define KF_CTXMSG_H

#include <stddef.h>
#include <sys/types.h>

#include "kf_req.h"

#define KF_CTXMSG_MAX 8192
#define KF_CTXMSG_VALUE_MAX 4096
#define KF_CTXMSG_KEY_MAX 32
#define KF_CTXMSG_TRUST_MAX 16
#define KF_CTXMSG_REPLY_MAX 4200
#define KF_CTX_ID_LEN 16
#define KF_CTX_SOCK "relay.sock"
#define KF_CTX_TIMEOUT_MS 1000 /* the longest any client waits, in total */

enum kf_ctxmsg_kind { KF_CTXMSG_CTX = 1, KF_CTXMSG_JAVA = 2 };

/* A parsed request: views into the caller's buffer (kf_str: not
 * NUL-terminated). Absent keys have p == NULL. */
typedef struct kf_ctxmsg {
    int kind;
    unsigned ntrust;
    kf_str trust[KF_CTXMSG_TRUST_MAX];
    kf_str rules, log, level, exe, buildid, proxy, noproxy;
    kf_str cacerts, storepass;
} kf_ctxmsg;

/* Parse the request at buf[0..len) in one pass. Returns its length (the
 * empty line included) when complete and valid; 0 when more bytes are
 * needed; -1 when invalid (*why: a static string naming the problem, never
 * a value). Never reads past buf+len. */
ssize_t kf_ctxmsg_parse(const char *buf, size_t len, kf_ctxmsg *out, const char **why);

/* A value is safe on the wire: at most KF_CTXMSG_VALUE_MAX bytes, no byte
 * below 0x20 and no 0x7f (UTF-8 file names pass). */
int kf_ctxmsg_value_ok(const char *v, size_t n);

/* Building a request into a fixed buffer. add() refuses (returns -1, the
 * message stays valid without that line) an unsafe value; end() returns the
 * length, or -1 when something did not fit (nothing partial is sent). */
typedef struct kf_ctxmsg_buf {
    char *p;
    size_t cap, len;
    int overflow;
    unsigned ntrust;
} kf_ctxmsg_buf;
void kf_ctxmsg_begin(kf_ctxmsg_buf *b, char *p, size_t cap, int kind);
int kf_ctxmsg_add(kf_ctxmsg_buf *b, const char *key, const char *value);
ssize_t kf_ctxmsg_end(kf_ctxmsg_buf *b);

/* Reply line "ok TEXT\n" / "err TEXT\n" into buf (TEXT is cut at
 * KF_CTXMSG_REPLY_MAX - 6 bytes; control bytes become '?'). Length. */
size_t kf_ctxmsg_reply(char *buf, size_t cap, int ok, const char *text);
/* Parse a reply line: 1 "ok" (val = its text), -1 "err" (val = why) or
 * malformed (val empty), 0 incomplete (no newline yet). */
int kf_ctxmsg_parse_reply(const char *buf, size_t len, kf_str *val);

/* id <-> 32 lower-case hex chars (+ NUL). parse: 0 or -1. */
void kf_ctx_id_hex(const unsigned char id[KF_CTX_ID_LEN], char out[2 * KF_CTX_ID_LEN + 1]);
int kf_ctx_id_parse(kf_str hex, unsigned char id[KF_CTX_ID_LEN]);

/* This process's registration (kf_ctxself.c): its original trust sources
 * (kf_trust_sources) plus extra_trust (may be NULL: e.g. the JDK's store),
 * rules source, log (a file, off, or `log fd` with *pass_fd = 2 when
 * KIMIFIX_LOG=stderr, else *pass_fd = -1; see kf_ctxself.c), level, exe
 * and build id. Length, or -1 when it does
 * not fit. */
ssize_t kf_ctxmsg_self(char *buf, size_t cap, const char *extra_trust, int *pass_fd);

/* Client: connect to RUNDIR/relay.sock, send msg[0..n) (with pass_fd as
 * SCM_RIGHTS when >= 0), read the reply line. One deadline for the whole
 * exchange: timeout_ms, at most KF_CTX_TIMEOUT_MS. Returns 1 "ok" (reply:
 * its text, NUL-terminated), 0 "err" from the relay (reply: why), -1 no
 * answer (why: what failed, with errno's text), -2 nobody serves
 * relay.sock (no such socket, or refused: a relay without contexts).
 * errno is preserved. */
int kf_ctx_call(const char *rundir, const char *msg, size_t n, int pass_fd, int timeout_ms,
                char *reply, size_t rcap, char *why, size_t wn);

/* The socket address of RUNDIR/relay.sock. When the path does not fit in
 * sun_path, *dirfd gets an O_PATH fd of rundir and the address names
 * /proc/self/fd/N/relay.sock (close *dirfd after bind/connect); else -1.
 * Returns the address length, or -1. Raw system calls only. */
struct sockaddr_un;
int kf_ctx_sockaddr(const char *rundir, struct sockaddr_un *sa, int *dirfd);

#endif
