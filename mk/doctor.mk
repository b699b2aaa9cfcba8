# `kimifix doctor` (src/cli/doctor*.c, elfinfo.c, ldpath.c, pemcert.c; they
# are linked into the kimifix program through CLI_SRC) and its tests.
#
# The tests run a stand-alone copy, $(B)/doctor-test (beside libkimifix.so,
# so it finds the shim as kimifix does), on real programs of this machine
# and on fixtures built at test time, plus a robustness pass over corrupt
# ELF files with an ASan/UBSan build.
DOCTOR_SRC := src/cli/doctor.c src/cli/doctor_report.c src/cli/doctor_target.c src/cli/doctor_prog.c \
              src/cli/doctor_rt.c src/cli/doctor_self.c src/cli/elfinfo.c \
              src/cli/ldpath.c src/cli/pemcert.c src/cli/doctor_trust.c src/cli/doctor_carrier.c
DOCTOR_OBJ := $(DOCTOR_SRC:src/%.c=$(B)/%.o)
DOCTOR_TEST := $(B)/doctor-test
DOCTOR_ASAN := $(B)/tests/doctor/doctor-asan

$(B)/tests/doctor/doctor_main.o: tests/doctor/doctor_main.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Isrc/cli -c -o $@ $<

$(DOCTOR_TEST): $(B)/tests/doctor/doctor_main.o $(DOCTOR_OBJ) $(B)/cli/relay_cmd.o $(B)/cli/cli_common.o $(CORE_LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS)

# Sanitized build of the same sources (the engine library stays as is).
$(DOCTOR_ASAN): tests/doctor/doctor_main.c $(DOCTOR_SRC) src/cli/relay_cmd.c src/cli/cli_common.c $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(WARN) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=all $(INC) -Isrc/cli -o $@ tests/doctor/doctor_main.c \
	    $(DOCTOR_SRC) src/cli/relay_cmd.c src/cli/cli_common.c $(CORE_LIB)

.PHONY: check-doctor
check-doctor: e2e-clients $(DOCTOR_TEST) $(DOCTOR_ASAN) $(B)/libkimifix.so $(B)/kimifix-relay $(B)/kimifix
	@sh tests/doctor/run.sh $(B)
CHECK_SUITES += check-doctor
