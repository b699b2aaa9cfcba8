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
# The objects of the current sources only (a build dir may hold stale ones).
objs() { for c in src/$1/*.c; do o="$B/$1/$(basename "${c%.c}").o"; [ -f "$o" ] && echo "$o"; done; }
for o in $(objs core) $(objs common); do
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
for o in $(objs core); do
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

# 4. One hook pattern: every exported hook is one call to a static kf_X
#    (after reading its variadic argument, where it has one).
thick=$(python3 - src/hooks/*.c <<'PYEOF'
import re, sys
for p in sys.argv[1:]:
    s = open(p).read()
    for m in re.finditer(r'KF_EXPORT [^;{]*?\b(\w+)\(([^)]*)\)\s*\{', s):
        i, depth = m.end(), 1
        while depth:
            depth += (s[i] == '{') - (s[i] == '}')
            i += 1
        body = s[m.end():i - 1]
        calls = re.findall(r'^\s*(?:return )?kf_\w+\(', body, re.M)
        rest = [l for l in body.split(';') if l.strip() and not re.search(r'va_|^\s*(struct|void|long|int)\b.*=', l)]
        if len(calls) != 1 or len(rest) > 1 + body.count('if (') * 2:
            print("%s:%s" % (p.split('/')[-1], m.group(1)))
PYEOF
)
n=$(grep -c 'KF_EXPORT [^;]*) *$' src/hooks/*.c | awk -F: '{s += $2} END {print s}')
if [ -z "$thick" ]; then ok "every exported hook is one call to its static kf_X ($n hooks)"
else ko "every exported hook is one call to its static kf_X" "$(echo $thick)"; fi

echo "rooms: $pass passed, $fail failed"
[ "$fail" = 0 ]
