#!/usr/bin/env bash
# Creates, or reuses, a Python virtual environment with pinned packages.
#
#   tests/venv.sh [REQUIREMENTS [VENV_DIR]]
#
# Defaults: tests/requirements.txt into build/venv (the end-to-end tests'
# environment: the example FastAPI app and the test-only packages).
# examples/fastapi/run.sh uses it for the example's own environment.
#
# The environment is made with Debian's /usr/bin/python3 -m venv (package
# python3-venv, installed by tests/setup.sh) and filled by pip from the
# requirements file. It is reused while the requirements (the file and
# every file it includes with -r) and the Python version are unchanged:
# their sha256 is written to VENV_DIR/.requirements.sha256 once pip has
# succeeded; any change rebuilds it from scratch, so no package outlives
# its pin. Progress goes to stderr; the last line on stdout is the path of
# the environment's python.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=/usr/bin/python3

req=${1:-tests/requirements.txt}
venv=${2:-build/venv}
case $venv in /*) ;; *) venv=$ROOT/$venv ;; esac
[ -f "$req" ] || { echo "venv: $req does not exist" >&2; exit 1; }
[ -x "$PYTHON" ] || { echo "venv: $PYTHON is missing (Debian package python3; run tests/setup.sh)" >&2; exit 1; }

# The requirements file and, recursively, the files it includes (-r FILE,
# relative to the including file), each listed once.
requirement_files() {
  local f=$1 dir inc
  echo "$f"
  dir=$(dirname "$f")
  sed -n -E 's/^[[:space:]]*(-r|--requirement)[[:space:]=]+([^[:space:]#]+).*/\2/p' "$f" |
    while read -r inc; do
      [ -f "$dir/$inc" ] || { echo "venv: $f includes $inc, which does not exist" >&2; exit 1; }
      requirement_files "$dir/$inc"
    done
}
files=$(requirement_files "$req")
stamp=$( { "$PYTHON" -c 'import sys; print(sys.version)'; for f in $files; do echo "== $f"; cat "$f"; done; } |
  sha256sum | cut -d' ' -f1)

mkdir -p "$(dirname "$venv")"
# One build at a time per environment (two test runs may start together).
exec 9>"$venv.lock"
flock 9

if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$stamp" ]; then
  echo "venv: reusing ${venv#"$ROOT"/} (requirements unchanged: $req)" >&2
else
  echo "venv: creating ${venv#"$ROOT"/} with $PYTHON -m venv ($("$PYTHON" --version 2>&1))" >&2
  rm -rf "$venv"
  if ! "$PYTHON" -m venv "$venv" >&2; then
    echo "venv: $PYTHON -m venv failed; on Debian it needs the package python3-venv (tests/setup.sh installs it)" >&2
    rm -rf "$venv"
    exit 1
  fi
  echo "venv: pip install -r $req" >&2
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2; then
    echo "venv: pip install -r $req failed" >&2
    rm -rf "$venv"
    exit 1
  fi
  "$venv/bin/python" -m pip freeze --disable-pip-version-check | sed 's/^/venv:   /' >&2
  echo "$stamp" > "$venv/.requirements.sha256"
fi
echo "$venv/bin/python"
