# Benchmarks (issue 6): `make bench` builds bench/*.c into $(B)/bench/,
# installs the bench-only tools (bench/deps.sh: nginx, mitmproxy, valgrind,
# linux-perf; not part of `make check`'s dependencies) and runs
# bench/run.py, which writes bench/results.md. No timed assertions.
#   BENCH_ARGS='--quick'        smaller sizes, 3 rounds (smoke test)
#   BENCH_ARGS='--only 2,7'     some figures only
BENCH_DIR    := $(B)/bench
BENCH_CFLAGS := $(CSTD) $(WARN) $(OPT) -pthread $(INC) $(EXTRA_CFLAGS)
BENCH_BINS   := $(addprefix $(BENCH_DIR)/,fastpath engine tracked spawn sink hclient curlreq libempty.so \
                  libsized.so)

$(BENCH_DIR)/fastpath $(BENCH_DIR)/tracked $(BENCH_DIR)/spawn: $(BENCH_DIR)/%: bench/%.c bench/common.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(LDFLAGS)

# The reference arm links Debian's libhttp-parser (libhttp-parser-dev).
$(BENCH_DIR)/engine: bench/engine.c bench/common.h $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(CORE_LIB) -lhttp_parser $(LDFLAGS)

# Figure 6's floor: an empty object preloaded like the shim.
$(BENCH_DIR)/libempty.so: bench/empty.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -fPIC -shared -o $@ $< $(LDFLAGS)

# And an object of the shim's size that runs nothing (bench/sized.c).
$(BENCH_DIR)/libsized.so: bench/sized.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -Wno-missing-prototypes -fPIC -shared -o $@ $< $(LDFLAGS)

$(BENCH_DIR)/sink: bench/sink.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lssl -lcrypto $(LDFLAGS)

$(BENCH_DIR)/hclient: bench/hclient.c bench/common.h $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(CORE_LIB) -lssl -lcrypto $(LDFLAGS)

$(BENCH_DIR)/curlreq: bench/curlreq.c bench/common.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lcurl $(LDFLAGS)

.PHONY: bench bench-deps bench-bins
bench-deps:
	@sh bench/deps.sh

bench-bins: $(BENCH_BINS) $(SHIM_LIB) $(RELAY_BIN) $(FAKEUP_BIN) $(B)/tests/relay/rclient

bench: bench-deps
	@$(MAKE) --no-print-directory bench-bins
	/usr/bin/python3 bench/run.py --build $(B) --out bench/results.md $(BENCH_ARGS)
