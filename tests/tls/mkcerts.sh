#!/bin/sh
# mkcerts.sh DIR: a throw-away test CA and a server certificate for the
# hosts the TLS tests use (api.kimi.com, api.kimi.ai, api.moonshot.ai,
# example.org, localhost, 127.0.0.1). Writes DIR/ca.pem, DIR/cert.pem,
# DIR/key.pem. Idempotent: does nothing when DIR/cert.pem exists.
set -eu
d=$1
mkdir -p "$d"
[ -s "$d/cert.pem" ] && [ -s "$d/key.pem" ] && [ -s "$d/ca.pem" ] && exit 0
cd "$d"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=kimifix test CA" -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=api.kimi.com" \
    -keyout key.pem -out srv.csr >/dev/null 2>&1
cat > ext.cnf <<'X'
basicConstraints=CA:FALSE
keyUsage=digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:api.kimi.com,DNS:api.kimi.ai,DNS:api.moonshot.ai,DNS:example.org,DNS:localhost,IP:127.0.0.1
X
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile ext.cnf -out cert.pem >/dev/null 2>&1
rm -f srv.csr ext.cnf ca.srl
