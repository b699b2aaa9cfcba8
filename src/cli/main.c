/* main.c - `kimifix`: one program for the tools and the wrapper.
 *
 *   kimifix check [FILE]            kimifix explain [-f FILE] METHOD URL ...
 *   kimifix relay start|stop|status|run
 *   kimifix doctor [--json] [CMD [ARGS...]]
 *   kimifix shell [OPTIONS] [bash|zsh|fish] | off | status   (shell.h)
 *   kimifix log [-f] [-n N]
 *   kimifix help | --help | -h      kimifix --version
 *   kimifix [OPTIONS] CMD [ARGS...] (anything else: run CMD under kimifix)
 *
 * A command that happens to be called like a subcommand can still be
 * wrapped with `kimifix -- check ...` (wrap.c handles "--"). Subcommands
 * get argv[0] = their own name.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_doctor.h"
#include "cli_relay.h"
#include "shell.h"

#ifndef KF_VERSION
#define KF_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fputs("usage: kimifix [OPTIONS] CMD [ARGS...]   run CMD with its Kimi requests fixed\n"
          "       kimifix check [FILE]               check a rules file, print the effective rules\n"
          "       kimifix explain [-f FILE] [--carrier relay|inprocess] METHOD URL [-H 'Name: value']...\n"
          "                                          show how the rules rewrite one request (no network)\n"
          "       kimifix relay start|stop|status|run   manage the local relay\n"
          "       kimifix doctor [--json] [CMD [ARGS...]]   can kimifix fix CMD? / state of kimifix\n"
          "       eval \"$(kimifix shell [OPTIONS] [bash|zsh|fish])\"   kimifix for this whole shell\n"
          "       kimifix off | status                 end it / is this shell on?\n"
          "       kimifix log [-f] [-n N]              the relay's recent log lines\n"
          "       kimifix help | --help | --version\n"
          "\n"
          "Rules: built-in defaults, then $KIMIFIX_RULES, ~/.config/kimifix/rules or\n"
          "/etc/kimifix/rules (the first that exists). See kimifix(1), kimifix.rules(5).\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        puts("kimifix " KF_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "check"))
        return kf_cli_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "explain"))
        return kf_cli_explain(argc - 1, argv + 1);
    if (!strcmp(cmd, "relay"))
        return kf_cli_relay(argc - 1, argv + 1);
    if (!strcmp(cmd, "doctor"))
        return kf_cli_doctor(argc - 1, argv + 1);
    if (!strcmp(cmd, "shell"))
        return kf_cli_shell(argc - 1, argv + 1);
    if (!strcmp(cmd, "off"))
        return kf_cli_off(argc - 1, argv + 1);
    if (!strcmp(cmd, "status"))
        return kf_cli_status(argc - 1, argv + 1);
    if (!strcmp(cmd, "log"))
        return kf_cli_log(argc - 1, argv + 1);
    return kf_cli_wrap(argc, argv);
}
