/* tlsrec.c - recording TLS server for tests (see tlsrec.h). */
#include "tlsrec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define TLSREC_MAX 1024

struct tlsrec {
    SSL_CTX *ctx;
    int lfd, port, flags, stop;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, ndone;
    struct tlsrec_conn *conn[TLSREC_MAX];
};

struct job {
    tlsrec *r;
    int fd;
    struct tlsrec_conn *c;
};

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    int h2 = *(int *)arg & TLSREC_H2;
    const char *want[2] = { h2 ? "h2" : "http/1.1", "http/1.1" };
    for (int k = 0; k < 2; k++)
        for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
            size_t l = in[i];
            if (l == strlen(want[k]) && memcmp(in + i + 1, want[k], l) == 0) {
                *out = in + i + 1;
                *outlen = (unsigned char)l;
                return SSL_TLSEXT_ERR_OK;
            }
        }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Length of the first complete request in p[0..n), 0 when incomplete. */
static size_t request_len(const char *p, size_t n)
{
    const char *e = memmem(p, n, "\r\n\r\n", 4);
    if (!e)
        return 0;
    size_t head = (size_t)(e - p) + 4, body = 0;
    int chunked = 0;
    for (const char *l = p; l < e; l = memchr(l, '\n', (size_t)(e - l)) + 1) {
        if (strncasecmp(l, "content-length:", 15) == 0)
            body = strtoul(l + 15, NULL, 10);
        if (strncasecmp(l, "transfer-encoding:", 18) == 0 && memmem(l, (size_t)(e - l), "chunked", 7))
            chunked = 1;
        if (!memchr(l, '\n', (size_t)(e - l)))
            break;
    }
    if (chunked) {
        const char *z = memmem(p + head, n - head, "0\r\n\r\n", 5);
        return z ? (size_t)(z - p) + 5 : 0;
    }
    return n >= head + body ? head + body : 0;
}

/* Count application-data records as the server reads them: in TLS 1.3
 * the type is the inner one (every outer header says application data),
 * before 1.3 the record header's. */
static void count_records(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl,
                          void *arg)
{
    (void)arg;
    struct tlsrec_conn *c = SSL_get_app_data(ssl);
    if (write_p || len < 1 || !c)
        return;
    unsigned char t = *(const unsigned char *)buf;
    if ((type == SSL3_RT_INNER_CONTENT_TYPE && t == SSL3_RT_APPLICATION_DATA) ||
        (type == SSL3_RT_HEADER && version != TLS1_3_VERSION && t == SSL3_RT_APPLICATION_DATA))
        __atomic_add_fetch(&c->records, 1, __ATOMIC_RELAXED);
}

static int conn_read(SSL *ssl, int fd, char *buf, int n)
{
    if (!ssl) {
        ssize_t r = read(fd, buf, (size_t)n);
        return r > 0 ? (int)r : 0;
    }
    return SSL_read(ssl, buf, n);
}

static void conn_write(SSL *ssl, int fd, const char *buf, int n)
{
    if (ssl)
        SSL_write(ssl, buf, n);
    else if (write(fd, buf, (size_t)n) != n)
        return; /* the client left: nothing to answer */
}

/* Record every byte of a connection and answer each complete request. */
static void serve(tlsrec *r, struct tlsrec_conn *c, SSL *ssl, int fd)
{
    int h2 = strcmp(c->alpn, "h2") == 0;
    size_t cap = 0, answered = 0;
    char buf[16384];
    for (;;) {
        int want = (r->flags & TLSREC_SLOW) ? 1024 : (int)sizeof buf;
        int n = conn_read(ssl, fd, buf, want);
        if (n <= 0)
            break;
        pthread_mutex_lock(&r->mu);
        if (c->len + (size_t)n > cap) {
            cap = (c->len + (size_t)n) * 2;
            c->data = realloc(c->data, cap);
        }
        memcpy(c->data + c->len, buf, (size_t)n);
        c->len += (size_t)n;
        pthread_mutex_unlock(&r->mu);
        size_t q;
        while (!h2 && (q = request_len(c->data + answered, c->len - answered)) > 0) {
            static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                     "Content-Length: 2\r\n\r\nok";
            conn_write(ssl, fd, ok, (int)sizeof ok - 1);
            answered += q;
        }
        if (r->flags & TLSREC_SLOW)
            usleep(2000);
    }
}

static void *conn_main(void *arg)
{
    struct job *j = arg;
    tlsrec *r = j->r;
    struct tlsrec_conn *c = j->c;
    struct timeval tv = { 60, 0 }; /* hang guard: a stalled client, not a slow one */
    setsockopt(j->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (r->flags & TLSREC_PLAIN) {
        serve(r, c, NULL, j->fd);
    } else {
        SSL *ssl = SSL_new(r->ctx);
        SSL_set_fd(ssl, j->fd);
        SSL_set_app_data(ssl, c);
        SSL_set_msg_callback(ssl, count_records);
        if (r->flags & TLSREC_SLOW_HANDSHAKE)
            usleep(100000);
        if (SSL_accept(ssl) == 1) {
            const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
            snprintf(c->sni, sizeof c->sni, "%s", sni ? sni : "");
            const unsigned char *a;
            unsigned al;
            SSL_get0_alpn_selected(ssl, &a, &al);
            snprintf(c->alpn, sizeof c->alpn, "%.*s", (int)al, a ? (const char *)a : "");
            serve(r, c, ssl, j->fd);
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
    }
    close(j->fd);
    pthread_mutex_lock(&r->mu);
    c->done = 1;
    r->ndone++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    free(j);
    return NULL;
}

static void *accept_main(void *arg)
{
    tlsrec *r = arg;
    for (;;) {
        int fd = accept(r->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        pthread_mutex_lock(&r->mu);
        if (r->stop || r->n >= TLSREC_MAX) {
            pthread_mutex_unlock(&r->mu);
            close(fd);
            if (r->stop)
                return NULL;
            continue;
        }
        struct job *j = calloc(1, sizeof *j);
        j->r = r;
        j->fd = fd;
        j->c = calloc(1, sizeof *j->c);
        r->conn[r->n++] = j->c;
        pthread_mutex_unlock(&r->mu);
        pthread_t t;
        pthread_create(&t, NULL, conn_main, j);
        pthread_detach(t);
    }
}

tlsrec *tlsrec_start(const char *certdir, int flags)
{
    tlsrec *r = calloc(1, sizeof *r);
    char path[1024];
    signal(SIGPIPE, SIG_IGN); /* clients may leave before the answer */
    r->flags = flags;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->ctx = SSL_CTX_new(TLS_server_method());
    if (flags & TLSREC_PLAIN)
        goto listen;
    snprintf(path, sizeof path, "%s/cert.pem", certdir);
    if (SSL_CTX_use_certificate_chain_file(r->ctx, path) != 1)
        goto fail;
    snprintf(path, sizeof path, "%s/key.pem", certdir);
    if (SSL_CTX_use_PrivateKey_file(r->ctx, path, SSL_FILETYPE_PEM) != 1)
        goto fail;
    SSL_CTX_set_alpn_select_cb(r->ctx, alpn_select, &r->flags);
listen:
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (flags & TLSREC_SLOW) {
        int small = 4096;
        setsockopt(r->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (bind(r->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(r->lfd, 128) < 0 ||
        getsockname(r->lfd, (struct sockaddr *)&a, &al) < 0)
        goto fail;
    r->port = ntohs(a.sin_port);
    pthread_create(&r->acceptor, NULL, accept_main, r);
    return r;
fail:
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(r->ctx);
    free(r);
    return NULL;
}

int tlsrec_port(const tlsrec *r) { return r->port; }

int tlsrec_count(tlsrec *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int tlsrec_wait(tlsrec *r, int n, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (r->ndone < n && pthread_cond_timedwait(&r->cv, &r->mu, &dl) == 0)
        ;
    int d = r->ndone;
    pthread_mutex_unlock(&r->mu);
    return d;
}

const struct tlsrec_conn *tlsrec_conn(tlsrec *r, int i)
{
    pthread_mutex_lock(&r->mu);
    const struct tlsrec_conn *c = i >= 0 && i < r->n ? r->conn[i] : NULL;
    pthread_mutex_unlock(&r->mu);
    return c;
}

void tlsrec_stop(tlsrec *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_mutex_unlock(&r->mu);
    shutdown(r->lfd, SHUT_RDWR);
    close(r->lfd);
    pthread_join(r->acceptor, NULL);
    /* Connection threads may still run: the process ends with the test. */
}
