#!/usr/bin/env bash
# Enrollment benchmark: `warden device enroll --batch` (release build, durable, fresh home) against the
# python-cryptography reference loop over the same CSRs, plus the openssl ECDSA P-256 ceiling.
#
# Usage: scripts/bench-enroll.sh            (from anywhere; see docs/PERFORMANCE.md, "## Enrollment")
# Environment:
#   ROWS=2000     CSRs in the batch
#   RUNS=3        interleaved runs of each contender (medians are reported)
#   JOBS=2        warden --jobs
#   WARDEN=path   use this warden binary instead of building one (`make release`: static, .build-release-static)
#   BIG_ROWS=6000 a second, larger batch for warden's marginal rate (rows/s between ROWS and BIG_ROWS rows, which
#                 cancels the fixed per-process cost: start-up and the issuing key's PBKDF2); 0 skips it
# Needs: swift, python3 with 'cryptography', openssl. Runtime: about 50 s after the build (RUNS=3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${ROWS:-2000}
RUNS=${RUNS:-3}
BIG_ROWS=${BIG_ROWS:-6000}
JOBS=${JOBS:-2}
PASSPHRASE=bench-passphrase

work=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench-enroll.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Runs `warden device enroll --batch` in a fresh home HOME (also writing per-device chain files to OUT_DIR when
# given) and prints the whole-process rows/s, then the command's own figure (after argument parsing .. report saved):
# run_warden HOME [OUT_DIR [CSR_DIR ROW_COUNT]]
run_warden() {
    local home=$1 out=${2:-} csrs=${3:-$work/csrs} rows=${4:-$ROWS} started finished enrolled
    local extra=()
    [[ -n "$out" ]] && extra=(--out-dir "$out")
    WARDEN_HOME="$home" WARDEN_PASSPHRASE="$PASSPHRASE" "$WARDEN" ca init --org Bench >/dev/null
    started=$(date +%s.%N)
    WARDEN_HOME="$home" WARDEN_PASSPHRASE="$PASSPHRASE" "$WARDEN" device enroll \
        --batch "$csrs/batch.csv" --jobs "$JOBS" --report "$home/report.csv" "${extra[@]}" 2>"$home/stderr"
    finished=$(date +%s.%N)
    enrolled=$(grep -c ',enrolled,' "$home/report.csv" || true)
    if [[ "$enrolled" != "$rows" ]]; then
        echo "warden enrolled $enrolled of $rows rows:" >&2
        cat "$home/stderr" >&2
        exit 1
    fi
    echo "$(calc "$rows / ($finished - $started)") $(sed -n 's/.*(\([0-9]*\) rows\/s).*/\1/p' "$home/stderr")"
}

# Median of the numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Floating-point arithmetic: calc EXPRESSION (awk syntax), printed with one decimal.
calc() {
    awk "BEGIN { printf \"%.1f\", $1 }"
}

# A ratio with two decimals: ratio EXPRESSION (awk syntax).
ratio() {
    awk "BEGIN { printf \"%.2f\", $1 }"
}

# The value of key=VALUE in a line of key=value pairs: field KEY LINE.
field() {
    tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

# sign/s and verify/s of `openssl speed ecdsap256` with the extra arguments given.
openssl_ecdsa() {
    openssl speed -seconds 3 "$@" ecdsap256 2>/dev/null | awk '/ecdsa \(nistp256\)/ { print $(NF - 1), $NF }'
}

if [[ -z "${WARDEN:-}" ]]; then
    echo "== building warden (release as \`make release\` builds it: static, scratch path .build-release-static)" >&2
    (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path .build-release-static --product warden >&2)
    WARDEN="$(cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path .build-release-static --show-bin-path)/warden"
fi

echo "== making $ROWS CSRs" >&2
python3 "$ROOT/scripts/bench/make_csrs.py" "$ROWS" "$work/csrs"
if (( BIG_ROWS > ROWS )); then
    echo "== making $BIG_ROWS CSRs (marginal rate)" >&2
    python3 "$ROOT/scripts/bench/make_csrs.py" "$BIG_ROWS" "$work/csrs-big"
fi

# Runs the python loop as a whole process (interpreter start, imports, CA set-up and the loop) and prints rows/s:
# the like-for-like counterpart of warden's whole-process figure (the loop's own figure excludes all of that).
python_whole() {
    local started finished
    started=$(date +%s.%N)
    python3 "$ROOT/scripts/bench/enroll_reference.py" "$work/csrs" >/dev/null
    finished=$(date +%s.%N)
    calc "$ROWS / ($finished - $started)"
}

warden_wall=() warden_inner=() warden_shm=() warden_marginal=() python1=() python2=() python_wall=()
for run in $(seq 1 "$RUNS"); do
    echo "== run $run/$RUNS" >&2
    # Homes are kept until the end: deleting thousands of files between runs slows the next run's file
    # creation on ext4 (inode allocation skips recently deleted inodes).
    result=$(run_warden "$work/home-$run")
    warden_wall+=("${result% *}") warden_inner+=("${result#* }")
    result=$(run_warden "$work/home-files-$run" "$work/home-files-$run/certs")
    warden_shm+=("${result% *}")
    if (( BIG_ROWS > ROWS )); then
        # Marginal rate: the extra rows over the extra time, against this run's small batch.
        big=$(run_warden "$work/home-big-$run" "" "$work/csrs-big" "$BIG_ROWS")
        warden_marginal+=("$(calc "($BIG_ROWS - $ROWS) / ($BIG_ROWS / ${big% *} - $ROWS / ${warden_wall[-1]})")")
    fi
    python1+=("$(field rows_per_s "$(python3 "$ROOT/scripts/bench/enroll_reference.py" "$work/csrs")")")
    python2+=("$(field rows_per_s "$(python3 "$ROOT/scripts/bench/enroll_reference.py" "$work/csrs" --processes 2)")")
    python_wall+=("$(python_whole)")
    echo "   warden ${warden_wall[-1]} rows/s (in-command ${warden_inner[-1]}, with chain files ${warden_shm[-1]}," \
        "marginal ${warden_marginal[-1]:-n/a})," \
        "python ${python1[-1]} rows/s (whole process ${python_wall[-1]}), python x2 ${python2[-1]} rows/s" >&2
done

echo "== openssl speed ecdsap256 (1 process, then -multi 2)" >&2
read -r sign1 verify1 <<<"$(openssl_ecdsa)"
read -r sign2 verify2 <<<"$(openssl_ecdsa -multi 2)"

wall=$(median "${warden_wall[@]}")
inner=$(median "${warden_inner[@]}")
onshm=$(median "${warden_shm[@]}")
marginal=$( (( ${#warden_marginal[@]} )) && median "${warden_marginal[@]}" || echo "n/a")
py1=$(median "${python1[@]}")
py2=$(median "${python2[@]}")
pywall=$(median "${python_wall[@]}")
ceiling=$(calc "1 / (1 / $sign2 + 1 / $verify2)")

cat <<EOF

Enrollment of $ROWS CSRs, median of $RUNS interleaved runs ($(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))
  warden device enroll --batch --jobs $JOBS (durable, whole process)  $wall rows/s
  warden, in-command figure (after argument parsing .. report saved) $inner rows/s
  warden, also writing $ROWS chain files (--out-dir, ext4)           $onshm rows/s
  warden, marginal rate from $ROWS to $BIG_ROWS rows (no fixed cost)     $marginal rows/s
  python-cryptography loop, 1 process                                $py1 rows/s
  python-cryptography, 2 processes (multiprocessing)                 $py2 rows/s
  python-cryptography loop, 1 process, whole process (python3 start .. exit)  $pywall rows/s
  ratio warden / python loop (1 process)  [acceptance: >= 2.5]       $(ratio "$wall / $py1")x
  ratio warden / python 2 processes                                  $(ratio "$wall / $py2")x
  ratio warden / python loop, both whole process                     $(ratio "$wall / $pywall")x
ECDSA P-256 (openssl speed -seconds 3)
  1 process:  sign $sign1/s  verify $verify1/s
  2 processes: sign $sign2/s  verify $verify2/s
  two-core ceiling 1/(1/sign2 + 1/verify2)                           $ceiling rows/s
  warden as % of the two-core ECDSA ceiling  [goal: >= 50%]          $(calc "100 * $wall / $ceiling")%
  warden's marginal rate as % of the ceiling                         $( [[ "$marginal" == n/a ]] && echo n/a || calc "100 * $marginal / $ceiling")%
EOF
