# TLS and libcurl hook families: test programs run under LD_PRELOAD against a
# recording TLS server, one Criterion binary ($(B)/tests/tls-tests).
#
# Test programs link the real libraries (the shim never does): libssl,
# GnuTLS, libcurl (OpenSSL flavour) and libcurl-gnutls, the latter linked
# directly by file name with the OpenSSL flavour's headers (their -dev
# packages conflict; the API is the same).
TLS_TEST_DIR    := $(B)/tests/tls
TLS_TEST_BIN    := $(B)/tests/tls-tests
TLS_TEST_CFLAGS := $(TEST_BASE_CFLAGS) -pthread -Itests/tls
TLS_PROGS := $(TLS_TEST_DIR)/ossl_client $(TLS_TEST_DIR)/gnutls_client \
             $(TLS_TEST_DIR)/curl_client $(TLS_TEST_DIR)/curl_client_gnutls \
             $(TLS_TEST_DIR)/nolib_client

$(TLS_TEST_DIR)/ossl_client: tests/tls/ossl_client.c tests/tls/kfreq.h
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -o $@ $< -lssl -lcrypto $(LDFLAGS)

$(TLS_TEST_DIR)/gnutls_client: tests/tls/gnutls_client.c tests/tls/kfreq.h
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -o $@ $< -lgnutls $(LDFLAGS)

$(TLS_TEST_DIR)/curl_client: tests/tls/curl_client.c
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -o $@ $< -lcurl $(LDFLAGS)

$(TLS_TEST_DIR)/curl_client_gnutls: tests/tls/curl_client.c
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -o $@ $< $(CURL_GNUTLS_LIB) $(LDFLAGS)

# Links none of the libraries on purpose (weak references).
$(TLS_TEST_DIR)/nolib_client: tests/tls/nolib_client.c
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -o $@ $< $(LDFLAGS)

# One write stays one write (test_onewrite.c): a client writing the patterns
# of kfpat.h, and a call counter preloaded below the shim.
$(TLS_TEST_DIR)/wpat_client: tests/tls/wpat_client.c tests/tls/kfpat.h
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -o $@ $< -lgnutls -lssl -lcrypto $(LDFLAGS)

$(TLS_TEST_DIR)/libwcount.so: tests/tls/wcount.c
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -fPIC -shared -o $@ $< -ldl $(LDFLAGS)

TLS_TEST_SRC := tests/tls/test_tls.c tests/tls/test_onewrite.c tests/tls/tlsrec.c tests/tls/tlsrun.c

# The programs the tests run are prerequisites, so that every tree that
# builds the test binary (the sanitizer trees too) builds them.
$(TLS_TEST_BIN): $(TLS_TEST_SRC) tests/tls/tlsrec.h tests/tls/tlsrun.h tests/tls/kfreq.h tests/tls/kfpat.h \
                 $(TLS_TEST_DIR)/wpat_client $(TLS_TEST_DIR)/libwcount.so
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -DKF_TEST_BUILD='"$(abspath $(B))"' -DKF_TEST_SRC='"$(abspath .)"' \
	    -o $@ $(TLS_TEST_SRC) -lcriterion -lssl -lcrypto -pthread $(LDFLAGS)

# A throw-away CA and server certificate, made with the openssl CLI.
$(TLS_TEST_DIR)/certs/cert.pem: tests/tls/mkcerts.sh
	@rm -rf $(TLS_TEST_DIR)/certs
	sh tests/tls/mkcerts.sh $(TLS_TEST_DIR)/certs

.PHONY: check-tls
check-tls: $(SHIM_LIB) $(TLS_PROGS) $(TLS_TEST_BIN) $(TLS_TEST_DIR)/certs/cert.pem
	$(TLS_TEST_BIN) --jobs=4 $(CRITERION_ARGS)
CHECK_SUITES += check-tls
