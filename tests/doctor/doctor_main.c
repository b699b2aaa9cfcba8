/* doctor_main.c - `kimifix doctor` as a program of its own, for the tests
 * (and until main.c dispatches "doctor"): doctor-test [ARGS...]. */
#include "cli_doctor.h"

int main(int argc, char **argv)
{
    argv[0] = (char *)"doctor";
    return kf_cli_doctor(argc, argv);
}
