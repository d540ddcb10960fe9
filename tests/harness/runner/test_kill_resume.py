"""SIGKILL at several points, then restart: records identical to an uninterrupted run.

The run is a real ``dcar-bench run`` subprocess with the dummy adapter slowed down by
``delay_s``; each kill lands after a different number of completed records plus a
random extra delay, so kills hit mid-batch, between batches and during start-up.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.jobs import run
from tests.harness.helpers import read_records

N_ITEMS = 18
SETTINGS = [f"num_items={N_ITEMS}", "batch_size=3", "model.resolution=8", "model.delay_s=0.05"]


def _cmd(out: Path) -> list[str]:
    args = ["run", "dummy", "--model", "dummy-t2i", "--out", str(out), "--quiet"]
    for s in SETTINGS:
        args += ["--set", s]
    return [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())", *args]


def _count_lines(out: Path) -> int:
    f = out / "records" / "shard-0-of-1.jsonl"
    return f.read_bytes().count(b"\n") if f.exists() else 0


def _run_and_kill(out: Path, after_records: int, extra_s: float, timeout: float = 60.0) -> bool:
    """Start a run; SIGKILL it once ``after_records`` lines exist (+extra_s). True if it was killed."""
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if _count_lines(out) >= after_records:
                time.sleep(extra_s)
                break
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        assert proc.returncode == 0, proc.stderr.read().decode()
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_at_random_points_then_resume_matches_uninterrupted(tmp_path):
    ref = run("dummy", "dummy-t2i", tmp_path / "ref", overrides=SETTINGS, show_progress=False)
    rng = random.Random(1234)
    out = tmp_path / "killed"
    f = out / "records" / "shard-0-of-1.jsonl"
    kills, history = 0, []
    for k, after in enumerate((0, 5, 10)):  # 0: killed during start-up or the first batch
        before = _count_lines(out)
        kills += _run_and_kill(out, after, rng.uniform(0.0, 0.1))
        history.append((before, _count_lines(out)))
        if k == 1:  # what a SIGKILL in the middle of os.write leaves behind: a partial last line
            with open(f, "ab") as fh:
                fh.write(b'{"item_id": "dummy-000')
    assert kills == 3, history  # every kill point really interrupted the run
    assert _count_lines(out) < N_ITEMS, history
    done = subprocess.run(_cmd(out), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f.read_bytes().endswith(b"\n")  # the torn line was cut off, not glued to the next record
    recs = read_records(out)
    ids = [r["item_id"] for r in recs]
    assert len(ids) == len(set(ids)) == N_ITEMS  # no duplicates, no gaps
    assert recs == read_records(tmp_path / "ref")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"] == ref.summary["results"]
    assert summary["records_sha256"] == ref.summary["records_sha256"]
    # each restart resumed where the previous one stopped (progress is monotone)
    starts = [b for b, _ in history]
    assert starts == sorted(starts) and starts[-1] > 0
