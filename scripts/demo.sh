#!/bin/sh
# demo.sh BUILD_DIR: the main job in a few readable lines.
#
# Starts the fake Kimi upstream in a private network namespace where
# api.kimi.com resolves to it (nothing on the machine changes), then runs
# real clients with the requests that fail in the field, first without
# kimifix, then under `kimifix`.
set -eu
B=${1:-build}
B=$(cd "$B" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)

if [ "${KIMIFIX_DEMO_INNER:-}" != 1 ]; then
    # Re-run inside a private mount + network namespace (root, or a user namespace).
    if [ "$(id -u)" = 0 ] && unshare -mn true 2>/dev/null; then
        exec env KIMIFIX_DEMO_INNER=1 unshare -mn sh "$0" "$B"
    elif unshare -rmn true 2>/dev/null; then
        exec env KIMIFIX_DEMO_INNER=1 unshare -rmn sh "$0" "$B"
    fi
    echo "demo: cannot create a private network namespace (unshare -mn / -rmn); see tests/e2e/README.md" >&2
    exit 1
fi

work=$(mktemp -d)
# The relay `kimifix` starts lives in this namespace: stop it on the way
# out (a relay of a namespace that is gone serves nobody).
trap '"$B/kimifix" relay stop >/dev/null 2>&1; kill $fpid 2>/dev/null; rm -rf "$work"' EXIT
ip link set lo up
printf '127.0.0.1 api.kimi.com api.kimi.ai api.moonshot.ai api.moonshot.cn auth.kimi.com\n' >"$work/hosts"
mount --bind "$work/hosts" /etc/hosts
sh "$top/tests/fakeup/mkcerts.sh" "$work/certs" >/dev/null 2>&1
"$B/fakeup" --certs "$work/certs" --record "$work/record.jsonl" --https 443 --http 80 \
    --ready "$work/ready" >/dev/null 2>"$work/fakeup.log" &
fpid=$!
i=0
while [ ! -s "$work/ready" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done # up to 60 s
export SSL_CERT_FILE="$work/certs/ca.pem" CURL_CA_BUNDLE="$work/certs/ca.pem"

# Client 1: Debian's python3 (OpenSSL via its _ssl module), doing what an
# Anthropic SDK does with base URL https://api.kimi.com/coding/v1.
cat >"$work/anthropic.py" <<'PY'
import json, urllib.request, urllib.error
base = "https://api.kimi.com/coding/v1"
req = urllib.request.Request(base + "/v1/messages", method="POST",
    data=json.dumps({"model": "kimi-for-coding", "max_tokens": 16,
                     "messages": [{"role": "user", "content": "hi"}]}).encode(),
    headers={"x-api-key": "sk-kimi-demo0000", "anthropic-version": "2023-06-01",
             "content-type": "application/json"})
try:
    r = urllib.request.urlopen(req, timeout=60); code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
j = json.loads(body)
err = (j.get("error") or {}).get("type") if isinstance(j.get("error"), dict) else None
print(code, err or "ok")
PY
anthropic() { $WRAP /usr/bin/python3 "$work/anthropic.py"; }

# Client 2: the curl CLI sending what kimi-code sends.
kimicode() {
    $WRAP curl -s -o "$work/body" -w '%{http_code}' https://api.kimi.com/coding/v1/chat/completions \
        -H 'Authorization: Bearer sk-kimi-demo0000' -H 'X-Msh-Platform: kimi_code_cli' \
        -H 'Content-Type: application/json' \
        -d '{"model":"kimi-for-coding","messages":[{"role":"user","content":"hi"}]}'
    t=$(sed -n 's/.*"type":"\([a-z_]*_error\)".*/\1/p' "$work/body")
    printf ' %s\n' "${t:-ok}"
}

last_target() {
    python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; h=dict((k.lower(),v) for k,v in r["headers"]); print(r["method"], r["target"], ("x-msh-platform: "+h["x-msh-platform"]) if "x-msh-platform" in h else "")' "$work/record.jsonl"
}

show() { # label, function
    out=$($2)
    printf '  %s\n      -> %-30s upstream saw: %s\n' "$1" "$out" "$(last_target)"
}

echo "fake Kimi upstream on api.kimi.com:443 (private network namespace)"
echo
WRAP=""
echo "without kimifix:"
show "python3 urllib, Anthropic SDK-style base .../coding/v1" anthropic
show "curl, kimi-code's X-Msh-Platform: kimi_code_cli" kimicode
echo
echo "with kimifix (kimifix CMD ...):"
export KIMIFIX_LOG="$work/kimifix.log"
WRAP="$B/kimifix"
show "python3 urllib, Anthropic SDK-style base .../coding/v1" anthropic
show "curl, kimi-code's X-Msh-Platform: kimi_code_cli" kimicode
echo
echo "kimifix log:"
sed 's/^/  /' "$work/kimifix.log"
