/* recvpath.c - figure 12: the receive hooks' cost (src/hooks/libc_recv.c).
 *
 *   recvpath MODE N ADDR     prints ns_per_call=X
 *
 * Each round a "server" UDP socket sends one datagram to a "client" UDP
 * socket and the client reads it with MODE's call inside bench_recv()
 * (noinline: callgrind --toggle-collect=bench_recv* counts the read only):
 *   recv, recvfrom, recvfrom-addr, recvmsg, recvmsg-addr
 *               a 1-byte datagram on a socket that is not a DNS socket
 *               (-addr: the caller asks for the source address, which the
 *               hooks then look at)
 *   dns-other   a DNS answer about www.example.org, read with recv() on a
 *               socket connected to ADDR:53 (a DNS socket: the hook reads
 *               the question and checks it against the rules)
 *   dns-rule    the same for api.kimi.com (learned: the address table)
 *   sendto-addr the other direction: the server's sendto() with the
 *               client's address is what bench_recv() counts (the send
 *               hooks look at the destination port: 53 marks a resolver's
 *               socket); the client reads it outside
 *   write       1-byte write() to /dev/null in bench_recv (figure 1's
 *               fast path, measured in the same run for comparison)
 * ADDR: a loopback address whose port 53 is free (the server binds it; as
 * root, or under `unshare -rn`).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"
#include "dnsmsg.h"

enum { M_RECV, M_RECVFROM, M_RECVFROM_ADDR, M_RECVMSG, M_RECVMSG_ADDR, M_DNS, M_WRITE, M_SENDTO };

static int mode, cli, srv, devnull;
static unsigned char msg[512], buf[4096];
static size_t msglen;
static struct sockaddr_in cli_addr;

__attribute__((noinline)) static ssize_t bench_recv(void)
{
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    struct iovec v = { buf, sizeof buf };
    struct msghdr m;
    switch (mode) {
    case M_RECV:
    case M_DNS:
        return recv(cli, buf, sizeof buf, 0);
    case M_RECVFROM:
        return recvfrom(cli, buf, sizeof buf, 0, NULL, NULL);
    case M_RECVFROM_ADDR:
        return recvfrom(cli, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    case M_WRITE:
        return write(devnull, buf, 1);
    case M_SENDTO:
        return sendto(srv, msg, msglen, 0, (struct sockaddr *)&cli_addr, sizeof cli_addr);
    default:
        memset(&m, 0, sizeof m);
        m.msg_iov = &v;
        m.msg_iovlen = 1;
        if (mode == M_RECVMSG_ADDR) {
            m.msg_name = &from;
            m.msg_namelen = sizeof from;
        }
        return recvmsg(cli, &m, 0);
    }
}

__attribute__((noinline)) static void bench_loop(long n)
{
    for (long i = 0; i < n; i++) {
        if (mode != M_WRITE && mode != M_SENDTO && send(srv, msg, msglen, 0) != (ssize_t)msglen) {
            perror("send");
            exit(1);
        }
        if (bench_recv() < 0) {
            perror("bench_recv");
            exit(1);
        }
        if (mode == M_SENDTO && recv(cli, buf, sizeof buf, 0) < 0) {
            perror("recv");
            exit(1);
        }
    }
}

static void pair(const char *addr, int dns)
{
    struct sockaddr_in s = { .sin_family = AF_INET }, c = { .sin_family = AF_INET };
    socklen_t cl = sizeof c;
    if (inet_pton(AF_INET, addr, &s.sin_addr) != 1)
        exit(fprintf(stderr, "recvpath: bad address %s\n", addr) ? 2 : 2);
    s.sin_port = htons(dns ? 53 : 0);
    srv = socket(AF_INET, SOCK_DGRAM, 0);
    cli = socket(AF_INET, SOCK_DGRAM, 0);
    socklen_t sl = sizeof s;
    if (bind(srv, (struct sockaddr *)&s, sizeof s) != 0 ||
        getsockname(srv, (struct sockaddr *)&s, &sl) != 0) {
        perror("recvpath: bind (port 53 needs root or unshare -rn)");
        exit(1);
    }
    c.sin_addr = s.sin_addr;
    /* the client connects to the server (port 53 for dns: a DNS socket) */
    if (bind(cli, (struct sockaddr *)&c, sizeof c) != 0 ||
        getsockname(cli, (struct sockaddr *)&c, &cl) != 0 ||
        connect(cli, (struct sockaddr *)&s, sizeof s) != 0 ||
        connect(srv, (struct sockaddr *)&c, sizeof c) != 0) {
        perror("recvpath: sockets");
        exit(1);
    }
    cli_addr = c;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return fprintf(stderr, "usage: recvpath MODE N ADDR\n"), 2;
    static const char *const names[] = { "recv", "recvfrom", "recvfrom-addr", "recvmsg",
                                         "recvmsg-addr" };
    long n = atol(argv[2]);
    mode = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(argv[1], names[i]))
            mode = i;
    const char *rule = NULL;
    if (!strcmp(argv[1], "dns-other"))
        mode = M_DNS, rule = "www.example.org";
    else if (!strcmp(argv[1], "dns-rule"))
        mode = M_DNS, rule = "api.kimi.com";
    else if (!strcmp(argv[1], "write"))
        mode = M_WRITE;
    else if (!strcmp(argv[1], "sendto-addr"))
        mode = M_SENDTO;
    if (mode < 0)
        return fprintf(stderr, "recvpath: unknown mode %s\n", argv[1]), 2;
    devnull = open("/dev/null", O_WRONLY);
    if (mode != M_WRITE)
        pair(argv[3], mode == M_DNS);
    if (rule) {
        dnsmsg d;
        dm_simple(&d, rule, 10, 83, 83, 83);
        memcpy(msg, d.b, d.n);
        msglen = d.n;
    } else {
        msg[0] = 'x';
        msglen = 1;
    }
    bench_loop(n / 10 + 1); /* warm up */
    uint64_t t0 = bench_now_ns();
    bench_loop(n);
    uint64_t t1 = bench_now_ns();
    printf("ns_per_call=%.2f\n", (double)(t1 - t0) / (double)n);
    return 0;
}
