#!/usr/bin/env bash
# fuzz-smoke.sh BUILD_DIR SECONDS JOBS: run every libFuzzer target in
# BUILD_DIR/fuzz for SECONDS each, JOBS at a time, on a scratch copy of its
# committed corpus (tests/fuzz/corpus/NAME for fuzz_NAME) with its
# dictionary (tests/fuzz/NAME.dict, else stream.dict for the HTTP targets).
# Any crash, leak, timeout (10 s per input), out-of-memory or UBSan report
# fails. Prints one line per target (execs, coverage, corpus) and
# "fuzz-smoke: N passed, N failed".
set -u
B=$(cd "${1:?usage: fuzz-smoke.sh BUILD_DIR SECONDS JOBS}" && pwd)
secs=${2:-60} jobs=${3:-2}
src=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/kimifix-fuzz.XXXXXX)
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
targets=$(cd "$B/fuzz" && ls fuzz_* 2>/dev/null | grep -v '\.' )
[ -n "$targets" ] || { echo "fuzz-smoke: no targets in $B/fuzz"; exit 1; }
one() {
    local t=$1 name=${1#fuzz_} dict=""
    mkdir -p "$W/$name"
    cp -r "$src/tests/fuzz/corpus/$name/." "$W/$name/" 2>/dev/null
    if [ -f "$src/tests/fuzz/$name.dict" ]; then dict="-dict=$src/tests/fuzz/$name.dict"
    elif [ "$name" != proxy ]; then dict="-dict=$src/tests/fuzz/stream.dict"; fi
    "$B/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 \
        $dict -artifact_prefix="$W/$name-" "$W/$name" >"$W/$name.log" 2>&1
    echo $? >"$W/$name.rc"
}
export -f one
export B W src secs
echo "$targets" | xargs -P "$jobs" -I{} bash -c 'one {}'
pass=0 fail=0
for t in $targets; do
    name=${t#fuzz_}
    rc=$(cat "$W/$name.rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$W/$name.log")
    cov=$(grep -E '^#[0-9]+' "$W/$name.log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    arts=$(ls "$W/$name-"* 2>/dev/null | wc -l)
    if [ "$rc" = 0 ] && [ "$arts" = 0 ]; then
        pass=$((pass + 1))
        echo "ok   - $t: ${execs:-?} execs, cov ${cov:-?}, corpus $(ls "$W/$name" | wc -l)"
    else
        fail=$((fail + 1))
        echo "FAIL - $t: rc $rc, $arts artifact(s) in $W"
        grep -E 'ERROR|runtime error|SUMMARY|deadly|leak|abort' "$W/$name.log" | head -n 15 | sed 's/^/    /'
    fi
done
[ "$fail" = 0 ] && rm -rf "$W"
echo "fuzz-smoke: $pass passed, $fail failed"
[ "$fail" = 0 ]
