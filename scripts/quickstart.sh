#!/usr/bin/env bash
# The admin flow on a throw-away home: CA, three devices with their own keys, enroll, list, revoke, CRL.
set -euo pipefail
warden="${1:?usage: quickstart.sh PATH/TO/warden}"
demo="$(pwd)/quickstart-demo"
rm -rf "$demo"; mkdir -p "$demo/devices"; chmod 700 "$demo"
export WARDEN_HOME="$demo/home"
# The passphrase lives in a 0600 file, never on a command line.
umask 077; head -c 24 /dev/urandom | base64 > "$demo/passphrase"; umask 022
pp=(--passphrase-file "$demo/passphrase")
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step warden ca init --org "Quickstart Fleet"
"$warden" ca init --org "Quickstart Fleet" "${pp[@]}"

for id in pump-001 pump-002 gate-003; do
  step "openssl: $id generates its own P-256 key and CSR (the key never leaves the device)"
  openssl ecparam -name prime256v1 -genkey -noout -out "$demo/devices/$id.key" 2>/dev/null
  openssl req -new -key "$demo/devices/$id.key" -subj "/CN=$id" -out "$demo/devices/$id.csr"
  group=pumps; [ "$id" = gate-003 ] && group=gates
  step warden device enroll "$id" --csr "devices/$id.csr" --group "$group" --out "devices/$id.crt.pem"
  "$warden" device enroll "$id" --csr "$demo/devices/$id.csr" --group "$group" --out "$demo/devices/$id.crt.pem" "${pp[@]}"
done

step warden device list
"$warden" device list

step "openssl verify -x509_strict -purpose sslclient (independent check of pump-001)"
"$warden" ca bundle --out "$demo/bundle.pem"
openssl verify -x509_strict -purpose sslclient -CAfile "$demo/bundle.pem" "$demo/devices/pump-001.crt.pem"

step warden device revoke pump-002 --reason keyCompromise
"$warden" device revoke pump-002 --reason keyCompromise "${pp[@]}"

step "warden crl | openssl crl -text -noout"
"$warden" crl --out "$demo/crl.pem" "${pp[@]}"
openssl crl -in "$demo/crl.pem" -text -noout

step "warden cert verify pump-002 (revoked) and pump-001 (good) against the CRL"
"$warden" cert verify "$demo/devices/pump-002.crt.pem" --trust "$demo/bundle.pem" --purpose client --crl "$demo/crl.pem" || echo "(exit $? — refused, as it must be)"
"$warden" cert verify "$demo/devices/pump-001.crt.pem" --trust "$demo/bundle.pem" --purpose client --crl "$demo/crl.pem"

step warden audit verify
"$warden" audit verify
"$warden" audit log

printf '\nQuickstart done. Home: %s (passphrase file: %s/passphrase)\n' "$WARDEN_HOME" "$demo"
