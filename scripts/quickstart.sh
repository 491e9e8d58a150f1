#!/usr/bin/env bash
# The admin flow on a throw-away home: CA, three devices with their own keys, enroll, list, a signed firmware
# release, the broker with default-deny policies, live revocation, CRL, audit.
set -euo pipefail
warden="${1:?usage: quickstart.sh PATH/TO/warden}"
demo="$(pwd)/quickstart-demo"
if [ -f "$demo/serve.pid" ]; then kill "$(cat "$demo/serve.pid")" 2>/dev/null || true; sleep 1; fi
rm -rf "$demo"; mkdir -p "$demo/devices"
# Mosquitto drops to its own user when started as root: it must be able to reach the broker directory.
chmod 755 "$demo"
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

# ---- signed firmware: a TUF 1.0 repository (root 2-of-3 offline-capable, online targets/snapshot/timestamp) ----
step warden firmware keys init
"$warden" firmware keys init "${pp[@]}"
head -c 300000 /dev/urandom > "$demo/gw-1.0.0.bin"
step warden firmware add gw-1.0.0.bin --name gw --version 1.0.0 --hardware board-a
"$warden" firmware add "$demo/gw-1.0.0.bin" --name gw --version 1.0.0 --hardware board-a "${pp[@]}"
step warden firmware list
"$warden" firmware list

# ---- the broker: mTLS, CRL, default-deny dynamic security, supervised by warden serve ----
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step warden broker config --out broker --port "$port"
"$warden" broker config --out "$demo/broker" --port "$port" "${pp[@]}"
step "warden serve --broker broker   (in the background; log in serve.log)"
"$warden" serve --broker "$demo/broker" "${pp[@]}" >"$demo/serve.log" 2>&1 &
serve_pid=$!
echo "$serve_pid" > "$demo/serve.pid"
trap 'kill "$serve_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "resynced" "$demo/serve.log" 2>/dev/null && break; sleep 0.1; done
grep -q "resynced" "$demo/serve.log" || { echo "warden serve did not start the broker:"; cat "$demo/serve.log"; exit 1; }
mq() { local id=$1; shift; "$@" -h 127.0.0.1 -p "$port" -V mqttv5 -q 1 --cafile "$demo/broker/ca.pem" \
        --cert "$demo/devices/$id.crt.pem" --key "$demo/devices/$id.key"; }

step "pump-001 subscribes to its own down/ topics (stays connected)"
mq pump-001 stdbuf -oL mosquitto_sub -t 'd/pump-001/down/#' -d >"$demo/pump-001.sub.log" 2>&1 &
sub_pid=$!
sleep 1; grep "Subscribed" "$demo/pump-001.sub.log" || true
step "pump-001 publishes to its own up/ topic: allowed (PUBACK reason 16 = no subscribers yet, not an error)"
mq pump-001 mosquitto_pub -t d/pump-001/up/telemetry -m '{"level":42}' -d 2>&1 | grep -E "PUBACK|Warning" || true
step "pump-001 publishes to gate-003's topic: denied (reason 135, not authorized)"
mq pump-001 mosquitto_pub -t d/gate-003/up/telemetry -m spoof -d 2>&1 | grep -E "PUBACK|Warning" || true
step "pump-001 subscribes to '#': denied"
mq pump-001 mosquitto_sub -t '#' -W 1 -d 2>&1 | grep -E "Subscribed|denied" || true

step "gate-003 reads the signed TUF timestamp, retained on warden/tuf/timestamp.json (devices verify it; the broker is not trusted)"
mq gate-003 mosquitto_sub -t warden/tuf/timestamp.json -C 1 -W 5 | head -c 400; echo

step "openssl verify -x509_strict -purpose sslclient (independent check of pump-001)"
"$warden" ca bundle --out "$demo/bundle.pem"
openssl verify -x509_strict -purpose sslclient -CAfile "$demo/bundle.pem" "$demo/devices/pump-001.crt.pem"

step warden device revoke pump-002 --reason keyCompromise
"$warden" device revoke pump-002 --reason keyCompromise "${pp[@]}"

step "warden device revoke pump-001 --reason keyCompromise   (pump-001 is connected right now)"
"$warden" device revoke pump-001 --reason keyCompromise "${pp[@]}"
# The kick is immediate; mosquitto_sub then tries to reconnect, is refused at the handshake and exits.
for _ in $(seq 1 30); do kill -0 "$sub_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$sub_pid" 2>/dev/null; then echo "pump-001's session is STILL open"; kill "$sub_pid"; exit 1; fi
echo "pump-001's live session was disconnected:"; tail -2 "$demo/pump-001.sub.log"
step "pump-001 tries to reconnect: refused at the TLS handshake"
mq pump-001 mosquitto_pub -t d/pump-001/up/telemetry -m again 2>&1 | head -2 || true
step "gate-003 is unaffected"
mq gate-003 mosquitto_pub -t d/gate-003/up/telemetry -m ok -d 2>&1 | grep -E "CONNACK|PUBACK" || true

step "warden crl | openssl crl -text -noout"
"$warden" crl --out "$demo/crl.pem" "${pp[@]}"
openssl crl -in "$demo/crl.pem" -text -noout

step "warden cert verify pump-002 (revoked) and gate-003 (good) against the CRL"
"$warden" cert verify "$demo/devices/pump-002.crt.pem" --trust "$WARDEN_HOME/ca/root.crt.pem" --purpose client --crl "$demo/crl.pem" || echo "(exit $? — refused, as it must be)"
"$warden" cert verify "$demo/devices/gate-003.crt.pem" --trust "$WARDEN_HOME/ca/root.crt.pem" --purpose client --crl "$demo/crl.pem"

step warden audit verify
"$warden" audit verify
"$warden" audit log

step "stopping warden serve (SIGTERM: the broker stops with it)"
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; rm -f "$demo/serve.pid"
tail -3 "$demo/serve.log"

printf '\nQuickstart done. Home: %s (passphrase file: %s/passphrase)\n' "$WARDEN_HOME" "$demo"
