/* wpat_client.c - writes one of the kfpat.h patterns over plain TCP,
 * OpenSSL or GnuTLS, then reads an answer per request. The tests run it
 * with and without the shim under a call counter (wcount.c) and compare.
 *
 *   wpat_client plain|openssl|openssl_ex|gnutls PORT HOST CAFILE PATTERN [OP]
 *
 * OP (plain only): write (default; writev for `node`), send, sendto,
 * sendmsg. Exit 0 and "answers=N" on stdout when every request was answered.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kfpat.h"

enum { T_PLAIN, T_OSSL, T_OSSL_EX, T_GNUTLS };

static int kind, fd;
static const char *op = "write";
static SSL *ssl;
static gnutls_session_t gs;
static struct sockaddr_in peer;

static void die(const char *what)
{
    fprintf(stderr, "wpat_client: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void dial(int port)
{
    fd = socket(AF_INET, SOCK_STREAM, 0);
    peer.sin_family = AF_INET;
    peer.sin_port = htons((unsigned short)port);
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0)
        die("connect");
}

static void tls_open(const char *host, const char *ca)
{
    if (kind == T_GNUTLS) {
        gnutls_certificate_credentials_t cred;
        gnutls_certificate_allocate_credentials(&cred);
        if (gnutls_certificate_set_x509_trust_file(cred, ca, GNUTLS_X509_FMT_PEM) <= 0)
            die("CA file");
        gnutls_init(&gs, GNUTLS_CLIENT);
        gnutls_set_default_priority(gs);
        gnutls_credentials_set(gs, GNUTLS_CRD_CERTIFICATE, cred);
        gnutls_server_name_set(gs, GNUTLS_NAME_DNS, host, strlen(host));
        gnutls_session_set_verify_cert(gs, host, 0);
        gnutls_transport_set_int(gs, fd);
        int rc;
        do
            rc = gnutls_handshake(gs);
        while (rc < 0 && !gnutls_error_is_fatal(rc));
        if (rc < 0)
            die("gnutls handshake");
        return;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        die("CA file");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1)
        die("handshake");
}

/* One call of the transport; returns bytes taken (> 0) or dies. */
static size_t put_once(const char *p, size_t n)
{
    ssize_t r = -1;
    switch (kind) {
    case T_OSSL:
        r = SSL_write(ssl, p, (int)n);
        break;
    case T_OSSL_EX: {
        size_t w = 0;
        r = SSL_write_ex(ssl, p, n, &w) == 1 ? (ssize_t)w : -1;
        break;
    }
    case T_GNUTLS:
        r = gnutls_record_send(gs, p, n);
        break;
    default:
        if (!strcmp(op, "send")) {
            r = send(fd, p, n, MSG_NOSIGNAL);
        } else if (!strcmp(op, "sendto")) {
            r = sendto(fd, p, n, MSG_NOSIGNAL, NULL, 0);
        } else if (!strcmp(op, "sendmsg")) {
            struct iovec v = { (void *)p, n };
            struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
            r = sendmsg(fd, &m, MSG_NOSIGNAL);
        } else {
            r = write(fd, p, n);
        }
    }
    if (r <= 0)
        die("write");
    return (size_t)r;
}

static void put(const char *p, size_t n)
{
    while (n) {
        size_t k = put_once(p, n);
        p += k;
        n -= k;
    }
}

/* The `node` pattern: every piece in one vector call (resumed if short). */
static void put_vec(const struct kfpat *pat)
{
    struct iovec v[KFPAT_MAXW];
    size_t done = 0;
    while (done < pat->len) {
        int cnt = 0;
        for (int i = 0; i < pat->nw; i++) {
            size_t a = pat->w[i], b = pat->w[i + 1];
            if (b <= done)
                continue;
            if (a < done)
                a = done;
            v[cnt].iov_base = pat->buf + a;
            v[cnt++].iov_len = b - a;
        }
        ssize_t r;
        if (!strcmp(op, "sendmsg")) {
            struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)cnt };
            r = sendmsg(fd, &m, MSG_NOSIGNAL);
        } else {
            r = writev(fd, v, cnt);
        }
        if (r <= 0)
            die("writev");
        done += (size_t)r;
    }
}

static ssize_t get(char *b, size_t n)
{
    if (kind == T_GNUTLS) {
        ssize_t r;
        do
            r = gnutls_record_recv(gs, b, n);
        while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
        return r;
    }
    if (kind != T_PLAIN)
        return SSL_read(ssl, b, n > 1 << 20 ? 1 << 20 : (int)n);
    return read(fd, b, n);
}

static int count_answers(const char *b, size_t n)
{
    int k = 0;
    for (const char *p = b; (p = memmem(p, n - (size_t)(p - b), "\r\n\r\nok", 6)); p += 6)
        k++;
    return k;
}

int main(int argc, char **argv)
{
    if (argc < 6)
        return 64;
    kind = !strcmp(argv[1], "openssl")      ? T_OSSL
           : !strcmp(argv[1], "openssl_ex") ? T_OSSL_EX
           : !strcmp(argv[1], "gnutls")     ? T_GNUTLS
                                            : T_PLAIN;
    if (argc > 6)
        op = argv[6];
    struct kfpat pat;
    if (kfpat_build(&pat, argv[5], argv[3], 0) != 0)
        die("unknown pattern");
    if (pat.vec && kind != T_PLAIN)
        die("vector patterns are plain only");
    dial(atoi(argv[2]));
    if (kind != T_PLAIN)
        tls_open(argv[3], argv[4]);
    if (pat.vec)
        put_vec(&pat);
    else
        for (int i = 0; i < pat.nw; i++)
            put(pat.buf + pat.w[i], pat.w[i + 1] - pat.w[i]);
    char in[8192];
    size_t got = 0;
    while (count_answers(in, got) < pat.nreq && got < sizeof in) {
        ssize_t r = get(in + got, sizeof in - got);
        if (r <= 0)
            die("read");
        got += (size_t)r;
    }
    printf("answers=%d\n", count_answers(in, got));
    if (kind == T_GNUTLS)
        gnutls_bye(gs, GNUTLS_SHUT_WR);
    else if (kind != T_PLAIN)
        SSL_shutdown(ssl);
    close(fd);
    free(pat.buf);
    return 0;
}
