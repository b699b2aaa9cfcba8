/* dlprobe.c - loader behaviour under the shim (test_deepbind.c runs it).
 *
 *   dlprobe clash DIR     libkfclash_a.so RTLD_GLOBAL, then libkfclash_b.so
 *                         RTLD_DEEPBIND; prints what b's calls reach:
 *                         "id=B own_write=1 send_hooked=1" when the flag
 *                         keeps its meaning and kimifix's hooks are bound
 *   dlprobe again DIR     libkfclash_b.so twice with RTLD_DEEPBIND: one handle
 *   dlprobe runpath DIR [deep]  libkfrp_outer.so loads libkfrp_inner.so by
 *                         bare name through its RUNPATH ("inner=ok")
 *   dlprobe dlmopen       dlmopen(LM_ID_NEWLM, libm) twice ("dlmopen=ok")
 */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

static void *load(const char *dir, const char *lib, int flags)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, lib);
    void *h = dlopen(p, flags);
    if (!h)
        printf("dlopen %s: %s\n", p, dlerror());
    return h;
}

static void *sym(void *h, const char *name)
{
    void *p = h ? dlsym(h, name) : NULL;
    if (!p)
        printf("dlsym %s: missing\n", name);
    return p;
}

static int clash(const char *dir)
{
    void *a = load(dir, "libkfclash_a.so", RTLD_NOW | RTLD_GLOBAL);
    void *b = load(dir, "libkfclash_b.so", RTLD_NOW | RTLD_DEEPBIND);
    char (*self)(void) = (char (*)(void))sym(b, "kfclash_self");
    int (*own)(void) = (int (*)(void))sym(b, "kfclash_write_own");
    void *(*send_addr)(void) = (void *(*)(void))sym(b, "kfclash_send_addr");
    if (!a || !self || !own || !send_addr)
        return 1;
    /* The global scope's send: kimifix's hook when it is preloaded. */
    void *global_send = dlsym(RTLD_DEFAULT, "send");
    printf("id=%c own_write=%d send_hooked=%d\n", self(), own(), send_addr() == global_send);
    return 0;
}

static int again(const char *dir)
{
    void *b1 = load(dir, "libkfclash_b.so", RTLD_NOW | RTLD_DEEPBIND);
    void *b2 = load(dir, "libkfclash_b.so", RTLD_NOW | RTLD_DEEPBIND);
    if (!b1 || !b2)
        return 1;
    printf("same=%d\n", b1 == b2);
    return dlclose(b2) || dlclose(b1);
}

static int runpath(const char *dir, int deep)
{
    void *o = load(dir, "libkfrp_outer.so", RTLD_NOW);
    int (*ld)(int) = (int (*)(int))sym(o, "kfrp_load");
    return ld ? ld(deep ? RTLD_DEEPBIND : 0) != 0 : 1;
}

static int dlm(void)
{
    for (int i = 0; i < 2; i++)
        if (!dlmopen(LM_ID_NEWLM, "libm.so.6", RTLD_NOW)) {
            printf("dlmopen: %s\n", dlerror());
            return 1;
        }
    printf("dlmopen=ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "clash"))
        return clash(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "again"))
        return again(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "runpath"))
        return runpath(argv[2], argc > 3 && !strcmp(argv[3], "deep"));
    if (argc >= 2 && !strcmp(argv[1], "dlmopen"))
        return dlm();
    fprintf(stderr, "usage: dlprobe clash|again|runpath DIR [deep] | dlmopen\n");
    return 2;
}
