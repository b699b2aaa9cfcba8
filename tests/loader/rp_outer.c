/* rp_outer.c - libkfrp_outer.so, linked with RUNPATH $ORIGIN/rpsub: loads
 * libkfrp_inner.so by bare name, which only its own RUNPATH finds. ld.so
 * takes the RUNPATH from the object that called dlopen (the return
 * address), so a dlopen hook must leave the call frame alone. */
#include <dlfcn.h>
#include <stdio.h>

int kfrp_load(int flags);
int kfrp_load(int flags)
{
    void *h = dlopen("libkfrp_inner.so", RTLD_NOW | flags);
    if (!h) {
        printf("inner=fail %s\n", dlerror());
        return -1;
    }
    int (*id)(void) = (int (*)(void))dlsym(h, "kfrp_inner_id");
    printf("inner=%s\n", id && id() == 42 ? "ok" : "wrong");
    return 0;
}
