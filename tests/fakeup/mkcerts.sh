#!/bin/sh
# mkcerts.sh DIR: a throw-away test CA and one server certificate per fake
# host, made at test time with the openssl CLI (keys are never committed).
#   DIR/ca.pem DIR/ca.key            CA (basicConstraints critical CA:TRUE)
#   DIR/HOST.pem DIR/HOST.key        leaf: SAN DNS:HOST, EKU serverAuth
# EC P-256 keys, ~30 days. Idempotent: files that exist, verify against the
# CA and stay valid for 2 more days are kept; a new CA re-issues every leaf.
# The extensions satisfy strict verifiers too (Python 3.13's
# VERIFY_X509_STRICT wants AKID/SKID and keyUsage).
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
hosts="api.kimi.com api.kimi.ai api.moonshot.ai api.moonshot.cn auth.kimi.com auth.kimi.ai api.example.com"
days=30
keep=172800 # seconds a kept certificate must still be valid
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

fresh() { # FILE: exists and will not expire soon
    [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend "$keep" >/dev/null 2>&1
}

if ! fresh "$dir/ca.pem" || [ ! -s "$dir/ca.key" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key" 2>/dev/null
    cat > "$tmp/ca.cnf" <<EOF
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = kimifix fakeup test CA
O = kimifix tests
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    openssl req -new -x509 -config "$tmp/ca.cnf" -key "$tmp/ca.key" -days "$days" \
        -sha256 -out "$tmp/ca.pem"
    mv "$tmp/ca.key" "$dir/ca.key"
    mv "$tmp/ca.pem" "$dir/ca.pem"
    chmod 644 "$dir/ca.pem"
fi

for h in $hosts; do
    pem="$dir/$h.pem"
    key="$dir/$h.key"
    if fresh "$pem" && [ -s "$key" ] &&
        openssl verify -CAfile "$dir/ca.pem" "$pem" >/dev/null 2>&1; then
        continue
    fi
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$h.key" 2>/dev/null
    openssl req -new -key "$tmp/$h.key" -subj "/CN=$h/O=kimifix tests" -out "$tmp/$h.csr"
    cat > "$tmp/$h.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$h
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
    openssl x509 -req -in "$tmp/$h.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -sha256 \
        -extfile "$tmp/$h.ext" -out "$tmp/$h.pem" 2>/dev/null
    mv "$tmp/$h.key" "$key"
    mv "$tmp/$h.pem" "$pem"
    chmod 644 "$pem"
done
