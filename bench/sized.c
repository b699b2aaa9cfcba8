/* sized.c - figure 6's second reference: a shared object about the size of
 * libkimifix.so (its text, read-only data and .bss, and a similar number of
 * exported functions) that runs nothing: no constructor, no relocations to
 * speak of, no page of its data written. Preloaded like the shim, what it
 * costs over the empty object (empty.c) is what mapping a library of the
 * shim's size costs a process start on this machine, whatever the library
 * does; the shim's own start-up work is what it costs beyond this.
 * Sizes from `size build/libkimifix.so` (text includes read-only data). */
#define KF_SIZED_FN(n)                                                                             \
    __attribute__((visibility("default"))) int kf_sized_##n(int x);                                \
    int kf_sized_##n(int x) { return x + n; }
#define KF_SIZED_FN10(n)                                                                           \
    KF_SIZED_FN(n##0) KF_SIZED_FN(n##1) KF_SIZED_FN(n##2) KF_SIZED_FN(n##3) KF_SIZED_FN(n##4)      \
    KF_SIZED_FN(n##5) KF_SIZED_FN(n##6) KF_SIZED_FN(n##7) KF_SIZED_FN(n##8) KF_SIZED_FN(n##9)
KF_SIZED_FN10(1)
KF_SIZED_FN10(2)
KF_SIZED_FN10(3)
KF_SIZED_FN10(4)
KF_SIZED_FN10(5)
KF_SIZED_FN10(6)

/* Never read: the bytes only have to be mapped (executable and not). */
__attribute__((section(".text.kf_sized"), used)) static const unsigned char text_pad[150 * 1024] = {1};
__attribute__((used)) static const unsigned char ro_pad[56 * 1024] = {1};
__attribute__((used)) static unsigned char bss_pad[170 * 1024];
