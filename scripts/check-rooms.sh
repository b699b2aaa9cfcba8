#!/bin/sh
# check-rooms.sh BUILD: the house rules of docs/ARCHITECTURE.md, checked on
# the built objects (issue 16.1). Prints one line per rule and
# "rooms: N passed, N failed".
#  1. No object of libkfcore.a (src/core, src/common) calls a function the
#     shim hooks: such a call would bind at run time to the shim's own hook.
#  2. The engine (src/core) includes no header of src/common, and does no
#     file or socket I/O except reading the rules file (kf_rules_load.c).
B=${1:-build}
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
ko() { fail=$((fail + 1)); echo "FAIL - $1: $2"; }

hooks=$(nm -D --defined-only "$B/libkimifix.so" | awk '{print $3}' | sort -u)
[ -n "$hooks" ] || { echo "check-rooms: no exported hooks in $B/libkimifix.so"; exit 1; }
bad=""
for o in "$B"/core/*.o "$B"/common/*.o; do
    for s in $(nm -u "$o" | awk '{print $2}'); do
        s=${s%%@*}
        if printf '%s\n' "$hooks" | grep -qx -- "$s"; then bad="$bad $(basename "$o"):$s"; fi
    done
done
if [ -z "$bad" ]; then ok "core and common call no hooked function (checked $(printf '%s\n' "$hooks" | wc -l) hooks)"
else ko "core and common call no hooked function" "$bad"; fi

common_h=$(cd src/common && ls *.h | tr '\n' '|' | sed 's/|$//; s/\./\\./g')
inc=$(grep -nE "#include \"($common_h)\"" src/core/*.c src/core/*.h)
if [ -z "$inc" ]; then ok "the engine includes no header of src/common"
else ko "the engine includes no header of src/common" "$inc"; fi

io=""
for o in "$B"/core/*.o; do
    case $o in */kf_rules_load.o) continue ;; esac
    for s in $(nm -u "$o" | awk '{print $2}'); do
        case ${s%%@*} in
        open|open64|openat|fopen|fopen64|read|socket|stat|stat64|lstat|fstat|unlink|rename|mkdir|syscall)
            io="$io $(basename "$o"):${s%%@*}" ;;
        esac
    done
done
if [ -z "$io" ]; then ok "the engine does no file or socket I/O (but the rules loader)"
else ko "the engine does no file or socket I/O (but the rules loader)" "$io"; fi

echo "rooms: $pass passed, $fail failed"
[ "$fail" = 0 ]
