/* deepssl.c - deepssl LIB HOST PATH: dlopen LIB (libkfdeepssl.so) with
 * RTLD_DEEPBIND and let it POST to https://HOST PATH; prints "status: N".
 * Links no TLS library itself: libssl arrives with LIB, bound deep. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4)
        return fprintf(stderr, "usage: deepssl LIB HOST PATH\n"), 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_DEEPBIND);
    int (*post)(const char *, const char *, const char *) =
        h ? (int (*)(const char *, const char *, const char *))dlsym(h, "kfdeep_post") : NULL;
    if (!post)
        return fprintf(stderr, "deepssl: %s\n", dlerror()), 1;
    const char *key = getenv("E2E_API_KEY");
    printf("status: %d\n", post(argv[2], argv[3], key ? key : ""));
    return 0;
}
