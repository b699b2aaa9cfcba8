# kimifix for a whole shell session (src/cli/shell*.c, status.c) and the
# completions (completions/): tests/shell/run.py runs real bash, zsh and
# fish (scripts/deps/shell.list) on the build tree; the zsh completion is
# driven through a pseudo-terminal (tests/shell/zcomp.zsh).
.PHONY: check-shell
check-shell: $(B)/kimifix $(B)/libkimifix.so $(B)/kimifix-relay
	/usr/bin/python3 tests/shell/run.py $(B)
CHECK_SUITES += check-shell
