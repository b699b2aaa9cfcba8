/* cli_doctor.h - `kimifix doctor [--json] [CMD [ARGS...]]` (doctor.c). */
#ifndef KF_CLI_DOCTOR_H
#define KF_CLI_DOCTOR_H

/* argv[0] is "doctor". Without CMD: the state of kimifix (shim, rules,
 * relay, CA, environment). With CMD: which carrier will fix that program,
 * or why none can. Exit status: 0 fixable / healthy, 1 unreachable / a
 * problem, 2 usage error or CMD not found. */
int kf_cli_doctor(int argc, char **argv);

#endif
