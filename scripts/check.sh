#!/bin/sh
# check.sh MAKE SUITE...: run each test suite (a make target), show its
# output, and end with one summary line over all of them:
#   check: N passed, N failed, N skipped
# A suite counts from its own closing line: Criterion's
#   [====] Synthesis: Tested: T | Passing: P | Failing: F | Crashing: C
# or a runner's "N passed, N failed[, N skipped]". A suite that exits
# non-zero without such a line counts as one failure.
set -u
make=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
passed=0 failed=0 skipped=0 bad=""
# count WORD LINE: the number right before " WORD" in LINE.
count() {
    echo "$2" | tr ',' '\n' | sed -n "s/^.*[^0-9]\{0,1\}\b\([0-9][0-9]*\) $1\b.*/\1/p" | tail -n 1
}
for suite in "$@"; do
    echo "==== $suite"
    $make --no-print-directory "$suite" >"$log" 2>&1
    rc=$?
    cat "$log"
    line=$(grep -E 'Synthesis: Tested:' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
        f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
        c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
        s=$(grep -cE '^\[SKIP\]' "$log" || true)
        f=$((f + c))
    else
        line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
        p=$(count passed "$line")
        f=$(count failed "$line")
        s=$(count skipped "$line")
    fi
    p=${p:-0} f=${f:-0} s=${s:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    elif [ "$rc" -eq 0 ] && [ -z "$line" ]; then
        p=1 # a suite with no count of its own passed as a whole
    fi
    [ "$f" -ne 0 ] && bad="$bad $suite"
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done
echo "==== summary"
[ -n "$bad" ] && echo "failing suites:$bad"
echo "check: $passed passed, $failed failed, $skipped skipped" | tee "${KIMIFIX_SUMMARY:-/dev/null}"
[ "$failed" -eq 0 ]
