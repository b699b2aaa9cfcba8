/* envprint.c - print NAME=VALUE (or NAME unset) for each argument: what the
 * shim's constructor left in the environment (tests/proxy/shim_test.py).
 * Built twice: plain, and linked to libssl (-DWITH_SSL), so that a shared
 * libssl is loaded when the constructor runs (the in-process hooks see the
 * program's TLS). */
#include <stdio.h>
#include <stdlib.h>

#ifdef WITH_SSL
#include <openssl/ssl.h>
#endif

int main(int argc, char **argv)
{
#ifdef WITH_SSL
    if (OPENSSL_init_ssl(0, NULL) != 1)
        return 2;
#endif
    for (int i = 1; i < argc; i++) {
        const char *v = getenv(argv[i]);
        if (v)
            printf("%s=%s\n", argv[i], v);
        else
            printf("%s unset\n", argv[i]);
    }
    return 0;
}
