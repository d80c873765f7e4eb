#!/usr/bin/env bash
# Line coverage of axme_cli over the whole suite, the runtime and CLI subprocesses included:
#   bash tests/coverage.sh [pytest arguments]      (after ./test.sh has made .venv)
# Every Python process started with COVERAGE_PROCESS_START set measures itself (a .pth file in .venv calls
# coverage.process_startup()); each writes its own data file (parallel = true), combined at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "import coverage; coverage.process_startup()" > "$site/zz_coverage_startup.pth"
trap 'rm -f "$site/zz_coverage_startup.pth"' EXIT  # only this run's processes measure themselves
export AXME_COVERAGE_DIR="${AXME_COVERAGE_DIR:-/tmp/axme-coverage}"
rm -rf "$AXME_COVERAGE_DIR" && mkdir -p "$AXME_COVERAGE_DIR"
COVERAGE_PROCESS_START="$PWD/tests/coverage.ini" .venv/bin/python -m pytest -q -p no:cacheprovider \
  -n "${AXME_TEST_WORKERS:-$(( $(nproc) + 2 ))}" --dist worksteal "$@"
status=$?
.venv/bin/coverage combine --rcfile=tests/coverage.ini -q
.venv/bin/coverage report --rcfile=tests/coverage.ini --precision=2 | grep "^TOTAL"
exit $status
