/* deepssl_lib.c - libkfdeepssl.so: a helper library that speaks HTTPS with
 * libssl itself. deepssl loads it with RTLD_DEEPBIND, so its SSL_write and
 * connect calls are bound inside its own dependency tree. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tlspost.h"

int kfdeep_post(const char *host, const char *path, const char *key);
int kfdeep_post(const char *host, const char *path, const char *key)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, "443", &hints, &ai) != 0 || !ai)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int st = -1;
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        st = kf_tls_post(fd, host, path, key);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return st;
}
