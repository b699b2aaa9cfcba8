# kimifix - top-level Makefile. Component fragments live in mk/*.mk.
#
#   make            build everything into build/
#   make check      install missing deps, build, run every test (Criterion)
#   make demo       show the main job on a real client
#   make install PREFIX=/usr/local   |   make uninstall PREFIX=...

CC      ?= cc
PREFIX  ?= /usr/local
B       := build
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CSTD    := -std=c11 -D_GNU_SOURCE
OPT     ?= -O2 -g
# Everything is PIC and hidden: the same objects go into the shim
# (-fdata-sections: the shim groups its small variables; -ffunction-sections:
# its start-up code, mk/shim.mk).
# Two rooms (docs/ARCHITECTURE.md): src/core is the pure engine, src/common
# the shim<->relay contract and its I/O; both go into libkfcore.a.
INC     := -Isrc/core -Isrc/common
CFLAGS  += $(CSTD) $(WARN) $(OPT) -fPIC -fvisibility=hidden -fdata-sections -ffunction-sections $(INC) $(EXTRA_CFLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)

# ---- The shared base: everything more than one fragment names. The
# fragments (mk/*.mk, read by a glob in no promised order) name only these
# and their own variables, so none depends on another being read first.
# Debian's multiarch name (/usr/lib/x86_64-linux-gnu): -print-multiarch,
# which gcc and clang both answer alike; clang's -dumpmachine says
# x86_64-pc-linux-gnu, a directory that does not exist.
MULTIARCH   := $(or $(shell $(CC) -print-multiarch 2>/dev/null),$(shell $(CC) -dumpmachine 2>/dev/null),x86_64-linux-gnu)
SHIM_LIB    := $(B)/libkimifix.so
KIMIFIX     := $(B)/kimifix
RELAY_BIN   := $(B)/kimifix-relay
FAKEUP_BIN  := $(B)/fakeup
E2E_DIR     := $(B)/tests/e2e
E2E_CLIENTS := $(E2E_DIR)/libcurl-openssl $(E2E_DIR)/libcurl-gnutls
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN    := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)
# Test programs (not PIC, not hidden: programs, not the shim).
TEST_BASE_CFLAGS := $(CSTD) -Wall -Wextra -Werror $(OPT) $(EXTRA_CFLAGS)
# libcurl-gnutls has the same API as libcurl4-openssl (whose headers the
# tests use; the two -dev packages conflict): its runtime library, by path.
CURL_GNUTLS_LIB := $(firstword $(wildcard /usr/lib/$(MULTIARCH)/libcurl-gnutls.so.4 \
                     /usr/lib/libcurl-gnutls.so.4) libcurl-gnutls.so.4)

ENGINE_SRC := $(wildcard src/core/*.c)
COMMON_SRC := $(wildcard src/common/*.c)
CORE_SRC := $(ENGINE_SRC) $(COMMON_SRC)
CORE_OBJ := $(CORE_SRC:src/%.c=$(B)/%.o) $(B)/core/default_rules.o
CORE_LIB := $(B)/libkfcore.a

.PHONY: all check deps clean install uninstall demo fuzz
all: $(CORE_LIB)

$(B)/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Built-in rules are compiled in from rules/default.rules.
$(B)/core/default_rules.c: rules/default.rules scripts/embed-rules.sh
	@mkdir -p $(@D)
	sh scripts/embed-rules.sh $< > $@
$(B)/core/default_rules.o: $(B)/core/default_rules.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(CORE_LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

deps:
	@sh scripts/deps.sh

demo: deps
	@$(MAKE) --no-print-directory all >/dev/null
	@sh scripts/demo.sh $(B)

# Each fragment appends its suite (a make target) to CHECK_SUITES.
CHECK_SUITES := check-unit
check: deps
	@$(MAKE) --no-print-directory all
	@KIMIFIX_SUMMARY=$(B)/check-summary.txt sh scripts/check.sh "$(MAKE) B=$(B)" $(CHECK_SUITES)

clean:
	rm -rf $(B)

-include mk/*.mk
-include $(shell find $(B) -name '*.d' -type f 2>/dev/null)
