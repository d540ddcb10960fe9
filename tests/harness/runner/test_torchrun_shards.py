"""torchrun --nproc_per_node 2 (gloo, CPU) == one process == --shard 0/2 + --shard 1/2 run separately."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.jobs import run
from tests.harness.helpers import read_records

SETTINGS = ["num_items=11", "batch_size=2", "model.resolution=8"]
CLI = "import sys; from harness.cli import main; sys.exit(main())"


def _cli_args(out: Path, *extra: str) -> list[str]:
    args = ["run", "dummy", "--model", "dummy-t2i", "--out", str(out), "--quiet", *extra]
    for s in SETTINGS:
        args += ["--set", s]
    return args


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.slow
def test_torchrun_two_ranks_equals_one_process_and_independent_shards(tmp_path):
    one = run("dummy", "dummy-t2i", tmp_path / "one", overrides=SETTINGS, show_progress=False)

    for i in range(2):  # independent shards, as on two machines without a process group
        res = subprocess.run([sys.executable, "-c", CLI, *_cli_args(tmp_path / "shards", "--shard", f"{i}/2")],
                             capture_output=True, text=True, timeout=300, env=_env())
        assert res.returncode == 0, res.stderr
    shards = json.loads((tmp_path / "shards" / "summary.json").read_text())

    script = tmp_path / "entry.py"
    script.write_text(CLI + "\n")
    torchrun = [sys.executable, "-m", "torch.distributed.run"]  # what the `torchrun` script runs
    res = subprocess.run([*torchrun, "--standalone", "--nproc_per_node", "2", str(script),
                          *_cli_args(tmp_path / "ddp")], capture_output=True, text=True, timeout=300, env=_env())
    assert res.returncode == 0, res.stdout + res.stderr
    ddp = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    files = sorted(p.name for p in (tmp_path / "ddp" / "records").glob("*.jsonl"))
    assert files == ["shard-0-of-2.jsonl", "shard-1-of-2.jsonl"]  # both ranks really worked
    invocations = (tmp_path / "ddp" / "invocations.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["shard"] for x in invocations) == ["0/2", "1/2"]

    assert ddp["results"] == shards["results"] == one.summary["results"]
    assert ddp["records_sha256"] == shards["records_sha256"] == one.summary["records_sha256"]
    assert read_records(tmp_path / "ddp") == read_records(tmp_path / "one") == read_records(tmp_path / "shards")
