#!/bin/sh
# tests/build/run.sh B: what a build with gcc and one with clang must both
# give (make check-build). B is the gcc build; B/clang is the clang one,
# made by the caller (mk/build.mk) with -Werror as always.
#   - both build at all, warnings as errors (a user's CC=clang);
#   - both name the same multiarch directory (the CLI looks for the
#     library in ../lib/MULTIARCH: clang's -dumpmachine names another);
#   - in both shims the data every process start writes (KF_START_DATA,
#     mk/shim-start.ld) sits in .kf_start, which begins on the page where
#     .data ends: the page the loader writes anyway (bench figure 6);
#   - in both shims the code every process start runs (the functions
#     mk/shim-start.ld names) sits in .kf_start_text, which with .init and
#     .fini spans at most 16 KiB (one or two of the kernel's 64 KiB
#     fault-around windows); every name listed there still names a
#     function in src/ (a rename would silently cost a fault);
#   - both shims load into a program and leave it alone (exit 0, nothing
#     on stdout).
set -u
B=$1
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# section NAME LIB: "ADDR SIZE" (hex, no 0x) of a section
section() {
    readelf -SW "$2" | sed -n "s/^ *\[ *[0-9]*\] $1 \{1,\}[A-Z_]\{1,\} \{1,\}\([0-9a-f]*\) [0-9a-f]* \([0-9a-f]*\) .*/\1 \2/p"
}

# The start-up text (mk/shim-start.ld): .init, .fini and .kf_start_text
# together at the head of the code, every listed function in there.
start_text() {
    set -- "$1" "$2" $(section .init "$2") $(section .fini "$2") $(section .kf_start_text "$2")
    if [ $# -ne 8 ]; then
        bad "$1: shim has .init, .fini and .kf_start_text"
        return
    fi
    lo=$((0x$3)) fini=$((0x$5)) ta=$((0x$7)) tn=$((0x$8))
    if [ $fini -ge $lo ] && [ $fini -lt $ta ] && [ $((ta + tn - lo)) -le 16384 ]; then
        ok "$1: .init, .fini and the start text within 16 KiB ($((ta + tn - lo)) bytes)"
    else
        bad "$1: .init, .fini and the start text within 16 KiB (.init 0x$3, .fini 0x$5, start 0x$7+0x$8)"
    fi
    names=$(sed -n 's/.*\*(\(\.text\.[^)]*\)).*/\1/p' mk/shim-start.ld | tr ' ' '\n' |
            sed -n 's/^\.text\.\([A-Za-z_][A-Za-z0-9_]*\)\**$/\1/p' | grep -v '^startup$' | sort -u)
    miss="" out=""
    for f in $names; do
        grep -Eq "^[a-z_].*[ *]$f\(" src/*/*.c || { miss="$miss $f"; continue; }
        a=$(nm "$2" | awk -v f="$f" '$2 ~ /^[tT]$/ && ($3 == f || index($3, f ".") == 1) { print $1; exit }')
        # not in the symbol table: inlined into its (listed) caller
        [ -z "$a" ] || { [ $((0x$a)) -ge $ta ] && [ $((0x$a)) -lt $((ta + tn)) ]; } || out="$out $f"
    done
    [ -z "$miss" ] && ok "$1: every start function named in mk/shim-start.ld exists" ||
        bad "$1: names in mk/shim-start.ld that no function in src/ has:$miss"
    [ -z "$out" ] && ok "$1: every start function is in .kf_start_text" ||
        bad "$1: start functions outside .kf_start_text:$out"
}

for cc in gcc clang; do
    if [ $cc = gcc ]; then dir=$B; else dir=$B/clang; fi
    lib=$dir/libkimifix.so
    for f in libkimifix.so kimifix kimifix-relay; do
        [ -x "$dir/$f" ] || [ -f "$dir/$f" ] && ok "$cc: $f built" || bad "$cc: $f built"
    done
    [ -f "$lib" ] || continue
    set -- $(section .data "$lib")
    data_a=$((0x$1)) data_n=$((0x$2))
    set -- $(section .kf_start "$lib")
    if [ $# -ne 2 ]; then
        bad "$cc: shim has a .kf_start section (mk/shim-start.ld)"
        continue
    fi
    st_a=$((0x$1)) st_n=$((0x$2))
    ok "$cc: shim has a .kf_start section"
    if [ $(((data_a + data_n - 1) / 4096)) -eq $((st_a / 4096)) ]; then
        ok "$cc: .kf_start begins on the page .data ends on"
    else
        bad "$cc: .kf_start begins on the page .data ends on (.data $data_a+$data_n, .kf_start $st_a)"
    fi
    # The variables a start writes, by name (clang and gcc name function
    # statics differently: match the start of the name).
    for v in kf_ready kf_mode kf_libc_slots kf_rules_path kf_fdtab kf_steer_on kf_proxy_port \
             kf_dl_real_dlopen; do
        a=$(nm "$lib" | awk -v v="$v" '$3 == v { print $1; exit }')
        if [ -z "$a" ]; then
            bad "$cc: $v in the shim"
        elif [ $((0x$a)) -ge $st_a ] && [ $((0x$a)) -lt $((st_a + st_n)) ]; then
            ok "$cc: $v is start data"
        else
            bad "$cc: $v is start data (at 0x$a, .kf_start 0x$(printf %x $st_a))"
        fi
    done
    # The small start data (all but the tail, the trust plan) fits the page.
    # Its head: v[8] of 56 bytes, `used`, the arena's first paths: < 704.
    tail=$(nm -S "$lib" | awk '/ plan(\.[0-9]+)?$|kf_set_trust.plan/ { print $1; exit }')
    if [ -n "$tail" ] && [ $(((0x$tail + 704) / 4096)) -eq $((st_a / 4096)) ]; then
        ok "$cc: the trust plan's head is on the same page"
    else
        bad "$cc: the trust plan's head is on the same page (plan at 0x$tail)"
    fi
    start_text "$cc" "$lib"
    out=$(KIMIFIX_MODE=inprocess LD_PRELOAD=$lib /bin/echo -n 2>/dev/null; echo "rc=$?")
    [ "$out" = "rc=0" ] && ok "$cc: a program under the shim runs, stdout untouched" ||
        bad "$cc: a program under the shim runs, stdout untouched ($out)"
done
ma_gcc=$(gcc -print-multiarch 2>/dev/null)
ma_clang=$(clang -print-multiarch 2>/dev/null)
if [ -n "$ma_gcc" ] && [ "$ma_gcc" = "$ma_clang" ] && [ "$(make -s -f - print-ma CC=clang <<MK
include Makefile
print-ma: ; @echo \$(MULTIARCH)
MK
)" = "$ma_gcc" ]; then
    ok "MULTIARCH is $ma_gcc with CC=clang too"
else
    bad "MULTIARCH with CC=clang ($ma_clang) is gcc's ($ma_gcc)"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
