"""scripts/setup.sh prints one line per step and keeps pip's output in a log (shown when a step fails)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/usr/bin/env bash
# a stand-in interpreter: version checks pass, torch is "missing", pip prints a lot
if [ "$1" = "-c" ]; then case "$2" in *torch*) exit 1;; *) exit 0;; esac; fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  for i in $(seq 1 300); do echo "Collecting package-$i"; done
  [ -n "${FAIL_PIP:-}" ] && { echo "ERROR: no matching distribution" >&2; exit 1; }
  exit 0
fi
exit 0
"""


def _setup(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(FAKE_PYTHON)
    py.chmod(0o755)
    e = {**os.environ, "PYTHON": str(py), "VENV": str(venv), **env}
    e.pop("DCAR_SETUP_VERBOSE", None)
    return subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], env=e, capture_output=True, text=True,
                          timeout=60)


def test_one_line_per_step_and_the_log_holds_pips_output(tmp_path):
    out = _setup(tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert all(line.startswith("[setup] ") for line in lines) and len(lines) == 3, lines
    assert "torch==2.14.1" in lines[0] and "setup.log" in lines[0]
    log = (tmp_path / "venv" / "setup.log").read_text()
    assert log.count("Collecting package-") == 600


def test_a_failing_step_shows_the_end_of_the_log(tmp_path):
    out = _setup(tmp_path, FAIL_PIP="1")
    assert out.returncode != 0
    assert "FAILED: installing torch" in out.stderr and "no matching distribution" in out.stderr
    assert out.stderr.count("Collecting package-") <= 40
