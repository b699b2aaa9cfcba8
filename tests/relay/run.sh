#!/usr/bin/env bash
# run.sh BUILD_DIR: end-to-end tests of kimifix-relay against the fake
# upstream (tests/fakeup), driven by rclient (writes the PROXY v2 preamble
# the shim will write, then TLS trusting the kimifix CA). No shim needed.
# Everything lives in a private temp dir (XDG_RUNTIME_DIR, XDG_DATA_HOME).
# Prints "N passed, N failed"; exits non-zero on any failure.
set -u
B=${1:?usage: run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
RELAY=$B/kimifix-relay RC=$B/tests/relay/rclient CTL=$B/tests/relay/relayctl FAKEUP=$B/fakeup
# `kimifix relay ...` when the CLI has it, else the test driver of kf_cli_relay()
if [ -x "$B/kimifix" ] && "$B/kimifix" relay --help >/dev/null 2>&1; then
    kimifix_relay() { "$B/kimifix" relay "$@"; }
    CTL=kimifix_relay
fi
for f in "$RELAY" "$RC" "$FAKEUP"; do
    [ -x "$f" ] || { echo "run.sh: $f not built" >&2; exit 2; }
done
for t in openssl python3; do command -v $t >/dev/null || { echo "run.sh: needs $t" >&2; exit 2; }; done
T=$(mktemp -d /tmp/kimifix-relay-test.XXXXXX)
export XDG_RUNTIME_DIR=$T/xdgrun XDG_DATA_HOME=$T/xdgdata KIMIFIX_RULES=$T/rules
export KIMIFIX_RELAY=$RELAY KIMIFIX_UPSTREAM_CA=$T/certs/ca.pem
unset KIMIFIX_LOG
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
RUN=$XDG_RUNTIME_DIR/kimifix DATA=$XDG_DATA_HOME/kimifix
PIDS=()
our_relays() { # pids of kimifix-relay processes of this test run (by their runtime dir)
    local p
    for p in $(pgrep -x kimifix-relay); do
        { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR" && echo "$p"
    done
}
cleanup() {
    for p in $(our_relays); do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
nok() { fail=$((fail + 1)); echo "FAIL - $1${2:+: $2}"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else nok "$name"; fi; }

start_fakeup() { # DIR CERTS [SSE_DELAY_MS] -> sets FU_S FU_H
    "$FAKEUP" --certs "$2" --record "$1/rec" --ready "$1/ready" --sse-delay-ms "${3:-400}" \
        >"$1/out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1200); do [ -s "$1/ready" ] && break; sleep 0.05; done # hang guard: 60 s
    read -r _ h s <"$1/ready"
    FU_H=${h#http=} FU_S=${s#https=}
}
sh "$here/../fakeup/mkcerts.sh" "$T/certs" >/dev/null 2>&1 || { echo "mkcerts failed"; exit 1; }
sh "$here/../fakeup/mkcerts.sh" "$T/othercerts" >/dev/null 2>&1
mkdir -p "$T/fu" "$T/fu2"
start_fakeup "$T/fu" "$T/certs"; S=$FU_S H=$FU_H
start_fakeup "$T/fu2" "$T/othercerts"; S2=$FU_S
[ "$S" -gt 0 ] && [ "$S2" -gt 0 ] || { echo "fakeup did not start"; exit 1; }
# The reroute target api.kimi.com must reach the fake upstream, not the internet.
printf 'connect-to api.kimi.com:443 127.0.0.1:%s\n' "$S" >"$T/rules"

state() { awk -v k="$1" '$1==k{print $2}' "$RUN/relay.state"; }
# Wait until CMD succeeds; the deadline (60 s) is a hang guard only: what is
# awaited always happens, sooner or later depending on the machine.
wait_for() { local i; for i in $(seq 1200); do "$@" && return 0; sleep 0.05; done; "$@"; }
LOG=$RUN/relay.log

# ---- lifecycle ----
out=$($CTL start --idle 3001 -v 2>&1)
check "relay start: $out" test -s "$RUN/relay.state"
PID=$(state pid) PORT=$(state port) TOK=$(state token)
out2=$($CTL start --idle 3001 -v 2>&1)
check "relay start twice: one relay ($out2)" test "$(state pid)" = "$PID" -a -n "$(echo "$out2" | grep 'already running')"
$CTL stop >/dev/null
STARTS=()
for i in 1 2 3 4; do $CTL start --idle 3001 -v >/dev/null 2>&1 & STARTS+=($!); done
wait "${STARTS[@]}" 2>/dev/null
n=$(our_relays | wc -l)
check "4 concurrent starts: 1 relay (saw $n)" test "$n" = 1
PID=$(state pid) PORT=$(state port) TOK=$(state token)
st=$($CTL status)
check "status shows port, pid and CA names" grep -q "api.kimi.com" <<<"$st"
echo "$st" | sed 's/^/    /'

# ---- files, modes, CA ----
mode() { stat -c %a "$1"; }
check "data dir 0700" test "$(mode "$DATA")" = 700
check "runtime dir 0700" test "$(mode "$RUN")" = 700
check "ca.key 0600" test "$(mode "$DATA/ca.key")" = 600
check "leaf.key 0600" test "$(mode "$DATA/leaf.key")" = 600
check "relay.state 0600" test "$(mode "$RUN/relay.state")" = 600
openssl x509 -in "$DATA/ca.pem" -noout -text >"$T/ca.txt"
check "CA: critical nameConstraints" grep -q "X509v3 Name Constraints: critical" "$T/ca.txt"
check "CA: permits DNS:api.kimi.com" grep -q "DNS:api.kimi.com" "$T/ca.txt"
check "CA: CA:TRUE, pathlen:0" grep -q "CA:TRUE, pathlen:0" "$T/ca.txt"
sed -n '/Name Constraints/,/Subject Key/p' "$T/ca.txt" | sed 's/^/    /'
check "ca-bundle.pem = system CAs + ours" test "$(grep -c 'BEGIN CERT' "$DATA/ca-bundle.pem")" -gt 10
# A certificate for another name signed with the CA key must not verify.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/evil.key" \
    -subj /CN=evil.example.com -addext subjectAltName=DNS:evil.example.com -out "$T/evil.csr" 2>/dev/null
printf 'subjectAltName=DNS:evil.example.com\n' >"$T/evil.ext"
openssl x509 -req -in "$T/evil.csr" -CA "$DATA/ca.pem" -CAkey "$DATA/ca.key" -CAcreateserial \
    -CAserial "$T/srl" -days 1 -extfile "$T/evil.ext" -out "$T/evil.pem" 2>/dev/null
v=$(openssl verify -CAfile "$DATA/ca.pem" "$T/evil.pem" 2>&1)
check "leaf for evil.example.com from the CA key is rejected (name constraints)" grep -q "permitted subtree violation" <<<"$v"

# ---- requests ----
rc_tls() { # AUTH DST REQFILE [extra rclient args]
    local a=$1 d=$2 r=$3; shift 3
    "$RC" -p "$PORT" -t "$TOK" -d "$d" -a "$a" -s "$a" -c "$DATA/ca.pem" -r "$r" "$@"
}
req() { # FILE METHOD TARGET HOST [HEADER...] -- body from $BODY
    local f=$1 m=$2 tg=$3 h=$4; shift 4
    { printf '%s %s HTTP/1.1\r\nHost: %s\r\n' "$m" "$tg" "$h"
      for x in "$@"; do printf '%s\r\n' "$x"; done
      printf 'Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
          "${#BODY}" "$BODY"; } >"$f"
}
rec() { python3 - "$1" "$2" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
r = recs[-1]
print(eval(sys.argv[2]))
PY
}
BODY='{"model":"kimi-for-coding","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
req "$T/r1" POST '/coding/v1/v1/messages?beta=true' api.kimi.com 'x-api-key: sk-kimi-secret-one'
rc_tls api.kimi.com "127.0.0.1:$S" "$T/r1" >"$T/o1" 2>"$T/e1"
check "doubled /v1: client gets 200" grep -q "^HTTP/1.1 200" "$T/o1"
check "doubled /v1: upstream saw /coding/v1/messages?beta=true" \
    test "$(rec "$T/fu/rec" 'r["target"]')" = "/coding/v1/messages?beta=true"
check "ALPN http/1.1 although the client offered h2" grep -qx "alpn http/1.1" "$T/e1"

BODY='{"model":"kimi-for-coding","stream":true,"messages":[{"role":"user","content":"hi"}]}'
req "$T/r2" POST /v1/chat/completions api.moonshot.ai 'Authorization: Bearer sk-kimi-secret-two'
rc_tls api.moonshot.ai "127.0.0.1:$S2" "$T/r2" >"$T/o2" 2>"$T/e2"
check "sk-kimi- reroute: client gets 200" grep -q "^HTTP/1.1 200" "$T/o2"
check "sk-kimi- reroute: upstream Host api.kimi.com" test "$(rec "$T/fu/rec" 'r["host"]')" = api.kimi.com
check "sk-kimi- reroute: upstream SNI api.kimi.com" test "$(rec "$T/fu/rec" 'r["sni"]')" = api.kimi.com
check "sk-kimi- reroute: path /coding/v1/chat/completions" \
    test "$(rec "$T/fu/rec" 'r["target"]')" = /coding/v1/chat/completions
fe=$(awk '/first-event-ms/{print $2}' "$T/e2") tot=$(awk '/total-ms/{print $2}' "$T/e2")
check "SSE: first event ($fe ms) reaches the client long before the end ($tot ms)" \
    test "$fe" -ge 0 -a $((tot - fe)) -ge 700
check "SSE: stream complete ([DONE])" grep -q "DONE" "$T/o2"

BODY=''
req "$T/r3" GET /coding/v1/nope api.kimi.com 'Authorization: Bearer sk-kimi-secret-three'
rc_tls api.kimi.com "127.0.0.1:$S" "$T/r3" >"$T/o3" 2>/dev/null
check "404 passes through" grep -q "^HTTP/1.1 404" "$T/o3"
# the relay logs the answer after sending it: wait for the line, not a time
wait_for grep -q "GET /coding/v1/nope => 404" "$LOG"
check "log: status and upstream error message" grep -q "GET /coding/v1/nope => 404: The requested resource was not found" "$LOG"
check "log: rewrite line with the rules that fired" grep -q "rule kimi-coding-double-v1: POST /coding/v1/v1/messages?beta=true -> /coding/v1/messages?beta=true => 200" "$LOG"
check "log: no secrets" bash -c "! grep -q 'secret' '$LOG'"

# a 2 MB body: streamed through untouched (back-pressure on the upstream queue)
BODY=$(python3 -c 'import json; print(json.dumps({"model":"kimi-for-coding","messages":[{"role":"user","content":"x"*2000000}]}), end="")')
req "$T/r1b" POST /coding/v1/v1/chat/completions api.kimi.com 'Authorization: Bearer sk-kimi-x'
printf '%s' "$BODY" >"$T/body1b"
rc_tls api.kimi.com "127.0.0.1:$S" "$T/r1b" >"$T/o1b" 2>/dev/null
check "2 MB body: 200" grep -q "^HTTP/1.1 200" "$T/o1b"
check "2 MB body: arrives byte-exact (sha256)" test "$(rec "$T/fu/rec" 'r["body_sha256"]')" = "$(sha256sum <"$T/body1b" | cut -d' ' -f1)"

# the shim's helper: kf_steer_connect() on a non-blocking socket
rc_tls api.kimi.com "127.0.0.1:$S" "$T/r1" -S >"$T/o1s" 2>"$T/e1s"
check "kf_steer_connect: steered request answered 200" grep -q "^HTTP/1.1 200" "$T/o1s"
check "kf_steer_connect: O_NONBLOCK restored" grep -q "O_NONBLOCK kept" "$T/e1s"

# plain HTTP: no TLS termination, same rewriting
BODY='{}'
req "$T/r4" POST /coding/v1/v1/messages api.kimi.com
"$RC" -P -p "$PORT" -t "$TOK" -d "127.0.0.1:$H" -a api.kimi.com -r "$T/r4" >"$T/o4" 2>/dev/null
check "plain HTTP: relayed and rewritten" test "$(rec "$T/fu/rec" 'r["target"]')" = /coding/v1/messages

# ---- errors ----
BODY='{}'
req "$T/r5" POST /coding/v1/messages api.kimi.com
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rc_tls api.kimi.com "127.0.0.1:$dead" "$T/r5" >"$T/o5" 2>/dev/null
check "upstream down: 502" grep -q "^HTTP/1.1 502 Bad Gateway" "$T/o5"
check "upstream down: JSON kimifix_relay_error" grep -q '{"error":{"type":"kimifix_relay_error","message":"kimifix relay: upstream api.kimi.com:'"$dead"': cannot connect' "$T/o5"
rc_tls api.kimi.com "127.0.0.1:$S2" "$T/r5" >"$T/o6" 2>/dev/null
check "bad upstream certificate: 502" grep -q "^HTTP/1.1 502" "$T/o6"
check "bad upstream certificate: says why" grep -q "certificate verification failed" "$T/o6"
check "bad upstream certificate: logged" grep -q "=> 502 (upstream api.kimi.com:$S2: TLS to api.kimi.com: certificate verification failed" "$LOG"

"$RC" -p "$PORT" -t 00112233445566778899aabbccddeeff -d "127.0.0.1:$S" -a api.kimi.com -s api.kimi.com \
    -c "$DATA/ca.pem" -r "$T/r5" -T 30 >/dev/null 2>&1; r=$?
check "wrong token: dropped (rc $r)" test $r = 2 -o $r = 3
"$RC" -p "$PORT" -t none -d "127.0.0.1:$S" -a api.kimi.com -s api.kimi.com -c "$DATA/ca.pem" \
    -r "$T/r5" -T 30 >/dev/null 2>&1; r=$?
check "no token: dropped (rc $r)" test $r = 2 -o $r = 3
# (hang guards only: a loaded machine can take seconds to start python)
# Neither a PROXY v2 preamble nor an HTTP method (contract D): closed.
printf '\026\003\001\000\005hello' | timeout 120 python3 -c '
import socket,sys; s=socket.create_connection(("127.0.0.1",'"$PORT"')); s.settimeout(60)
try: s.sendall(sys.stdin.buffer.read()); print(len(s.recv(100)))
except (ConnectionResetError, BrokenPipeError): print(0)' >"$T/o7" 2>&1
check "no PROXY preamble: closed without an answer" grep -qx 0 "$T/o7"
# An HTTP request without a preamble is a proxy request: credentials first.
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' | timeout 120 python3 -c '
import socket,sys; s=socket.create_connection(("127.0.0.1",'"$PORT"')); s.settimeout(60)
s.sendall(sys.stdin.buffer.read()); print(s.recv(100)[:12].decode())' >"$T/o7b" 2>&1
check "HTTP request without a preamble: the proxy front end says 407" grep -qx 'HTTP/1.1 407' "$T/o7b"
rc_tls evil.example.com "127.0.0.1:$S" "$T/r5" >/dev/null 2>&1; r=$?
check "name outside the rules: handshake fails (rc $r)" test $r = 2
check "name outside the rules: nothing minted" test ! -e "$DATA/certs/evil.example.com.pem"
check "name outside the rules: logged" grep -q "evil.example.com is not a rule host" "$LOG"
rc_tls auth.kimi.com "127.0.0.1:$S" "$T/r5" >/dev/null 2>&1; r=$?
check "auth.kimi.com (no rule names it): no certificate (rc $r)" test $r = 2

# ---- 200 concurrent connections, memory ----
printf 'GET /coding/v1/models HTTP/1.1\r\nHost: api.kimi.com\r\nAuthorization: Bearer sk-kimi-x\r\n\r\n' >"$T/r8"
ulimit -n 4096 2>/dev/null
# rclient holds all 200 open until $T/release8 exists: measured while open,
# however slow the machine.
rc_tls api.kimi.com "127.0.0.1:$S" "$T/r8" -n 200 -W "$T/release8" >"$T/o8" 2>/dev/null &
RCP=$!
wait_for grep -q '^ok' "$T/o8"
rss=$(awk '/VmRSS/{print $2}' /proc/"$PID"/status)
act=$($CTL status | awk '/connections/{print $2}')
touch "$T/release8"
wait $RCP
check "200 concurrent connections: $(cat "$T/o8")" grep -qx "ok 200/200" "$T/o8"
check "200 open at once (relay says $act open)" test "${act:-0}" -ge 200
check "relay RSS with 200 open connections: ${rss} KiB <= 32 MiB" test "${rss:-999999}" -le 32768

# ---- the relay dies mid-stream: the client gets an error, not a hang ----
# An upstream with 5 s between events: once the first event is seen the
# stream lasts 25 s more, so the kill lands mid-stream on any machine.
mkdir -p "$T/fu4"
start_fakeup "$T/fu4" "$T/certs" 5000; S4=$FU_S
BODY='{"model":"kimi-for-coding","stream":true,"messages":[{"role":"user","content":"hi"}]}'
req "$T/r9" POST /coding/v1/chat/completions api.kimi.com 'Authorization: Bearer sk-kimi-x'
rc_tls api.kimi.com "127.0.0.1:$S4" "$T/r9" -T 60 >"$T/o9" 2>/dev/null &
RCP=$!
wait_for grep -q 'data:' "$T/o9"
kill -9 "$PID"
t0=$(date +%s)
wait $RCP; r=$?
check "relay killed mid-stream: client error rc=$r in $(( $(date +%s) - t0 ))s (4 = broken, 5 = hang)" test $r = 4

# ---- the upstream dies mid-stream: the client sees a broken stream, not a clean end ----
mkdir -p "$T/fu3"
start_fakeup "$T/fu3" "$T/certs" 5000; S3=$FU_S FU3=${PIDS[-1]}
$CTL start --idle 3001 >/dev/null 2>&1
PORT=$(state port) TOK=$(state token) PID=$(state pid)
rc_tls api.kimi.com "127.0.0.1:$S3" "$T/r9" -T 60 >"$T/o11" 2>/dev/null &
RCP=$!
wait_for grep -q 'data:' "$T/o11"
{ kill -9 "$FU3"; wait "$FU3"; } 2>/dev/null # reaped here: else bash reports the killed job in the log
wait $RCP; r=$?
check "upstream killed mid-stream: client sees a broken stream (rc=$r, 4 = broken)" test $r = 4
check "upstream killed mid-stream: relay still serves" bash -c "kill -0 $PID"
$CTL stop >/dev/null

# ---- the relay's rules file: broken = the built-ins and one error line
# (docs/rules.md); an edit takes effect on the next connection; per-rule
# counts in `kimifix relay status` ----
since() { tail -n +"$(($1 + 1))" "$LOG"; }
errlines() { since "$1" | grep -c ': error: '; }
printf 'connect-to api.kimi.com:443 127.0.0.1:%s\n' "$S" >"$T/rules.good"
printf 'rule broken\n    bogus-directive x\nrule broken2\n    another-bogus y\n' >"$T/rules.bad"
printf 'rule test-edit\n    host api.kimi.com\n    path /coding/\n    add-header X-Kimifix-Edited yes\n' \
    | cat "$T/rules.good" - >"$T/rules.edit"
cp "$T/rules.bad" "$T/rules"
m0=$(wc -l <"$LOG")
rm -f "$RUN/relay.state"
$CTL start --idle 3001 -v >/dev/null 2>&1
PORT=$(state port) TOK=$(state token) PID=$(state pid)
BODY='{"model":"kimi-for-coding","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
req "$T/rp" POST /coding/v1/v1/messages api.kimi.com 'x-api-key: sk-kimi-x'
hdr_edited() { rec "$T/fu/rec" '"x-kimifix-edited" in str(r["headers"]).lower()'; }
rc_tls api.kimi.com "127.0.0.1:$S" "$T/rp" >"$T/op1" 2>/dev/null
check "broken rules file at start: the built-ins fix the doubled /v1" \
    test "$(rec "$T/fu/rec" 'r["target"]')" = /coding/v1/messages
rc_tls api.kimi.com "127.0.0.1:$S" "$T/rp" >"$T/op2" 2>"$T/ep2"
check "broken rules file at start: 200 twice" test "$(grep -l "^HTTP/1.1 200" "$T/op1" "$T/op2" | wc -l)" = 2
check "broken rules file at start: one error line in all ($(errlines "$m0"))" test "$(errlines "$m0")" = 1
check "broken rules file at start: the policy line" \
    bash -c "since() { tail -n +\$((\$1 + 1)) '$LOG'; }; since $m0 | grep -q 'rules.*:2: error: .*([0-9]* errors in .*): the file is ignored, the built-in rules are in effect'"
st=$($CTL status)
echo "$st" | sed -n '/rules:/,$p' | sed 's/^/    /'
check "status: per-rule count of the built-in rule (2)" grep -Eq '^ +kimi-coding-double-v1 +2$' <<<"$st"
check "status: the rules line says the file is ignored" grep -q 'the file is ignored' <<<"$st"
check "STATUS: rewritten 2" test "$(python3 "$here/rstatus.py" "$PORT" "$TOK" rewritten)" = 2

cp "$T/rules.edit" "$T/rules"
m1=$(wc -l <"$LOG")
rc_tls api.kimi.com "127.0.0.1:$S" "$T/rp" >"$T/op3" 2>/dev/null
check "edited rules file: the next connection has the new rule" test "$(hdr_edited)" = True
check "edited rules file: logged" bash -c "tail -n +$((m1 + 1)) '$LOG' | grep -q 'relay: rules: $T/rules: .* rules in effect from the next connection'"
st=$($CTL status)
check "status: the new rule counted (1)" grep -Eq '^ +test-edit +1$' <<<"$st"
check "status: the built-in rule counted on (3)" grep -Eq '^ +kimi-coding-double-v1 +3$' <<<"$st"
check "status: re-read once" grep -q 're-read 1 time since start' <<<"$st"

cp "$T/rules.bad" "$T/rules"
m2=$(wc -l <"$LOG")
rc_tls api.kimi.com "127.0.0.1:$S" "$T/rp" >"$T/op4" 2>/dev/null
rc_tls api.kimi.com "127.0.0.1:$S" "$T/rp" >"$T/op5" 2>/dev/null
check "broken edit: the built-ins, not the previous file (fixed, no X-Kimifix-Edited)" \
    test "$(rec "$T/fu/rec" 'r["target"]')/$(hdr_edited)" = /coding/v1/messages/False
check "broken edit: one error line for two connections ($(errlines "$m2"))" test "$(errlines "$m2")" = 1
cp "$T/rules.good" "$T/rules"

# ---- client contexts: each client's rules and log (docs/relay.md, "Client
# contexts"). rclient -X registers its context as the shim does (its own
# KIMIFIX_RULES and KIMIFIX_LOG; stderr handed over as `log fd`). ----
# A: the doubled-/v1 rule disabled, log to stderr; B: an extra rule, log to
# a file; the relay's own rules (the relay's KIMIFIX_RULES) are neither.
cat "$T/rules.good" - >"$T/rulesA" <<<'disable kimi-coding-double-v1'
cp "$T/rules.edit" "$T/rulesB"
: >"$T/logB" && chmod 600 "$T/logB"
rcA() { KIMIFIX_RULES=$T/rulesA KIMIFIX_LOG=stderr rc_tls api.kimi.com "127.0.0.1:$S" "$T/rp" -X "$@"; }
rcB() { KIMIFIX_RULES=$T/rulesB KIMIFIX_LOG=$T/logB rc_tls api.kimi.com "127.0.0.1:$S" "$T/rp" -X "$@"; }
m3=$(wc -l <"$LOG")
rcA >"$T/oA1" 2>"$T/eA1"
check "client A (its file disables the double-/v1 rule): upstream saw /coding/v1/v1/messages" \
    test "$(rec "$T/fu/rec" 'r["target"]')" = /coding/v1/v1/messages
rcB >"$T/oB1" 2>"$T/eB1"
check "client B (its file adds a rule): fixed and the extra header" \
    test "$(rec "$T/fu/rec" 'r["target"]')/$(hdr_edited)" = /coding/v1/messages/True
rc_tls api.kimi.com "127.0.0.1:$S" "$T/rp" >"$T/oR1" 2>/dev/null
check "no context: the relay's own rules (fixed, no extra header)" \
    test "$(rec "$T/fu/rec" 'r["target"]')/$(hdr_edited)" = /coding/v1/messages/False
wait_for grep -q 'test-edit' "$T/logB"
check "client B's log file: its rewrite line, in the relay's format" \
    grep -q '\[relay\] api.kimi.com: rules kimi-coding-double-v1, test-edit: POST /coding/v1/v1/messages -> /coding/v1/messages.* => 200' "$T/logB"
check "client B's log file: no line of client A's (404) and no secret" \
    bash -c "! grep -q -e '=> 404' -e 'sk-kimi-x' '$T/logB'"
wait_for grep -q '=> 404' "$T/eA1"
check "client A's stderr: the upstream's error status with its message" \
    grep -q '\[relay\] api.kimi.com: POST /coding/v1/v1/messages => 404: ' "$T/eA1"
check "client A's stderr: none of client B's lines" bash -c "! grep -q 'test-edit' '$T/eA1'"
check "the relay's own log still has both lines" \
    bash -c "tail -n +$((m3 + 1)) '$LOG' | grep -q 'test-edit' && tail -n +$((m3 + 1)) '$LOG' | grep -q '=> 404'"
# A pipe as stderr: the relay holds the client's fd only while the client
# lives, so whoever reads the pipe to its end is not kept waiting (the
# timeout is a hang guard: the context would keep it for 10 minutes).
t0=$(date +%s)
pipe_out=$(timeout 120 bash -c "KIMIFIX_RULES='$T/rulesA' KIMIFIX_LOG=stderr '$RC' -p $PORT -t $TOK -d 127.0.0.1:$S -a api.kimi.com -s api.kimi.com -c '$DATA/ca.pem' -r '$T/rp' -X 2>&1 >/dev/null | cat"); r=$?
check "stderr a pipe: the reader sees its end when the client exits (rc $r, $(( $(date +%s) - t0 )) s)" test $r = 0
check "stderr a pipe: the relay's line came through it" grep -q '=> 404: ' <<<"$pipe_out"
# An edit of a client's file applies to its next connection; a broken one
# means the built-ins and one error line (in its log and the relay's).
cp "$T/rules.good" "$T/rulesA"
rcA >"$T/oA2" 2>"$T/eA2"
check "client A's file edited: its next connection has the double-/v1 rule again" \
    test "$(rec "$T/fu/rec" 'r["target"]')" = /coding/v1/messages
wait_for grep -q 'rule kimi-coding-double-v1' "$T/eA2"
check "client A's stderr: the rewrite line" grep -q 'rule kimi-coding-double-v1: POST /coding/v1/v1/messages -> /coding/v1/messages.* => 200' "$T/eA2"
cp "$T/rules.bad" "$T/rulesB"
m4=$(wc -l <"$LOG") b4=$(wc -l <"$T/logB")
rcB >"$T/oB2" 2>/dev/null
rcB >"$T/oB3" 2>/dev/null
check "client B's broken file: the built-ins (fixed, no extra header)" \
    test "$(rec "$T/fu/rec" 'r["target"]')/$(hdr_edited)" = /coding/v1/messages/False
check "client B's broken file: one error line in its log for two connections" \
    test "$(tail -n +$((b4 + 1)) "$T/logB" | grep -c "rulesB:2: error: .*the built-in rules are in effect")" = 1
check "client B's broken file: one error line in the relay's log" test "$(errlines "$m4")" = 1
check "status: per-rule counts across contexts (test-edit: 1 earlier + 1 of B's)" \
    grep -Eq '^ +test-edit +2$' <<<"$($CTL status)"
check "STATUS: client rule sets cached" test "$(python3 "$here/rstatus.py" "$PORT" "$TOK" rules_client_sets)" -ge 2
$CTL stop >/dev/null

# ---- the rules gain hosts: a new CA covering them; wildcard hosts ----
rm -f "$RUN/relay.state"
printf 'rule extra\n    host new.example.net *.example.org\n    set-header X-Kimifix-Test 1\n' >>"$T/rules"
$CTL start --idle 3001 >/dev/null 2>&1
PORT=$(state port) TOK=$(state token) PID=$(state pid)
check "new rule host: new CA made and logged" grep -q "making a new kimifix CA (the rules name hosts it does not cover)" "$LOG"
openssl x509 -in "$DATA/ca.pem" -noout -text >"$T/ca2.txt"
check "new CA permits new.example.net and .example.org" \
    bash -c "grep -q 'DNS:new.example.net' '$T/ca2.txt' && grep -q 'DNS:.example.org' '$T/ca2.txt'"
rc_tls a.example.org "127.0.0.1:$S" "$T/r5" >"$T/o10" 2>/dev/null
check "wildcard rule host: leaf minted, client TLS ok (upstream has no such cert: 502)" grep -q "^HTTP/1.1 502" "$T/o10"
rc_tls example.org "127.0.0.1:$S" "$T/r5" >/dev/null 2>&1; r=$?
check "*.example.org does not cover example.org (rc $r)" test $r = 2
$CTL stop >/dev/null

# ---- restart; idle exit ----
rm -f "$RUN/relay.state"
$CTL start --idle 2 >/dev/null 2>&1
P2=$(state pid)
check "restart after a crash" test -n "$P2" -a "$P2" != "$PID"
wait_for bash -c "! kill -0 $P2 2>/dev/null && test ! -e '$RUN/relay.state'"
check "idle timeout: relay exited and removed its state" bash -c "! kill -0 $P2 2>/dev/null && test ! -e '$RUN/relay.state'"
check "status when stopped" grep -q 'not running' <<<"$($CTL status)"

# started from a process under the shim: the relay must shed the preload
# (its upstream connections would be steered back into itself)
if [ -f "$B/libkimifix.so" ]; then
    LD_PRELOAD=$(cd "$B" && pwd)/libkimifix.so $CTL start --idle 2 >/dev/null 2>&1
    P3=$(state pid)
    check "relay started under LD_PRELOAD=libkimifix.so runs without it" \
        bash -c "test -n '$P3' && ! grep -q libkimifix /proc/$P3/maps && tr '\\0' '\\n' </proc/$P3/environ | grep -qx KIMIFIX_MODE=off"
    $CTL stop >/dev/null 2>&1
fi

# ---- network namespaces: loopback is per namespace, so is the relay ----
# A relay started in another namespace sharing the runtime dir (a sandbox,
# a container, make demo) must neither be used from here nor keep ours
# from starting: it lives in RUNDIR/net-INODE (kf_relay_dir).
NS=""
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then NS="unshare -n"
elif unshare -rn true 2>/dev/null; then NS="unshare -rn"; fi
if [ -n "$NS" ] && [ -x "$B/kimifix" ]; then
    $CTL stop >/dev/null 2>&1
    $NS "$B/kimifix" relay status >/dev/null 2>&1
    check "netns: a status in another namespace claims nothing" test ! -L "$RUN/relay.net"
    $CTL start --idle 3001 >/dev/null 2>&1
    HP=$(state pid)
    check "netns: the first relay claims the runtime dir for its namespace" \
        test "$(readlink "$RUN/relay.net")" = "$(readlink /proc/self/ns/net)"
    $NS bash -c 'ip link set lo up; readlink /proc/self/ns/net >"$1/ns.id"
        "$2" relay start --idle 3001 >"$1/ns.start" 2>&1; echo "rc $?" >>"$1/ns.start"
        "$2" relay status >"$1/ns.status" 2>&1; "$2" doctor >"$1/ns.doctor" 2>&1' _ "$T" "$B/kimifix"
    nsino=$(sed 's/.*\[\([0-9]*\)\].*/\1/' "$T/ns.id")
    NSRUN=$RUN/net-$nsino
    check "netns: a relay of another namespace starts, in its own dir ($(tail -n 1 "$T/ns.start"))" \
        test -s "$NSRUN/relay.state" -a "$(tail -n 1 "$T/ns.start")" = "rc 0"
    NP=$(awk '$1=="pid"{print $2}' "$NSRUN/relay.state" 2>/dev/null)
    check "netns: its status there says running" grep -q "^kimifix relay: running" "$T/ns.status"
    check "netns: doctor there says whose the runtime dir is" grep -q "relay dir .*net-$nsino: .* belongs to network namespace" "$T/ns.doctor"
    hst=$($CTL status 2>&1)
    check "netns: the first relay is untouched and still ours here" \
        bash -c "test '$(state pid)' = '$HP' && kill -0 $HP && grep -q 'pid: *$HP\$' <<<'$hst'"
    check "netns: two relays, one per namespace" test -n "$NP" -a "$NP" != "$HP"
    $CTL stop >/dev/null 2>&1
    check "netns: the stopped relay gave the runtime dir back" test ! -L "$RUN/relay.net"
    [ -n "$NP" ] && kill "$NP" 2>/dev/null
else
    echo "skip - network namespaces: neither unshare -n (root) nor unshare -rn works here"
fi

# ---- a relay that cannot start: its starter knows at once ----
# Another process holds relay.run.lock (not a relay: nothing listens), so
# a relay started now exits at once ("another relay is running"). The
# start sees that through the relay's life pipe instead of waiting out its
# deadline; before, it waited the whole deadline here (the lock looked
# held by the new relay), and `kimifix CMD` waited the wrapper's 3 s and
# then the shim's 3 s more.
$CTL stop >/dev/null 2>&1
( exec 9>>"$RUN/relay.run.lock"; flock 9; exec sleep 300 ) & LOCKER=$!
PIDS+=("$LOCKER")
wait_for bash -c "! flock -n '$RUN/relay.run.lock' true"
t0=$(date +%s)
out=$($CTL start --wait-ms 120000 2>&1); r=$?
dt=$(( $(date +%s) - t0 ))
check "relay cannot start: \`relay start\` fails at once, not at its 120 s deadline (rc $r, ${dt} s)" \
    test "$r" != 0 -a "$dt" -lt 60
mkdir -p "$T/nodata"
t0=$(date +%s)
XDG_DATA_HOME=$T/nodata "$B/kimifix" /bin/true >/dev/null 2>"$T/e_nostart"; r=$?
dt=$(( $(date +%s) - t0 ))
check "relay cannot start, no CA yet: \`kimifix true\` runs (rc $r) without waiting (${dt} s, was 6)" \
    test "$r" = 0 -a "$dt" -lt 3
check "... and says so" grep -q "the relay is not running" "$T/e_nostart"
kill "$LOCKER" 2>/dev/null

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
