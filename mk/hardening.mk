# Hardening (issue 7): sanitizers, fuzz smoke, fault injection, process,
# load, bad-input and secrets tests. Figures: docs/RELIABILITY.md.
#
#   make check-faults     fault layer under the shim (tests/faults/), ~10 s
#   make check-hardening  processes, load (reduced), bad input, secrets, ~1 min
#   make check-asan       ASan+UBSan build in $(B)/asan: unit, shim, tls, relay,
#                         faults, hardening and a reduced e2e run; 0 reports
#   make check-tsan       TSan build in $(B)/tsan: engine pool, shim fd table
#                         under threads, relay with concurrent connections
#   make fuzz-smoke       every tests/fuzz target for FUZZ_SECONDS (60) each
#   make check-load-long  opt-in: 64x500 requests, 200 SSE streams for 60 s
#
# Sanitized trees are built by a sub-make with B=$(B)/asan or $(B)/tsan, so
# every fragment's rules apply unchanged (EXTRA_CFLAGS reaches every
# target). Reports go to files (log_path) that the runner counts: a report
# fails the target even when the test that caused it passed.

HARD_SAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# KF_SANITIZED: src/core/kf_rules_apply.c matches regexes on a NUL-terminated
# copy under sanitizers (their regexec interceptor reads up to a NUL even
# with REG_STARTEND); it detects ASan by itself, not TSan.
HARD_TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
HARD_LIBASAN    := $(shell $(CC) -print-file-name=libasan.so)
HARD_LIBTSAN    := $(shell $(CC) -print-file-name=libtsan.so)
FUZZ_SECONDS    ?= 60
FUZZ_JOBS       ?= 2

# ---- programs (built in whatever $(B) is: plain, asan or tsan) ----
FAULT_DIR := $(B)/tests/faults
HARD_DIR  := $(B)/tests/hardening
HARD_CFLAGS := $(TEST_BASE_CFLAGS) -pthread -Isrc/core -Itests
FAULT_PROGS := $(FAULT_DIR)/libkffault.so $(FAULT_DIR)/fclient $(FAULT_DIR)/fdriver
HARD_PROGS  := $(HARD_DIR)/pool_threads $(HARD_DIR)/hammer $(HARD_DIR)/loadcurl $(HARD_DIR)/rawsend

# The fault layer is never sanitized: it sits under everything and must
# not need a runtime of its own (it only forwards or fails calls).
$(FAULT_DIR)/libkffault.so: tests/faults/libfault.c
	@mkdir -p $(@D)
	$(CC) $(CSTD) -Wall -Wextra -Werror -O2 -g -fPIC -shared -o $@ $< -ldl $(LDFLAGS)

$(FAULT_DIR)/fclient: tests/faults/fclient.c
	@mkdir -p $(@D)
	$(CC) $(HARD_CFLAGS) -o $@ $< $(LDFLAGS)

$(FAULT_DIR)/fdriver: tests/faults/fdriver.c $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(HARD_CFLAGS) -o $@ $< $(CORE_LIB) -pthread $(LDFLAGS)

$(HARD_DIR)/pool_threads: tests/hardening/pool_threads.c $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(HARD_CFLAGS) -o $@ $< $(CORE_LIB) -pthread $(LDFLAGS)

$(HARD_DIR)/hammer: tests/hardening/hammer.c
	@mkdir -p $(@D)
	$(CC) $(HARD_CFLAGS) -o $@ $< -pthread $(LDFLAGS)

$(HARD_DIR)/rawsend: tests/hardening/rawsend.c
	@mkdir -p $(@D)
	$(CC) $(HARD_CFLAGS) -o $@ $< $(LDFLAGS)

$(HARD_DIR)/loadcurl: tests/hardening/loadcurl.c
	@mkdir -p $(@D)
	$(CC) $(HARD_CFLAGS) -o $@ $< -lcurl -pthread $(LDFLAGS)

.PHONY: check-faults check-hardening check-load-long check-asan check-tsan fuzz-smoke \
        hardening-progs
hardening-progs: $(FAULT_PROGS) $(HARD_PROGS)

# Other fragments are included after this one (mk/*.mk in name order), so
# their variables are not set yet where prerequisites are read: literal
# paths of what they build.
HARD_NEEDS  = $(B)/libkimifix.so $(B)/kimifix $(B)/kimifix-relay $(B)/fakeup \
              $(B)/tests/relay/rclient $(B)/tests/relay/relayctl

check-faults: $(B)/libkimifix.so $(FAULT_PROGS) $(B)/fakeup
	bash tests/faults/run.sh $(B)

check-hardening: $(HARD_NEEDS) $(HARD_PROGS)
	bash tests/hardening/run.sh $(B)

check-load-long: $(HARD_NEEDS) $(HARD_PROGS)
	HARD_LONG=1 bash tests/hardening/run.sh $(B) load

CHECK_SUITES += check-faults check-hardening

# ---- sanitizer builds ----
# What each sanitized tree needs; the sub-make builds them with its flags.
HARD_TLS_DIR := $(B)/tests/tls
HARD_SAN_TARGETS := all $(B)/tests/unit-tests $(B)/tests/shim/shim-tests $(B)/tests/shim/kfclient \
    $(B)/tests/relay/relay-unit $(HARD_NEEDS) hardening-progs $(E2E_CLIENTS) \
    $(if $(wildcard mk/tls.mk),$(B)/tests/tls-tests $(HARD_TLS_DIR)/certs/cert.pem \
      $(addprefix $(HARD_TLS_DIR)/,ossl_client gnutls_client curl_client curl_client_gnutls nolib_client))

# make does not see flag changes: a tree built with other flags starts over.
hard_fresh = d=$(1); f="$(2)"; [ "$$(cat $$d/.flags 2>/dev/null)" = "$$f" ] || \
    { rm -rf $$d; mkdir -p $$d; echo "$$f" >$$d/.flags; }

check-asan: deps
	@$(call hard_fresh,$(B)/asan,$(HARD_SAN_FLAGS))
	@$(MAKE) --no-print-directory B=$(B)/asan OPT="-O1 -g" EXTRA_CFLAGS="$(HARD_SAN_FLAGS)" \
	    san-build-asan >$(B)/asan-build.log 2>&1 || { tail -n 40 $(B)/asan-build.log; exit 1; }
	HARD_LIBASAN=$(HARD_LIBASAN) bash tests/hardening/run-san.sh asan $(B)/asan

check-tsan: deps
	@$(call hard_fresh,$(B)/tsan,$(HARD_TSAN_FLAGS))
	@$(MAKE) --no-print-directory B=$(B)/tsan OPT="-O1 -g" EXTRA_CFLAGS="$(HARD_TSAN_FLAGS)" \
	    san-build-tsan >$(B)/tsan-build.log 2>&1 || { tail -n 40 $(B)/tsan-build.log; exit 1; }
	HARD_LIBTSAN=$(HARD_LIBTSAN) bash tests/hardening/run-san.sh tsan $(B)/tsan

# (run inside the sub-make, where $(B) is the sanitized tree)
.PHONY: san-build-asan san-build-tsan
san-build-asan: $(HARD_SAN_TARGETS)
san-build-tsan: all $(HARD_NEEDS) hardening-progs

# ---- fuzz smoke: every target, FUZZ_SECONDS each, FUZZ_JOBS at a time ----
# Runs on a scratch copy of the committed corpus (the repository is never
# written); any crash, leak, timeout or UBSan report fails the target.
fuzz-smoke: $(FUZZ_BIN)
	bash tests/hardening/fuzz-smoke.sh $(B) $(FUZZ_SECONDS) $(FUZZ_JOBS)
