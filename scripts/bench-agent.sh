#!/usr/bin/env bash
# Edge agent benchmarks (issue 7), against a real `warden serve` + Mosquitto on 127.0.0.1, release builds:
#   (1) telemetry: CPU seconds per 1,000 records drained by one `warden-agent run` (batched, compressed, PUBACK-gated),
#       next to `mosquitto_pub -l` sending the same records one message each (QoS 1, mTLS) in the same run;
#       and the agent's resident set size (VmRSS) while draining and in steady state (--simulate 50 Hz, idle queue).
#   (2) OTA: AGENTS agents update an SIZE_MIB image at once through one Mosquitto (`warden rollout create --waves 100`):
#       aggregate goodput (image bytes installed per second, from rollout create to the last `succeeded`) against
#       raw broker throughput in the same run: mosquitto_pub sending the same image as one message to each of AGENTS
#       mosquitto_sub.
#
# Usage: scripts/bench-agent.sh       (see docs/PERFORMANCE.md, "## Edge agent")
# Environment: AGENTS=50 SIZE_MIB=8 RECORDS=20000 KEEP_WORK=1 WARDEN_BIN_DIR=dir-with-a-release-warden
#              AGENT_BIN=a-release-warden-agent (default: built like `make agent`)  TELEMETRY_ONLY=1 (skip (2))
#              RSS_DETAIL=1 (print the steady agent's resident set by mapping on stderr)
# Needs: swift, python3, mosquitto + mosquitto-clients, openssl. Runtime: 3–6 minutes after the release build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AGENTS=${AGENTS:-50}
SIZE_MIB=${SIZE_MIB:-8}
RECORDS=${RECORDS:-20000}

if [[ -z "${WARDEN_BIN_DIR:-}" ]]; then
    (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path .build-release-static --product warden >&2)
    WARDEN_BIN_DIR="$ROOT/.build-release-static/release"
fi
if [[ -z "${AGENT_BIN:-}" ]]; then
    # The device binary as `make agent` builds it: release, Swift runtime and Foundation linked statically.
    (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path .build-release-static --product warden-agent >&2)
    AGENT_BIN="$ROOT/.build-release-static/release/warden-agent"
fi
WARDEN="$WARDEN_BIN_DIR/warden"
AGENT="$AGENT_BIN"

work=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench-agent.XXXXXX")
pids=()
stop() { # stop PID...: SIGTERM, wait up to 10 s, then SIGKILL
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
cleanup() {
    ((${#pids[@]})) && stop "${pids[@]}"
    if [[ -n "${KEEP_WORK:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
chmod 755 "$work" # the broker runs as user 'mosquitto' when we are root

export WARDEN_HOME="$work/home" WARDEN_PASSPHRASE=bench-passphrase
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$WARDEN" ca init --org Bench >/dev/null
"$WARDEN" broker config --out "$work/broker" --port "$port" >/dev/null
"$WARDEN" firmware keys init >/dev/null
"$WARDEN" ca bundle --out "$work/bundle.pem" >/dev/null
cat >"$work/pipeline.json" <<'JSON'
{ "version": 1, "sensors": [ { "name": "temp", "kind": "scalar",
  "rules": [ { "name": "spike", "type": "hysteresis", "direction": "above", "on": 85, "off": 80 } ] } ] }
JSON

"$WARDEN" serve --broker "$work/broker" >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q 'OTA block service subscribed' "$work/serve.log" && break; sleep 0.1; done
grep -q 'OTA block service subscribed' "$work/serve.log" || { echo "serve did not come up:" >&2; cat "$work/serve.log" >&2; exit 1; }

# agent ID GROUP [extra device-config args...]: init, enroll, signed config.
agent() {
    local id=$1 group=$2; shift 2
    "$AGENT" init --id "$id" --out "$work/s-$id" --trust "$work/bundle.pem" >/dev/null
    "$WARDEN" device enroll "$id" --csr "$work/s-$id/device.csr" --out "$work/s-$id/device.crt.pem" --group "$group" >/dev/null
    "$WARDEN" device config "$id" --broker "mqtts://127.0.0.1:$port" --https-url https://127.0.0.1:9 \
        --pipeline "$work/pipeline.json" --out "$work/c-$id.json" "$@" >/dev/null
}
cpu_s() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; } # utime + stime, seconds (USER_HZ 100)
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
records_of() { "$WARDEN" device show "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("telemetry_records", 0))'; }

# ---------- (1) telemetry CPU and RSS ----------
agent tele-1 tele
python3 - "$work/replay.csv" "$RECORDS" <<'PY'
import math, random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    f.write("ts,sensor,value\n")
    for i in range(int(sys.argv[2])):
        f.write(f"{1700000000 + i},temp,{50 + 20 * math.sin(i / 50) + random.gauss(0, 0.5):.3f}\n")
PY
"$AGENT" run --config "$work/c-tele-1.json" --state "$work/s-tele-1" --initial-spread 0 --no-renewal \
    --replay "$work/replay.csv" >"$work/agent-tele.log" 2>&1 &
apid=$!
pids+=($apid)
queued=""
for _ in $(seq 600); do
    queued=$(sed -n 's/^replay: queued \([0-9]*\) record.*/\1/p' "$work/agent-tele.log")
    [[ -n "$queued" ]] && break
    sleep 0.1
done
[[ -n "$queued" ]] || { echo "the agent never queued the replay:" >&2; cat "$work/agent-tele.log" >&2; exit 1; }
cpu0=$(cpu_s "$apid"); t0=$(date +%s.%N); rss_peak=0
while :; do
    r=$(rss_kib "$apid"); ((r > rss_peak)) && rss_peak=$r
    n=$(records_of tele-1)
    ((n >= queued)) && break
    python3 -c "import sys,time; sys.exit(0 if time.time() - $t0 < 300 else 1)" || { echo "drain timed out at $n/$queued" >&2; exit 1; }
    sleep 0.2
done
cpu1=$(cpu_s "$apid"); t1=$(date +%s.%N)
stop "$apid"
agent_cpu_per_k=$(python3 -c "print(f'{($cpu1 - $cpu0) / $queued * 1000:.4f}')")
drain_rate=$(python3 -c "print(f'{$queued / ($t1 - $t0):.0f}')")

# Steady state: 50 Hz simulated sensor, queue drained continuously. RSS is read once after 15 s (start-up pages still
# resident) and then sampled for 60 s from 30 s on, after the agent's first working-set trim (at 20 s; then every
# --trim-interval, default 60 s).
"$AGENT" run --config "$work/c-tele-1.json" --state "$work/s-tele-1" --initial-spread 0 --no-renewal --simulate 50 \
    >"$work/agent-steady.log" 2>&1 &
spid=$!
pids+=($spid)
sleep 15
rss_untrimmed=$(rss_kib "$spid")
sleep 15
samples=()
for _ in $(seq 120); do samples+=("$(rss_kib "$spid")"); sleep 0.5; done
pss_steady=$(awk '/^Pss:/ {print $2}' "/proc/$spid/smaps_rollup")
uss_steady=$(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$spid/smaps_rollup")
curl_loaded=$(grep -c libcurl "/proc/$spid/maps" || true)
if [[ -n "${RSS_DETAIL:-}" ]]; then # the steady agent's resident set by mapping (file name or [anon]), largest first
    python3 - "$spid" >&2 <<'PY'
import collections, re, sys
rss, dirty, name = collections.Counter(), collections.Counter(), None
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        fields = line.split()
        name = fields[5].split("/")[-1] if len(fields) > 5 else "[anon]"
    elif line.startswith("Rss:"):
        rss[name] += int(line.split()[1])
    elif line.startswith("Private_Dirty:"):
        dirty[name] += int(line.split()[1])
for name, kib in rss.most_common(15):
    print(f"{kib:8d} KiB resident {dirty[name]:6d} KiB private dirty  {name}")
PY
fi
scpu0=$(cpu_s "$spid"); sn0=$(records_of tele-1); sleep 10; scpu1=$(cpu_s "$spid"); sn1=$(records_of tele-1)
stop "$spid"
rss_steady=$(printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
rss_steady_max=$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)
steady_cpu_per_k=$(python3 -c "d=$sn1-$sn0; print(f'{($scpu1 - $scpu0) / d * 1000:.4f}' if d > 0 else 'n/a')")

telemetry_report() {
    cat <<TELEMETRY
(1) Telemetry, one agent, $queued records:
| Measure | warden-agent | mosquitto_pub -l (same records, 1 message each) | ratio |
|---|---:|---:|---:|
| CPU s per 1,000 records (draining a backlog) | $agent_cpu_per_k | $pub_cpu_per_k | $(python3 -c "print(f'{$agent_cpu_per_k / $pub_cpu_per_k:.2f}')") |
| CPU s per 1,000 records (steady, 50 Hz simulated sensor) | $steady_cpu_per_k | | |
| Resident set, KiB (peak while draining) | $rss_peak | $pm (max RSS) | |
Backlog drain rate: $drain_rate records/s into the authority's registry.
$(rss_report)
TELEMETRY
}
rss_report() {
    cat <<RSS
Steady resident set of warden-agent (50 Hz simulated sensor), KiB:
| Measure | KiB |
|---|---:|
| VmRSS at 15 s, before the first working-set trim | $rss_untrimmed |
| VmRSS from 30 s to 90 s: median / max | $rss_steady / $rss_steady_max |
| PSS / USS (private clean + dirty) at 90 s | $pss_steady / $uss_steady |
libcurl mapped in the steady agent: $([[ "$curl_loaded" == 0 ]] && echo no || echo yes)
RSS
}

# Reference: mosquitto_pub -l, one QoS 1 message per record line (the records as the pipeline wrote them), mTLS.
python3 - "$work/replay.csv" "$work/records.txt" <<'PY'
import sys
rows = open(sys.argv[1]).read().splitlines()[1:]
with open(sys.argv[2], "w") as f:
    for i, row in enumerate(rows):
        ts, _, v = row.split(",")
        f.write(f'{{"id":"tele-1/1/{i + 1}","record":{{"kind":"sample","sensor":"temp","ts":{ts},"value":{v}}}}}\n')
PY
/usr/bin/env time -f '%U %S %M' -o "$work/pub.time" mosquitto_pub -h 127.0.0.1 -p "$port" -V mqttv5 -q 1 \
    --cafile "$work/broker/ca.pem" --cert "$work/s-tele-1/device.crt.pem" --key "$work/s-tele-1/device.key" \
    -i tele-1 -t d/tele-1/up/bench -l <"$work/records.txt" 2>"$work/pub.err" || true
read -r pu ps pm <"$work/pub.time"
pub_cpu_per_k=$(python3 -c "print(f'{($pu + $ps) / $queued * 1000:.4f}')")

if [[ -n "${TELEMETRY_ONLY:-}" ]]; then
    cat <<REPORT

Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average $(cut -d' ' -f1-3 /proc/loadavg)
Warden: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?"); agent binary $(stat -c %s "$AGENT") bytes
$(telemetry_report)
REPORT
    exit 0
fi

# ---------- (2) AGENTS agents update a SIZE_MIB image at once ----------
ids=()
for i in $(seq 1 "$AGENTS"); do
    id=$(printf 'fleet-%03d' "$i"); ids+=("$id")
    agent "$id" fleet --hardware bench-board
done
apids=()
for id in "${ids[@]}"; do
    "$AGENT" run --config "$work/c-$id.json" --state "$work/s-$id" --initial-spread 0 --no-renewal >"$work/agent-$id.log" 2>&1 &
    apids+=($!); pids+=($!)
done
for _ in $(seq 600); do
    online=$( (grep -l "connected to 127.0.0.1" "$work"/agent-fleet-*.log 2>/dev/null || true) | wc -l)
    ((online == AGENTS)) && break
    sleep 0.1
done
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$work/image.bin"
"$WARDEN" firmware add "$work/image.bin" --name gw --version 1.0.0 --hardware bench-board --block-size 64KiB >/dev/null
sleep 2 # the retained TUF metadata is republished within 0.5 s of a change
t0=$(date +%s.%N)
rid=$("$WARDEN" rollout create --target gw@1.0.0 --group fleet --waves 100 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["rollout"]["id"])')
while :; do
    done_n=$("$WARDEN" rollout status "$rid" --json | python3 -c 'import json,sys; c=json.load(sys.stdin)["counts"]; print(c.get("succeeded",0), c.get("failed",0))')
    read -r ok failed <<<"$done_n"
    ((ok + failed >= AGENTS)) && break
    python3 -c "import sys,time; sys.exit(0 if time.time() - $t0 < 600 else 1)" || { echo "rollout timed out: $done_n" >&2; exit 1; }
    sleep 0.2
done
t1=$(date +%s.%N)
ota_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
identical=0
for id in "${ids[@]}"; do
    slot=$(python3 -c "import json; print(json.load(open('$work/s-$id/slots/boot.json'))['active'] or '')")
    [[ -n "$slot" ]] && cmp -s "$work/image.bin" "$work/s-$id/slots/$slot/image" && identical=$((identical + 1))
done
stop "${apids[@]}"

# Raw reference, same broker: AGENTS mosquitto_sub (device certificates) on d/<id>/down/raw and mosquitto_pub (the CLI
# control identity) sending the image to each as one message.
subs=()
for id in "${ids[@]}"; do
    mosquitto_sub -h 127.0.0.1 -p "$port" -V mqttv5 -q 1 --cafile "$work/broker/ca.pem" \
        --cert "$work/s-$id/device.crt.pem" --key "$work/s-$id/device.key" -i "$id" -t "d/$id/down/raw" -C 1 -N -W 300 >"$work/raw-$id.bin" &
    subs+=($!)
done
sleep 3
r0=$(date +%s.%N)
# The broker takes the client id from the certificate's user name, so the publisher's connections run one after
# the other (as in scripts/bench/ota_blocks.py); the subscribers receive concurrently.
for id in "${ids[@]}"; do
    mosquitto_pub -h 127.0.0.1 -p "$port" -V mqttv5 -q 1 --cafile "$work/broker/ca.pem" \
        --cert "$work/broker/control-cli.crt.pem" --key "$work/broker/control-cli.key.pem" \
        -t "d/$id/down/raw" -f "$work/image.bin"
done
for p in "${subs[@]}"; do wait "$p" || true; done
r1=$(date +%s.%N)
raw_s=$(python3 -c "print(f'{$r1 - $r0:.2f}')")
raw_ok=0
for id in "${ids[@]}"; do cmp -s "$work/image.bin" "$work/raw-$id.bin" && raw_ok=$((raw_ok + 1)); done

mib=$((AGENTS * SIZE_MIB))
cat <<REPORT

Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average $(cut -d' ' -f1-3 /proc/loadavg)
Warden: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?"); $(mosquitto -h 2>/dev/null | head -1)

$(telemetry_report)

(2) $AGENTS agents, one ${SIZE_MIB} MiB image (64 KiB blocks), one Mosquitto:
| Path | seconds | aggregate MiB/s | images byte-identical |
|---|---:|---:|---:|
| rollout create -> all agents succeeded (TUF + blocks + A/B install + signed reports) | $ota_s | $(python3 -c "print(f'{$mib / $ota_s:.1f}')") | $identical/$AGENTS (succeeded $ok, failed $failed) |
| raw: mosquitto_pub -> mosquitto_sub, same bytes | $raw_s | $(python3 -c "print(f'{$mib / $raw_s:.1f}')") | $raw_ok/$AGENTS |
Goodput ratio agents / raw: $(python3 -c "print(f'{$raw_s / $ota_s:.2f}')")
REPORT
