#!/usr/bin/env bash
# Fresh machine (only Python >= 3.10) -> ./.venv with the pinned torch and dcar-bench[all], editable.
# pip only (never uv/poetry): on the project's machines pip takes torch 2.14.1 from local disk.
# Idempotent: a second run only checks that everything is installed (a few seconds).
# Quiet: one line per step; pip's full output goes to $VENV/setup.log (printed in full if a step fails).
# Env: PYTHON (interpreter to build the venv from, default python3), VENV (default .venv),
#      DCAR_EXTRAS (default all), DCAR_SETUP_VERBOSE=1 (show pip's output as it runs).
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
LOG="$VENV/setup.log"
: > "$LOG"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

step() {  # step "what" cmd...: one line, output to the log (or the terminal with DCAR_SETUP_VERBOSE=1)
    local what="$1"; shift
    echo "[setup] $what (log: $LOG)"
    if [ "${DCAR_SETUP_VERBOSE:-0}" = 1 ]; then
        "$@" 2>&1 | tee -a "$LOG"
        return "${PIPESTATUS[0]}"
    fi
    if ! "$@" >>"$LOG" 2>&1; then
        echo "[setup] FAILED: $what; the last lines of $LOG:" >&2
        tail -n 40 "$LOG" >&2
        return 1
    fi
}

if ! "$VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("torch").split("+")[0] == "2.14.1"' 2>/dev/null; then
    step "installing torch==2.14.1 torchvision==0.29.1 (about 1-2 min from local disk)" \
        "${PIP[@]}" torch==2.14.1 torchvision==0.29.1
fi
step "installing dcar-bench[$EXTRAS] (editable)" "${PIP[@]}" -e ".[$EXTRAS]"
echo "[setup] ready: $VENV/bin/dcar-bench"
