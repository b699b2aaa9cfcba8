/* pinned_client.c - a client with a private root store: OpenSSL linked in
 * statically (its symbols not exported, like a Rust or Go binary's TLS),
 * trusting only the CA file E2E_PINNED_CA, whatever the environment says.
 * kimifix cannot inject trust into it: steering it to the relay makes its
 * handshake fail, which the relay must learn (issue "Trust both ways").
 *   E2E_URL https://HOST[:PORT]/PATH, E2E_HEADERS, E2E_BODY_FILE
 * Prints "status: N" (0 when no response), "error: ..." on TLS failure,
 * then "body:" and the body. One request, one connection, HTTP/1.1.
 * Built by mk/trust.mk against libssl.a/libcrypto.a. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static char *slurp(const char *path, long *n)
{
    FILE *f = path && *path ? fopen(path, "rb") : NULL;
    if (!f) {
        *n = 0;
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)*n + 1);
    if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n)
        *n = 0;
    fclose(f);
    return b;
}

static int dial(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *p;
    if (getaddrinfo(host, port, &hints, &ai))
        return -1;
    int fd = -1;
    for (p = ai; p && fd < 0; p = p->ai_next) {
        fd = socket(p->ai_family, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, p->ai_addr, p->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    return fd;
}

int main(void)
{
    const char *url = getenv("E2E_URL"), *ca = getenv("E2E_PINNED_CA");
    char host[256], port[8] = "443", path[2048];
    if (!url || !ca || sscanf(url, "https://%255[^/:]", host) != 1) {
        fprintf(stderr, "usage: E2E_URL=https://HOST/PATH E2E_PINNED_CA=FILE pinned_client\n");
        return 2;
    }
    const char *rest = url + 8 + strlen(host);
    if (*rest == ':') {
        size_t k = strspn(rest + 1, "0123456789");
        if (k == 0 || k >= sizeof port)
            return 2;
        memcpy(port, rest + 1, k);
        port[k] = 0;
        rest += 1 + k;
    }
    snprintf(path, sizeof path, "%s", *rest ? rest : "/");
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    /* The private root store: this file only, never the default paths. */
    if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        printf("status: 0\nerror: cannot load %s\nbody:\n", ca);
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int fd = dial(host, port);
    SSL *ssl = fd >= 0 ? SSL_new(ctx) : NULL;
    if (!ssl) {
        printf("status: 0\nerror: cannot connect to %s:%s\nbody:\n", host, port);
        return 2;
    }
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    if (SSL_connect(ssl) != 1) {
        unsigned long e = ERR_peek_error();
        printf("status: 0\nerror: TLS: %s (verify: %s)\nbody:\n",
               e ? ERR_reason_error_string(e) : "handshake failed",
               X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
        return 2;
    }
    long bn = 0;
    char *body = slurp(getenv("E2E_BODY_FILE"), &bn);
    char head[8192];
    const char *hdrs = getenv("E2E_HEADERS");
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n",
                      body ? "POST" : "GET", path, host);
    for (const char *h = hdrs; h && *h;) {
        size_t k = strcspn(h, "\n");
        if (k)
            hn += snprintf(head + hn, sizeof head - (size_t)hn, "%.*s\r\n", (int)k, h);
        h += k + (h[k] == '\n');
    }
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "Content-Length: %ld\r\n\r\n", bn);
    SSL_write(ssl, head, hn);
    if (bn)
        SSL_write(ssl, body, (int)bn);
    static char resp[1 << 16];
    int got = 0, r;
    while (got < (int)sizeof resp - 1 && (r = SSL_read(ssl, resp + got, (int)sizeof resp - 1 - got)) > 0)
        got += r;
    resp[got] = 0;
    int status = 0;
    sscanf(resp, "HTTP/1.%*d %d", &status);
    char *b = strstr(resp, "\r\n\r\n");
    printf("status: %d\nbody:\n%s", status, b ? b + 4 : "");
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    free(body);
    return 0;
}
