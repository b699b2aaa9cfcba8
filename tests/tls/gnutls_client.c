/* gnutls_client.c - a GnuTLS client writing the test request with
 * gnutls_record_send (one call, or a byte per call) or gnutls_record_send2;
 * run under LD_PRELOAD=libkimifix.so by the TLS tests.
 *
 *   gnutls_client PORT SNI CAFILE [one|bytes|send2|nb] [ALPN,LIST] [BODYBYTES]
 *
 * nb: non-blocking socket with a tiny send buffer; GNUTLS_E_AGAIN is
 * retried with NULL,0 (GnuTLS's documented alternative to same arguments).
 * Prints "alpn=X status=LINE".
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "kfreq.h"

static int retries; /* GNUTLS_E_AGAIN answers seen */

static void die(const char *what, int rc)
{
    fprintf(stderr, "gnutls_client: %s: %s\n", what, rc ? gnutls_strerror(rc) : "");
    exit(1);
}

static void send_all(gnutls_session_t s, const char *p, size_t n, int two, int fd)
{
    while (n > 0) {
        ssize_t r = two ? gnutls_record_send2(s, p, n, 0, 0) : gnutls_record_send(s, p, n);
        while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            retries++;
            struct pollfd pf = { fd, POLLOUT, 0 };
            poll(&pf, 1, 5000);
            r = gnutls_record_send(s, NULL, 0); /* "flush what you have" retry */
        }
        if (r <= 0)
            die("send", (int)r);
        p += r;
        n -= (size_t)r;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 64;
    int port = atoi(argv[1]);
    const char *sni = argv[2], *ca = argv[3], *mode = argc > 4 ? argv[4] : "one";
    const char *alpn = argc > 5 && *argv[5] ? argv[5] : NULL;
    size_t bodybytes = argc > 6 ? strtoul(argv[6], NULL, 10) : 13;
    gnutls_certificate_credentials_t cred;
    gnutls_session_t s;
    gnutls_certificate_allocate_credentials(&cred);
    if (gnutls_certificate_set_x509_trust_file(cred, ca, GNUTLS_X509_FMT_PEM) <= 0)
        die("CA file", 0);
    gnutls_init(&s, GNUTLS_CLIENT);
    gnutls_set_default_priority(s);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    if (alpn) { /* ALPN before SNI, as libcurl does not guarantee an order */
        gnutls_datum_t d[8];
        unsigned nd = 0;
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", alpn);
        for (char *t = strtok(tmp, ","); t && nd < 8; t = strtok(NULL, ","))
            d[nd++] = (gnutls_datum_t){ (unsigned char *)strdup(t), (unsigned)strlen(t) };
        gnutls_alpn_set_protocols(s, d, nd, 0);
        for (unsigned i = 0; i < nd; i++)
            free(d[i].data);
    }
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, sni, strlen(sni));
    gnutls_session_set_verify_cert(s, sni, 0);
    int nb = strcmp(mode, "nb") == 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (nb) {
        int small = 2048;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect", 0);
    gnutls_transport_set_int(s, fd);
    int rc;
    do
        rc = gnutls_handshake(s);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0)
        die("handshake", rc);
    if (nb)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t n;
    char *req = kfreq_make(sni, KFREQ_PATH, bodybytes, &n);
    if (strcmp(mode, "bytes") == 0)
        for (size_t i = 0; i < n; i++)
            send_all(s, req + i, 1, 0, fd);
    else
        send_all(s, req, n, strcmp(mode, "send2") == 0, fd);
    if (nb)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    char buf[4096] = "";
    size_t got = 0;
    gnutls_datum_t sel = { NULL, 0 };
    int h2 = gnutls_alpn_get_selected_protocol(s, &sel) == 0 && sel.size == 2;
    while (!h2 && got < sizeof buf - 1) {
        ssize_t r = gnutls_record_recv(s, buf + got, sizeof buf - 1 - got);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r <= 0) {
            if (r < 0)
                fprintf(stderr, "gnutls_client: recv: %s\n", gnutls_strerror((int)r));
            break;
        }
        got += (size_t)r;
        buf[got] = 0;
        if (strstr(buf, "\r\n\r\nok"))
            break;
    }
    printf("alpn=%.*s status=%.*s retries=%d\n", (int)sel.size, sel.data ? (char *)sel.data : "",
           (int)strcspn(buf, "\r\n"), buf, retries);
    gnutls_bye(s, GNUTLS_SHUT_WR);
    close(fd);
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    free(req);
    return 0;
}
