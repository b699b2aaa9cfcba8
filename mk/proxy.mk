# The proxy carrier (docs/relay.md, "Proxy carrier"): unit tests of its pure
# parts -- the relay's HTTP proxy front end (src/relay/httpproxy*.c), the
# chain to the user's proxy (src/relay/chain.c), NO_PROXY and the carrier
# choice (src/common/kf_noproxy.c, kf_envplan*.c) -- and the shim's side
# (tests/proxy/shim.sh: the constructor's choice, the relay's port left alone).
PROXY_TEST_DIR  := $(B)/tests/proxy
PROXY_UNIT      := $(PROXY_TEST_DIR)/proxy-unit
PROXY_UNIT_SRC  := $(wildcard tests/proxy/test_*.c)
PROXY_RELAY_OBJ := $(B)/relay/httpproxy.o $(B)/relay/httpproxy_head.o \
                   $(B)/relay/httpproxy_reply.o $(B)/relay/chain.o
PROXY_TEST_CFLAGS := $(TEST_BASE_CFLAGS) $(INC) -Isrc/relay

$(PROXY_UNIT): $(PROXY_UNIT_SRC) tests/proxy/fakeenv.h $(PROXY_RELAY_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(PROXY_TEST_CFLAGS) -o $@ $(PROXY_UNIT_SRC) $(PROXY_RELAY_OBJ) $(CORE_LIB) \
	    -lcriterion -pthread $(LDFLAGS)

.PHONY: check-proxy check-proxy-unit check-proxy-shim
check-proxy: check-proxy-unit check-proxy-shim
check-proxy-unit: $(PROXY_UNIT)
	$(PROXY_UNIT) --jobs=2 $(CRITERION_ARGS)
CHECK_SUITES += check-proxy-unit

# The shim's side (src/hooks/carrier.c) under real programs: envprint
# (plain, and with a shared libssl loaded at start-up), python3, the relay.
PROXY_ENVPRINT := $(PROXY_TEST_DIR)/envprint $(PROXY_TEST_DIR)/envprint-ssl
$(PROXY_TEST_DIR)/envprint: tests/proxy/envprint.c
	@mkdir -p $(@D)
	$(CC) $(PROXY_TEST_CFLAGS) -o $@ $< $(LDFLAGS)
$(PROXY_TEST_DIR)/envprint-ssl: tests/proxy/envprint.c
	@mkdir -p $(@D)
	$(CC) $(PROXY_TEST_CFLAGS) -DWITH_SSL -o $@ $< -lssl -lcrypto $(LDFLAGS)

check-proxy-shim: $(PROXY_ENVPRINT) $(B)/libkimifix.so $(B)/kimifix $(B)/kimifix-relay
	/usr/bin/python3 tests/proxy/shim_test.py $(B)
CHECK_SUITES += check-proxy-shim

# The e2e suite's Go client (tests/e2e/suites/proxy.py): stdlib net/http,
# CGO_ENABLED=0 (statically linked, as Go CLIs are released), built with
# Debian's golang-go (scripts/deps/e2e.list) with its caches in the build
# dir and no network (GOPROXY=off: it has no dependencies). Without go the
# suite says so (a SKIP the run does not allow).
GOCLIENT     := $(B)/tests/e2e/goclient
GOCLIENT_SRC := $(wildcard tests/e2e/clients/goclient/*.go) tests/e2e/clients/goclient/go.mod
GO_ENV := CGO_ENABLED=0 GOCACHE=$(abspath $(B))/go/cache GOPATH=$(abspath $(B))/go/path \
          GOPROXY=off GOFLAGS=-mod=mod GO111MODULE=on GOTOOLCHAIN=local

$(GOCLIENT): $(GOCLIENT_SRC)
	@mkdir -p $(@D)
	@if command -v go >/dev/null 2>&1; then \
	    echo "go build $@"; \
	    cd tests/e2e/clients/goclient && $(GO_ENV) go build -trimpath -o $(abspath $@) .; \
	else \
	    echo "goclient: no go on PATH (Debian golang-go): the Go cases of the proxy suite SKIP"; \
	fi

check-e2e: $(GOCLIENT)
