#!/usr/bin/env bash
# Revocation benchmark: `warden device revoke` against live MQTT sessions on the broker `warden serve` supervises.
#
# For each of REVOKE devices (each with a live mosquitto_sub on its own down topic): (a) the revoke command's own
# duration, (b) command return -> that device's mosquitto_sub has exited, (a)+(b) "revoke issued -> session gone",
# a reconnect attempt right after (must be refused), sessions still alive 1 s after the command returned (must be
# 0) and other devices' sessions that ended (must be 0). In the same run, the raw pieces Warden chains: a mosquitto
# SIGHUP reload round trip and a broker-side kick (dynsec deleteClient, no mosquitto_ctrl) until the session's
# process exits. Exit times come from pidfds watched by one epoll thread (scripts/bench/revoke_latency.py).
#
# Usage: scripts/bench-revoke.sh            (see docs/PERFORMANCE.md, "## Broker and server")
# Environment:
#   REVOKE=100     devices revoked one after the other
#   KEEP_WORK=1    keep the temporary directory (home, broker, logs) for inspection
#   WARDEN=path    use this warden binary instead of building one (release, scratch path .build-release)
# Needs: swift, python3 with 'cryptography', mosquitto + mosquitto-clients, 127.0.0.1 only. Runtime: about 1 min.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REVOKE=${REVOKE:-100}
BYSTANDERS=5
KICKS=10

if [[ -z "${WARDEN:-}" ]]; then
    (cd "$ROOT" && swift build -c release --scratch-path .build-release --product warden >&2)
    WARDEN="$ROOT/.build-release/release/warden"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench-revoke.XXXXXX")
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

# Two free loopback ports.
read -r mqtt_port https_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

revoked=() bystanders=() kick_persistent=() kick_fresh=()
for i in $(seq 1 "$REVOKE"); do revoked+=("$(printf 'dev-%03d' "$i")"); done
for i in $(seq 1 "$BYSTANDERS"); do bystanders+=("$(printf 'bystander-%02d' "$i")"); done
for i in $(seq 1 "$KICKS"); do kick_persistent+=("$(printf 'kick-p%02d' "$i")") kick_fresh+=("$(printf 'kick-f%02d' "$i")"); done
all=("${revoked[@]}" "${bystanders[@]}" "${kick_persistent[@]}" "${kick_fresh[@]}" probe-01)
join() { local IFS=,; echo "$*"; }

"$WARDEN" ca init --org Bench >/dev/null
python3 "$ROOT/scripts/bench/revoke_latency.py" keys "$work/dev" "${all[@]}"
"$WARDEN" device enroll --batch "$work/dev/batch.csv" --out-dir "$work/dev" --report "$work/enroll.csv" >/dev/null 2>"$work/enroll.err"
enrolled=$(grep -c ',enrolled,' "$work/enroll.csv" || true)
[[ "$enrolled" == "${#all[@]}" ]] || { echo "enrolled $enrolled of ${#all[@]}" >&2; cat "$work/enroll.err" >&2; exit 1; }
"$WARDEN" broker config --out "$work/broker" --port "$mqtt_port" >/dev/null

"$WARDEN" serve --broker "$work/broker" --https-port "$https_port" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
    grep -q 'broker resynced' "$work/serve.log" && break
    kill -0 "$serve_pid" 2>/dev/null || { echo "warden serve exited:" >&2; cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
done
grep -q 'broker resynced' "$work/serve.log" || { echo "warden serve never resynced:" >&2; cat "$work/serve.log" >&2; exit 1; }

out=$(python3 "$ROOT/scripts/bench/revoke_latency.py" run "$WARDEN" "$work/broker" "$work/dev" "$mqtt_port" \
    "$(join "${revoked[@]}")" "$(join "${bystanders[@]}")" "$(join "${kick_persistent[@]}")" "$(join "${kick_fresh[@]}")" probe-01)
if grep -qi 'error\|fatal' "$work/serve.log"; then
    echo "warden serve logged errors:" >&2; grep -i 'error\|fatal' "$work/serve.log" | head -20 >&2
fi

r() { sed -n "s/^RESULT $1 //p" <<<"$out"; }
f() { r "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
row() { printf '| %-58s | %8s | %8s | %8s | %4s |\n' "$1" "$(f "$2" p50)" "$(f "$2" p99)" "$(f "$2" max)" "$(f "$2" n)"; }

cat <<REPORT

Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average $(cut -d' ' -f1-3 /proc/loadavg)
Warden: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?"); $(mosquitto -h 2>/dev/null | head -1)
$REVOKE devices revoked one after the other, each with a live mosquitto_sub (MQTT v5, TLS, own topic); ms:

| Revocation (Warden)                                        |      p50 |      p99 |      max |    n |
|------------------------------------------------------------|---------:|---------:|---------:|-----:|
$(row "(a) \`warden device revoke\` command, whole process" revoke_cmd_ms)
$(row "(b) command returned -> mosquitto_sub exited (0 if before)" return_to_gone_ms)
$(row "(a)+(b) revoke issued -> session gone" issued_to_gone_ms)

Checks: sessions gone before the command returned: $(r gone_before_return) of $REVOKE; still alive 1 s after return: $(r alive_after_1s) (must be 0);
reconnects accepted after revoke: $(r reconnect_accepted) (must be 0; refused at the TLS handshake: $(r refused_tls), of which with the alert "certificate revoked": $(r refused_crl); by CONNACK: $(r refused_connack)); revoke commands failed: $(r revoke_failed);
other devices wrongly disconnected: $(r wrongly_disconnected) (must be 0; $BYSTANDERS bystanders never revoked + devices awaiting their turn).

| Raw pieces, same broker, same run                          |      p50 |      p99 |      max |    n |
|------------------------------------------------------------|---------:|---------:|---------:|-----:|
$(row "2 x PINGREQ -> PINGRESP on a live TLS connection" ping_ms)
$(row "SIGHUP + 2 x PINGREQ -> PINGRESP (reload round trip)" sighup_ping_ms)
$(row "SIGHUP to an idle broker -> reload CPU seen (schedstat)" sighup_idle_ms)
| broker CPU per SIGHUP reload (schedstat, minus plain ping) | $(printf '%8s' "$(r reload_cpu_ms)") |          |          |      |
$(row "dynsec deleteClient, persistent control conn -> sub exited" kick_persistent_ms)
$(row "TLS connect + deleteClient as control -> sub exited" kick_fresh_conn_ms)

Kicks that did not end the session within 2 s: $(r kick_missed). First refused reconnect, mosquitto_pub -d says:
$(r refusal_sample)
REPORT
