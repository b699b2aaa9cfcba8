# Loader and resolver blind spots (issue 13): code loaded with RTLD_DEEPBIND,
# dlmopen, names learned from DNS answers (src/hooks/dl.c, libc_recv.c,
# src/core/kf_dns.c).
#
#   make check-loader   the DNS answer parser and the dlopen hook: one
#                       Criterion binary plus the programs and libraries it
#                       runs under the shim (clashing symbols, RUNPATH)
#
# The end-to-end half (PHP's curl extension, libcurl and a libssl helper
# loaded with RTLD_DEEPBIND, c-ares and Node's dns.resolve4 against a fake
# DNS server) is tests/e2e/suites/loader.py, run by `make check-e2e`; its
# programs are built here and added to check-e2e's prerequisites.
LOADER_DIR    := $(B)/tests/loader
LOADER_CFLAGS := $(TEST_BASE_CFLAGS) -Isrc/core -Itests/loader
LOADER_TEST   := $(LOADER_DIR)/loader-tests
LOADER_PROGS  := $(LOADER_DIR)/dlprobe $(LOADER_DIR)/libkfclash_a.so $(LOADER_DIR)/libkfclash_b.so \
                 $(LOADER_DIR)/libkfrp_outer.so $(LOADER_DIR)/rpsub/libkfrp_inner.so
LOADER_E2E    := $(LOADER_DIR)/deepcurl $(LOADER_DIR)/deepssl $(LOADER_DIR)/libkfdeepssl.so \
                 $(LOADER_DIR)/dnsclient

$(LOADER_DIR)/dlprobe: tests/loader/dlprobe.c
	@mkdir -p $(@D)
	$(CC) $(LOADER_CFLAGS) -o $@ $< -ldl $(LDFLAGS)

$(LOADER_DIR)/libkfclash_%.so: tests/loader/clash_%.c
	@mkdir -p $(@D)
	$(CC) $(LOADER_CFLAGS) -fPIC -shared -o $@ $< $(LDFLAGS)

# RUNPATH (not RPATH): only this library's own dlopen calls may use it.
$(LOADER_DIR)/libkfrp_outer.so: tests/loader/rp_outer.c
	@mkdir -p $(@D)
	$(CC) $(LOADER_CFLAGS) -fPIC -shared -Wl,--enable-new-dtags -Wl,-rpath,'$$ORIGIN/rpsub' \
	    -o $@ $< -ldl $(LDFLAGS)

$(LOADER_DIR)/rpsub/libkfrp_inner.so: tests/loader/rp_inner.c
	@mkdir -p $(@D)
	$(CC) $(LOADER_CFLAGS) -fPIC -shared -o $@ $< $(LDFLAGS)

$(LOADER_TEST): tests/loader/test_dns.c tests/loader/test_deepbind.c tests/loader/dnsmsg.h $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(LOADER_CFLAGS) -DKF_TEST_BUILD='"$(abspath $(B))"' -DKF_TEST_DIR='"$(abspath $(LOADER_DIR))"' \
	    -o $@ tests/loader/test_dns.c tests/loader/test_deepbind.c $(CORE_LIB) -lcriterion $(LDFLAGS)

# ---- e2e programs ----
$(LOADER_DIR)/deepcurl: tests/loader/deepcurl.c
	@mkdir -p $(@D)
	$(CC) $(LOADER_CFLAGS) -o $@ $< -ldl $(LDFLAGS)

$(LOADER_DIR)/libkfdeepssl.so: tests/loader/deepssl_lib.c tests/loader/tlspost.h
	@mkdir -p $(@D)
	$(CC) $(LOADER_CFLAGS) -fPIC -shared -o $@ $< -lssl -lcrypto $(LDFLAGS)

$(LOADER_DIR)/deepssl: tests/loader/deepssl.c
	@mkdir -p $(@D)
	$(CC) $(LOADER_CFLAGS) -o $@ $< -ldl $(LDFLAGS)

# TLS compiled in: OpenSSL's static archives (libssl-dev ships them).
$(LOADER_DIR)/dnsclient: tests/loader/dnsclient.c tests/loader/tlspost.h
	@mkdir -p $(@D)
	$(CC) $(LOADER_CFLAGS) -o $@ $< -lcares -Wl,-Bstatic -lssl -lcrypto -Wl,-Bdynamic \
	    -ldl -pthread $(LDFLAGS)

.PHONY: check-loader
check-loader: $(LOADER_TEST) $(LOADER_PROGS) $(B)/libkimifix.so
	$(LOADER_TEST) --verbose --jobs=2 $(CRITERION_ARGS)
CHECK_SUITES += check-loader

check-e2e: $(LOADER_E2E)

# ---- figure 12 (bench/figs/fig_12_recv.py): the receive hooks' cost ----
$(B)/bench/recvpath: bench/recvpath.c bench/common.h tests/loader/dnsmsg.h
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(WARN) $(OPT) -Itests/loader -o $@ $< $(LDFLAGS)

bench-bins: $(B)/bench/recvpath
