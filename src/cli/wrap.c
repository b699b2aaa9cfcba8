/* wrap.c - placeholder until the shim lands (owned by the shim work). */
#include <stdio.h>
#include "cli.h"

int kf_cli_wrap(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kimifix: running a command under kimifix is not built yet\n");
    return 2;
}
