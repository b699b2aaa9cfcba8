/* rclient.c - test client for kimifix-relay: does what the shim will do
 * (connect to the relay, write the PROXY v2 preamble with the token), then
 * TLS trusting the kimifix CA (or plain), sends a request, reads the answer.
 *
 *   rclient -p RELAYPORT -t TOKENHEX -d ADDR:PORT [-a AUTHORITY] [-s SNI]
 *           [-c CAFILE] [-P] [-r REQFILE] [-n CONNS] [-H HOLD_S] [-W FILE] [-T TIMEOUT_S]
 *           [-k REPEAT] [-X]
 *
 * -X: register this process's client context with the relay first, as the
 * shim does (kf_ctxmsg_self: KIMIFIX_RULES, KIMIFIX_LOG -- stderr is handed
 * over as `log fd` --, trust sources; over RUNDIR/relay.sock), and send its
 * id in the preamble (TLV 0xE1). Prints "ctx ID" on stderr.
 * -t none: no token TLV. -P: plain HTTP. -n: open CONNS connections at once,
 * each sends REQFILE (keep-alive) and reads one response, all stay open until
 * every one has its answer, then HOLD_S seconds more, or with -W until FILE
 * exists (the test measures the relay meanwhile, however long that takes);
 * prints "ok K/N". -T: read timeout, a hang guard (default 60 s).
 * -k: keep-alive: send REQFILE REPEAT times on one connection, reading one
 * 200 response (Content-Length) after each; prints "ok K/REPEAT", closes.
 * Single mode prints the response on stdout and timings on stderr:
 *   first-byte-ms N / first-event-ms N / total-ms N
 * Exit: 0 clean end, 2 TLS handshake failed, 3 closed before any response
 * byte, 4 connection broke (unclean EOF, reset) after data, 5 timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kf_ctxmsg.h"
#include "kf_log.h"
#include "kf_paths.h"
#include "kf_proxy.h"
#include "kf_steer.h"

static unsigned relay_port;
static unsigned char token[16];
static int use_token = 1, plain, steer;
static struct sockaddr_storage dst;
static const char *authority = "", *sni, *cafile;
static char *req;
static size_t req_len;
static int timeout_s = 60, hold_s, repeat;
static const char *hold_file;
static SSL_CTX *ctx;
static int use_cctx;
static unsigned char cctx[KF_CTX_ID_LEN];

static long ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

typedef struct cl {
    int fd;
    SSL *ssl;
} cl;

static int cl_open(cl *c)
{
    struct sockaddr_in r = {.sin_family = AF_INET, .sin_port = htons((uint16_t)relay_port)};
    r.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->ssl = NULL;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = timeout_s};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (steer) {
        /* What the shim will do: kf_steer_connect() on a non-blocking socket
         * that "connects" to the original destination. */
        kf_relay_state st = {.port = relay_port};
        memcpy(st.token, token, sizeof token);
        kf_steer_io io = {.connect = connect, .write = write};
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        if (kf_steer_connect(c->fd, (struct sockaddr *)&dst, sizeof dst, authority, &st, &io) < 0)
            return 3;
        if (!(fcntl(c->fd, F_GETFL) & O_NONBLOCK))
            return fprintf(stderr, "rclient: flags not restored\n"), 6;
        fprintf(stderr, "steered, O_NONBLOCK kept\n");
        fcntl(c->fd, F_SETFL, 0);
        goto tls;
    }
    if (connect(c->fd, (struct sockaddr *)&r, sizeof r) < 0)
        return 3;
    unsigned char pre[KF_PROXY_MAX];
    ssize_t n = kf_proxy_encode_ctx(pre, sizeof pre, 0, NULL, (struct sockaddr *)&dst, authority,
                                    use_token ? token : NULL, use_cctx ? cctx : NULL);
    if (n < 0 || write(c->fd, pre, (size_t)n) != n)
        return 3;
tls:
    if (plain)
        return 0;
    c->ssl = SSL_new(ctx);
    if (sni && *sni) {
        SSL_set_tlsext_host_name(c->ssl, sni);
        SSL_set1_host(c->ssl, sni);
    } else if (*authority) {
        SSL_set1_host(c->ssl, authority);
    }
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1) {
        long v = SSL_get_verify_result(c->ssl);
        fprintf(stderr, "rclient: TLS failed: %s\n",
                v != X509_V_OK ? X509_verify_cert_error_string(v)
                               : ERR_reason_error_string(ERR_peek_error()) ?: "closed");
        return 2;
    }
    const unsigned char *alpn;
    unsigned alen;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
    fprintf(stderr, "alpn %.*s\n", (int)alen, alen ? (const char *)alpn : "-");
    return 0;
}

static int cl_write(cl *c, const void *b, size_t n)
{
    if (c->ssl)
        return SSL_write(c->ssl, b, (int)n) == (int)n ? 0 : -1;
    return write(c->fd, b, n) == (ssize_t)n ? 0 : -1;
}

/* >0 bytes, 0 clean EOF, -1 broken, -2 timeout */
static int cl_read(cl *c, char *b, size_t n)
{
    if (!c->ssl) {
        ssize_t r = read(c->fd, b, n);
        if (r < 0)
            return errno == EAGAIN ? -2 : -1;
        return (int)r;
    }
    int r = SSL_read(c->ssl, b, (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -2;
    return -1;
}

static void cl_close(cl *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
}

static int single(void)
{
    cl c;
    long t0 = ms();
    int rc = cl_open(&c);
    if (rc)
        return rc;
    if (cl_write(&c, req, req_len) < 0)
        return 3;
    char buf[16384];
    size_t total = 0;
    long first = -1, event = -1;
    int r;
    char tail[8] = "";
    while ((r = cl_read(&c, buf, sizeof buf)) > 0) {
        if (first < 0)
            first = ms() - t0;
        if (event < 0 && (memmem(buf, (size_t)r, "data:", 5) || memmem(buf, (size_t)r, "event:", 6)))
            event = ms() - t0;
        fwrite(buf, 1, (size_t)r, stdout);
        fflush(stdout);
        total += (size_t)r;
        (void)tail;
    }
    fprintf(stderr, "first-byte-ms %ld\nfirst-event-ms %ld\ntotal-ms %ld\n", first, event, ms() - t0);
    cl_close(&c);
    if (r == -2)
        return 5;
    if (total == 0)
        return 3;
    return r < 0 ? 4 : 0;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int nconns, ndone, nok;

/* Read one response: head, then Content-Length bytes. */
static int one_response(cl *c)
{
    char buf[16384];
    size_t have = 0;
    long clen = -1;
    char *end = NULL;
    for (;;) {
        int r = cl_read(c, buf + have, sizeof buf - 1 - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
        buf[have] = 0;
        if (!end && (end = strstr(buf, "\r\n\r\n"))) {
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            clen = cl ? strtol(cl + 17, NULL, 10) : 0;
            if (strncmp(buf, "HTTP/1.1 200", 12))
                return -1;
        }
        if (end && (long)(have - (size_t)(end + 4 - buf)) >= clen)
            return 0;
    }
}

static void *worker(void *arg)
{
    (void)arg;
    cl c;
    int ok = cl_open(&c) == 0 && cl_write(&c, req, req_len) == 0 && one_response(&c) == 0;
    pthread_mutex_lock(&mu);
    ndone++;
    nok += ok;
    pthread_cond_broadcast(&cv);
    while (ndone < nconns)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    if (hold_file)
        while (access(hold_file, F_OK) != 0)
            usleep(20000);
    else
        sleep((unsigned)hold_s);
    cl_close(&c);
    return NULL;
}

static int keepalive(int n)
{
    cl c;
    int rc = cl_open(&c), ok = 0;
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        if (cl_write(&c, req, req_len) < 0 || one_response(&c) < 0)
            break;
        ok++;
    }
    printf("ok %d/%d\n", ok, n);
    if (c.ssl)
        SSL_shutdown(c.ssl);
    cl_close(&c);
    return ok == n ? 0 : 4;
}

static int many(int n)
{
    pthread_t *t = calloc((size_t)n, sizeof *t);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    nconns = n;
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], &a, worker, NULL)) {
            pthread_mutex_lock(&mu);
            nconns--;
            pthread_mutex_unlock(&mu);
            t[i] = 0;
        }
    pthread_mutex_lock(&mu);
    while (ndone < nconns)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    printf("ok %d/%d\n", nok, n);
    fflush(stdout);
    for (int i = 0; i < n; i++)
        if (t[i])
            pthread_join(t[i], NULL);
    free(t);
    return nok == n ? 0 : 1;
}

static int parse_dst(const char *s)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    unsigned port = (unsigned)atoi(colon + 1);
    struct sockaddr_in *a = (struct sockaddr_in *)&dst;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&dst;
    if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
    } else {
        return -1;
    }
    return 0;
}

/* What the shim does on its first steered connection (steer_ctx.c). */
static int register_ctx(void)
{
    char msg[KF_CTXMSG_MAX], reply[KF_CTXMSG_REPLY_MAX], why[512], run[4096], hex[64];
    const char *log = getenv("KIMIFIX_LOG");
    kf_log_open(log && *log ? log : "off");
    int fd;
    ssize_t n = kf_ctxmsg_self(msg, sizeof msg, NULL, &fd);
    if (n < 0 || kf_runtime_dir(run, sizeof run, 0) < 0)
        return fprintf(stderr, "rclient: no registration\n"), -1;
    if (kf_ctx_call(run, msg, (size_t)n, fd, KF_CTX_TIMEOUT_MS, reply, sizeof reply, why,
                    sizeof why) != 1 ||
        kf_ctx_id_parse((kf_str){reply, strlen(reply)}, cctx) < 0)
        return fprintf(stderr, "rclient: registration failed: %s %s\n", why, reply), -1;
    kf_ctx_id_hex(cctx, hex);
    fprintf(stderr, "ctx %s\n", hex);
    use_cctx = 1;
    return 0;
}

int main(int argc, char **argv)
{
    int n = 0;
    const char *reqfile = NULL;
    signal(SIGPIPE, SIG_IGN);
    for (int c; (c = getopt(argc, argv, "p:t:d:a:s:c:Pr:n:H:W:T:Sk:X")) != -1;) {
        switch (c) {
        case 'p': relay_port = (unsigned)atoi(optarg); break;
        case 't':
            if (!strcmp(optarg, "none"))
                use_token = 0;
            else if (kf_hex_decode(optarg, strlen(optarg), token, sizeof token))
                return fprintf(stderr, "rclient: bad token\n"), 64;
            break;
        case 'd':
            if (parse_dst(optarg))
                return fprintf(stderr, "rclient: bad -d\n"), 64;
            break;
        case 'a': authority = optarg; break;
        case 's': sni = optarg; break;
        case 'c': cafile = optarg; break;
        case 'P': plain = 1; break;
        case 'S': steer = 1; break;
        case 'r': reqfile = optarg; break;
        case 'n': n = atoi(optarg); break;
        case 'H': hold_s = atoi(optarg); break;
        case 'W': hold_file = optarg; break;
        case 'T': timeout_s = atoi(optarg); break;
        case 'k': repeat = atoi(optarg); break;
        case 'X': use_cctx = 1; break;
        default: return 64;
        }
    }
    if (use_cctx && register_ctx() < 0)
        return 64;
    if (reqfile) {
        FILE *f = fopen(reqfile, "rb");
        if (!f)
            return perror(reqfile), 64;
        size_t cap = 1 << 16, n;
        req = malloc(cap);
        while ((n = fread(req + req_len, 1, cap - req_len, f)) > 0)
            if ((req_len += n) == cap)
                req = realloc(req, cap *= 2);
        fclose(f);
    } else {
        req = strdup("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        req_len = strlen(req);
    }
    if (!plain) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (cafile && SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
            return fprintf(stderr, "rclient: cannot load %s\n", cafile), 64;
        static const unsigned char alpn[] = "\x02h2\x08http/1.1";
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    }
    return repeat > 0 ? keepalive(repeat) : n > 0 ? many(n) : single();
}
