#!/usr/bin/env bash
# run.sh BUILD_DIR [SECTION...]: hardening tests of libkimifix.so and the
# relay beyond tests/shim and tests/relay (issue 7; figures in
# docs/RELIABILITY.md). Sections (default: all but `long`):
#   proc       threads, fork while writing, signal handler writing during
#              fork, dup2 onto a tracked fd, posix_spawn/vfork, exec chains
#              (sh -c, env, an npm .bin launcher with #!/usr/bin/env node)
#   load       64 threads through libcurl and through Python threads; SSE
#              streams through the relay (reduced; HARD_LONG=1: 64x500 and
#              200 streams for 60 s)
#   input      200 malformed rules files; malformed HTTP
#   security   issue 10 findings 4-7 (security.py): log path and stderr
#              never block or kill the host, CA excludes IPs and is replaced
#              when wider than the rules, unsafe key modes, public-suffix
#              hosts refused, secrets masked, control bytes escaped
#   secrets    every log and client stderr of this run: no test key; modes
#              of log, CA and state files and directories; the relay
#              refuses names outside the rules
# KF_PRELOAD_PREFIX (e.g. the ASan runtime) goes before the library in
# LD_PRELOAD. Prints "hardening: N passed, N failed"; exit 1 on a failure.
set -u
B=$(cd "${1:?usage: run.sh BUILD_DIR [SECTION...]}" && pwd)
shift
SECTIONS=${*:-proc load input security secrets}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
LIB=$B/libkimifix.so
PRE=${KF_PRELOAD_PREFIX:+$KF_PRELOAD_PREFIX:}$LIB
H=$B/tests/hardening
LONG=${HARD_LONG:-0}
T=$(mktemp -d /tmp/kimifix-hard.XXXXXX)
chmod 700 "$T"
mkdir -p "$T/logs" "$T/home" "$T/run" "$T/data"
chmod 700 "$T/run"
export HOME=$T/home XDG_RUNTIME_DIR=$T/run XDG_DATA_HOME=$T/data
unset KIMIFIX_MODE KIMIFIX_LOG LD_PRELOAD
: >"$T/empty.rules"
export KIMIFIX_RULES=$T/empty.rules
PIDS=()
our_relays() { # relays of this run (ours, or started on demand by the shim under $T:
    local p     # $T/run, or a suite's own world such as security.py's $T/sec/run)
    for p in $(pgrep -x kimifix-relay); do
        { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -q "^XDG_RUNTIME_DIR=$T/" && echo "$p"
    done
}
cleanup() {
    for p in $(our_relays); do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "$fail" = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$T"; else echo "kept $T"; fi
}
pass=0 fail=0 known=0
# Checks that reproduce a bug reported to the lead, not yet fixed in src/:
# they print KNOWN BUG and do not fail the run. Remove a name once fixed.
KNOWN_BUGS=${KNOWN_BUGS-""}
trap cleanup EXIT
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
nok() { fail=$((fail + 1)); echo "FAIL - $1${2:+: $2}"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else nok "$name"; fi; }
# A program's own "X: N passed, N failed" line, added to ours.
tally() { # NAME LOGFILE RC
    local line p f
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$2" | tail -n 1)
    sed 's/^/    /' "$2" | grep -v '^    ok ' | tail -n 12
    p=$(echo "$line" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
    f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
    if [ -z "$line" ] || [ "$3" != 0 ] || [ "${f:-1}" != 0 ]; then
        nok "$1" "rc $3, ${line:-no summary}"
    else
        ok "$1 (${p} checks)"
    fi
}
under_shim() { # LOGNAME CMD...: run CMD under the shim, log to $T/logs/LOGNAME.log
    # timeout: a hang guard only (hammer has its own no-progress watchdog)
    local name=$1; shift
    LD_PRELOAD=$PRE KIMIFIX_LOG=$T/logs/$name.log timeout 1200 "$@"
}

sh "$src/tests/fakeup/mkcerts.sh" "$T/certs" >/dev/null 2>&1 || { echo "mkcerts failed"; exit 1; }
start_fakeup() { # DIR -> FU_H FU_S
    mkdir -p "$1"
    "$B/fakeup" --certs "$T/certs" --record "$1/rec" --ready "$1/ready" --sse-delay-ms 20 \
        >"$1/out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1200); do [ -s "$1/ready" ] && break; sleep 0.05; done # hang guard: 60 s
    read -r _ h s <"$1/ready"
    FU_H=${h#http=} FU_S=${s#https=}
}
records() { # RECFILE FROM_LINE: "total fixed sha_ok" of records after line FROM_LINE
    python3 - "$1" "$2" <<'EOF'
import hashlib, json, sys
body = b'{"model":"kimi-for-coding","messages":[{"role":"user","content":"hi"}]}'
want = hashlib.sha256(body).hexdigest()
recs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()[int(sys.argv[2]):] if l.strip()]
fixed = sum(1 for r in recs if r["target"] in ("/coding/v1/chat/completions", "/coding/v1/messages"))
print(len(recs), fixed, sum(1 for r in recs if r["body_sha256"] == want))
EOF
}
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

start_fakeup "$T/fu"
H_PORT=$FU_H S_PORT=$FU_S

# ---------------------------------------------------------------- proc
if [[ " $SECTIONS " == *" proc "* ]]; then
    n=16 m=50
    [ "$LONG" = 1 ] && n=64 m=200
    # sighooks: signal handlers that connect/write/close tracked sockets
    # inside every hook (RELIABILITY.md finding 2); it writes its own
    # connect-to rules, and steering would only add noise: inprocess.
    for args in "threads $n $m" "forkwrite 200" "sigfork 200" "dup2 100" "spawn $H/rawsend" \
                "sigforktracked 1000" "sighooks 2000"; do
        mode=${args%% *}
        # Fork-heavy signal cases: gcc 12's ASan allocator is not fork-safe
        # (a child of a threaded parent can hang in calloc on a lock another
        # parent thread held): plain build only.
        if [[ " $KNOWN_BUGS sigfork forkwrite sigforktracked " == *" $mode "* ]] && [ -n "${KF_PRELOAD_PREFIX:-}" ]; then
            echo "skip - hammer $mode: signal during fork, not run under sanitizers (see RELIABILITY.md)"
            continue
        fi
        mode_env=
        [ "$mode" = sighooks ] && mode_env=KIMIFIX_MODE=inprocess
        under_shim "hammer-$mode" env $mode_env "$H/hammer" $args >"$T/hammer-$mode.out" 2>&1
        rc=$?
        if [[ " $KNOWN_BUGS " == *" $mode "* ]]; then
            known=$((known + 1))
            echo "KNOWN BUG - hammer $mode (rc $rc): $(tail -n 1 "$T/hammer-$mode.out")" \
                "[signal handler writing a tracked fd during fork: docs/RELIABILITY.md]"
        else
            tally "hammer $mode" "$T/hammer-$mode.out" $rc
        fi
    done
    # exec chains: sh -c, env, exec, and their mix, each sends to fakeup
    from=$(lines "$T/fu/rec")
    under_shim chain-sh sh -c "$H/rawsend $H_PORT -" ; r1=$?
    under_shim chain-env env -i PATH=/usr/bin:/bin LD_PRELOAD="$PRE" KIMIFIX_RULES="$KIMIFIX_RULES" \
        KIMIFIX_LOG="$T/logs/chain-env.log" sh -c "exec env A=1 $H/rawsend $H_PORT - pieces"; r2=$?
    under_shim chain-bash bash -c "sh -c 'exec $H/rawsend $H_PORT - bytes' && true"; r3=$?
    read -r tot fixed _ <<<"$(records "$T/fu/rec" "$from")"
    check "exec chains sh -c / env -i / bash->sh->exec: rc $r1 $r2 $r3, $fixed of $tot fixed (3)" \
        test "$r1$r2$r3" = 000 -a "$tot" = 3 -a "$fixed" = 3
    # npm's launcher: node_modules/.bin/tool -> ../tool/cli.js with #!/usr/bin/env node
    if command -v node >/dev/null; then
        mkdir -p "$T/npm/node_modules/tool" "$T/npm/node_modules/.bin"
        cat >"$T/npm/node_modules/tool/cli.js" <<EOF
#!/usr/bin/env node
const net = require("net");
const body = '{"model":"kimi-for-coding","messages":[{"role":"user","content":"hi"}]}';
const s = net.connect($H_PORT, "127.0.0.1", () => {
  s.cork();
  s.write("POST /coding/v1/v1/messages HTTP/1.1\r\nHost: api.kimi.com\r\nx-api-key: sk-kimi-HARDSECRET-51b2\r\n");
  s.write("Content-Type: application/json\r\nContent-Length: " + body.length + "\r\n\r\n");
  s.write(body);
  s.uncork();
});
s.on("data", () => s.end());
s.on("close", () => process.exit(0));
setTimeout(() => process.exit(3), 20000);
EOF
        chmod +x "$T/npm/node_modules/tool/cli.js"
        ln -s ../tool/cli.js "$T/npm/node_modules/.bin/tool"
        from=$(lines "$T/fu/rec")
        (cd "$T/npm" && PATH=$T/npm/node_modules/.bin:$PATH under_shim chain-npm sh -c 'exec tool'); r=$?
        read -r tot fixed _ <<<"$(records "$T/fu/rec" "$from")"
        check "npm .bin launcher (sh -> #!/usr/bin/env node, writev): rc $r, $fixed of $tot fixed" \
            test "$r" = 0 -a "$tot" = 1 -a "$fixed" = 1
    else
        echo "skip - npm .bin launcher: no node"
    fi
fi

# ---------------------------------------------------------------- load
if [[ " $SECTIONS " == *" load "* ]]; then
    req=50 preq=20 conns=50 secs=5
    [ "$LONG" = 1 ] && req=500 preq=500 conns=200 secs=60
    from=$(lines "$T/fu/rec")
    under_shim loadcurl "$H/loadcurl" "$H_PORT" 64 "$req" >"$T/loadcurl.out" 2>&1
    tally "libcurl: 64 threads x $req requests" "$T/loadcurl.out" $?
    read -r tot fixed sha <<<"$(records "$T/fu/rec" "$from")"
    check "libcurl load: $fixed of $tot recorded requests fixed, $sha body hashes equal" \
        test "$tot" = $((64 * req)) -a "$fixed" = "$tot" -a "$sha" = "$tot"
    from=$(lines "$T/fu/rec")
    under_shim loadpy python3 "$here/loadpy.py" "$H_PORT" 64 "$preq" >"$T/loadpy.out" 2>&1
    tally "python threads: 64 x $preq requests" "$T/loadpy.out" $?
    read -r tot fixed sha <<<"$(records "$T/fu/rec" "$from")"
    check "python load: $fixed of $tot recorded requests fixed, $sha body hashes equal" \
        test "$tot" = $((64 * preq)) -a "$fixed" = "$tot" -a "$sha" = "$tot"
fi

# The relay (load and secrets): started as `kimifix relay` would, in T.
# The shim may have started one on demand already (node above: TLS out of
# reach in-process): a second one would find the lock taken. Stop those.
start_relay() {
    [ -n "${RELAY_PID:-}" ] && return 0
    for p in $(our_relays); do kill "$p"; done
    for _ in $(seq 600); do [ -z "$(our_relays)" ] && break; sleep 0.1; done # hang guard
    export KIMIFIX_UPSTREAM_CA=$T/certs/ca.pem KIMIFIX_RELAY=$B/kimifix-relay
    KIMIFIX_LOG=stderr "$B/kimifix-relay" --idle 0 -v >"$T/logs/relay.log" 2>&1 &
    RELAY_PID=$!
    for _ in $(seq 1200); do # hang guard: 60 s
        [ "$(awk '$1=="pid"{print $2}' "$T/run/kimifix/relay.state" 2>/dev/null)" = "$RELAY_PID" ] && break
        sleep 0.05
    done
    RPORT=$(awk '$1=="port"{print $2}' "$T/run/kimifix/relay.state")
    RTOK=$(awk '$1=="token"{print $2}' "$T/run/kimifix/relay.state")
    [ -n "$RPORT" ]
}
if [[ " $SECTIONS " == *" load "* ]]; then
    if start_relay; then
        mkdir -p "$T/fu2"
        start_fakeup "$T/fu2"
        ulimit -n 4096 2>/dev/null
        python3 "$here/sseload.py" --relay "$RPORT" --token "$RTOK" --dst "127.0.0.1:$FU_S" \
            --ca "$T/data/kimifix/ca.pem" --record "$T/fu2/rec" --pid "$RELAY_PID" \
            --conns "$conns" --seconds "$secs" >"$T/sseload.out" 2>&1
        tally "relay: $conns concurrent SSE streams for $secs s" "$T/sseload.out" $?
    else
        nok "relay did not start" "$(tail -n 3 "$T/logs/relay.log")"
    fi
fi

# ---------------------------------------------------------------- input
if [[ " $SECTIONS " == *" input "* ]]; then
    python3 "$here/httpcases.py" badrules "$B" "$T/bad" 200 >"$T/badrules.out" 2>&1
    tally "200 malformed rules files: one file:line: error each, the host's requests as the built-ins make them" "$T/badrules.out" $?
    python3 "$here/httpcases.py" malformed "$B" "$T/mal" >"$T/malformed.out" 2>&1
    tally "malformed HTTP passes through" "$T/malformed.out" $?
    cp "$T"/bad/*.log "$T"/mal/*.log "$T/logs/" 2>/dev/null
fi

# ---------------------------------------------------------------- security
if [[ " $SECTIONS " == *" security "* ]]; then
    python3 "$here/security.py" "$B" "$T/sec" >"$T/security.out" 2>&1
    tally "issue 10 findings 4-7: log path, CA, public suffixes, masking, escaping" "$T/security.out" $?
    cp "$T"/sec/*.log "$T"/sec/*/*.log "$T/logs/" 2>/dev/null
fi

# ---------------------------------------------------------------- secrets
if [[ " $SECTIONS " == *" secrets "* ]]; then
    if start_relay; then
        # a name no rule lists: no certificate, nothing minted, logged
        python3 - "$RPORT" "$RTOK" "$S_PORT" "$T/data/kimifix/ca.pem" >"$T/evil.out" 2>&1 <<'EOF'
import socket, ssl, struct, sys
port, tok, dport, ca = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
body = bytes(4) + socket.inet_aton("127.0.0.1") + b"\0\0" + struct.pack(">H", dport)
body += bytes([0xE0]) + struct.pack(">H", 16) + bytes.fromhex(tok)
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack(">H", len(body)) + body)
try:
    ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="evil.example.com")
    print("handshake ok")
except (ssl.SSLError, OSError) as e:
    print("refused", e)
EOF
        check "relay refuses a name outside the rules ($(head -c 80 "$T/evil.out"))" grep -q '^refused' "$T/evil.out"
        check "relay minted nothing for it" test ! -e "$T/data/kimifix/certs/evil.example.com.pem"
    fi
    # the shim's log file is created 0600
    LD_PRELOAD=$PRE KIMIFIX_LOG=$T/logs/fresh.log "$H/rawsend" "$H_PORT" - >/dev/null 2>&1
    mode_is() { [ "$(stat -c %a "$1" 2>/dev/null)" = "$2" ]; }
    check "shim log file is 0600" mode_is "$T/logs/fresh.log" 600
    if [ -n "${RELAY_PID:-}" ]; then
        for f in ca.key leaf.key; do check "relay $f is 0600" mode_is "$T/data/kimifix/$f" 600; done
        check "relay data dir is 0700" mode_is "$T/data/kimifix" 700
        check "relay run dir is 0700" mode_is "$T/run/kimifix" 700
        check "relay state file is 0600" mode_is "$T/run/kimifix/relay.state" 600
    fi
    # every log and every client stderr of this run: no test key
    hits=$(grep -rl -e HARDSECRET -e FAULTSECRET "$T/logs" "$T"/*.out 2>/dev/null | wc -l)
    nlogs=$(find "$T/logs" "$T" -maxdepth 1 -name '*.log' -o -maxdepth 1 -name '*.out' | wc -l)
    bytes=$(cat "$T"/logs/* "$T"/*.out 2>/dev/null | wc -c)
    check "no test key in $nlogs logs and outputs ($bytes bytes): $hits files hit" test "$hits" = 0
fi

[ "$known" != 0 ] && echo "hardening: $known known bug(s) reproduced or probed (not counted)"
echo "hardening: $pass passed, $fail failed"
[ "$fail" = 0 ]
