/* upstream.c - the relay's own connection to the real server.
 *
 * Verification is always on: against KIMIFIX_UPSTREAM_CA (a PEM file) when
 * set, else the system store, loaded from OpenSSL's compiled-in paths, not
 * from SSL_CERT_FILE: the relay may inherit an SSL_CERT_FILE that contains
 * the kimifix CA, and must never trust its own certificates upstream.
 */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "kf_log.h"

#define CONNECT_MS 10000
#define HANDSHAKE_MS 15000

SSL_CTX *upstream_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    const char *ca = secure_getenv("KIMIFIX_UPSTREAM_CA");
    int ok;
    if (ca && *ca) {
        ok = SSL_CTX_load_verify_locations(ctx, ca, NULL) == 1;
        kf_log(ok ? KF_LOG_INFO : KF_LOG_ERROR, "relay: upstream trust: %s%s", ca,
               ok ? "" : " (cannot load it)");
    } else {
        /* The hashed directory first: certificates are loaded on demand,
         * where the bundle file would cost ~2 MB of RSS for ~140 CAs. */
        ok = SSL_CTX_load_verify_locations(ctx, NULL, X509_get_default_cert_dir()) == 1 ||
             SSL_CTX_load_verify_locations(ctx, X509_get_default_cert_file(), NULL) == 1;
    }
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short ev, long deadline)
{
    long left = deadline - now_ms();
    if (left <= 0)
        return 0;
    struct pollfd p = {.fd = fd, .events = ev};
    int r;
    while ((r = poll(&p, 1, (int)left)) < 0 && errno == EINTR)
        ;
    return r > 0;
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t n)
{
    const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, a, buf, (socklen_t)n))
        snprintf(buf, n, "?");
}

static int try_connect(const struct sockaddr *sa, socklen_t len, char *err, size_t errn)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errn, "socket: %s", strerror(errno));
        return -1;
    }
    int r = connect(fd, sa, len), e = errno;
    if (r < 0 && e == EINPROGRESS) {
        if (!wait_fd(fd, POLLOUT, now_ms() + CONNECT_MS)) {
            e = ETIMEDOUT;
        } else {
            socklen_t l = sizeof e;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
            r = e ? -1 : 0;
        }
    }
    if (r < 0) {
        char a[64];
        addr_text(sa, a, sizeof a);
        unsigned port = ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                                         : ((const struct sockaddr_in *)sa)->sin_port);
        snprintf(err, errn, "cannot connect to %s port %u: %s", a, port, strerror(e));
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* SSE: no Nagle */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

int upstream_connect(const struct sockaddr *dst, const char *host, unsigned port, char *err,
                     size_t errn)
{
    if (dst)
        return try_connect(dst, dst->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in),
                           err, errn);
    /* An upstream rule's host: honour connect-to like the shim does. */
    const char *addr = host;
    unsigned aport = port;
    const char *ca;
    unsigned cp;
    if (kf_rules_connect_to(g_relay.rs, host, port, &ca, &cp)) {
        addr = ca;
        aport = cp;
    }
    char ps[8];
    snprintf(ps, sizeof ps, "%u", aport);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *ai, *p;
    int r = getaddrinfo(addr, ps, &hints, &ai);
    if (r) {
        snprintf(err, errn, "cannot resolve %s: %s", addr, gai_strerror(r));
        return -1;
    }
    int fd = -1;
    for (p = ai; p && fd < 0; p = p->ai_next)
        fd = try_connect(p->ai_addr, p->ai_addrlen, err, errn);
    freeaddrinfo(ai);
    return fd;
}

static int is_ip(const char *h)
{
    unsigned char b[16];
    return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

SSL *upstream_tls(int fd, const char *host, char *err, size_t errn)
{
    SSL *ssl = SSL_new(g_relay.up_ctx);
    if (!ssl) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    if (is_ip(host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    } else {
        SSL_set_tlsext_host_name(ssl, host);
        SSL_set1_host(ssl, host);
    }
    SSL_set_fd(ssl, fd);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    long deadline = now_ms() + HANDSHAKE_MS;
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(ssl, r);
        if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
            wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))
            continue;
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            snprintf(err, errn, "TLS to %s: certificate verification failed: %s", host,
                     X509_verify_cert_error_string(v));
        else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            snprintf(err, errn, "TLS to %s: handshake timed out", host);
        else {
            unsigned long le = ERR_peek_error();
            snprintf(err, errn, "TLS to %s: handshake failed: %s", host,
                     le ? ERR_reason_error_string(le) : "connection closed");
        }
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}
