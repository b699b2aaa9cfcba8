#!/usr/bin/env bash
# run-san.sh asan|tsan SAN_BUILD_DIR: run the suites against a tree built
# with sanitizers (make check-asan / check-tsan build it) and fail on any
# sanitizer report, even one from a process whose test passed.
#
# How the shim is tested under ASan (it is an LD_PRELOAD library):
#  - programs we build (kfclient, fclient, hammer, rawsend, the TLS test
#    clients) are instrumented too; their ASan runtime is a DT_NEEDED that
#    ld.so loads after the preloaded libkimifix.so, which ASan would refuse
#    ("runtime does not come first"): verify_asan_link_order=0. Symbol
#    order is still right (malloc and the interceptors resolve to libasan,
#    the shim's RTLD_NEXT calls reach libasan's then libc's write).
#  - uninstrumented programs (node, python3, curl, sh) get the runtime
#    first: LD_PRELOAD=libasan.so:libkimifix.so (KF_PRELOAD_PREFIX, used by
#    tests/faults and tests/hardening). Test suites that set LD_PRELOAD to
#    the library alone cannot do that for node (its static initializers run
#    before a late ASan runtime is ready: SEGV at address 0, an artifact):
#    those cases are excluded below and covered by tests/hardening instead.
#  - the NEEDED-list test of the shim is excluded: a sanitized library
#    needs libasan/libubsan by construction.
# TSan the same way: LD_PRELOAD=libtsan.so:libkimifix.so for our programs.
#
# Leaks: LSan runs everywhere; tests/hardening/lsan.supp names the test
# harnesses' own leaks (servers that never free their records) and nothing
# in src/. Prints "MODE: N passed, N failed" (a suite is one check; the
# report scan is one more).
set -u
mode=${1:?asan|tsan}
D=$(cd "${2:?build dir}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
R=$(mktemp -d /tmp/kimifix-$mode.XXXXXX)
pass=0 fail=0 bad=""
start=$(date +%s)
export HARD_NO_RSS=1 # memory figures are meaningless under sanitizers

case $mode in
asan)
    export ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=20:log_path=$R/asan:detect_stack_use_after_return=0"
    export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$R/ubsan"
    export KF_PRELOAD_PREFIX=${HARD_LIBASAN:?}
    ;;
tsan)
    export TSAN_OPTIONS="log_path=$R/tsan:halt_on_error=0:second_deadlock_stack=1:history_size=4:suppressions=$here/tsan.supp"
    export KF_PRELOAD_PREFIX=${HARD_LIBTSAN:?}
    ;;
*) echo "run-san.sh: asan or tsan" >&2; exit 2 ;;
esac

# suite NAME [ALLOW_REGEX] -- CMD...: one check; lines matching ALLOW_REGEX
# among the suite's FAIL lines are tolerated (documented where used).
suite() {
    local name=$1 allow=$2 t0=$(date +%s)
    shift 3
    echo "==== $mode: $name"
    "$@" >"$R/$name.out" 2>&1
    local rc=$?
    tail -n 4 "$R/$name.out" | sed 's/^/    /'
    local fails
    fails=$(grep -E '^(FAIL|\[FAIL\])' "$R/$name.out" | grep -vE "${allow:-^$}" | wc -l)
    if [ "$rc" = 0 ] || { [ -n "$allow" ] && [ "$fails" = 0 ] && grep -qE "$allow" "$R/$name.out"; }; then
        pass=$((pass + 1))
        echo "ok   - $name ($(( $(date +%s) - t0 )) s)"
    else
        fail=$((fail + 1)) bad="$bad $name"
        echo "FAIL - $name (rc $rc, $(( $(date +%s) - t0 )) s)"
        grep -E 'FAIL|Assertion|error' "$R/$name.out" | head -n 20 | sed 's/^/    /'
    fi
}

if [ "$mode" = asan ]; then
    suite unit "" -- "$D/tests/unit-tests" --jobs=2
    # fork_threads_signal_handler: gcc 12's ASan allocator is not fork-safe
    # (a child forked while another parent thread held an allocator lock
    # waits for it forever in calloc: seen here, gdb in __asan::Allocator
    # under kfclient's child); the plain build runs it in make check.
    suite shim "" -- "$D/tests/shim/shim-tests" --jobs=2 \
        --filter '!(shim/static_tls_warning|shim/library_needs_and_exports|shim/fork_threads_signal_handler)'
    if [ -x "$D/tests/tls-tests" ]; then
        suite tls "" -- "$D/tests/tls-tests" --jobs=2
    fi
    suite relay-unit "" -- "$D/tests/relay/relay-unit" --jobs=2
    suite pool "" -- "$D/tests/hardening/pool_threads" 16 200 0
    # ASan's shadow memory and quarantine make RSS meaningless: the relay's
    # 32 MiB RSS check is the one tolerated failure (it runs in make check).
    suite relay-e2e 'relay RSS with 200 open connections' -- bash "$src/tests/relay/run.sh" "$D"
    suite faults "" -- bash "$src/tests/faults/run.sh" "$D"
    suite hardening "" -- bash "$here/run.sh" "$D"
    # A reduced end-to-end run with real clients when a private network
    # namespace can be made: the wrapper puts the library alone in
    # LD_PRELOAD, so only clients that start a late ASan runtime cleanly
    # (curl, libcurl, python3; not node) are in it.
    if command -v unshare >/dev/null && { unshare -rmn true 2>/dev/null || unshare -mn true 2>/dev/null; }; then
        for f in ${E2E_SAN_FILTERS:-curl-h1/* libcurl-gnutls/* py-requests/*}; do
            suite "e2e-${f%%/*}" "" -- env KIMIFIX_NO_CLIENTS=1 python3 "$src/tests/e2e/run.py" \
                --build "$D" --filter "$f"
        done
    else
        echo "skip - e2e-reduced: no namespace (needs root or user namespaces)"
    fi
else
    # TSan does not model fork() in a multi-threaded process (children
    # report "thread leak" and locks re-initialised after fork): the fork
    # cases run in make check-hardening and under ASan instead.
    suite pool "" -- "$D/tests/hardening/pool_threads" 16 200 0
    for m in "threads 16 30" "dup2 40"; do
        suite "shim-${m%% *}" "" -- env LD_PRELOAD="$KF_PRELOAD_PREFIX:$D/libkimifix.so" \
            KIMIFIX_RULES=/dev/null KIMIFIX_LOG="$R/shim.log" "$D/tests/hardening/hammer" $m
    done
    suite faults "" -- "$D/tests/faults/fdriver" "$D"
    suite relay-e2e 'relay RSS with 200 open connections' -- bash "$src/tests/relay/run.sh" "$D"
    suite relay-sse "" -- bash "$here/run.sh" "$D" load
fi

# Every report file is a finding.
reports=$(find "$R" -name 'asan.*' -o -name 'ubsan.*' -o -name 'tsan.*' | sort)
n=$(echo "$reports" | grep -c . || true)
if [ "$n" = 0 ]; then
    pass=$((pass + 1))
    echo "ok   - no sanitizer reports"
    rm -rf "$R"
else
    fail=$((fail + 1)) bad="$bad reports"
    echo "FAIL - $n sanitizer report(s) (kept in $R):"
    for f in $(echo "$reports" | head -n 5); do
        echo "---- $f"
        grep -vE '^\s*$' "$f" | head -n 30
    done
fi
echo "$mode: $(( $(date +%s) - start )) s"
[ -n "$bad" ] && echo "failing:$bad"
echo "$mode: $pass passed, $fail failed"
[ "$fail" = 0 ]
