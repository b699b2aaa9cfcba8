/* empty.c - figure 6's floor: a shared object with nothing in it, preloaded
 * the way libkimifix.so is, to measure what any LD_PRELOAD costs. */
int kf_bench_empty(void);
int kf_bench_empty(void)
{
    return 0;
}
