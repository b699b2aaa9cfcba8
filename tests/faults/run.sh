#!/usr/bin/env bash
# run.sh BUILD_DIR: the fault-injection suites (fdriver: libc write paths;
# tlsfault.py: SSL_write) with one closing "faults: N passed, N failed".
set -u
B=${1:?usage: run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# A private world: a relay the shim starts on demand lives in $T/run and is
# stopped here, not left holding /tmp/kimifix-$UID for its idle time.
T=$(mktemp -d /tmp/kimifix-faults.XXXXXX)
mkdir -p "$T/run" "$T/data" && chmod 700 "$T" "$T/run"
export XDG_RUNTIME_DIR=$T/run XDG_DATA_HOME=$T/data
out=$T/out
cleanup() {
    local p
    for p in $(pgrep -x kimifix-relay); do
        { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "XDG_RUNTIME_DIR=$T/run" &&
            kill "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT
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
