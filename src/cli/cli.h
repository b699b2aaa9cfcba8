/* cli.h - subcommands of the `kimifix` program. */
#ifndef KF_CLI_H
#define KF_CLI_H

int kf_cli_check(int argc, char **argv);   /* check.c:   kimifix check [FILE] */
int kf_cli_explain(int argc, char **argv); /* explain.c: kimifix explain [-f FILE] METHOD URL [-H ...] */
/* wrap.c: kimifix [OPTIONS] CMD [ARGS...]; argv[0] is "kimifix", options
 * not yet parsed. Returns only on failure (exit status). */
int kf_cli_wrap(int argc, char **argv);

#endif
