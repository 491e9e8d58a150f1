#!/usr/bin/env bash
# Installs what Warden needs to build and test, skipping whatever is already there.
# Usage: scripts/install-deps.sh build|test
set -euo pipefail
mode="${1:-build}"

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in libsqlite3-dev libssl-dev libmosquitto-dev libcurl4-openssl-dev pkg-config openssl sqlite3 python3-pip; do
  have_pkg "$pkg" || need_apt+=("$pkg")
done
if [ "$mode" = "test" ] || [ "$mode" = "quickstart" ]; then
  for pkg in mosquitto mosquitto-clients; do have_pkg "$pkg" || need_apt+=("$pkg"); done
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "install-deps: swift is not on PATH; Warden needs Swift 6.1 or later (https://swift.org/install)" >&2
  exit 1
fi

if [ "$mode" = "test" ]; then
  here="$(cd "$(dirname "$0")" && pwd)"
  # Python oracles (pkilint, python-cryptography, filter references). Skip pip when all are importable.
  if ! python3 - "$here/requirements-test.txt" <<'PY' >/dev/null 2>&1
import sys, importlib.metadata as md, re
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if not line: continue
    name = re.split(r'[=<>!~\[ ]', line)[0]
    md.version(name)
PY
  then
    echo "install-deps: pip install -r scripts/requirements-test.txt"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$here/requirements-test.txt" \
      || python3 -m pip install -q --disable-pip-version-check --break-system-packages -r "$here/requirements-test.txt"
  fi
  command -v lint_pkix_cert >/dev/null || { echo "install-deps: pkilint's lint_pkix_cert is not on PATH" >&2; exit 1; }
fi
