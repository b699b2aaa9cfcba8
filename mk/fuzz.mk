# libFuzzer targets (clang): make fuzz builds them into $(B)/fuzz/.
# Run one:  $(B)/fuzz/fuzz_stream -max_total_time=60 tests/fuzz/corpus/stream
FUZZ_CFLAGS := $(CSTD) -Wall -Wextra -O1 -g -fsanitize=fuzzer,address,undefined -Isrc/core -Itests
FUZZ_CORE := $(CORE_SRC) $(B)/core/default_rules.c

fuzz: $(FUZZ_BIN)
$(B)/fuzz/%: tests/fuzz/%.c $(FUZZ_CORE)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_CORE)

# The relay's HTTP proxy front end and chain (pure files under src/relay/).
FUZZ_HTTPPROXY_SRC := src/relay/httpproxy.c src/relay/httpproxy_head.c \
                      src/relay/httpproxy_reply.c src/relay/chain.c
$(B)/fuzz/fuzz_httpproxy: tests/fuzz/fuzz_httpproxy.c $(FUZZ_CORE) $(FUZZ_HTTPPROXY_SRC)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -Isrc/relay -o $@ $< $(FUZZ_HTTPPROXY_SRC) $(FUZZ_CORE)
