#!/usr/bin/env bash
# selftest.sh BUILD_DIR: drive BUILD_DIR/fakeup with the curl CLI over
# HTTP/1.1, h2 and plain HTTP; check status codes, bodies and the JSON
# records. Prints "N passed, N failed"; exits non-zero on any failure.
set -u
B=${1:?usage: selftest.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
FAKEUP=$B/fakeup
[ -x "$FAKEUP" ] || { echo "selftest: $FAKEUP not built" >&2; exit 2; }
for t in curl python3 openssl; do
    command -v $t >/dev/null || { echo "selftest: needs $t" >&2; exit 2; }
done
T=$(mktemp -d /tmp/fakeup-selftest.XXXXXX)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
DELAY=100
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
nok() { fail=$((fail + 1)); echo "FAIL - $1${2:+: $2}"; }

sh "$here/mkcerts.sh" "$T/certs" || { echo "selftest: mkcerts failed" >&2; exit 1; }
"$FAKEUP" --certs "$T/certs" --record "$T/rec" --ready "$T/ready" \
    --sse-delay-ms $DELAY >"$T/stdout" 2>"$T/stderr" &
PID=$!
for _ in $(seq 600); do [ -s "$T/ready" ] && break; sleep 0.1; done # hang guard: 60 s
read -r _ h s <"$T/ready" || { echo "selftest: fakeup did not start" >&2; cat "$T/stderr"; exit 1; }
H=${h#http=} S=${s#https=}
[ "$(cat "$T/ready")" = "$(cat "$T/stdout")" ] && [ "$H" -gt 0 ] && [ "$S" -gt 0 ] &&
    ok "ready line: $(cat "$T/ready")" || nok "ready line" "$(cat "$T/ready")"

# check.py REC N EXPR BODY HDRS: evaluate EXPR over record r, body, hdrs.
cat >"$T/check.py" <<'EOF'
import base64, hashlib, json, sys
rec, n, expr, bodyf, hdrsf = sys.argv[1:6]
recs = [json.loads(l) for l in open(rec, encoding="utf-8")]
r = next((x for x in recs if str(x["n"]) == n), None)
body = open(bodyf, "rb").read().decode("utf-8", "replace")
hdrs = open(hdrsf, "rb").read().decode("latin-1")
H = lambda name: [v for k, v in r["headers"] if k.lower() == name.lower()]
head = base64.b64decode(r["head_b64"]).decode("latin-1") if r and r["head_b64"] else None
sha = lambda path: hashlib.sha256(open(path, "rb").read()).hexdigest()
try:
    res = r is not None and eval(expr)
except Exception as e:
    res = False
    print("  exception:", repr(e))
if not res:
    print("  record:", json.dumps(r)[:1500])
    print("  body:", body[:300])
sys.exit(0 if res else 1)
EOF

CURL=(curl -sS --cacert "$T/certs/ca.pem" --connect-to ":443:127.0.0.1:$S"
      --connect-to ":80:127.0.0.1:$H" --max-time 30)
K=https://api.kimi.com
M=https://api.moonshot.ai

# req NAME STATUS EXPR CURL-ARGS...: one request, check status + record.
req() {
    local name=$1 want=$2 expr=$3
    shift 3
    local code n
    code=$("${CURL[@]}" -o "$T/body" -D "$T/hdrs" -w '%{http_code}' "$@" 2>"$T/cerr")
    n=$(tr -d '\r' <"$T/hdrs" | sed -n 's/^x-fakeup-request: *//Ip' | tail -1)
    if [ "$code" != "$want" ]; then
        nok "$name" "status $code, want $want $(head -c 300 "$T/cerr")"
    elif [ -z "$n" ]; then
        nok "$name" "no x-fakeup-request header"
    elif python3 "$T/check.py" "$T/rec" "$n" "r['status'] == $want and ($expr)" "$T/body" "$T/hdrs"; then
        ok "$name"
    else
        nok "$name"
    fi
}

E404='{"error":{"type":"resource_not_found_error","message":"The requested resource was not found"}}'
E403='{"error":{"message":"Kimi For Coding is currently only available for Coding Agents such as Kimi CLI, Claude Code, Roo Code, Kilo Code, etc.","type":"access_terminated_error"}}'
E429='{"type":"error","error":{"type":"rate_limit_error","message":"The engine is currently overloaded, please try again later"}}'
E401='{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}'
AUTH=(-H 'Authorization: Bearer sk-kimi-selftest')
OAI='{"model":"kimi-k2.6","messages":[{"role":"user","content":"hi"}]}'
ANT='{"model":"kimi-for-coding","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'

# --- good paths, both protocols ---------------------------------------------
req "h2 default: OpenAI wire 200" 200 \
    "r['version']=='HTTP/2' and r['alpn']=='h2' and r['sni']=='api.kimi.com' and r['listener']=='https' and r['head_b64'] is None and json.loads(body)['model']=='kimi-k2.6' and json.loads(body)['object']=='chat.completion' and r['host']=='api.kimi.com' and H(':method')==['POST']" \
    "${AUTH[@]}" -H 'Content-Type: application/json' -d "$OAI" $K/coding/v1/chat/completions
req "--http2: Anthropic wire 200, query kept" 200 \
    "r['version']=='HTTP/2' and r['target']=='/coding/v1/messages?beta=true' and json.loads(body)['type']=='message'" \
    --http2 -H 'x-api-key: sk-kimi-selftest' -d "$ANT" "$K/coding/v1/messages?beta=true"
req "--http1.1: OpenAI wire 200, head bytes and header case" 200 \
    "r['version']=='HTTP/1.1' and r['alpn']=='http/1.1' and head.startswith('POST /coding/v1/chat/completions HTTP/1.1\r\nHost: api.kimi.com\r\n') and head.endswith('\r\n\r\n') and ['X-Odd-Case','MiXeD'] in r['headers'] and r['body_len']==len('''$OAI''') and r['body_sha256']==hashlib.sha256(b'''$OAI''').hexdigest()" \
    --http1.1 "${AUTH[@]}" -H 'X-Odd-Case: MiXeD' -d "$OAI" $K/coding/v1/chat/completions
req "api.kimi.ai answers like api.kimi.com" 200 "r['sni']=='api.kimi.ai'" \
    "${AUTH[@]}" https://api.kimi.ai/coding/v1/models
req "models list" 200 "[m['id'] for m in json.loads(body)['data']][:1]==['kimi-for-coding'] and 'kimi-k2.6' in body" \
    "${AUTH[@]}" $K/coding/v1/models
req "count_tokens" 200 "json.loads(body)['input_tokens']>0" \
    -H 'x-api-key: k' -d "$ANT" $K/coding/v1/messages/count_tokens
req "kimi_cli platform passes" 200 "H('X-Msh-Platform')==['kimi_cli']" \
    --http1.1 "${AUTH[@]}" -H 'X-Msh-Platform: kimi_cli' -d "$OAI" $K/coding/v1/chat/completions

# --- the gate ---------------------------------------------------------------
for v in --http1.1 --http2; do
    req "$v 404 doubled /v1" 404 "body=='''$E404'''" \
        $v -H 'x-api-key: k' -d "$ANT" $K/coding/v1/v1/messages
done
req "404 missing /v1" 404 "body=='''$E404'''" "${AUTH[@]}" -d "$OAI" $K/coding/chat/completions
req "403 OpenAI wire + X-Msh-Platform: kimi_code_cli" 403 "body=='''$E403'''" \
    "${AUTH[@]}" -H 'X-Msh-Platform: kimi_code_cli' -d "$OAI" $K/coding/v1/chat/completions
req "403 on h1 too" 403 "body=='''$E403'''" --http1.1 \
    "${AUTH[@]}" -H 'X-Msh-Platform: kimi_code_cli' -d "$OAI" $K/coding/v1/chat/completions
req "429 Anthropic wire + x-msh-platform: kimi_code_cli" 429 "body=='''$E429'''" \
    --http1.1 -H 'x-api-key: k' -H 'x-msh-platform: kimi_code_cli' -d "$ANT" $K/coding/v1/messages
req "401 without a key" 401 "body=='''$E401'''" -d "$OAI" $K/coding/v1/chat/completions
req "401 sk-kimi key on api.moonshot.ai" 401 "body=='''$E401''' and r['sni']=='api.moonshot.ai'" \
    "${AUTH[@]}" -d "$OAI" $M/v1/chat/completions
req "200 platform key on api.moonshot.cn" 200 "json.loads(body)['object']=='chat.completion'" \
    -H 'Authorization: Bearer sk-platform' -d "$OAI" https://api.moonshot.cn/v1/chat/completions
req "200 moonshot anthropic wire" 200 "json.loads(body)['type']=='message'" \
    -H 'x-api-key: sk-platform' -d "$ANT" $M/anthropic/v1/messages
req "404 unknown moonshot path" 404 "body=='''$E404'''" -H 'x-api-key: sk-p' $M/v1/v1/models
req "auth.kimi.com OAuth with kimi_code_cli untouched" 200 "'access_token' in json.loads(body)" \
    -H 'X-Msh-Platform: kimi_code_cli' -d 'grant_type=x' https://auth.kimi.com/api/oauth/token
req "auth.kimi.com device authorization" 200 "'device_code' in json.loads(body)" \
    -d 'client_id=x' https://auth.kimi.com/api/oauth/device_authorization
req "unrelated host echoes 200" 200 "body=='{\"ok\":true}' and r['sni']=='api.example.com' and r['target']=='/v1/v1/x?y=1'" \
    -X PUT -d x "https://api.example.com/v1/v1/x?y=1"
req "Host routes, not SNI" 404 "r['sni']=='api.example.com' and r['host']=='api.kimi.com'" \
    --http1.1 -H 'Host: api.kimi.com' -H 'x-api-key: k' https://api.example.com/coding/v1/v1/messages

# --- HEAD, plain HTTP -------------------------------------------------------
# (-I writes the header block where the body would go)
req "HEAD base on h2" 200 "r['method']=='HEAD' and 'content-length: 0' in hdrs" -I $K/coding/v1
req "HEAD base on h1" 200 "r['method']=='HEAD' and r['version']=='HTTP/1.1' and 'Content-Length: 0' in hdrs" --http1.1 -I $K/coding/v1
req "HEAD on an unrelated host" 200 "r['method']=='HEAD' and 'Content-Length: 11' in hdrs" --http1.1 -I https://api.example.com/x
req "plain http listener" 200 "r['listener']=='http' and r['sni'] is None and r['alpn'] is None and r['version']=='HTTP/1.1'" \
    http://api.example.com/
req "plain http gate" 403 "r['listener']=='http' and body=='''$E403'''" \
    "${AUTH[@]}" -H 'x-msh-platform: kimi_code_cli' -d "$OAI" http://api.kimi.com/coding/v1/chat/completions

# --- bodies -----------------------------------------------------------------
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$T/big"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$T/2m"
head -c $((64 * 1024 * 1024)) /dev/zero >"$T/64m"
req "chunked upload" 200 "r['chunked'] and r['body_len']==$(stat -c %s "$T/big") and r['body_sha256']==sha('$T/big') and H('Transfer-Encoding')==['chunked']" \
    --http1.1 -H 'Transfer-Encoding: chunked' --data-binary @"$T/big" https://api.example.com/up
req "chunked upload over plain http" 200 "r['chunked'] and r['body_sha256']==sha('$T/big')" \
    -H 'Transfer-Encoding: chunked' --data-binary @"$T/big" http://api.example.com/up
req "h2 upload 3 MiB" 200 "not r['chunked'] and r['body_sha256']==sha('$T/big')" \
    --data-binary @"$T/big" https://api.example.com/up
req "Expect: 100-continue, 2 MiB" 200 "'HTTP/1.1 100 Continue' in hdrs and r['body_len']==2*1024*1024 and r['body_sha256']==sha('$T/2m') and H('Expect')==['100-continue']" \
    --http1.1 -H 'Expect: 100-continue' --data-binary @"$T/2m" https://api.example.com/up
req "64 MiB body" 200 "r['body_len']==64*1024*1024 and r['body_sha256']==sha('$T/64m')" \
    --http1.1 --data-binary @"$T/64m" http://api.example.com/up

# --- keep-alive -------------------------------------------------------------
for v in --http1.1 --http2; do
    nc=$("${CURL[@]}" $v -o /dev/null -o /dev/null -w '%{num_connects}:%{http_code} ' \
        "${AUTH[@]}" $K/coding/v1/models $K/coding/v1/usages)
    last2=$(tail -2 "$T/rec" | python3 -c 'import json,sys; r=[json.loads(l) for l in sys.stdin]; print(r[0]["conn"]==r[1]["conn"], [x["target"] for x in r])')
    [ "$nc" = "1:200 0:200 " ] && [ "${last2%% *}" = True ] &&
        ok "$v two requests on one connection" || nok "$v keep-alive" "$nc $last2"
done

# --- SSE streamed as produced -------------------------------------------------
cat >"$T/sse.py" <<'EOF'
import subprocess, sys, time
t0 = time.monotonic(); stamps = []; lines = []
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE)
for line in p.stdout:
    if line.startswith(b"data:"):
        stamps.append(time.monotonic() - t0); lines.append(line)
p.wait()
want, delay = int(sys.argv[1].split(":")[0]), int(sys.argv[1].split(":")[1]) / 1000
spread = stamps[-1] - stamps[0] if stamps else 0
ok = len(stamps) == want and spread >= (want - 1) * delay * 0.8 and stamps[0] < delay * 20
print("events=%d spread=%.3fs last=%r" % (len(stamps), spread, lines[-1][:40] if lines else None))
sys.exit(0 if ok else 1)
EOF
for v in --http1.1 --http2; do
    out=$(python3 "$T/sse.py" "6:$DELAY" "${CURL[@]}" -N $v "${AUTH[@]}" \
        -d '{"model":"k3","stream": true}' $K/coding/v1/chat/completions)
    [ $? = 0 ] && ok "$v OpenAI SSE streamed ($out)" || nok "$v OpenAI SSE" "$out"
    out=$(python3 "$T/sse.py" "8:$DELAY" "${CURL[@]}" -N $v -H 'x-api-key: k' \
        -d '{"stream":true}' $K/coding/v1/messages)
    [ $? = 0 ] && ok "$v Anthropic SSE streamed ($out)" || nok "$v Anthropic SSE" "$out"
done
req "SSE headers and record" 200 "'text/event-stream' in hdrs and body.rstrip().endswith('data: [DONE]') and 'chat.completion.chunk' in body" \
    --http1.1 "${AUTH[@]}" -d '{"stream":true}' $K/coding/v1/chat/completions

# --- robustness -----------------------------------------------------------------
out=$(python3 - "$H" <<'EOF'
import socket, sys
def talk(data):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)  # hang guard
    s.sendall(data)
    got = b""
    while True:
        b = s.recv(65536)
        if not b: break
        got += b
    return got
res = []
res.append(talk(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 "))
res.append(talk(b"GET / HTTP/1.1\r\nNo-Host: x\r\n\r\n").startswith(b"HTTP/1.1 400 "))
res.append(talk(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").startswith(b"HTTP/1.1 400 "))
res.append(talk(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n").startswith(b"HTTP/1.1 400 "))
# pipelined: two requests in one write, then close
got = talk(b"GET /a HTTP/1.1\r\nHost: api.example.com\r\n\r\nGET /b HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
res.append(got.count(b"HTTP/1.1 200 OK") == 2)
got = talk(b"GET /c HTTP/1.0\r\nHost: api.example.com\r\n\r\n")
res.append(got.startswith(b"HTTP/1.1 200 ") and got.endswith(b'{"ok":true}'))
print(res)
sys.exit(0 if all(res) else 1)
EOF
)
[ $? = 0 ] && ok "malformed -> 400; pipelining; HTTP/1.0 ($out)" || nok "robustness" "$out"
"${CURL[@]}" -o /dev/null "${AUTH[@]}" $K/coding/v1/models && ok "still serving after bad input" ||
    nok "still serving after bad input"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]' "$T/rec" &&
    ok "every record line is JSON ($(wc -l <"$T/rec") lines)" || nok "record file is not JSON lines"

# --- clean stop -------------------------------------------------------------
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=""
[ $rc = 0 ] && ok "SIGTERM stops cleanly" || nok "SIGTERM" "exit status $rc"
[ -s "$T/stderr" ] && echo "fakeup stderr:" && cat "$T/stderr"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
