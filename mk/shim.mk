# libkimifix.so (the LD_PRELOAD shim) and its tests (install: mk/install.mk).
#
# Every hook family under src/hooks/ plus the engine objects, all built
# -fPIC -fvisibility=hidden (CFLAGS): only hooks marked KF_EXPORT are
# exported. The library links only libc, libdl and libpthread; libssl,
# GnuTLS and libcurl are found at run time (resolve.c).
SHIM_SRC := $(wildcard src/hooks/*.c)
SHIM_OBJ := $(SHIM_SRC:src/%.c=$(B)/%.o)
# -z defs: every reference resolved at link time (nothing silently missing);
# -z nodelete: atfork handlers and hooks must outlive a dlclose().
# -soname: the name the loader caches (ldconfig) and knows it by: a second
# copy named twice in LD_PRELOAD (by path and by bare name) is not loaded.
# mk/shim-start.ld: the variables every process start writes
# (KF_START_DATA) on the page the loader writes anyway, where .data ends
# (a first touch of a page costs ~10 us on a VM: bench figure 6).
# --sort-section=alignment (with -fdata-sections, CFLAGS): the other small
# variables together after the large buffers, not one page each between.
SHIM_LDFLAGS := -shared -Wl,-z,defs -Wl,-z,nodelete -Wl,--as-needed -Wl,-soname,libkimifix.so \
                -Wl,--sort-section=alignment -Wl,-T,mk/shim-start.ld

all: $(SHIM_LIB)

$(SHIM_LIB): $(SHIM_OBJ) $(CORE_OBJ) mk/shim-start.ld
	$(CC) $(CFLAGS) $(SHIM_LDFLAGS) -o $@ $(SHIM_OBJ) $(CORE_OBJ) -ldl -pthread $(LDFLAGS)

# ---- tests: helper programs run under LD_PRELOAD + one Criterion binary ----
SHIM_TEST_DIR  := $(B)/tests/shim
SHIM_TEST_BIN  := $(SHIM_TEST_DIR)/shim-tests
SHIM_TEST_PROG := $(SHIM_TEST_DIR)/kfclient
SHIM_TEST_CFLAGS := $(TEST_BASE_CFLAGS) -pthread $(INC) -Itests/shim

$(SHIM_TEST_PROG): tests/shim/kfclient.c
	@mkdir -p $(@D)
	$(CC) $(SHIM_TEST_CFLAGS) -o $@ $< -pthread $(LDFLAGS)

$(SHIM_TEST_BIN): tests/shim/test_shim.c tests/shim/harness.h tests/shim/tls_memory.py
	@mkdir -p $(@D)
	$(CC) $(SHIM_TEST_CFLAGS) -DKF_TEST_BUILD='"$(abspath $(B))"' -DKF_TEST_SRC='"$(abspath .)"' \
	    -o $@ tests/shim/test_shim.c -lcriterion -pthread $(LDFLAGS)

# Relay steering (steer.c): steerclient under the shim against a fake
# relay and a fake upstream; links the core for the PROXY v2 parser.
STEER_TEST_BIN  := $(SHIM_TEST_DIR)/steer-tests
STEER_TEST_PROG := $(SHIM_TEST_DIR)/steerclient

$(STEER_TEST_PROG): tests/shim/steerclient.c
	@mkdir -p $(@D)
	$(CC) $(SHIM_TEST_CFLAGS) -o $@ $< $(LDFLAGS)

STEER_TEST_SRC := tests/shim/test_steer.c tests/shim/test_relay_paths.c
$(STEER_TEST_BIN): $(STEER_TEST_SRC) tests/shim/steer_world.h $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(SHIM_TEST_CFLAGS) -DKF_TEST_BUILD='"$(abspath $(B))"' \
	    -o $@ $(STEER_TEST_SRC) $(CORE_LIB) -lcriterion -pthread $(LDFLAGS)

# Criterion tests (every scenario is a test with its own expectations);
# --verbose shows each test, so a skip (no node, no python3) is visible.
# Two suites for scripts/check.sh (it counts one closing line per suite).
.PHONY: check-shim check-shim-hooks check-shim-steer
check-shim: check-shim-hooks check-shim-steer
check-shim-hooks: $(SHIM_LIB) $(SHIM_TEST_PROG) $(SHIM_TEST_BIN) $(B)/kimifix
	$(SHIM_TEST_BIN) --verbose --jobs=2 $(CRITERION_ARGS)
check-shim-steer: $(SHIM_LIB) $(STEER_TEST_PROG) $(STEER_TEST_BIN) $(B)/kimifix
	$(STEER_TEST_BIN) --verbose --jobs=2 $(CRITERION_ARGS)
CHECK_SUITES += check-shim-hooks check-shim-steer

# ---- install: mk/install.mk ----
