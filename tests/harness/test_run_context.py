"""RunContext's artifact files: written atomically inside the run directory, read back only if their sha256 matches."""
from __future__ import annotations

import pytest

from harness.api import DataError, RunContext


def test_an_artifact_reads_back_with_its_sha256_and_a_modified_or_missing_one_is_named(tmp_path):
    ctx = RunContext(run_dir=tmp_path)
    sha = ctx.write_artifact("features/a.npz", b"abc", item_id="i0")
    assert ctx.read_artifact("features/a.npz", sha, item_id="i0") == b"abc"
    (tmp_path / "artifacts" / "features" / "a.npz").write_bytes(b"abd")
    with pytest.raises(DataError, match=r"artifacts/features/a.npz of item i0 does not match the sha256"):
        ctx.read_artifact("features/a.npz", sha, item_id="i0")
    with pytest.raises(DataError, match=r"artifacts/features/b.npz of item i1 is missing"):
        ctx.read_artifact("features/b.npz", sha, item_id="i1")


def test_an_artifact_path_may_not_leave_the_run_directory(tmp_path):
    with pytest.raises(ValueError, match="escapes the run directory"):
        RunContext(run_dir=tmp_path / "run").write_artifact("../outside.bin", b"x")
