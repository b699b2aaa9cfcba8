/* steerclient.c - a TCP client for the relay-steering tests (test_steer.c),
 * run under LD_PRELOAD=libkimifix.so.
 *
 *   steerclient HOST PORT N [nonblock]
 *
 * Resolves HOST with getaddrinfo (so the shim knows the name), then N times:
 * connect (a non-blocking socket waits for writability and checks
 * SO_ERROR, like libuv), write "hello N\n", check that O_NONBLOCK is as it
 * was, print the peer address getpeername() reports, close. Reports on
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
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
    int e = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (e) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(e));
        return 1;
    }
    int ok = 1;
    for (int i = 0; i < atoi(argv[3]); i++) {
        int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
        int rc = connect(fd, res->ai_addr, res->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            int err = 0;
            socklen_t l = sizeof err;
            poll(&p, 1, 5000);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
            rc = err ? -1 : 0;
            errno = err;
        }
        char msg[32], peer[128] = "-";
        int n = snprintf(msg, sizeof msg, "hello %d\n", i);
        if (rc == 0 && write(fd, msg, (size_t)n) != n)
            rc = -1;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (rc == 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
            addr_text(&ss, peer, sizeof peer);
        int nb = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
        fprintf(stderr, "conn %d rc=%d%s%s peer=%s nonblock=%d\n", i, rc, rc ? " " : "",
                rc ? strerror(errno) : "", peer, nb);
        if (rc != 0 || nb != nonblock)
            ok = 0;
        close(fd);
    }
    freeaddrinfo(res);
    return ok ? 0 : 1;
}
