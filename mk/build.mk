# The build itself (tests/build/run.sh): a second tree built with clang
# (-Werror, as the gcc one), and the shim's start-data layout in both.
.PHONY: check-build
check-build: $(SHIM_LIB) $(KIMIFIX) $(RELAY_BIN)
	@$(MAKE) --no-print-directory B=$(B)/clang CC=clang $(B)/clang/libkimifix.so \
	    $(B)/clang/kimifix $(B)/clang/kimifix-relay >$(B)/clang-build.log 2>&1 || \
	    { tail -n 30 $(B)/clang-build.log; }
	sh tests/build/run.sh $(B)
CHECK_SUITES += check-build
