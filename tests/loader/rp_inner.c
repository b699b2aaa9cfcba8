/* rp_inner.c - libkfrp_inner.so, found only through libkfrp_outer.so's RUNPATH. */
int kfrp_inner_id(void);
int kfrp_inner_id(void)
{
    return 42;
}
