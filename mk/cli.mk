# The `kimifix` program: check, explain, help, and (wrap.c) running a command.
CLI_SRC := $(wildcard src/cli/*.c)
CLI_OBJ := $(CLI_SRC:src/%.c=$(B)/%.o)

all: $(KIMIFIX)

$(KIMIFIX): $(CLI_OBJ) $(CORE_LIB)
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(CORE_LIB) $(LDFLAGS)

# Smoke tests of the tools against exact output (no network). Each line
# must be printed by the command before it.
.PHONY: check-cli
check-cli: $(KIMIFIX)
	@set -e; k=$(KIMIFIX); \
	$$k explain POST https://api.kimi.com/coding/v1/v1/messages | grep -qx '  POST /coding/v1/messages HTTP/1.1'; \
	$$k explain POST 'https://api.kimi.com/coding/v1/v1/messages?beta=true' | grep -qx '  POST /coding/v1/messages?beta=true HTTP/1.1'; \
	$$k explain --carrier inprocess POST https://api.moonshot.ai/v1/chat/completions -H 'Authorization: Bearer sk-kimi-x' | grep -q '^skipped: moonshot-sk-kimi-to-kimi '; \
	$$k explain POST https://api.moonshot.ai/v1/chat/completions -H 'Authorization: Bearer sk-kimi-x' | grep -qx '  Authorization: \[redacted\]'; \
	for f in rules/examples/*.rules; do KIMIFIX_RULES=/nonexistent $$k check $$f >/dev/null 2>&1 || { echo "check-cli: $$f fails"; exit 1; }; done; \
	printf 'rule x\n  bogus\n' > $(B)/bad.rules; \
	if $$k check $(B)/bad.rules >/dev/null 2>$(B)/bad.err; then echo 'check-cli: bad file accepted'; exit 1; fi; \
	grep -qx '$(B)/bad.rules:2: error: unknown directive .bogus.' $(B)/bad.err; \
	$$k --version | grep -qx 'kimifix 0.1.0'; \
	echo 'check-cli: ok'
CHECK_SUITES += check-cli
