/* cli_relay.h - `kimifix relay start|stop|status|run` (relay_cmd.c). */
#ifndef KF_CLI_RELAY_H
#define KF_CLI_RELAY_H

/* argv[0] is "relay". Returns the exit status. */
int kf_cli_relay(int argc, char **argv);

/* Start the user's relay unless it runs (like `relay start`, silently on
 * stdout; problems are one line on stderr). 0 when a relay runs. */
int kf_relay_ensure(void);

/* Path of the kimifix-relay program: $KIMIFIX_RELAY, else next to this
 * executable, else in ../lib/kimifix/ or ../lib/MULTIARCH/kimifix/ from it
 * (kf_cli_find_beside). Returns buf or NULL. */
const char *kf_relay_program(char *buf, unsigned long n);

#endif
