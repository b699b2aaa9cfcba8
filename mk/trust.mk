# Trust both ways and client contexts (trust-ctx; docs/relay.md "Trust",
# "Client contexts"): Criterion tests of the core parts (kf_ctxmsg,
# kf_trust, kf_trustjava, kf_progid, kf_distrust), of the relay's modules
# (truststore, javatrust, distrust, ctxtab + its socket server) and of the
# shim's (steer_ctx), linked from their own objects.
TRUST_TEST_DIR    := $(B)/tests/trust
TRUST_CORE_TEST   := $(TRUST_TEST_DIR)/trust-core
TRUST_RELAY_TEST  := $(TRUST_TEST_DIR)/trust-relay
TRUST_TEST_CFLAGS := $(TEST_BASE_CFLAGS) -pthread $(INC) -Isrc/relay
TRUST_RELAY_OBJ   := $(addprefix $(B)/relay/,truststore.o tlsresume.o javatrust.o distrust.o ctxtab.o ctxsrv.o ctxlog.o)

$(TRUST_CORE_TEST): tests/trust/test_trust_core.c $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(TRUST_TEST_CFLAGS) -o $@ $< $(CORE_LIB) -lcriterion -pthread $(LDFLAGS)

$(TRUST_RELAY_TEST): tests/trust/test_trust_relay.c tests/trust/testcerts.c tests/trust/testcerts.h \
                     $(TRUST_RELAY_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(TRUST_TEST_CFLAGS) -o $@ tests/trust/test_trust_relay.c tests/trust/testcerts.c \
	    $(TRUST_RELAY_OBJ) $(CORE_LIB) -lcriterion -lssl -lcrypto -pthread $(LDFLAGS)

# The shim's side (src/hooks/steer_ctx.c) against the real context server
# in one process, and a Java 17 HttpClient (openjdk-17-jdk-headless).
TRUST_SHIM_TEST := $(TRUST_TEST_DIR)/trust-shim
$(TRUST_SHIM_TEST): tests/trust/test_trust_shim.c tests/trust/testcerts.c tests/trust/testcerts.h \
                    $(B)/hooks/steer_ctx.o $(TRUST_RELAY_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(TRUST_TEST_CFLAGS) -Isrc/hooks -DKF_TEST_SRC='"$(abspath .)"' -o $@ \
	    tests/trust/test_trust_shim.c tests/trust/testcerts.c $(B)/hooks/steer_ctx.o \
	    $(TRUST_RELAY_OBJ) $(CORE_LIB) -lcriterion -lssl -lcrypto -ldl -pthread $(LDFLAGS)

# Three suites for scripts/check.sh (one closing line each).
.PHONY: check-trust check-trust-core check-trust-relay check-trust-shim check-trust-wired
# The relay's wiring (src/relay/ctx.c over ctxtab and truststore): every
# relay object but main.o (the list made here: mk/relay.mk's may come later).
TRUST_WIRED_TEST := $(TRUST_TEST_DIR)/trust-wired
TRUST_WIRED_OBJ  := $(filter-out $(B)/relay/main.o,$(patsubst src/%.c,$(B)/%.o,$(wildcard src/relay/*.c)))
$(TRUST_WIRED_TEST): tests/trust/test_trust_wired.c tests/trust/testcerts.c tests/trust/testcerts.h \
                     $(TRUST_WIRED_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(TRUST_TEST_CFLAGS) -o $@ tests/trust/test_trust_wired.c tests/trust/testcerts.c \
	    $(TRUST_WIRED_OBJ) $(CORE_LIB) -lcriterion -lssl -lcrypto -pthread $(LDFLAGS)

check-trust: check-trust-core check-trust-relay check-trust-shim check-trust-wired
check-trust-core: $(TRUST_CORE_TEST)
	$(TRUST_CORE_TEST) --jobs=2 $(CRITERION_ARGS)
check-trust-relay: $(TRUST_RELAY_TEST)
	$(TRUST_RELAY_TEST) --jobs=2 $(CRITERION_ARGS)
check-trust-shim: $(TRUST_SHIM_TEST)
	$(TRUST_SHIM_TEST) --jobs=2 $(CRITERION_ARGS)
check-trust-wired: $(TRUST_WIRED_TEST)
	$(TRUST_WIRED_TEST) --jobs=2 $(CRITERION_ARGS)
CHECK_SUITES += check-trust-core check-trust-relay check-trust-shim check-trust-wired

# The e2e trust suite's client with a private root store (tests/e2e/suites/
# trust.py): OpenSSL linked in statically, symbols not exported.
TRUST_PINNED := $(B)/tests/e2e/pinned-client
TRUST_SSL_A  := $(firstword $(wildcard /usr/lib/$(MULTIARCH)/libssl.a /usr/lib/libssl.a))
TRUST_CRYPTO_A := $(firstword $(wildcard /usr/lib/$(MULTIARCH)/libcrypto.a /usr/lib/libcrypto.a))
$(TRUST_PINNED): tests/e2e/clients/pinned_client.c
	@mkdir -p $(@D)
	$(CC) $(CSTD) -Wall -Wextra -Werror $(OPT) -o $@ $< $(TRUST_SSL_A) $(TRUST_CRYPTO_A) -ldl -pthread $(LDFLAGS)
all: $(TRUST_PINNED)

# Figure 14 (bench/figs/fig_14_trust.py): the relay's per-client trust cost.
TRUST_BENCH := $(B)/bench/trustbench
$(TRUST_BENCH): bench/trustbench.c $(TRUST_RELAY_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(WARN) $(OPT) -pthread $(INC) -Isrc/relay $(EXTRA_CFLAGS) -o $@ $< \
	    $(TRUST_RELAY_OBJ) $(CORE_LIB) -lssl -lcrypto -pthread $(LDFLAGS)

# The table and the stores under threads, for ThreadSanitizer (Criterion
# cannot run under TSan): `make trust-tsan` builds it in $(B)/tsan-trust
# with -fsanitize=thread and runs it (not part of make check).
TRUST_THREADS := $(B)/tests/trust/ctxtab-threads
$(TRUST_THREADS): tests/trust/ctxtab_threads.c $(TRUST_RELAY_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(TRUST_TEST_CFLAGS) -o $@ $< $(TRUST_RELAY_OBJ) $(CORE_LIB) -lssl -lcrypto -pthread $(LDFLAGS)

.PHONY: trust-tsan
trust-tsan:
	@$(MAKE) --no-print-directory B=$(B)/tsan-trust OPT="-O1 -g" \
	    EXTRA_CFLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
	    EXTRA_LDFLAGS="-fsanitize=thread" $(B)/tsan-trust/tests/trust/ctxtab-threads
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 $(B)/tsan-trust/tests/trust/ctxtab-threads
