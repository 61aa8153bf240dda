#!/usr/bin/env bash
# Create .venv-bambi (Python 3.12) with Bambi 0.21 + nutpie for benchmarks/bambi_fit.py.
#
# Bambi 0.21 pins formulae < 0.7, which conflicts with bayesvc's main environment, so the Bambi
# side of benchmarks/nuts.py runs in its own virtualenv. pip resolves the PyMC / formulae versions
# Bambi accepts. Usage (from the repository root):
#
#     bash benchmarks/setup_bambi_env.sh            # create (or update) .venv-bambi
#     bash benchmarks/setup_bambi_env.sh --force    # delete and recreate it
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BAMBI_VENV:-$ROOT/.venv-bambi}"

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$VENV"
fi

PY=""
for cand in "${PYTHON312:-}" python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python"; do
    [[ -z "$cand" ]] && continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
        PY="$cand"
        break
    fi
done
if [[ -z "$PY" ]]; then
    echo "setup_bambi_env.sh: no Python 3.12 found (set PYTHON312=/path/to/python3.12)" >&2
    exit 1
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating $VENV with $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install "bambi==0.21.0" nutpie
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
for p in ("bambi", "formulae", "pymc", "pytensor", "nutpie", "arviz", "numpy", "pandas"):
    try:
        print(f"{p:10s} {md.version(p)}")
    except md.PackageNotFoundError:
        print(f"{p:10s} (not installed)")
PY
