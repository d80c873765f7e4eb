#!/usr/bin/env bash
# Runs the whole test suite: makes .venv from the repo's own files, lints, type-checks, tests.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
# The dashboard's browser test drives Debian's chromium (never a browser downloaded by `playwright install`).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
    || echo "test.sh: could not install chromium; the browser test will fail" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
.venv/bin/ruff check axme_cli tests bench
.venv/bin/mypy
# Two workers (AXME_TEST_WORKERS=0 runs in one process): each starts its own runtimes and databases.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${AXME_TEST_WORKERS:-2}" "$@"
