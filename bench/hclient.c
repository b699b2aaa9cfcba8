/* hclient.c - HTTP/1.1 load client for the bench (OpenSSL or plain).
 *
 *   hclient -a 127.0.0.1:PORT [-P] [-c CAFILE] [-s SNI] [-g]
 *           [-t TOKENHEX -d DSTPORT] [-x HOST:PORT [-u USER:PASS]] MODE ARG
 * MODE lat N     N sequential keep-alive requests (small POST);
 *                prints p50_us= p99_us= rps= ok= n=
 *      up BYTES  one POST with a BYTES body, written 16 KiB per call;
 *                prints mib_s= secs= ok=
 *      down BYTES  GET /down/BYTES; prints mib_s= secs= ok=
 *      conn N    N connections opened (and, with -x, tunnelled) and closed
 *                one after the other; prints p50_us= p99_us= n=
 * Requests are the buggy ones (POST /coding/v1/v1/messages, X-Msh-Platform:
 * kimi_code_cli) unless -g (already right). ok= counts answers whose
 * X-Kf-Ok says the sink saw a rewritten head. -t/-d: first write the PROXY
 * v2 preamble the shim writes for the relay (dst 127.0.0.1:DSTPORT,
 * authority SNI, token), as tests/relay/rclient.c does. -x/-u: -a is an
 * HTTP proxy (the relay's proxy carrier): CONNECT HOST:PORT with Basic
 * credentials first, then the request through the tunnel.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "common.h"
#include "kf_paths.h"
#include "kf_proxy.h"

static int fd;
static SSL *ssl;
static char rbuf[1 << 16];
static size_t rhave;

static int io_write(const void *b, size_t n)
{
    const char *p = b;
    while (n) {
        ssize_t r;
        if (ssl) {
            int k = SSL_write(ssl, p, (int)n);
            r = k > 0 ? k : -1;
        } else {
            r = write(fd, p, n);
        }
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static ssize_t io_read(void *b, size_t n)
{
    if (ssl) {
        int r = SSL_read(ssl, b, (int)n);
        return r > 0 ? r : -1;
    }
    ssize_t r = read(fd, b, n);
    return r > 0 ? r : -1;
}

/* Read one response; returns X-Kf-Ok (0/1) or -1. */
static int read_response(void)
{
    char *end;
    for (;;) {
        rbuf[rhave] = 0;
        if ((end = strstr(rbuf, "\r\n\r\n")))
            break;
        ssize_t r = io_read(rbuf + rhave, sizeof rbuf - 1 - rhave);
        if (r <= 0)
            return -1;
        rhave += (size_t)r;
    }
    size_t hl = (size_t)(end + 4 - rbuf);
    if (strncmp(rbuf, "HTTP/1.1 200", 12))
        return fprintf(stderr, "hclient: %.60s\n", rbuf), -1;
    const char *cl = strcasestr(rbuf, "\r\ncontent-length:");
    unsigned long long body = cl && cl < end ? strtoull(cl + 17, NULL, 10) : 0;
    const char *okh = strcasestr(rbuf, "\r\nx-kf-ok:");
    int ok = okh && okh < end && strtol(okh + 10, NULL, 10) == 1;
    size_t extra = rhave - hl;
    if (extra >= body) {
        memmove(rbuf, rbuf + hl + body, extra - body);
        rhave = extra - body;
        return ok;
    }
    body -= extra;
    rhave = 0;
    static char big[1 << 16];
    while (body) {
        ssize_t r = io_read(big, body < sizeof big ? body : sizeof big);
        if (r <= 0)
            return -1;
        body -= (unsigned long long)r;
    }
    return ok;
}

/* Connect to sa; with via, CONNECT via (cred: "user:pass" or NULL) and
 * wait for the proxy's 2xx. The fd, or -1. */
static int dial(const struct sockaddr_in *sa, const char *via, const char *cred)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (s < 0 || connect(s, (const struct sockaddr *)sa, sizeof *sa))
        return perror("hclient: connect"), -1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!via)
        return s;
    char req[1024], b64[400] = "", resp[4096];
    if (cred && strlen(cred) < 280)
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cred, (int)strlen(cred));
    int n = snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", via, via,
                     cred ? "Proxy-Authorization: Basic " : "", b64, cred ? "\r\n" : "");
    if (write(s, req, (size_t)n) != n)
        return close(s), -1;
    /* Peek, then take exactly the answer's head: nothing of the tunnel is
     * read, in two system calls (as a buffered client reads it) rather than
     * one per byte, which would be the client's cost in row b, not the
     * relay's. */
    size_t have = 0;
    char *end = NULL;
    while (!end && have < sizeof resp - 1) {
        ssize_t r = recv(s, resp + have, sizeof resp - 1 - have, MSG_PEEK);
        if (r <= 0)
            return close(s), fprintf(stderr, "hclient: proxy closed\n"), -1;
        resp[have + (size_t)r] = 0;
        end = memmem(resp + (have > 3 ? have - 3 : 0), (size_t)r + (have > 3 ? 3 : have), "\r\n\r\n", 4);
        size_t take = end ? (size_t)(end + 4 - resp) - have : (size_t)r;
        if (recv(s, resp + have, take, 0) != (ssize_t)take)
            return close(s), fprintf(stderr, "hclient: proxy closed\n"), -1;
        have += take;
    }
    resp[have] = 0;
    if (strncmp(resp, "HTTP/1.1 200", 12) && strncmp(resp, "HTTP/1.0 200", 12))
        return close(s), fprintf(stderr, "hclient: proxy said %.80s\n", resp), -1;
    return s;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *addr = NULL, *ca = NULL, *sni = "api.kimi.com", *tok = NULL, *via = NULL,
               *cred = NULL;
    int plain = 0, good = 0, opt;
    unsigned dport = 0;
    while ((opt = getopt(argc, argv, "a:Pc:s:gt:d:x:u:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'P': plain = 1; break;
        case 'c': ca = optarg; break;
        case 's': sni = optarg; break;
        case 'g': good = 1; break;
        case 't': tok = optarg; break;
        case 'd': dport = (unsigned)atoi(optarg); break;
        case 'x': via = optarg; break;
        case 'u': cred = optarg; break;
        default: return 2;
        }
    }
    if (!addr || argc - optind != 2)
        return fprintf(stderr, "usage: hclient -a ADDR:PORT [-P] [-c CA] [-s SNI] [-g] "
                               "[-t TOKEN -d DSTPORT] [-x HOST:PORT [-u USER:PASS]] "
                               "lat N|up BYTES|down BYTES|conn N\n"), 2;
    const char *mode = argv[optind];
    unsigned long long arg = strtoull(argv[optind + 1], NULL, 10);

    struct sockaddr_in sa = {.sin_family = AF_INET};
    char host[64];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strchr(host, ':');
    if (!colon)
        return 2;
    *colon = 0;
    inet_pton(AF_INET, host, &sa.sin_addr);
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (!strcmp(mode, "conn")) {
        uint64_t *lat = calloc(arg ? arg : 1, sizeof *lat);
        for (unsigned long long i = 0; i < arg; i++) {
            uint64_t a = bench_now_ns();
            int s = dial(&sa, via, cred);
            if (s < 0)
                return 1;
            lat[i] = bench_now_ns() - a;
            close(s);
        }
        qsort(lat, arg, sizeof *lat, cmp_u64);
        printf("p50_us=%.1f p99_us=%.1f n=%llu\n", lat[arg / 2] / 1e3, lat[arg * 99 / 100] / 1e3, arg);
        return 0;
    }
    if ((fd = dial(&sa, via, cred)) < 0)
        return 1;
    if (tok) {
        unsigned char t[KF_PROXY_TOKEN_LEN];
        if (kf_hex_decode(tok, strlen(tok), t, sizeof t))
            return fprintf(stderr, "hclient: bad token\n"), 2;
        struct sockaddr_in dst = {.sin_family = AF_INET};
        dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        dst.sin_port = htons((uint16_t)dport);
        char pre[KF_PROXY_MAX];
        ssize_t pl = kf_proxy_encode(pre, sizeof pre, 0, NULL, (struct sockaddr *)&dst, sni, t);
        if (pl < 0 || write(fd, pre, (size_t)pl) != pl)
            return fprintf(stderr, "hclient: preamble\n"), 1;
    }
    if (!plain) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        if (ca && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
            return ERR_print_errors_fp(stderr), 1;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        static const unsigned char alpn[] = "\x08http/1.1";
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
        ssl = SSL_new(ctx);
        SSL_set_tlsext_host_name(ssl, sni);
        SSL_set1_host(ssl, sni);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1)
            return fprintf(stderr, "hclient: TLS handshake failed\n"), ERR_print_errors_fp(stderr), 1;
    }
    const char *target = good ? "/coding/v1/messages" : "/coding/v1/v1/messages";
    const char *plat = good ? "kimi_cli" : "kimi_code_cli";
    static const char small[] = "{\"model\":\"kimi-for-coding\",\"max_tokens\":16,\"messages\":[]}";
    char head[4096];
    int ok = 0;
    if (!strcmp(mode, "lat")) {
        int hl = snprintf(head, sizeof head,
                          "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kimifix-bench/1\r\n"
                          "x-api-key: sk-kimi-bench\r\nX-Msh-Platform: %s\r\n"
                          "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                          target, sni, plat, sizeof small - 1, small);
        uint64_t *lat = calloc(arg, sizeof *lat), t0 = bench_now_ns();
        for (unsigned long long i = 0; i < arg; i++) {
            uint64_t a = bench_now_ns();
            if (io_write(head, (size_t)hl))
                return fprintf(stderr, "hclient: write failed\n"), 1;
            int r = read_response();
            if (r < 0)
                return fprintf(stderr, "hclient: bad response\n"), 1;
            ok += r;
            lat[i] = bench_now_ns() - a;
        }
        uint64_t t1 = bench_now_ns();
        qsort(lat, arg, sizeof *lat, cmp_u64);
        printf("p50_us=%.1f p99_us=%.1f rps=%.0f ok=%d n=%llu\n", lat[arg / 2] / 1e3,
               lat[arg * 99 / 100] / 1e3, arg / ((t1 - t0) / 1e9), ok, arg);
        return 0;
    }
    int up = !strcmp(mode, "up");
    int hl = up ? snprintf(head, sizeof head,
                           "POST %s HTTP/1.1\r\nHost: %s\r\nx-api-key: sk-kimi-bench\r\n"
                           "X-Msh-Platform: %s\r\nContent-Type: application/octet-stream\r\n"
                           "Content-Length: %llu\r\n\r\n", target, sni, plat, arg)
                : snprintf(head, sizeof head,
                           "GET /down/%llu HTTP/1.1\r\nHost: %s\r\nx-api-key: sk-kimi-bench\r\n"
                           "X-Msh-Platform: %s\r\n\r\n", arg, sni, plat);
    uint64_t t0 = bench_now_ns();
    if (io_write(head, (size_t)hl))
        return 1;
    if (up) {
        static char chunk[16384];
        memset(chunk, 'b', sizeof chunk);
        for (unsigned long long left = arg; left;) {
            size_t k = left < sizeof chunk ? left : sizeof chunk;
            if (io_write(chunk, k))
                return fprintf(stderr, "hclient: upload failed\n"), 1;
            left -= k;
        }
    }
    int r = read_response();
    uint64_t t1 = bench_now_ns();
    if (r < 0)
        return 1;
    double s = (t1 - t0) / 1e9;
    printf("mib_s=%.1f secs=%.3f ok=%d\n", arg / s / 1048576.0, s, r);
    return 0;
}
