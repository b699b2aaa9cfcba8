# kimifix-relay: the local TLS-terminating relay the shim steers clients
# with their own TLS to (src/relay/, docs/relay.md), and its tests.
RELAY_SRC := $(wildcard src/relay/*.c)
RELAY_OBJ := $(RELAY_SRC:src/%.c=$(B)/%.o)
RELAY_LIBS := -lssl -lcrypto -pthread

all: $(RELAY_BIN)

$(RELAY_BIN): $(RELAY_OBJ) $(CORE_LIB)
	$(CC) $(CFLAGS) -o $@ $(RELAY_OBJ) $(CORE_LIB) $(RELAY_LIBS) $(LDFLAGS)

# ---- tests: unit (Criterion: PROXY v2, paths, trust, rule hosts) and
# end-to-end (tests/relay/run.sh: relay + fakeup + rclient) ----
RELAY_TEST_DIR := $(B)/tests/relay
RELAY_UNIT     := $(RELAY_TEST_DIR)/relay-unit
RELAY_CLIENT   := $(RELAY_TEST_DIR)/rclient
RELAY_TEST_CFLAGS := $(TEST_BASE_CFLAGS) -pthread $(INC)

# The unit tests link every relay object but main.o (the pool needs the
# worker, timer and upstream-connection code around it).
RELAY_UNIT_OBJ := $(filter-out $(B)/relay/main.o,$(RELAY_OBJ))
RELAY_UNIT_SRC := tests/relay/test_relay_unit.c tests/relay/test_relay_pool.c tests/relay/test_relay_rules.c \
                  tests/relay/test_relay_resume.c tests/trust/testcerts.c
$(RELAY_UNIT): $(RELAY_UNIT_SRC) $(RELAY_UNIT_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(RELAY_TEST_CFLAGS) -Isrc/relay -Itests/trust -o $@ $(RELAY_UNIT_SRC) \
	    $(RELAY_UNIT_OBJ) $(CORE_LIB) -lcriterion -lssl -lcrypto -pthread $(LDFLAGS)

# Bench figure 15 (bench/figs/fig_15_rules_check.py): the relay's rules
# check per connection; links the relay objects like the unit tests.
$(BENCH_DIR)/rulescheck: bench/rulescheck.c bench/common.h $(RELAY_UNIT_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(RELAY_TEST_CFLAGS) -Isrc/relay -o $@ $< $(RELAY_UNIT_OBJ) $(CORE_LIB) -lssl -lcrypto \
	    -pthread $(LDFLAGS)
bench-bins: $(BENCH_DIR)/rulescheck

$(RELAY_CLIENT): tests/relay/rclient.c $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(RELAY_TEST_CFLAGS) -o $@ tests/relay/rclient.c $(CORE_LIB) -lssl -lcrypto -pthread $(LDFLAGS)

# LD_PRELOAD steering for load generators (bench figure 10): writes the
# PROXY v2 preamble the shim would, nothing else.
RELAY_PP2PRE := $(RELAY_TEST_DIR)/pp2pre.so
$(RELAY_PP2PRE): tests/relay/pp2pre.c $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(RELAY_TEST_CFLAGS) -fPIC -shared -o $@ tests/relay/pp2pre.c $(CORE_LIB) -ldl $(LDFLAGS)
all: $(RELAY_PP2PRE)

RELAY_CTL := $(RELAY_TEST_DIR)/relayctl
$(RELAY_CTL): tests/relay/relayctl.c $(B)/cli/relay_cmd.o $(B)/cli/cli_common.o $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(RELAY_TEST_CFLAGS) -o $@ tests/relay/relayctl.c $(B)/cli/relay_cmd.o $(B)/cli/cli_common.o $(CORE_LIB) $(LDFLAGS)

.PHONY: check-relay check-relay-unit check-relay-e2e check-relay-load
# Three suites for scripts/check.sh (it counts one closing line per suite).
CHECK_SUITES += check-relay-unit check-relay-e2e check-relay-load
check-relay: check-relay-unit check-relay-e2e check-relay-load

check-relay-unit: $(RELAY_UNIT)
	$(RELAY_UNIT) --jobs=2 $(CRITERION_ARGS)

check-relay-e2e: $(RELAY_BIN) $(RELAY_CLIENT) $(RELAY_CTL) $(FAKEUP_BIN) $(B)/kimifix
	bash tests/relay/run.sh $(B)

# The relay at rest and under load: pool reuse and retry, log cap, 1000 idle
# TLS connections, floods from another uid and our own, EMFILE.
check-relay-load: $(RELAY_BIN) $(RELAY_CLIENT) $(FAKEUP_BIN)
	bash tests/relay/load.sh $(B)

# bench figure 10 drives the relay with h2load through this preload helper.
bench-bins: $(RELAY_PP2PRE)
