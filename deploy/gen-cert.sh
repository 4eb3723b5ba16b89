#!/usr/bin/env bash
# Generate a self-signed development certificate for the gateway.
#
#   gen-cert.sh DIR          writes DIR/cert.pem and DIR/key.pem if absent
#   gen-cert.sh DIR --force  replaces them
#
# ECDSA P-256 key, subject CN=localhost, subjectAltName localhost, 127.0.0.1
# and ::1, valid 825 days. Clients trust it by using cert.pem as their CA file
# (curl --cacert DIR/cert.pem). For development and tests only: production
# uses a certificate from the agency's CA (settings tls_cert / tls_key).
set -euo pipefail

dir=${1:?usage: gen-cert.sh DIR [--force]}
force=${2:-}
cert="$dir/cert.pem"
key="$dir/key.pem"

if [ -s "$cert" ] && [ -s "$key" ] && [ "$force" != "--force" ]; then
  exit 0
fi

command -v openssl >/dev/null 2>&1 || { echo "gen-cert: openssl not found (run deploy/install-deps.sh)" >&2; exit 1; }

mkdir -p "$dir"
chmod 0700 "$dir"
tmp=$(mktemp -d "$dir/.gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

umask 077
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/key.ec.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$tmp/key.ec.pem" -out "$tmp/key.pem"
openssl req -x509 -new -sha256 -days 825 -key "$tmp/key.pem" -out "$tmp/cert.pem" \
  -subj "/O=Beacon development/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,digitalSignature,keyCertSign" \
  -addext "extendedKeyUsage=serverAuth" 2>/dev/null

chmod 0600 "$tmp/key.pem"
chmod 0644 "$tmp/cert.pem"
# Key first, then the certificate: a reader that sees cert.pem finds its key.
mv -f "$tmp/key.pem" "$key"
mv -f "$tmp/cert.pem" "$cert"
echo "gen-cert: wrote $cert and $key" >&2
