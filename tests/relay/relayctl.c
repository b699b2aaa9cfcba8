/* relayctl.c - test driver for `kimifix relay ...` until the lead wires
 * kf_cli_relay() into src/cli/main.c: relayctl start|stop|status|run ... */
#include "../../src/cli/cli_relay.h"

int main(int argc, char **argv)
{
    argv[0] = "relay";
    return kf_cli_relay(argc, argv);
}
