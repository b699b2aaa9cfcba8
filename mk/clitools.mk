# kimifix log, check --names/--rule, and the broken-rules-file policy as
# explain/check/status report it (tests/cli/run.py; no relay, no network).
.PHONY: check-cli-tools
check-cli-tools: $(B)/kimifix $(B)/libkimifix.so
	/usr/bin/python3 tests/cli/run.py $(B)
CHECK_SUITES += check-cli-tools
