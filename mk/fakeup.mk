# fakeup: fake Kimi/Moonshot upstream for real-client tests (tests/fakeup/).
# A test tool, not part of the shim: its own flags (no -fvisibility, links
# OpenSSL and libnghttp2), still -Wall -Wextra -Werror and C11.
FAKEUP_SRC    := $(wildcard tests/fakeup/*.c)
FAKEUP_OBJ    := $(FAKEUP_SRC:%.c=$(B)/%.o)
FAKEUP_PKGS   := openssl libnghttp2
FAKEUP_CFLAGS := $(CSTD) $(WARN) $(OPT) -pthread $(EXTRA_CFLAGS) \
                 $(shell pkg-config --cflags $(FAKEUP_PKGS) 2>/dev/null)
FAKEUP_LIBS   := $(shell pkg-config --libs $(FAKEUP_PKGS) 2>/dev/null || echo -lssl -lcrypto -lnghttp2)

$(B)/tests/fakeup/%.o: tests/fakeup/%.c
	@mkdir -p $(@D)
	$(CC) $(FAKEUP_CFLAGS) -MMD -MP -c -o $@ $<

$(FAKEUP_BIN): $(FAKEUP_OBJ)
	$(CC) $(FAKEUP_CFLAGS) -o $@ $(FAKEUP_OBJ) $(FAKEUP_LIBS) -pthread $(LDFLAGS)

.PHONY: fakeup check-fakeup
fakeup: $(FAKEUP_BIN)

check-fakeup: $(FAKEUP_BIN)
	bash tests/fakeup/selftest.sh $(B)

all: $(FAKEUP_BIN)
CHECK_SUITES += check-fakeup
