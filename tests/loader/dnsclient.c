/* dnsclient.c - a client with its own DNS, TLS compiled in (OpenSSL linked
 * statically: no hook sees its plaintext, so kimifix can only help by
 * steering its connect() to the relay, and only if it knows the name).
 *
 *   dnsclient cares NAME PATH       resolve NAME with c-ares (UDP) against
 *   dnsclient cares-tcp NAME PATH   127.0.0.1:53 (-tcp: ARES_FLAG_USEVC),
 *                                   /etc/hosts not read (lookups "b")
 *   dnsclient raw-CALL NAME PATH    send one A query to 127.0.0.1:53 and
 *                                   read the answer with CALL: recv,
 *                                   recvfrom, recvmsg (connected UDP),
 *                                   unconnected (recvfrom with the source
 *                                   address), tcp (length, then message);
 *                                   prints answer-sha256 of the bytes read;
 *                                   then connects to 127.0.0.1 whatever the
 *                                   answer said
 * then POSTs PATH over TLS to NAME's address, port 443, with SNI and Host
 * NAME; prints "address: A" and "status: N". Key: $E2E_API_KEY.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tlspost.h"

struct res {
    int done, ok;
    struct in_addr a;
};

static void on_host(void *arg, int status, int timeouts, struct hostent *h)
{
    (void)timeouts;
    struct res *r = arg;
    r->done = 1;
    if (status == ARES_SUCCESS && h && h->h_addrtype == AF_INET && h->h_addr_list[0]) {
        memcpy(&r->a, h->h_addr_list[0], 4);
        r->ok = 1;
    } else {
        fprintf(stderr, "c-ares: %s\n", ares_strerror(status));
    }
}

static int by_cares(const char *name, int tcp, struct in_addr *out)
{
    ares_channel ch;
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.lookups = (char *)"b"; /* DNS only: the test's hosts file is not the point */
    o.flags = tcp ? ARES_FLAG_USEVC : 0;
    o.timeout = 3000;
    o.tries = 2;
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS ||
        ares_init_options(&ch, &o, ARES_OPT_LOOKUPS | ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS |
                                       ARES_OPT_TRIES) != ARES_SUCCESS ||
        ares_set_servers_csv(ch, "127.0.0.1") != ARES_SUCCESS)
        return -1;
    struct res r = { 0, 0, { 0 } };
    ares_gethostbyname(ch, name, AF_INET, on_host, &r);
    time_t end = time(NULL) + 20; /* hang guard */
    while (!r.done && time(NULL) < end) {
        fd_set rd, wr;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        int nfds = ares_fds(ch, &rd, &wr);
        if (!nfds)
            break;
        struct timeval tv, *tvp = ares_timeout(ch, NULL, &tv);
        select(nfds, &rd, &wr, NULL, tvp);
        ares_process(ch, &rd, &wr);
    }
    ares_destroy(ch);
    ares_library_cleanup();
    *out = r.a;
    return r.ok ? 0 : -1;
}

/* An A query for name (id 0x4b46). */
static size_t query(unsigned char *q, const char *name)
{
    static const unsigned char hdr[12] = { 0x4b, 0x46, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0 };
    size_t n = sizeof hdr;
    memcpy(q, hdr, n);
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        q[n++] = (unsigned char)l;
        memcpy(q + n, name, l);
        n += l;
        name += l + (dot ? 1 : 0);
    }
    q[n++] = 0;
    q[n++] = 0, q[n++] = 1; /* A */
    q[n++] = 0, q[n++] = 1; /* IN */
    return n;
}

static int readall(int fd, unsigned char *b, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = recv(fd, b + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Send the query, read the answer with `call`; returns its length. */
static ssize_t by_raw(const char *call, const char *name, unsigned char *ans, size_t cap)
{
    unsigned char q[512];
    size_t qn = query(q, name);
    struct sockaddr_in ns = { .sin_family = AF_INET, .sin_port = htons(53) };
    inet_pton(AF_INET, "127.0.0.1", &ns.sin_addr);
    int tcp = !strcmp(call, "tcp"), unconnected = !strcmp(call, "unconnected");
    int fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    struct timeval tv = { 10, 0 }; /* hang guard */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd < 0 || (!unconnected && connect(fd, (struct sockaddr *)&ns, sizeof ns) != 0))
        return -1;
    if (tcp) {
        unsigned char len[2] = { (unsigned char)(qn >> 8), (unsigned char)qn };
        if (send(fd, len, 2, 0) != 2 || send(fd, q, qn, 0) != (ssize_t)qn ||
            readall(fd, len, 2) != 0)
            return -1;
        size_t an = (size_t)len[0] << 8 | len[1];
        if (an > cap || readall(fd, ans, an) != 0)
            return -1;
        close(fd);
        return (ssize_t)an;
    }
    if (sendto(fd, q, qn, 0, (struct sockaddr *)&ns, sizeof ns) != (ssize_t)qn)
        return -1;
    ssize_t r;
    if (!strcmp(call, "recv")) {
        r = recv(fd, ans, cap, 0);
    } else if (!strcmp(call, "recvfrom")) {
        r = recvfrom(fd, ans, cap, 0, NULL, NULL);
    } else if (unconnected) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        r = recvfrom(fd, ans, cap, 0, (struct sockaddr *)&from, &fl);
    } else {
        struct iovec v = { ans, cap };
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = &v;
        m.msg_iovlen = 1;
        r = recvmsg(fd, &m, 0);
    }
    close(fd);
    return r;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 4)
        return fprintf(stderr, "usage: dnsclient cares|cares-tcp|raw-CALL NAME PATH\n"), 2;
    const char *mode = argv[1], *name = argv[2], *path = argv[3];
    struct in_addr a;
    inet_pton(AF_INET, "127.0.0.1", &a);
    if (!strncmp(mode, "cares", 5)) {
        if (by_cares(name, !strcmp(mode, "cares-tcp"), &a) != 0)
            return printf("status: -1\n"), 1;
    } else if (!strncmp(mode, "raw-", 4)) {
        unsigned char ans[4096], md[32];
        ssize_t n = by_raw(mode + 4, name, ans, sizeof ans);
        if (n < 0)
            return printf("status: -1\n"), 1;
        unsigned mdl = 0;
        EVP_Digest(ans, (size_t)n, md, &mdl, EVP_sha256(), NULL);
        printf("answer-sha256: ");
        for (unsigned i = 0; i < mdl; i++)
            printf("%02x", md[i]);
        printf("\n");
    } else {
        return fprintf(stderr, "dnsclient: unknown mode %s\n", mode), 2;
    }
    char t[INET_ADDRSTRLEN];
    printf("address: %s\n", inet_ntop(AF_INET, &a, t, sizeof t));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(443), .sin_addr = a };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return perror("connect"), printf("status: -1\n"), 1;
    const char *key = getenv("E2E_API_KEY");
    printf("status: %d\n", kf_tls_post(fd, name, path, key ? key : ""));
    close(fd);
    return 0;
}
