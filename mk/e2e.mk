# End-to-end harness (tests/e2e/): real clients against $(B)/fakeup, without
# and with kimifix. `make check-e2e` installs the clients (cached), builds the
# libcurl client twice (OpenSSL and GnuTLS flavours) and runs the matrix.
#   E2E_ARGS='--filter curl- -v'   passed to tests/e2e/run.py
#   KIMIFIX_NO_CLIENTS=1           install nothing (missing clients SKIP)
E2E_CFLAGS   := $(TEST_BASE_CFLAGS)
# libcurl-gnutls has the same API as libcurl4-openssl (whose headers we use;
# the two -dev packages conflict), so link its runtime library by path.
E2E_GNUTLS_LIB := $(firstword $(wildcard /usr/lib/$(MULTIARCH)/libcurl-gnutls.so.4 \
                    /usr/lib/libcurl-gnutls.so.4) libcurl-gnutls.so.4)

$(E2E_DIR)/libcurl-openssl: tests/e2e/clients/libcurl_client.c
	@mkdir -p $(@D)
	$(CC) $(E2E_CFLAGS) -o $@ $< -lcurl $(LDFLAGS)

$(E2E_DIR)/libcurl-gnutls: tests/e2e/clients/libcurl_client.c
	@mkdir -p $(@D)
	$(CC) $(E2E_CFLAGS) -o $@ $< $(CURL_GNUTLS_LIB) $(LDFLAGS)

.PHONY: e2e-clients check-e2e
e2e-clients:
	@sh scripts/install-clients.sh

# The with-kimifix cases need the shim, the wrapper and the relay.
check-e2e: $(FAKEUP_BIN) $(E2E_CLIENTS) e2e-clients $(SHIM_LIB) $(KIMIFIX) $(RELAY_BIN)
	/usr/bin/python3 tests/e2e/run.py --build $(B) $(E2E_ARGS)
CHECK_SUITES += check-e2e
