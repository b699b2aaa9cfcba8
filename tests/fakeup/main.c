/* main.c: command line, listeners, readiness line, a thread per connection.
 *
 *   fakeup --certs DIR --record FILE [--bind ADDR] [--http PORT]
 *          [--https PORT] [--ready FILE] [--sse-delay-ms N] [--close-after N]
 */
#include "fakeup.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int fu_sse_delay_ms = 50;
unsigned fu_close_after;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fakeup --certs DIR --record FILE [--bind ADDR] [--http PORT]\n"
               "              [--https PORT] [--ready FILE] [--sse-delay-ms N]\n"
               "              [--close-after N]\n");
}

static int listen_on(const char *addr, const char *port, unsigned *bound)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(addr, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "fakeup: bad address %s port %s: %s\n", addr, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0) {
        fprintf(stderr, "fakeup: cannot listen on %s port %s: %s\n", addr, port,
                strerror(errno));
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static int write_ready(const char *path, const char *line)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int bad = fputs(line, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void *serve(void *arg)
{
    struct fu_conn *c = arg;
    /* A stuck peer must not pin a thread forever. */
    struct timeval tv = {300, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* SSE events are small writes: Nagle + delayed ACK would hold each for
     * ~40 ms and blur "sent as produced". */
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!strcmp(c->listener, "https")) {
        c->ssl = fu_tls_new(c->fd);
        if (!c->ssl || SSL_accept(c->ssl) != 1)
            goto out;
        c->sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
        const unsigned char *a;
        unsigned al;
        SSL_get0_alpn_selected(c->ssl, &a, &al);
        if (al == 2 && !memcmp(a, "h2", 2))
            c->alpn = "h2";
        else if (al == 8 && !memcmp(a, "http/1.1", 8))
            c->alpn = "http/1.1";
    }
    if (c->alpn && !strcmp(c->alpn, "h2"))
        fu_h2_serve(c);
    else
        fu_h1_serve(c);
out:
    SSL_free(c->ssl);
    close(c->fd);
    free(c);
    return NULL;
}

static void spawn(int fd, const char *listener)
{
    static pthread_attr_t attr;
    static int attr_ready;
    if (!attr_ready) {
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 512 * 1024);
        attr_ready = 1;
    }
    struct fu_conn *c = calloc(1, sizeof *c);
    pthread_t t;
    if (!c) {
        close(fd);
        return;
    }
    static unsigned long conns; /* only the accept loop spawns */
    c->id = ++conns;
    c->fd = fd;
    c->listener = listener;
    if (pthread_create(&t, &attr, serve, c) != 0) {
        fprintf(stderr, "fakeup: cannot create a thread; dropping a connection\n");
        close(fd);
        free(c);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"certs", 1, 0, 'c'}, {"record", 1, 0, 'r'}, {"bind", 1, 0, 'b'},
        {"http", 1, 0, 'p'}, {"https", 1, 0, 's'}, {"ready", 1, 0, 'y'},
        {"sse-delay-ms", 1, 0, 'd'}, {"close-after", 1, 0, 'C'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    const char *certs = NULL, *record = NULL, *bindaddr = "127.0.0.1", *ready = NULL;
    const char *http = "0", *https = "0";
    for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (o) {
        case 'c': certs = optarg; break;
        case 'r': record = optarg; break;
        case 'b': bindaddr = optarg; break;
        case 'p': http = optarg; break;
        case 's': https = optarg; break;
        case 'y': ready = optarg; break;
        case 'd': fu_sse_delay_ms = atoi(optarg) < 0 ? 0 : atoi(optarg); break;
        case 'C': fu_close_after = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!certs || !record || optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Threads inherit a mask with SIGTERM/SIGINT blocked; only ppoll() in
     * the accept loop takes them, so a stop is never lost or misdelivered. */
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &orig);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigdelset(&orig, SIGTERM);
    sigdelset(&orig, SIGINT);

    if (fu_record_open(record) < 0) {
        fprintf(stderr, "fakeup: cannot open record file %s: %s\n", record, strerror(errno));
        return 1;
    }
    if (fu_tls_init(certs) < 0)
        return 1;
    unsigned hp = 0, sp = 0;
    int hfd = listen_on(bindaddr, http, &hp), sfd = listen_on(bindaddr, https, &sp);
    if (hfd < 0 || sfd < 0)
        return 1;
    char line[128];
    snprintf(line, sizeof line, "fakeup: http=%u https=%u\n", hp, sp);
    fputs(line, stdout);
    fflush(stdout);
    if (ready && write_ready(ready, line) < 0) {
        fprintf(stderr, "fakeup: cannot write ready file %s: %s\n", ready, strerror(errno));
        return 1;
    }
    struct pollfd pf[2] = {{hfd, POLLIN, 0}, {sfd, POLLIN, 0}};
    while (!stop) {
        if (ppoll(pf, 2, NULL, &orig) < 0)
            continue; /* EINTR: maybe a stop */
        for (int i = 0; i < 2; i++) {
            if (!(pf[i].revents & POLLIN))
                continue;
            int fd = accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0)
                spawn(fd, i ? "https" : "http");
            else if (errno == EMFILE || errno == ENFILE)
                fu_sleep_ms(10);
        }
    }
    close(hfd);
    close(sfd);
    return 0;
}
