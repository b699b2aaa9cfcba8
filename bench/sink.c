/* sink.c - a local HTTP/1.1 sink for the bench (TLS or plain).
 *
 *   sink [--cert PEM --key KEY] --ready FILE
 * Listens on 127.0.0.1 (kernel-chosen port, written to FILE as "PORT\n").
 * Keep-alive, one thread per connection. Request bodies (Content-Length)
 * are read and dropped. Answers:
 *   GET /down/N   200 with N bytes of body
 *   anything else 200 {"ok":true}, with "X-Kf-Ok: 1" when the head arrived
 *                 rewritten (target /coding/v1/messages[?...] and no
 *                 kimi_code_cli anywhere), else "X-Kf-Ok: 0".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx;

typedef struct conn {
    int fd;
    SSL *ssl;
} conn;

static ssize_t c_read(conn *c, void *b, size_t n)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, b, n > 1 << 30 ? 1 << 30 : (int)n);
        return r > 0 ? r : -1;
    }
    ssize_t r = read(c->fd, b, n);
    return r > 0 ? r : -1;
}

static int c_write(conn *c, const void *b, size_t n)
{
    const char *p = b;
    while (n) {
        ssize_t r;
        if (c->ssl) {
            size_t k = 0;
            r = SSL_write_ex(c->ssl, p, n, &k) == 1 ? (ssize_t)k : -1;
        } else {
            r = write(c->fd, p, n);
        }
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static const char *find_hdr(const char *head, size_t hl, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = head; p && p < head + hl;) {
        const char *e = memchr(p, '\n', (size_t)(head + hl - p));
        if (!e)
            break;
        if ((size_t)(e - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':')
            return p + nl + 1;
        p = e + 1;
    }
    return NULL;
}

static void *serve(void *arg)
{
    conn c = {(int)(long)arg, NULL};
    static const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (ctx) {
        c.ssl = SSL_new(ctx);
        SSL_set_fd(c.ssl, c.fd);
        if (SSL_accept(c.ssl) != 1)
            goto out;
    }
    size_t cap = 1 << 16, have = 0;
    char *buf = malloc(cap), *big = malloc(1 << 16);
    memset(big, 'z', 1 << 16);
    for (;;) {
        char *end;
        buf[have] = 0;
        while (!(end = strstr(buf, "\r\n\r\n"))) {
            if (have + 1 >= cap)
                goto done;
            ssize_t r = c_read(&c, buf + have, cap - 1 - have);
            if (r <= 0)
                goto done;
            have += (size_t)r;
            buf[have] = 0;
        }
        size_t hl = (size_t)(end + 4 - buf);
        const char *sp = memchr(buf, ' ', hl);
        const char *tg = sp ? sp + 1 : buf;
        const char *cl = find_hdr(buf, hl, "content-length");
        unsigned long long body = cl ? strtoull(cl, NULL, 10) : 0;
        int close_after = find_hdr(buf, hl, "connection") &&
                          !strncasecmp(find_hdr(buf, hl, "connection") + 1, "close", 5);
        int ok = (!strncmp(tg, "/coding/v1/messages ", 20) || !strncmp(tg, "/coding/v1/messages?", 20));
        for (const char *q = buf; ok && (q = strcasestr(q, "kimi_code_cli")) && q < buf + hl;)
            ok = 0;
        /* drop the body: what is already buffered first */
        size_t extra = have - hl;
        if (extra >= body) {
            memmove(buf, buf + hl + body, extra - body);
            have = extra - body;
            body = 0;
        } else {
            body -= extra;
            have = 0;
        }
        while (body) {
            ssize_t r = c_read(&c, big, body < (1 << 16) ? body : (1 << 16));
            if (r <= 0)
                goto done;
            body -= (unsigned long long)r;
        }
        char resp[512];
        if (!strncmp(tg, "/down/", 6)) {
            unsigned long long n = strtoull(tg + 6, NULL, 10);
            int k = snprintf(resp, sizeof resp,
                             "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             "Content-Length: %llu\r\nX-Kf-Ok: %d\r\n\r\n", n, ok);
            if (c_write(&c, resp, (size_t)k))
                goto done;
            while (n) {
                size_t k2 = n < (1 << 16) ? n : (1 << 16);
                if (c_write(&c, big, k2))
                    goto done;
                n -= k2;
            }
        } else {
            int k = snprintf(resp, sizeof resp,
                             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 11\r\nX-Kf-Ok: %d\r\n\r\n{\"ok\":true}", ok);
            if (c_write(&c, resp, (size_t)k))
                goto done;
        }
        if (close_after)
            break;
    }
done:
    if (c.ssl)
        SSL_shutdown(c.ssl);
    free(buf);
    free(big);
out:
    if (c.ssl)
        SSL_free(c.ssl);
    close(c.fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *ready = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cert"))
            cert = argv[i + 1];
        else if (!strcmp(argv[i], "--key"))
            key = argv[i + 1];
        else if (!strcmp(argv[i], "--ready"))
            ready = argv[i + 1];
    }
    if (!ready)
        return fprintf(stderr, "usage: sink [--cert PEM --key KEY] --ready FILE\n"), 2;
    signal(SIGPIPE, SIG_IGN);
    if (cert) {
        ctx = SSL_CTX_new(TLS_server_method());
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
            return ERR_print_errors_fp(stderr), 1;
        static const unsigned char alpn[] = "\x08http/1.1";
        (void)alpn;
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(lfd, (struct sockaddr *)&sa, sl) || listen(lfd, 1024) ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl))
        return perror("sink: listen"), 1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", ready);
    FILE *f = fopen(tmp, "w");
    fprintf(f, "%u\n", ntohs(sa.sin_port));
    fclose(f);
    rename(tmp, ready);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 << 10);
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        pthread_t th;
        if (pthread_create(&th, &at, serve, (void *)(long)c))
            close(c);
    }
}
