/* rawsend.c - send a file's bytes on one TCP connection (run under the
 * shim by tests/hardening/run.sh and hammer's exec chains).
 *
 *   rawsend PORT FILE [one|pieces|bytes]
 *
 * FILE "-" sends the standard doubled-/v1 request (hammer.c's REQ).
 * pieces: 7-byte writes; bytes: one byte per write. Handles EINTR/short
 * counts; shuts down its side and waits (5 s) for the server to close.
 * Exit 0 when everything was sent. Never writes to stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hardening/req.h"

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    char *data;
    size_t len;
    if (!strcmp(argv[2], "-")) {
        data = strdup(HARD_REQ);
        len = strlen(data);
    } else {
        FILE *f = fopen(argv[2], "rb");
        if (!f)
            return 2;
        data = malloc(8 << 20);
        len = fread(data, 1, 8 << 20, f);
        fclose(f);
    }
    const char *mode = argc > 3 ? argv[3] : "one";
    size_t step = !strcmp(mode, "pieces") ? 7 : !strcmp(mode, "bytes") ? 1 : (size_t)-1;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "rawsend: connect: %s\n", strerror(errno));
        return 1;
    }
    for (size_t off = 0; off < len;) {
        size_t n = len - off < step ? len - off : step;
        ssize_t r = write(s, data + off, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (size_t)r > n) {
            fprintf(stderr, "rawsend: write returned %zd for %zu: %s\n", r, n, strerror(errno));
            return 1;
        }
        off += (size_t)r;
    }
    shutdown(s, SHUT_WR);
    char b[4096];
    struct pollfd p = { .fd = s, .events = POLLIN };
    while (poll(&p, 1, 5000) > 0 && read(s, b, sizeof b) > 0)
        ;
    close(s);
    free(data);
    return 0;
}
