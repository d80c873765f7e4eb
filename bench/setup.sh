#!/usr/bin/env bash
# Install the peers of bench/saga.py from the package registries, at the versions pinned below, OUTSIDE the repo:
#   ${AXME_BENCH_PEERS:-$HOME/.cache/axme-bench-peers}/venv          PyPI: DBOS, the Restate SDK, their servers
#   ${AXME_BENCH_PEERS:-$HOME/.cache/axme-bench-peers}/node_modules  npm: @restatedev/restate-server
# Idempotent: what is already there at its pinned version is kept (pip and npm then fetch nothing); another
# version is replaced by the pinned one. Exits non-zero when a peer cannot be installed: bench/saga.py refuses to
# compare without every peer, and test.sh (set -e) stops there, since tests/bench/test_saga_smoke.py runs them.
# bench/saga.py reads the pins from this file (the name==version and @restatedev/...@version words) and records
# them, with what is installed, in its results. How each peer is configured: docs/performance.md.
set -u
PEERS="${AXME_BENCH_PEERS:-$HOME/.cache/axme-bench-peers}"
PYTHON="${PYTHON:-python3}"
# DBOS with its drivers, behind uvicorn[standard] (uvloop, httptools); the Restate SDK behind hypercorn.
PY_PINS="dbos==3.4.0 sqlalchemy==2.1.9 psycopg==3.3.9 psycopg-binary==3.3.9
  uvicorn[standard]==0.55.0 uvloop==0.23.0 httptools==0.9.0
  restate-sdk==1.3.0 hypercorn==0.18.0"
NPM_PIN="@restatedev/restate-server@1.7.12"

mkdir -p "$PEERS"
echo "peers folder: $PEERS"
failed=0

if [ ! -x "$PEERS/venv/bin/python" ]; then
  echo "venv: creating $PEERS/venv with $PYTHON"
  "$PYTHON" -m venv "$PEERS/venv" || { echo "venv: FAILED to create $PEERS/venv"; failed=1; }
fi
if [ -x "$PEERS/venv/bin/python" ]; then
  # shellcheck disable=SC2086  # one word per requirement
  if "$PEERS/venv/bin/python" -m pip install -q --disable-pip-version-check $PY_PINS; then
    echo "pip: $(echo $PY_PINS)"
  else
    echo "pip: FAILED to install the pinned Python peers: $(echo $PY_PINS)"
    failed=1
  fi
fi

npm_name="${NPM_PIN%@*}"
npm_version="${NPM_PIN##*@}"
have=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$PEERS/node_modules/$npm_name/package.json" 2>/dev/null)
if [ "$have" = "$npm_version" ] && [ -n "$(ls "$PEERS"/node_modules/@restatedev/restate-server-*/bin/restate-server 2>/dev/null)" ]; then
  echo "npm: $NPM_PIN already installed"
elif ! command -v npm >/dev/null 2>&1; then
  echo "npm: not found; cannot install $NPM_PIN"
  failed=1
elif npm install --silent --no-audit --no-fund --save-exact --prefix "$PEERS" "$NPM_PIN"; then
  echo "npm: installed $NPM_PIN"
else
  echo "npm: FAILED to install $NPM_PIN"
  failed=1
fi

if [ "$failed" = 0 ]; then
  echo "setup: all peers ready"
  exit 0
fi
echo "setup: some peers are missing (see above); bench/saga.py fails without them (--allow-missing-peers skips)" >&2
exit 1
