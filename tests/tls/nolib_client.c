/* nolib_client.c - calls TLS and libcurl entry points with none of those
 * libraries loaded (weak references, no -lssl/-lgnutls/-lcurl). Under the
 * shim the calls land in its hooks, which find no real function: they must
 * fail with the library's own error value and never call NULL.
 * Without the shim the symbols are absent and the program says so.
 */
#include <stdio.h>
#include <sys/types.h>

extern int SSL_write(void *ssl, const void *buf, int num) __attribute__((weak));
extern int SSL_write_ex(void *ssl, const void *buf, size_t num, size_t *written) __attribute__((weak));
extern int SSL_connect(void *ssl) __attribute__((weak));
extern ssize_t gnutls_record_send(void *s, const void *data, size_t n) __attribute__((weak));
extern int gnutls_handshake(void *s) __attribute__((weak));
extern int curl_easy_setopt(void *h, int opt, ...) __attribute__((weak));
extern int curl_easy_perform(void *h) __attribute__((weak));
extern int curl_multi_add_handle(void *m, void *h) __attribute__((weak));

int main(void)
{
    if (!SSL_write) {
        puts("absent");
        return 0;
    }
    char fake[64] = { 0 };
    size_t w = 99;
    printf("SSL_write=%d\n", SSL_write(fake, "x", 1));
    int rx = SSL_write_ex(fake, "x", 1, &w);
    printf("SSL_write_ex=%d written=%zu\n", rx, w);
    printf("SSL_connect=%d\n", SSL_connect(fake));
    printf("gnutls_record_send=%zd\n", gnutls_record_send(fake, "x", 1));
    printf("gnutls_handshake=%d\n", gnutls_handshake(fake));
    printf("curl_easy_setopt=%d\n", curl_easy_setopt(fake, 10002, "https://api.kimi.com/"));
    printf("curl_easy_perform=%d\n", curl_easy_perform(fake));
    printf("curl_multi_add_handle=%d\n", curl_multi_add_handle(fake, fake));
    return 0;
}
