/* cli_relay.h - `kimifix relay start|stop|status|run` (relay_cmd.c). */
#ifndef KF_CLI_RELAY_H
#define KF_CLI_RELAY_H

/* argv[0] is "relay". Returns the exit status. */
int kf_cli_relay(int argc, char **argv);

/* Path of the kimifix-relay program: $KIMIFIX_RELAY, else next to this
 * executable, else ../lib/kimifix/ and ../libexec/kimifix/ from it.
 * Returns buf or NULL. */
const char *kf_relay_program(char *buf, unsigned long n);

#endif
