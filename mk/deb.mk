# make deb: build/kimifix_VERSION_ARCH.deb from the install tree
# (scripts/mkdeb.sh, version from scripts/deb-version.sh); make lintian:
# Debian's checker on it (tests/install/run.sh runs it in make check).
.PHONY: deb lintian
deb: $(B)/libkimifix.so $(B)/kimifix $(B)/kimifix-relay
	@sh scripts/mkdeb.sh $(B) "$(MAKE)"

lintian: deb
	lintian --info --display-info $(B)/kimifix_*.deb

# The installed trees, in private namespaces (tests/install/run.sh): make
# install under /usr/local (the bare LD_PRELOAD name), the .deb with lintian
# and dpkg -i, doctor and fixed requests against fakeup.
.PHONY: check-install
check-install: deb $(B)/fakeup
	sh tests/install/run.sh $(B)
CHECK_SUITES += check-install
