/* steerclient.c - a TCP client for the relay-steering tests (test_steer.c),
 * run under LD_PRELOAD=libkimifix.so.
 *
 *   steerclient HOST PORT N [nonblock|block] [hold]
 *
 * Resolves HOST with getaddrinfo (so the shim knows the name), then N times:
 * connect (a non-blocking socket waits for writability and checks
 * SO_ERROR, like libuv), write "hello N\n", check that O_NONBLOCK is as it
 * was, print the peer address getpeername() reports, close. With `hold`
 * all N connections are opened first and kept open until each has written
 * (then an HTTP request with the doubled /v1, "X-N: N", no body) and
 * reported its peer; then all are closed. Reports on
 * stderr (stdout must stay empty: the shim never writes there):
 *   trust NAME=VALUE          for each trust variable at main()
 *   conn I rc=R peer=ADDR:PORT nonblock=0|1
 * Exit 0 when every connection succeeded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *addr_text(const struct sockaddr_storage *ss, char *buf, size_t n)
{
    char a[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *i = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &i->sin_addr, a, sizeof a);
        port = ntohs(i->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *i = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &i->sin6_addr, a, sizeof a);
        port = ntohs(i->sin6_port);
    }
    snprintf(buf, n, "%s:%u", a, port);
    return buf;
}

/* Write connection i's bytes, report its peer address; close it unless
 * the caller holds them. 1 when all went well. */
static int report(int i, int fd, int err, int nonblock, int http)
{
    int rc = err ? -1 : 0;
    errno = err;
    char msg[160], peer[128] = "-";
    int n = http ? snprintf(msg, sizeof msg, "POST /coding/v1/v1/messages HTTP/1.1\r\nHost: "
                            "api.kimi.com\r\nX-N: %d\r\nContent-Length: 0\r\n\r\n", i)
                 : snprintf(msg, sizeof msg, "hello %d\n", i);
    if (rc == 0 && write(fd, msg, (size_t)n) != n)
        rc = -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (rc == 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        addr_text(&ss, peer, sizeof peer);
    int nb = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
    fprintf(stderr, "conn %d rc=%d%s%s peer=%s nonblock=%d\n", i, rc, rc ? " " : "",
            rc ? strerror(errno) : "", peer, nb);
    if (!http)
        close(fd);
    return rc == 0 && nb == nonblock;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    static const char *const vars[] = { "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE" };
    for (unsigned i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        fprintf(stderr, "trust %s=%s\n", vars[i], v ? v : "");
    }
    int nonblock = argc > 4 && !strcmp(argv[4], "nonblock");
    int hold = argc > 5 && !strcmp(argv[5], "hold");
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
    int e = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (e) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(e));
        return 1;
    }
    int n = atoi(argv[3]);
    if (n < 0 || n > 100000)
        return 2;
    struct rlimit rl; /* hold: n sockets open at once */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int *fds = calloc((size_t)n + 1, sizeof *fds), *rcs = calloc((size_t)n + 1, sizeof *rcs);
    if (!fds || !rcs)
        return 2;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
        int rc = connect(fd, res->ai_addr, res->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            int err = 0;
            socklen_t l = sizeof err;
            poll(&p, 1, -1);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
            rc = err ? -1 : 0;
            errno = err;
        }
        fds[i] = fd;
        rcs[i] = rc ? errno : 0;
        if (!hold)
            ok &= report(i, fd, rcs[i], nonblock, 0);
    }
    for (int i = 0; hold && i < n; i++)
        ok &= report(i, fds[i], rcs[i], nonblock, 1);
    for (int i = 0; hold && i < n; i++)
        close(fds[i]);
    freeaddrinfo(res);
    free(fds);
    free(rcs);
    return ok ? 0 : 1;
}
