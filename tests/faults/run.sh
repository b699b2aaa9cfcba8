#!/usr/bin/env bash
# run.sh BUILD_DIR: the fault-injection suites (fdriver: libc write paths;
# tlsfault.py: SSL_write) with one closing "faults: N passed, N failed".
set -u
B=${1:?usage: run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
p=0 f=0
for cmd in "$B/tests/faults/fdriver $B" "python3 $here/tlsfault.py $B"; do
    $cmd >"$out" 2>&1
    rc=$?
    grep -vE '^ok ' "$out"
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    a=$(echo "$line" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
    b=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
    p=$((p + ${a:-0})) f=$((f + ${b:-1}))
    [ "$rc" != 0 ] && [ "${b:-1}" = 0 ] && f=$((f + 1))
done
echo "faults: $p passed, $f failed"
[ "$f" = 0 ]
