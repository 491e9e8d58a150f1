#!/usr/bin/env bash
# mTLS handshake rate: `warden serve`'s HTTPS listener against the Mosquitto TLS listener it supervises (same run,
# same device certificate and key, same client load), with `openssl s_time -new` (a full handshake per connection).
#
# TLS 1.2 by default: with TLS 1.3 the client's handshake is complete as soon as it has sent its Finished, before
# the server has verified the client certificate, and s_time then closes the connection, so s_time also "succeeds"
# when the server would refuse the certificate (it counts connections without any client certificate against
# Mosquitto, which requires one). With TLS 1.2 the server's Finished comes only after it has verified the client
# certificate, so every counted connection is a handshake the server accepted. The script checks that first: the
# device certificate is accepted and a foreign CA's certificate with the same CN is refused by both listeners.
#
# Usage: scripts/bench-handshake.sh         (see docs/PERFORMANCE.md, "## Broker and server")
# Environment:
#   SECONDS_PER_RUN=10  s_time -time
#   RUNS=3              interleaved runs (medians are reported)
#   PROTO=-tls1_2       s_time protocol flag (-tls1_3 measures the client side of TLS 1.3 only, see above)
#   WARDEN=path         use this warden binary instead of building one (release, scratch path .build-release)
# Needs: swift, openssl, mosquitto, python3; 127.0.0.1 only. Runtime: about 2 min 10 s (RUNS x 2 loads x 2 x 10 s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
RUNS=${RUNS:-3}
PROTO=${PROTO:--tls1_2}

if [[ -z "${WARDEN:-}" ]]; then
    (cd "$ROOT" && swift build -c release --scratch-path .build-release --product warden >&2)
    WARDEN="$ROOT/.build-release/release/warden"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench-handshake.XXXXXX")
serve_pid=
clients=()
cleanup() {
    for pid in "${clients[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -n "$serve_pid" ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"   # the broker runs as user 'mosquitto' when we are root
cd "$work"

export WARDEN_HOME="$work/home" WARDEN_PASSPHRASE=bench-passphrase
read -r mqtt_port https_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

"$WARDEN" ca init --org Bench >/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out d.key 2>/dev/null
openssl req -new -key d.key -subj /CN=dev-001 -out d.csr
"$WARDEN" device enroll dev-001 --csr d.csr --out dev.crt.pem >/dev/null 2>&1
cat "$WARDEN_HOME/ca/root.crt.pem" "$WARDEN_HOME/ca/issuing.crt.pem" >bundle.pem
# Same CN, another CA: must be refused by both.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout foreign.key -out foreign.crt \
    -subj /CN=dev-001 -days 1 2>/dev/null
"$WARDEN" broker config --out "$work/broker" --port "$mqtt_port" >/dev/null

"$WARDEN" serve --broker "$work/broker" --https-port "$https_port" >serve.log 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
    grep -q 'broker resynced' serve.log && break
    kill -0 "$serve_pid" 2>/dev/null || { echo "warden serve exited:" >&2; cat serve.log >&2; exit 1; }
    sleep 0.1
done
grep -q 'broker resynced' serve.log || { echo "warden serve never resynced:" >&2; cat serve.log >&2; exit 1; }
broker_pid=$(head -1 "$work/broker/mosquitto.pid")
declare -A port=([warden]=$https_port [mosquitto]=$mqtt_port) server=([warden]=$serve_pid [mosquitto]=$broker_pid)

# Whether a single handshake with CERT/KEY completes: handshake TARGET CERT KEY -> ok | refused
handshake() {
    local out
    out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:${port[$1]}" "$PROTO" -cert "$2" -key "$3" \
        -CAfile bundle.pem 2>&1 || true)
    if grep -q 'alert\|errno\|:error:' <<<"$out"; then echo refused; else echo ok; fi
}
checks=""
for target in warden mosquitto; do
    good=$(handshake "$target" dev.crt.pem d.key)
    bad=$(handshake "$target" foreign.crt foreign.key)
    checks+="$target: device certificate $good, foreign CA's certificate $bad; "
    [[ "$good" == ok && "$bad" == refused ]] || { echo "handshake check failed: $checks" >&2; exit 1; }
done

# CPU ticks (user + system) of a process so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One measurement: LOAD parallel s_time processes against TARGET; prints "rate cpu_us_per_handshake".
measure() {
    local target=$1 load=$2 started finished total=0 cpu0 cpu1 i
    clients=()
    cpu0=$(ticks "${server[$target]}")
    started=$(date +%s.%N)
    for i in $(seq "$load"); do
        openssl s_time -connect "127.0.0.1:${port[$target]}" -new "$PROTO" -cert dev.crt.pem -key d.key \
            -CAfile bundle.pem -time "$SECONDS_PER_RUN" >"out.$target.$load.$i" 2>&1 &
        clients+=($!)
    done
    for pid in "${clients[@]}"; do wait "$pid" || { echo "s_time against $target failed:" >&2; cat out.$target.$load.* >&2; exit 1; }; done
    finished=$(date +%s.%N)
    clients=()
    cpu1=$(ticks "${server[$target]}")
    for i in $(seq "$load"); do
        grep -q 'ERROR' "out.$target.$load.$i" && { echo "s_time against $target reported errors:" >&2; head "out.$target.$load.$i" >&2; exit 1; }
        total=$((total + $(sed -n 's/^\([0-9]*\) connections in [0-9]* real seconds.*/\1/p' "out.$target.$load.$i")))
    done
    # s_time stops on a whole-second clock, so the rate uses the measured wall time.
    awk -v n="$total" -v s="$started" -v f="$finished" -v c="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.1f %.0f\n", n / (f - s), n ? c / hz * 1e6 / n : 0 }'
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A rates cpus
for run in $(seq "$RUNS"); do
    # Alternate which contender goes first.
    if ((run % 2)); then order=(warden mosquitto); else order=(mosquitto warden); fi
    for load in 1 2; do
        for target in "${order[@]}"; do
            read -r rate cpu < <(measure "$target" "$load")
            rates[$target.$load]+="$rate "
            cpus[$target.$load]+="$cpu "
            echo "run $run, $load client(s), $target: $rate handshakes/s, server CPU ${cpu} µs/handshake" >&2
        done
    done
done

cat <<REPORT

Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average $(cut -d' ' -f1-3 /proc/loadavg)
Warden: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?"); $(mosquitto -h 2>/dev/null | head -1); $(openssl version)
openssl s_time -new $PROTO, ECDSA P-256 device certificate (leaf + issuing chain), ${SECONDS_PER_RUN} s per measurement, $RUNS interleaved runs.
Checks: $checks

| Load                 | warden serve HTTPS (handshakes/s) | Mosquitto TLS listener (handshakes/s) | warden / mosquitto |
|----------------------|----------------------------------:|--------------------------------------:|-------------------:|
REPORT
for load in 1 2; do
    w=$(median ${rates[warden.$load]}) m=$(median ${rates[mosquitto.$load]})
    printf '| %-20s | %33s | %37s | %18s |\n' "$load s_time process$([[ $load == 1 ]] || echo es)" \
        "$w (${rates[warden.$load]% })" "$m (${rates[mosquitto.$load]% })" "$(awk "BEGIN { printf \"%.2f\", $w / $m }")"
done
cat <<REPORT

Server CPU per accepted handshake (user + system of the server process, /proc ticks at $(getconf CLK_TCK) Hz), median:

| Load                 | warden serve (µs) | mosquitto (µs) | warden / mosquitto |
|----------------------|------------------:|---------------:|-------------------:|
REPORT
for load in 1 2; do
    w=$(median ${cpus[warden.$load]}) m=$(median ${cpus[mosquitto.$load]})
    printf '| %-20s | %17s | %14s | %18s |\n' "$load s_time process$([[ $load == 1 ]] || echo es)" "$w" "$m" \
        "$(awk "BEGIN { printf \"%.2f\", $w / $m }")"
done
