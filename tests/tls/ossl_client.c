/* ossl_client.c - an OpenSSL client that writes an HTTP/1.1 request in the
 * patterns real clients use; run under LD_PRELOAD=libkimifix.so by the TLS
 * tests (the recording server checks what arrived).
 *
 *   ossl_client -p PORT -s SNI [-c CAFILE] [-a ALPN,LIST] [-A] [-m MODE]
 *               [-k SPLIT] [-b BODYBYTES] [-H HOST] [-P PATH] [-n]
 *
 * MODE: one (one SSL_write), bytes (one byte per SSL_write), split (two
 * writes at -k), splitall (a connection per split point), ex / exbytes
 * (SSL_write_ex), nb (non-blocking socket, tiny SO_SNDBUF, the whole request
 * in one SSL_write retried with the same arguments on WANT_WRITE), nbsplit
 * (same, head in two writes then the body), implicit (no SSL_connect: the
 * first SSL_write runs the handshake), threads (8 threads x 8 connections,
 * each split at a different point), fork (half a head written, fork, the
 * child makes its own connection, then the parent finishes its request),
 * clear (one SSL reused with SSL_clear: example.org, then the -s host),
 * nbhs (Node's pattern: non-blocking from the start, no SSL_connect, the
 * first SSL_write runs the handshake and answers WANT_READ until it is done;
 * every retry uses the same arguments).
 * -A sets ALPN on the SSL instead of the SSL_CTX; -n: do not read a reply.
 * Prints "alpn=X status=LINE" per connection on stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kfreq.h"

static int port;
static const char *sni = "api.kimi.com", *cafile, *alpn, *mode = "one", *host, *path;
static int alpn_on_ssl, noread, split = 10, implicit;
static int retries; /* WANT_WRITE/WANT_READ answers seen (the tests want some in nb modes) */
static size_t bodybytes = 13;

static void die(const char *what)
{
    fprintf(stderr, "ossl_client: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static size_t alpn_wire(const char *list, unsigned char *out)
{
    size_t o = 0;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", list);
    for (char *t = strtok(tmp, ","); t; t = strtok(NULL, ",")) {
        out[o++] = (unsigned char)strlen(t);
        memcpy(out + o, t, strlen(t));
        o += strlen(t);
    }
    return o;
}

static char *make_request(size_t *len)
{
    return kfreq_make(host ? host : sni, path ? path : KFREQ_PATH, bodybytes, len);
}

static size_t head_len(void)
{
    size_t n;
    char *r = make_request(&n);
    size_t h = (size_t)(strstr(r, "\r\n\r\n") + 4 - r);
    free(r);
    return h;
}

static int tcp_connect(int tiny)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (tiny) {
        int small = 2048;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    return fd;
}

static SSL_CTX *make_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (cafile) {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
            die("CA file");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (alpn && !alpn_on_ssl) {
        unsigned char w[256];
        if (SSL_CTX_set_alpn_protos(ctx, w, (unsigned)alpn_wire(alpn, w)) != 0)
            die("alpn");
    }
    return ctx;
}

static SSL *open_ssl(SSL_CTX *ctx, int tiny)
{
    SSL *ssl = SSL_new(ctx);
    if (alpn && alpn_on_ssl) {
        unsigned char w[256];
        if (SSL_set_alpn_protos(ssl, w, (unsigned)alpn_wire(alpn, w)) != 0)
            die("alpn");
    }
    SSL_set_tlsext_host_name(ssl, sni);
    if (cafile)
        SSL_set1_host(ssl, sni);
    SSL_set_fd(ssl, tcp_connect(tiny));
    if (implicit)
        SSL_set_connect_state(ssl);
    else if (SSL_connect(ssl) != 1)
        die("handshake");
    return ssl;
}

static void wait_fd(SSL *ssl, int err)
{
    struct pollfd p = { SSL_get_fd(ssl), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0 };
    poll(&p, 1, 5000);
}

/* SSL_write with OpenSSL's retry rule: same arguments after WANT_*. */
static void write_all(SSL *ssl, const char *p, size_t n, int ex)
{
    while (n > 0) {
        size_t w = 0;
        int r;
        if (ex) {
            r = SSL_write_ex(ssl, p, n, &w);
        } else {
            r = SSL_write(ssl, p, (int)n);
            w = r > 0 ? (size_t)r : 0;
        }
        if (r <= 0) {
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                __atomic_add_fetch(&retries, 1, __ATOMIC_RELAXED);
                wait_fd(ssl, e);
                continue;
            }
            die("SSL_write");
        }
        if (w != n && !(SSL_get_mode(ssl) & SSL_MODE_ENABLE_PARTIAL_WRITE)) {
            fprintf(stderr, "ossl_client: SSL_write returned %zu of %zu\n", w, n);
            exit(2);
        }
        p += w;
        n -= w;
    }
}

static void finish_keep(SSL *ssl, int keep)
{
    char status[256] = "";
    if (!noread) {
        int fd = SSL_get_fd(ssl);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        char buf[4096];
        size_t got = 0;
        while (got < sizeof buf - 1) {
            int r = SSL_read(ssl, buf + got, (int)(sizeof buf - 1 - got));
            if (r <= 0)
                break;
            got += (size_t)r;
            buf[got] = 0;
            if (strstr(buf, "\r\n\r\nok"))
                break;
        }
        buf[got] = 0;
        snprintf(status, sizeof status, "%.*s", (int)strcspn(buf, "\r\n"), buf);
    }
    const unsigned char *a;
    unsigned al;
    SSL_get0_alpn_selected(ssl, &a, &al);
    printf("alpn=%.*s status=%s retries=%d\n", (int)al, a ? (const char *)a : "", status,
           __atomic_load_n(&retries, __ATOMIC_RELAXED));
    fflush(stdout);
    SSL_shutdown(ssl);
    close(SSL_get_fd(ssl));
    if (!keep)
        SSL_free(ssl);
}

static void finish(SSL *ssl)
{
    finish_keep(ssl, 0);
}

static SSL_CTX *g_ctx;

/* threads mode: each thread makes 8 connections, split at varying points. */
static void *thread_main(void *arg)
{
    long id = (long)arg;
    size_t n;
    char *req = make_request(&n);
    size_t h = head_len();
    for (int i = 0; i < 8; i++) {
        size_t k = 1 + (size_t)(id * 8 + i) * 3 % (h + 1);
        SSL *ssl = open_ssl(g_ctx, 0);
        write_all(ssl, req, k, 0);
        write_all(ssl, req + k, n - k, 0);
        finish(ssl);
    }
    free(req);
    return NULL;
}

/* fork modes: a child sends one request on a connection of its own (split
 * after 7 bytes) and exits; the parent waits for it. */
static void child_request(SSL_CTX *ctx, const char *req, size_t n)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        SSL *b = open_ssl(ctx, 0);
        write_all(b, req, 7, 0);
        write_all(b, req + 7, n - 7, 0);
        finish(b);
        _exit(0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("child failed");
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "p:s:c:a:Am:k:b:H:P:n")) != -1) {
        switch (o) {
        case 'p': port = atoi(optarg); break;
        case 's': sni = optarg; break;
        case 'c': cafile = optarg; break;
        case 'a': alpn = optarg; break;
        case 'A': alpn_on_ssl = 1; break;
        case 'm': mode = optarg; break;
        case 'k': split = atoi(optarg); break;
        case 'b': bodybytes = strtoul(optarg, NULL, 10); break;
        case 'H': host = optarg; break;
        case 'P': path = optarg; break;
        case 'n': noread = 1; break;
        default: return 64;
        }
    }
    implicit = strcmp(mode, "implicit") == 0 || strcmp(mode, "nbhs") == 0;
    SSL_CTX *ctx = make_ctx();
    g_ctx = ctx;
    size_t n;
    char *req = make_request(&n);
    if (strcmp(mode, "threads") == 0) {
        pthread_t t[8];
        for (long i = 0; i < 8; i++)
            pthread_create(&t[i], NULL, thread_main, (void *)i);
        for (int i = 0; i < 8; i++)
            pthread_join(t[i], NULL);
    } else if (strcmp(mode, "fork") == 0) {
        SSL *a = open_ssl(ctx, 0);
        size_t h = head_len();
        write_all(a, req, h / 2, 0);
        child_request(ctx, req, n);
        write_all(a, req + h / 2, n - h / 2, 0);
        finish(a);
    } else if (strcmp(mode, "clear") == 0) {
        /* One SSL object, two connections: example.org (untouched), then
         * SSL_clear and api.kimi.com (fixed). The verdict must not stick. */
        size_t n1;
        char *r1 = kfreq_make("example.org", KFREQ_PATH, bodybytes, &n1);
        SSL *ssl = SSL_new(ctx);
        SSL_set_tlsext_host_name(ssl, "example.org");
        SSL_set_fd(ssl, tcp_connect(0));
        if (SSL_connect(ssl) != 1)
            die("handshake 1");
        write_all(ssl, r1, n1, 0);
        finish_keep(ssl, 1);
        free(r1);
        if (SSL_clear(ssl) != 1)
            die("SSL_clear");
        SSL_set_tlsext_host_name(ssl, "api.kimi.com");
        SSL_set_fd(ssl, tcp_connect(0));
        if (SSL_connect(ssl) != 1)
            die("handshake 2");
        write_all(ssl, req, n, 0);
        finish(ssl);
    } else if (strcmp(mode, "splitall") == 0) {
        size_t h = head_len();
        for (size_t k = 1; k < h + 2 && k < n; k++) {
            SSL *ssl = open_ssl(ctx, 0);
            write_all(ssl, req, k, 0);
            write_all(ssl, req + k, n - k, 0);
            finish(ssl);
        }
    } else {
        int nb = strncmp(mode, "nb", 2) == 0;
        SSL *ssl = open_ssl(ctx, nb && strcmp(mode, "nbhs") != 0);
        if (nb)
            fcntl(SSL_get_fd(ssl), F_SETFL, fcntl(SSL_get_fd(ssl), F_GETFL) | O_NONBLOCK);
        if (strcmp(mode, "one") == 0 || strcmp(mode, "nb") == 0 || strcmp(mode, "implicit") == 0 ||
            strcmp(mode, "nbhs") == 0) {
            write_all(ssl, req, n, 0);
        } else if (strcmp(mode, "ex") == 0) {
            write_all(ssl, req, n, 1);
        } else if (strcmp(mode, "bytes") == 0 || strcmp(mode, "exbytes") == 0) {
            for (size_t i = 0; i < n; i++)
                write_all(ssl, req + i, 1, mode[0] == 'e');
        } else if (strcmp(mode, "split") == 0) {
            write_all(ssl, req, (size_t)split, 0);
            write_all(ssl, req + split, n - (size_t)split, 0);
        } else if (strcmp(mode, "nbsplit") == 0) {
            size_t h = head_len();
            write_all(ssl, req, (size_t)split, 0);
            write_all(ssl, req + split, h - (size_t)split, 0);
            write_all(ssl, req + h, n - h, 0);
        } else {
            die("unknown mode");
        }
        finish(ssl);
    }
    free(req);
    SSL_CTX_free(ctx);
    return 0;
}
