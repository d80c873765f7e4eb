#!/usr/bin/env bash
# Runs the whole test suite: makes .venv from the repo's own files, lints, type-checks, tests.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
# The dashboard's browser test drives Debian's chromium (never a browser downloaded by `playwright install`);
# tests/runtime/store/test_durability.py traces the runtime's system calls with strace.
missing=""
for tool in chromium strace; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # shellcheck disable=SC2086  # one word per package
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) \
    || echo "test.sh: could not install$missing; the tests that need it will fail" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
# tests/bench/test_saga_smoke.py runs the bench's peers (DBOS, Restate) at the versions bench/setup.sh pins; installed
# outside the repo, kept if there; setup.sh fails when it cannot install them.
bash bench/setup.sh
.venv/bin/ruff check axme_cli tests bench
.venv/bin/mypy
# A new checkout has no bytecode yet, and every worker would compile axme_cli and rewrite the tests' asserts on its
# own (~7 s of CPU each, all four at once). Two collecting processes make it first, half the tests each, where the
# workers look for it: .venv/pycache under PYTHONDONTWRITEBYTECODE (tests/conftest.py), else __pycache__.
cache="tests/__pycache__" bytecode=()
if [ -n "${PYTHONDONTWRITEBYTECODE:-}" ] && [ -z "${PYTHONPYCACHEPREFIX:-}" ]; then
  cache=".venv/pycache$PWD/tests" bytecode=(-u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX="$PWD/.venv/pycache")
fi
warm() {
  env "${bytecode[@]}" .venv/bin/python -m pytest -q --collect-only -p no:cacheprovider -p no:xdist "$@" \
    >/dev/null 2>&1 || true
}
if [ ! -d "$cache" ]; then
  warm tests/runtime/api & warm --ignore tests/runtime/api tests
  wait
fi
# Two workers more than the cores (AXME_TEST_WORKERS=N sets it, 0 runs in one process): each worker starts its own
# runtimes and databases and spends much of its time waiting on them (processes, commits, timeouts), which the
# extra workers fill. Work stealing: a worker out of tests takes half of another's queue, so no worker sits idle
# while one still holds a batch of long tests. On 2 idle cores, alternating: 4 workers 114-119 s, 3 workers
# 126-129 s, 5 workers 117 s; xdist's default (load, fixed chunks) on 3 workers 144 s.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${AXME_TEST_WORKERS:-$(( $(nproc) + 2 ))}" \
  --dist worksteal "$@"
