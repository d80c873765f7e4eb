#!/usr/bin/env bash
# Installs `axme` for the current user from this checkout. Safe to run again (it upgrades in place).
#   - with pipx on PATH: `pipx install --force <this folder>`
#   - otherwise: a venv under the user data dir (~/.local/share/axme/venv) and a link in ~/.local/bin
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="${AXME_INSTALL_DIR:-$HOME/.local/bin}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "install.sh: axme needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))." >&2
  echo "  fix: install python3.11+ and rerun with PYTHON=/path/to/python3.11 ./install.sh" >&2
  exit 2
fi

if command -v pipx >/dev/null 2>&1 && [ -z "${AXME_NO_PIPX:-}" ]; then
  echo "install.sh: installing with pipx"
  PIPX_BIN_DIR="$bin_dir" pipx install --force "$here" >/dev/null
  how="pipx"
else
  data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/axme"
  venv="$data_dir/venv"
  if [ ! -x "$venv/bin/python" ]; then
    echo "install.sh: creating $venv"
    mkdir -p "$data_dir"
    "$PY" -m venv "$venv"
  else
    echo "install.sh: reusing $venv"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$here"
  mkdir -p "$bin_dir"
  ln -sfn "$venv/bin/axme" "$bin_dir/axme"
  how="a venv in $venv"
fi

version="$("$bin_dir/axme" version 2>/dev/null || true)"
echo "install.sh: installed ${version:-axme} with $how; the command is $bin_dir/axme"
case ":$PATH:" in
  *":$bin_dir:"*) echo "install.sh: $bin_dir is on your PATH; run: axme dev" ;;
  *) echo "install.sh: $bin_dir is not on your PATH. Add it with:"
     echo "    export PATH=\"$bin_dir:\$PATH\"   # and put that line in ~/.bashrc or ~/.zshrc"
     echo "  or run $bin_dir/axme directly." ;;
esac
