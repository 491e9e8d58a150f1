#!/usr/bin/env bash
# OTA block delivery benchmark: the block service of `warden serve` through Mosquitto against raw
# mosquitto_pub/mosquitto_sub moving the same image bytes, same broker, same run; and bytes on the device's side of
# the wire per image byte. Every block received is verified alone by an independent Python Merkle verifier.
#
# Usage: scripts/bench-ota.sh            (see docs/PERFORMANCE.md, "## OTA block delivery")
# Environment:
#   DEVICES=20       concurrent downloaders (also measured with 1)
#   SIZE_MIB=16      image size
#   BLOCK=65536      block size (4096 … 65536)
#   RUNS=3           rounds per configuration (median reported)
#   KEEP_WORK=1      keep the temporary directory
#   WARDEN=path      use this warden binary instead of building one (release, scratch path .build-blocks-release)
# Needs: swift, python3 with 'cryptography', mosquitto + mosquitto-clients, 127.0.0.1 only. Runtime: about 1–2 min.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVICES=${DEVICES:-20}
SIZE_MIB=${SIZE_MIB:-16}
BLOCK=${BLOCK:-65536}
RUNS=${RUNS:-3}

if [[ -z "${WARDEN:-}" ]]; then
    (cd "$ROOT" && swift build -c release --scratch-path .build-blocks-release --product warden >&2)
    WARDEN="$ROOT/.build-blocks-release/release/warden"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench-ota.XXXXXX")
serve_pid=
cleanup() {
    if [[ -n "$serve_pid" ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    if [[ -n "${KEEP_WORK:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
chmod 755 "$work"   # the broker runs as user 'mosquitto' when we are root

export WARDEN_HOME="$work/home" WARDEN_PASSPHRASE=bench-passphrase
mqtt_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

ids=()
for i in $(seq 1 "$DEVICES"); do ids+=("$(printf 'ota-%03d' "$i")"); done

"$WARDEN" ca init --org Bench >/dev/null
python3 "$ROOT/scripts/bench/revoke_latency.py" keys "$work/dev" "${ids[@]}"
"$WARDEN" device enroll --batch "$work/dev/batch.csv" --out-dir "$work/dev" --report "$work/enroll.csv" >/dev/null 2>"$work/enroll.err"
"$WARDEN" broker config --out "$work/broker" --port "$mqtt_port" >/dev/null

# The image, stored the way `warden firmware add` stores it: $WARDEN_HOME/firmware/<sha256>.
mkdir -p "$WARDEN_HOME/firmware"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$work/image.bin"
cp "$work/image.bin" "$WARDEN_HOME/firmware/$(sha256sum "$work/image.bin" | cut -d' ' -f1)"

"$WARDEN" serve --broker "$work/broker" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
    grep -q 'OTA block service subscribed' "$work/serve.log" && break
    kill -0 "$serve_pid" 2>/dev/null || { echo "warden serve exited:" >&2; cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
done
grep -q 'OTA block service subscribed' "$work/serve.log" || { echo "the block service never subscribed:" >&2; cat "$work/serve.log" >&2; exit 1; }

out=$(python3 "$ROOT/scripts/bench/ota_blocks.py" run "$work/broker" "$work/dev" "$mqtt_port" "$work/image.bin" "$BLOCK" "$RUNS" "${ids[@]}")
if grep -qi 'error\|OTA request from .* refused\|withdrawn' "$work/serve.log"; then
    echo "warden serve logged errors or refusals:" >&2; grep -i 'error\|OTA request from .* refused\|withdrawn' "$work/serve.log" | head -20 >&2
fi

r() { sed -n "s/^RESULT $1 //p" <<<"$out"; }
f() { r "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
row() {
    printf '| %-22s | %9s | %9s | %9s | %6s | %6s | %-16s | %-16s | %-16s |\n' "$1" "$(f "$2" ota_mib_s)" "$(f "$2" raw_mib_s)" \
        "$(f "$2" rawc_mib_s)" "$(f "$2" ratio)" "$(f "$2" ratio_c)" "$(f "$2" ota_all)" "$(f "$2" raw_all)" "$(f "$2" rawc_all)"
}

cat <<REPORT

Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average $(cut -d' ' -f1-3 /proc/loadavg)
Warden: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?"); $(mosquitto -h 2>/dev/null | head -1)
Image ${SIZE_MIB} MiB, block size $BLOCK, $RUNS rounds each (median; all rounds listed), MiB/s of image delivered:

(A) block service -> device; (B) mosquitto_pub -> the same device code; (C) mosquitto_pub -> mosquitto_sub.

| Configuration          |       (A) |       (B) |       (C) |  A / B |  A / C | (A) all rounds   | (B) all rounds   | (C) all rounds   |
|------------------------|----------:|----------:|----------:|-------:|-------:|------------------|------------------|------------------|
$(row "1 device" goodput_n1)
$(row "$DEVICES devices at once" "goodput_n$DEVICES")

Bytes on the device's side of the wire (TLS + MQTT, both directions, all device connections) per image byte:
block service $(f overhead ota_per_byte) (payload alone $(f overhead ota_payload_per_byte), $(f overhead blocks) blocks), raw pub/sub $(f overhead raw_per_byte).
REPORT
