/* clash_a.c - libkfclash_a.so: defines kfclash_id() like clash_b.c does.
 * Loaded RTLD_GLOBAL first, it would win every global lookup of that name. */
char kfclash_id(void);
char kfclash_id(void)
{
    return 'A';
}
