# libkimifix.so (the LD_PRELOAD shim), its tests, install/uninstall.
#
# Every hook family under src/hooks/ plus the engine objects, all built
# -fPIC -fvisibility=hidden (CFLAGS): only hooks marked KF_EXPORT are
# exported. The library links only libc, libdl and libpthread; libssl,
# GnuTLS and libcurl are found at run time (resolve.c).
SHIM_SRC := $(wildcard src/hooks/*.c)
SHIM_OBJ := $(SHIM_SRC:src/%.c=$(B)/%.o)
SHIM_LIB := $(B)/libkimifix.so
# -z defs: every reference resolved at link time (nothing silently missing);
# -z nodelete: atfork handlers and hooks must outlive a dlclose().
SHIM_LDFLAGS := -shared -Wl,-z,defs -Wl,-z,nodelete -Wl,--as-needed

all: $(SHIM_LIB)

$(SHIM_LIB): $(SHIM_OBJ) $(CORE_OBJ)
	$(CC) $(CFLAGS) $(SHIM_LDFLAGS) -o $@ $(SHIM_OBJ) $(CORE_OBJ) -ldl -pthread $(LDFLAGS)

# ---- tests: helper programs run under LD_PRELOAD + one Criterion binary ----
SHIM_TEST_DIR  := $(B)/tests/shim
SHIM_TEST_BIN  := $(SHIM_TEST_DIR)/shim-tests
SHIM_TEST_PROG := $(SHIM_TEST_DIR)/kfclient
SHIM_TEST_CFLAGS := $(CSTD) -Wall -Wextra -Werror $(OPT) -pthread -Isrc/core -Itests/shim $(EXTRA_CFLAGS)

$(SHIM_TEST_PROG): tests/shim/kfclient.c
	@mkdir -p $(@D)
	$(CC) $(SHIM_TEST_CFLAGS) -o $@ $< -pthread $(LDFLAGS)

$(SHIM_TEST_BIN): tests/shim/test_shim.c tests/shim/harness.h tests/shim/tls_memory.py
	@mkdir -p $(@D)
	$(CC) $(SHIM_TEST_CFLAGS) -DKF_TEST_BUILD='"$(abspath $(B))"' -DKF_TEST_SRC='"$(abspath .)"' \
	    -o $@ tests/shim/test_shim.c -lcriterion -pthread $(LDFLAGS)

# Criterion tests (every scenario is a test with its own expectations);
# --verbose shows each test, so a skip (no node, no python3) is visible.
.PHONY: check-shim
check-shim: $(SHIM_LIB) $(SHIM_TEST_PROG) $(SHIM_TEST_BIN) $(B)/kimifix
	$(SHIM_TEST_BIN) --verbose --jobs=2 $(CRITERION_ARGS)
CHECK_SUITES += check-shim

# ---- install ----
BINDIR := $(DESTDIR)$(PREFIX)/bin
LIBDIR := $(DESTDIR)$(PREFIX)/lib/kimifix
MANDIR := $(DESTDIR)$(PREFIX)/share/man

install: $(SHIM_LIB) $(B)/kimifix
	install -d $(BINDIR) $(LIBDIR) $(MANDIR)/man1 $(MANDIR)/man5
	install -m 0755 $(B)/kimifix $(BINDIR)/kimifix
	install -m 0644 $(SHIM_LIB) $(LIBDIR)/libkimifix.so
	$(if $(wildcard man/kimifix.1),install -m 0644 man/kimifix.1 $(MANDIR)/man1/kimifix.1)
	$(if $(wildcard man/kimifix.rules.5),install -m 0644 man/kimifix.rules.5 $(MANDIR)/man5/kimifix.rules.5)

uninstall:
	rm -f $(BINDIR)/kimifix $(LIBDIR)/libkimifix.so
	rm -f $(MANDIR)/man1/kimifix.1 $(MANDIR)/man5/kimifix.rules.5
	-rmdir $(LIBDIR) 2>/dev/null
