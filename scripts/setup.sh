#!/usr/bin/env bash
# Fresh machine (only Python >= 3.10) -> ./.venv with the pinned torch and dcar-bench[all], editable.
# pip only (never uv/poetry): on the project's machines pip takes torch 2.14.1 from local disk.
# Idempotent: a second run only checks that everything is installed (a few seconds).
# Env: PYTHON (interpreter to build the venv from, default python3), VENV (default .venv),
#      DCAR_EXTRAS (default all).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${DCAR_EXTRAS:-all}"

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    echo "setup.sh: need Python >= 3.10 as \$PYTHON (got: $("$PYTHON" --version 2>&1 || echo none))" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)
if ! "$VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("torch").split("+")[0] == "2.14.1"' 2>/dev/null; then
    echo "[setup] installing torch==2.14.1 torchvision==0.29.1"
    "${PIP[@]}" torch==2.14.1 torchvision==0.29.1
fi
echo "[setup] installing dcar-bench[$EXTRAS] (editable)"
"${PIP[@]}" -q -e ".[$EXTRAS]"
echo "[setup] ready: $VENV/bin/dcar-bench"
