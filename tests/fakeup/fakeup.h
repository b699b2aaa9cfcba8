/* fakeup: a fake of Moonshot's Kimi endpoints for real-client tests.
 * Shared types of the small modules (main, tls, http1, http2, gate, record,
 * util). A thread serves each connection; the only shared state is the
 * record file (one locked write per line) and the read-only TLS contexts. */
#ifndef FAKEUP_H
#define FAKEUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define FU_KEEP_MAX (1u << 20) /* body prefix kept for the gate (model, stream) */
#define FU_MAX_EVENTS 16

/* ---- util.c ------------------------------------------------------------ */
struct fu_buf {
    char *p;
    size_t len, cap;
};
void fu_buf_add(struct fu_buf *b, const void *d, size_t n);
void fu_buf_puts(struct fu_buf *b, const char *s);
void fu_buf_printf(struct fu_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fu_buf_free(struct fu_buf *b);
void *fu_xmalloc(size_t n);
char *fu_strndup(const char *s, size_t n);
int64_t fu_now_ms(void);
void fu_sleep_ms(int ms);

struct fu_conn {
    int fd;
    unsigned long id;     /* connection number, "conn" in records */
    SSL *ssl;            /* NULL on the plain listener */
    const char *listener; /* "https" or "http" */
    const char *sni;     /* NULL if the client sent none */
    const char *alpn;    /* "h2", "http/1.1" or NULL */
};
ssize_t fu_conn_read(struct fu_conn *c, void *buf, size_t n); /* >0, 0 EOF, -1 */
int fu_conn_write(struct fu_conn *c, const void *buf, size_t n); /* 0 or -1 */
int fu_conn_pending(struct fu_conn *c);
void fu_conn_linger_close(struct fu_conn *c);

/* ---- requests and responses ------------------------------------------- */
struct fu_hdr {
    char *name, *value;
};
struct fu_hdrs {
    struct fu_hdr *v;
    size_t n, cap;
};
void fu_hdrs_add(struct fu_hdrs *h, const char *name, size_t nlen,
                 const char *value, size_t vlen);
void fu_hdrs_free(struct fu_hdrs *h);
const char *fu_hdrs_get(const struct fu_hdrs *h, const char *name);

struct fu_req {
    const struct fu_conn *conn;
    const char *version;    /* "HTTP/1.1", "HTTP/1.0", "HTTP/2" */
    char *method, *target;  /* NULL when the request line did not parse */
    char *host;             /* Host or :authority as received, or NULL */
    struct fu_hdrs hdrs, trailers;
    unsigned char *head;    /* raw HTTP/1 head bytes, NULL for h2 */
    size_t head_len;
    uint64_t body_len;
    EVP_MD_CTX *sha;
    struct fu_buf keep;     /* first FU_KEEP_MAX body bytes */
    int chunked;
};
void fu_req_init(struct fu_req *r, const struct fu_conn *c, const char *version);
void fu_req_body(struct fu_req *r, const void *d, size_t n);
void fu_req_free(struct fu_req *r);

struct fu_resp {
    int status;
    const char *ctype;
    struct fu_buf body;            /* whole body unless sse */
    int sse;
    int nev;
    struct fu_buf ev[FU_MAX_EVENTS]; /* SSE events, sent one by one */
    int head_only;                 /* HEAD: headers only */
    unsigned long n;               /* record index, x-fakeup-request */
};
void fu_resp_free(struct fu_resp *r);
const char *fu_reason(int status);

/* ---- gate.c, record.c, tls.c, http1.c, http2.c ------------------------- */
void fu_gate(const struct fu_req *req, struct fu_resp *resp);
void fu_gate_bad_request(struct fu_resp *resp);
int fu_record_open(const char *path);
unsigned long fu_record(const struct fu_req *req, int status);
int fu_tls_init(const char *dir);
SSL *fu_tls_new(int fd);
void fu_h1_serve(struct fu_conn *c);
void fu_h2_serve(struct fu_conn *c);

extern int fu_sse_delay_ms;
extern unsigned fu_close_after; /* 0, or close unanswered after N requests */

#endif
