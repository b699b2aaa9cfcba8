#!/bin/sh
# run.sh BUILD: kimifix installed, as a user gets it (mk/install.mk, make deb).
#
#   install  `make install PREFIX=/usr/local` into a tmpfs over /usr/local,
#            /etc overlaid (ldconfig writes its cache there): the files where
#            they belong, `LD_PRELOAD=libkimifix.so` (the bare name) loads the
#            shim, the shim finds /usr/local/bin/kimifix and starts the relay
#            from /usr/local/lib/kimifix/, kimifix finds its library, bash and
#            zsh find the completions, `make uninstall` removes it all.
#   deb      lintian reports no errors on BUILD/kimifix_*.deb; `dpkg -i` with
#            /usr, /etc and /var overlaid, in a private network namespace
#            where api.kimi.com is fakeup: dpkg --verify, the bare name from
#            the multiarch directory, `kimifix doctor`, a fixed request by the
#            installed shim + relay (started by the shim) and by `kimifix shell`,
#            the relay's line in `kimifix log`, completions, `dpkg -r`.
#
# Every part runs in its own private mount (and network) namespace: the
# machine's /usr, /etc and /var are never written. Needs root (or a user
# namespace that can mount overlays); otherwise the parts SKIP, saying why.
# Ends with "install: N passed, N failed, N skipped".
set -u
B=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
part=${2:-}

if [ -z "$part" ]; then
    total_p=0 total_f=0 total_s=0
    for p in install deb; do
        out=$(mktemp)
        if [ "$(id -u)" = 0 ] && unshare -mn true 2>/dev/null; then
            timeout 900 unshare -mn sh "$0" "$B" "$p" >"$out" 2>&1
        elif unshare -rmn true 2>/dev/null; then
            timeout 900 unshare -rmn sh "$0" "$B" "$p" >"$out" 2>&1
        else
            echo "SKIP $p: cannot make a private mount namespace (unshare -mn / -rmn)" >"$out"
        fi
        cat "$out"
        p_=$(grep -c '^PASS' "$out"); f_=$(grep -c '^FAIL' "$out"); s_=$(grep -c '^SKIP' "$out")
        grep -q "^$p: done" "$out" || [ "$s_" -gt 0 ] || { echo "FAIL $p: did not finish"; f_=$((f_ + 1)); }
        total_p=$((total_p + p_)) total_f=$((total_f + f_)) total_s=$((total_s + s_))
        rm -f "$out"
    done
    echo "install: $total_p passed, $total_f failed, $total_s skipped"
    [ "$total_f" = 0 ]
    exit
fi

# ---------------------------------------------------------------- inside
T=$(mktemp -d)
trap 'cleanup' EXIT
cleanup() {
    [ -n "${fpid:-}" ] && kill "$fpid" 2>/dev/null
    for k in /usr/local/bin/kimifix /usr/bin/kimifix; do
        [ -x "$k" ] && XDG_RUNTIME_DIR=$T/run XDG_DATA_HOME=$T/data "$k" relay stop >/dev/null 2>&1
    done
    umount -l /etc/hosts /usr/local /usr /etc /var "$T" 2>/dev/null
    rm -rf "$T"
}
ok() { echo "PASS $part/$1"; }
ko() { echo "FAIL $part/$1: $2"; [ -f "$T/out" ] && sed 's/^/    | /' "$T/out" | tail -n 20; }
check() { # NAME CMD...: passes when CMD succeeds
    check_name=$1
    shift
    if "$@" >"$T/out" 2>&1; then ok "$check_name"; else ko "$check_name" "failed: $*"; fi
}

mount --make-rprivate / || { echo "SKIP $part: cannot make mounts private"; exit 0; }
mount -t tmpfs tmpfs "$T" || { echo "SKIP $part: cannot mount a tmpfs"; exit 0; }
mkdir -m 700 "$T/run" "$T/data" "$T/home"
ip link set lo up # the relay listens on 127.0.0.1
# Overlay DIR: writes go to a tmpfs, the real DIR stays as it is.
overlay() {
    mkdir -p "$T/ov$1/up" "$T/ov$1/work"
    mount -t overlay overlay -o "lowerdir=$1,upperdir=$T/ov$1/up,workdir=$T/ov$1/work" "$1"
}
# A world of the user's own: no relay, no CA, no rules, no proxy.
export HOME=$T/home XDG_RUNTIME_DIR=$T/run XDG_DATA_HOME=$T/data
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8
unset LD_PRELOAD KIMIFIX_RULES KIMIFIX_LOG KIMIFIX_MODE KIMIFIX_SHELL KIMIFIX_SHELL_UNDO \
    HTTPS_PROXY https_proxy HTTP_PROXY http_proxy ALL_PROXY all_proxy NO_PROXY no_proxy \
    SSL_CERT_FILE NODE_EXTRA_CA_CERTS REQUESTS_CA_BUNDLE KIMIFIX_UPSTREAM_CA

# the shim is mapped into a program started with LD_PRELOAD=libkimifix.so
bare_name_loads() {
    maps=$(LD_PRELOAD=libkimifix.so grep -c 'libkimifix\.so' /proc/self/maps 2>"$T/ld.err")
    [ "${maps:-0}" -ge 1 ] && ! grep -q 'cannot be preloaded' "$T/ld.err"
}

# bash-completion finds the installed file by itself (on demand, like TAB)
bash_completion_loads() {
    bash --norc --noprofile -c '. /usr/share/bash-completion/bash_completion &&
        _completion_loader kimifix; complete -p kimifix' | grep -q '_kimifix kimifix'
}
zsh_completion_loads() {
    zsh -f -c 'autoload -U compinit; compinit -u -D; print -r -- ${_comps[kimifix]}' | grep -qx _kimifix
}

# The shim alone (no wrapper) in relay mode, no relay running: it starts one
# with the `kimifix` it finds from its own location.
shim_starts_relay() {
    prefix=$1
    "$prefix/bin/kimifix" relay stop >/dev/null 2>&1
    LD_PRELOAD=libkimifix.so KIMIFIX_MODE=relay KIMIFIX_LOG=stderr /bin/true 2>"$T/shim.err"
    ! grep -q 'cannot find the kimifix program' "$T/shim.err" &&
        "$prefix/bin/kimifix" relay status >"$T/out" 2>&1 &&
        pid=$(sed -n 's/^pid \([0-9]*\)$/\1/p' "$T/run/kimifix/relay.state") &&
        exe=$(readlink "/proc/$pid/exe") && echo "relay: $exe" >>"$T/out" && [ "$exe" = "$2" ]
}

if [ "$part" = install ]; then
    # /etc: overlaid, or a private copy when overlayfs is not available
    if ! overlay /etc 2>/dev/null; then
        cp -a /etc "$T/etc" && mount --bind "$T/etc" /etc || { echo "SKIP install: no private /etc"; exit 0; }
    fi
    mount -t tmpfs tmpfs /usr/local || { echo "SKIP install: cannot mount a tmpfs on /usr/local"; exit 0; }
    P=/usr/local
    make --no-print-directory -C "$ROOT" install B="$B" PREFIX=$P >"$T/make.out" 2>&1
    cp "$T/make.out" "$T/out"
    check "make-install" test -x $P/bin/kimifix
    check "layout: the library in PREFIX/lib, the relay private" test -f $P/lib/libkimifix.so \
        -a -x $P/lib/kimifix/kimifix-relay -a ! -e $P/lib/kimifix/libkimifix.so
    check "layout: man pages and completions" test -f $P/share/man/man1/kimifix.1 \
        -a -f $P/share/man/man5/kimifix.rules.5 -a -f $P/share/bash-completion/completions/kimifix \
        -a -f $P/share/zsh/site-functions/_kimifix -a -f $P/share/fish/vendor_completions.d/kimifix.fish
    check "make install ran ldconfig" grep -q "^ldconfig: LD_PRELOAD=libkimifix.so now finds $P/lib/libkimifix.so" "$T/make.out"
    check "the loader's cache names it" sh -c "ldconfig -p | grep -q 'libkimifix.so .*=> $P/lib/libkimifix.so'"
    check "LD_PRELOAD=libkimifix.so loads the shim" bare_name_loads
    check "the shim logs under the bare name" sh -c \
        'LD_PRELOAD=libkimifix.so KIMIFIX_LOG=stderr KIMIFIX_DEBUG=1 /bin/true 2>&1 | grep -q "^kimifix\["'
    check "kimifix finds its library by absolute path" sh -c \
        "$P/bin/kimifix doctor | grep -q '^  shim  *$P/lib/libkimifix.so '"
    check "kimifix shell preloads it by absolute path" sh -c \
        "$P/bin/kimifix shell bash | grep -qx \"export LD_PRELOAD='$P/lib/libkimifix.so'\""
    check "the shim finds PREFIX/bin/kimifix, which starts PREFIX/lib/kimifix/kimifix-relay" \
        shim_starts_relay $P $P/lib/kimifix/kimifix-relay
    $P/bin/kimifix relay stop >/dev/null 2>&1
    check "bash-completion loads it from PREFIX/share" bash_completion_loads
    check "zsh finds _kimifix in its site-functions" zsh_completion_loads
    make --no-print-directory -C "$ROOT" uninstall B="$B" PREFIX=$P >"$T/out" 2>&1
    check "make uninstall removes every file" sh -c "[ -z \"\$(find $P -type f)\" ]"
    check "and the loader forgets it" sh -c "! ldconfig -p | grep -q libkimifix"
    echo "install: done"
    exit 0
fi

# ---------------------------------------------------------------- deb
# (`ip link set lo up` is above; the namespace has a fresh network)
deb=$(ls "$B"/kimifix_*_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "FAIL deb/built: no $B/kimifix_*.deb (make deb)"; exit 0; }
if command -v lintian >/dev/null; then
    # --fail-on error: warnings are listed (docs/install.md says why each stays)
    lintian --fail-on error "$deb" >"$T/out" 2>&1
    rc=$?
    grep -E '^[EW]:' "$T/out" | sed 's/^/    lintian /'
    if [ $rc = 0 ] && ! grep -q '^E:' "$T/out"; then ok "lintian: no errors"; else ko "lintian: no errors" "exit $rc"; fi
else
    echo "SKIP deb/lintian: lintian is not installed (scripts/deps/deb.list)"
fi
check "version from git describe" sh -c "dpkg-deb -f '$deb' Version | grep -qx '$(sh "$ROOT/scripts/deb-version.sh")'"
check "Depends: libc6 and libssl3" sh -c "dpkg-deb -f '$deb' Depends | grep -Eqx 'libc6 \\(>= [0-9.]+\\), libssl3 \\(>= [0-9.]+\\)'"

for d in /usr /etc /var; do
    overlay $d 2>/dev/null || { echo "SKIP deb/install: cannot overlay $d (overlayfs)"; echo "deb: done"; exit 0; }
done
dpkg -i "$deb" >"$T/out" 2>&1
check "dpkg -i" dpkg-query -W -f='${db:Status-Abbrev}' kimifix
check "dpkg --verify (md5sums)" dpkg --verify kimifix
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || cc -dumpmachine)
L=/usr/lib/$ma
check "layout" test -x /usr/bin/kimifix -a -f $L/libkimifix.so -a -x $L/kimifix/kimifix-relay \
    -a -f /usr/share/man/man1/kimifix.1.gz -a -f /usr/share/doc/kimifix/copyright \
    -a -f /usr/share/doc/kimifix/changelog.Debian.gz
check "the ldconfig trigger ran" sh -c "ldconfig -p | grep -q 'libkimifix.so .*=> .*/lib/$ma/libkimifix.so'"
check "LD_PRELOAD=libkimifix.so loads the shim" bare_name_loads
check "bash-completion loads it" bash_completion_loads
check "zsh finds _kimifix (vendor-completions)" zsh_completion_loads
check "man kimifix" sh -c "MANPAGER=cat man -P cat kimifix 2>/dev/null | grep -q 'kimifix shell'"

/usr/bin/kimifix doctor >"$T/out" 2>&1
rc=$?
if [ $rc = 0 ] && tail -n 1 "$T/out" | grep -q '^kimifix doctor: ok' &&
    grep -q "^  shim  *$L/libkimifix.so " "$T/out"; then
    ok "kimifix doctor: ok, the installed shim"
else
    ko "kimifix doctor: ok, the installed shim" "exit $rc"
fi

# A fake Kimi in this network namespace: api.kimi.com is 127.0.0.1:443.
printf '127.0.0.1 api.kimi.com api.kimi.ai api.moonshot.ai api.moonshot.cn auth.kimi.com\n' >"$T/hosts"
mount --bind "$T/hosts" /etc/hosts
sh "$ROOT/tests/fakeup/mkcerts.sh" "$T/certs" >/dev/null 2>&1
"$B/fakeup" --certs "$T/certs" --record "$T/record.jsonl" --https 443 --http 80 --ready "$T/ready" \
    >/dev/null 2>"$T/fakeup.log" &
fpid=$!
i=0
while [ ! -s "$T/ready" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done # hang guard
[ -s "$T/ready" ] || { ko "fakeup" "did not start"; echo "deb: done"; exit 0; }
CA=$T/certs/ca.pem
# What an Anthropic SDK does with the base URL https://api.kimi.com/coding/v1.
client() { timeout 120 /usr/bin/python3 "$HERE/client.py"; }
last_target() { tail -n 1 "$T/record.jsonl" | sed -n 's/.*"target":"\([^"]*\)".*/\1/p'; }
fixed() { # NAME OUTPUT: the client got 200 and the upstream saw the fixed path
    if [ "$2" = 200 ] && [ "$(last_target)" = /coding/v1/messages ]; then ok "$1"
    else ko "$1" "client said '$2', upstream saw '$(last_target)'"; fi
}
out=$(SSL_CERT_FILE=$CA client)
if [ "$out" = 404 ] && [ "$(last_target)" = /coding/v1/v1/messages ]; then ok "without kimifix: 404"
else ko "without kimifix: 404" "client said '$out', upstream saw '$(last_target)'"; fi
# The shim by its bare name, in relay mode, no relay yet (the one the checks
# above started does not trust the fake upstream): it starts the relay
# (/usr/bin/kimifix -> /usr/lib/MULTIARCH/kimifix/kimifix-relay), which
# rewrites the request and trusts the fake upstream's CA.
/usr/bin/kimifix relay stop >/dev/null 2>&1
out=$(LD_PRELOAD=libkimifix.so KIMIFIX_MODE=relay KIMIFIX_UPSTREAM_CA=$CA SSL_CERT_FILE=$CA client)
fixed "LD_PRELOAD=libkimifix.so, relay mode: fixed by the installed relay" "$out"
check "kimifix log shows the relay's rewrite" sh -c \
    "/usr/bin/kimifix log -n 50 | grep -q 'rule kimi-coding-double-v1: POST /coding/v1/v1/messages -> /coding/v1/messages'"
check "the relay runs from the private directory" sh -c \
    "[ \"\$(readlink /proc/\$(sed -n 's/^pid //p' $T/run/kimifix/relay.state)/exe)\" = $L/kimifix/kimifix-relay ]"
/usr/bin/kimifix relay stop >/dev/null 2>&1
out=$(SSL_CERT_FILE=$CA /usr/bin/kimifix --mode inprocess /usr/bin/python3 "$HERE/client.py")
fixed "kimifix CMD (in-process)" "$out"
out=$(SSL_CERT_FILE=$CA bash --norc --noprofile -c 'eval "$(kimifix shell)" || exit 3
    timeout 120 /usr/bin/python3 "$0"; kimifix off' "$HERE/client.py")
fixed "eval \"\$(kimifix shell)\", then the client" "$out"

dpkg -r kimifix >"$T/out" 2>&1
check "dpkg -r" sh -c "! dpkg-query -W -f='\${db:Status-Abbrev}' kimifix 2>/dev/null | grep -q '^ii' && [ ! -e /usr/bin/kimifix ] && [ ! -e $L/libkimifix.so ] && ! ldconfig -p | grep -q libkimifix"
echo "deb: done"
