#!/bin/sh
# embed-rules.sh FILE: print a C file defining kf_default_rules[] with FILE's
# bytes, and a summary the shim needs before it parses them:
# kf_default_rules_name_hosts = 1 when a `host` directive is there (relay
# steering possible). tests/unit/test_rules_lazy.c checks it against the parser.
set -eu
f=$1
echo '/* generated from '"$f"' by scripts/embed-rules.sh; do not edit */'
echo '#include <stddef.h>'
echo '__attribute__((visibility("hidden"))) const char kf_default_rules[] = {'
od -An -v -tx1 "$f" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/    /'
echo '    0x00 };'
echo '__attribute__((visibility("hidden"))) const size_t kf_default_rules_len = sizeof(kf_default_rules) - 1;'
hosts=0
grep -Eq '^[[:space:]]*host[[:space:]]' "$f" && hosts=1
echo "__attribute__((visibility(\"hidden\"))) const int kf_default_rules_name_hosts = $hosts;"
