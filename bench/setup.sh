#!/usr/bin/env bash
# Install the peers of bench/saga.py from the package registries, OUTSIDE the repo:
#   ${AXME_BENCH_PEERS:-$HOME/.cache/axme-bench-peers}/venv          PyPI: dbos, restate-sdk, hypercorn, uvicorn
#   ${AXME_BENCH_PEERS:-$HOME/.cache/axme-bench-peers}/node_modules  npm: @restatedev/restate-server
# Idempotent: a peer already installed is left as it is. A peer that fails to install is reported and skipped;
# bench/saga.py then skips that system with a line saying why.
set -u
PEERS="${AXME_BENCH_PEERS:-$HOME/.cache/axme-bench-peers}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$PEERS"
echo "peers folder: $PEERS"
failed=0

if [ -x "$PEERS/venv/bin/python" ]; then
  echo "venv: already there ($PEERS/venv)"
else
  echo "venv: creating $PEERS/venv with $PYTHON"
  if ! "$PYTHON" -m venv "$PEERS/venv"; then
    echo "venv: FAILED to create; the Python peers (dbos, restate) will be skipped"
    failed=1
  fi
fi

if [ -x "$PEERS/venv/bin/python" ]; then
  for pkg in dbos restate-sdk hypercorn uvicorn aiohttp; do
    if "$PEERS/venv/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1; then
      echo "pip: $pkg already installed ($("$PEERS/venv/bin/python" -m pip show "$pkg" | sed -n 's/^Version: //p'))"
    elif "$PEERS/venv/bin/python" -m pip install -q "$pkg"; then
      echo "pip: installed $pkg ($("$PEERS/venv/bin/python" -m pip show "$pkg" | sed -n 's/^Version: //p'))"
    else
      echo "pip: FAILED to install $pkg; continuing"
      failed=1
    fi
  done
fi

SERVER="$PEERS/node_modules/.bin/restate-server"
if [ -x "$SERVER" ]; then
  echo "npm: @restatedev/restate-server already installed ($SERVER)"
elif ! command -v npm >/dev/null 2>&1; then
  echo "npm: not found; the restate peer will be skipped"
  failed=1
elif npm install --silent --no-audit --no-fund --prefix "$PEERS" @restatedev/restate-server; then
  echo "npm: installed @restatedev/restate-server ($SERVER)"
else
  echo "npm: FAILED to install @restatedev/restate-server; the restate peer will be skipped"
  failed=1
fi

if [ "$failed" = 0 ]; then
  echo "setup: all peers ready"
else
  echo "setup: some peers are missing (see above); bench/saga.py skips them"
fi
exit 0
