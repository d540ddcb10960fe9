"""plan.jsonl: written once, checked on resume, and the only source of items for aggregation."""
from __future__ import annotations

import json
import os
import stat

import pytest

from harness import registry
from harness.api import IncompleteRunError
from harness.io import bytes_sha256
from harness.jobs import aggregate, run
from harness.runner.config import ConfigError
from harness.store import ConfigMismatchError, RunDirError
from tests.harness.runner import fakes


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(registry._TABLE["suite"], "tiny", "tests.harness.runner.fakes:TinySuite")
    monkeypatch.setitem(registry._TABLE["adapter"], "counting-t2i", "tests.harness.runner.fakes:CountingT2I")
    fakes.CONSTRUCTED.clear()
    fakes.CountingT2I.batch_sizes.clear()


def test_plan_is_stored_once_with_its_digest_in_the_manifest(tmp_path):
    run("tiny", None, tmp_path / "r", show_progress=False)
    data = (tmp_path / "r" / "plan.jsonl").read_bytes()
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["plan_sha256"] == bytes_sha256(data)
    assert [json.loads(line)["id"] for line in data.splitlines()] == ["i0", "i1", "i2"]
    assert json.loads(data.splitlines()[1]) == {"id": "i1", "payload": {"k": 1}}


def test_aggregate_never_replans(tmp_path, monkeypatch):
    run("tiny", None, tmp_path / "r", show_progress=False)
    first = json.loads((tmp_path / "r" / "summary.json").read_text())

    def no_plan(self):
        raise AssertionError("aggregate called plan()")

    monkeypatch.setattr(fakes.TinySuite, "plan", no_plan)
    summary = aggregate(tmp_path / "r")
    assert summary["results"] == first["results"] == {"n": 3, "label": "a", "manifest_suite": "tiny"}
    assert (tmp_path / "r" / "report.md").exists()


def test_a_modified_plan_file_is_refused(tmp_path):
    run("tiny", None, tmp_path / "r", show_progress=False)
    p = tmp_path / "r" / "plan.jsonl"
    p.write_bytes(p.read_bytes().replace(b'"i2"', b'"i9"'))
    with pytest.raises(RunDirError, match="does not match the plan_sha256"):
        aggregate(tmp_path / "r")


def test_resume_with_a_suite_that_now_plans_other_items_is_refused(tmp_path, monkeypatch):
    run("tiny", None, tmp_path / "r", show_progress=False, aggregate_when_done=False)
    orig = fakes.TinySuite.plan
    monkeypatch.setattr(fakes.TinySuite, "plan", lambda self: orig(self)[:2])
    with pytest.raises(ConfigMismatchError, match="plan_sha256"):
        run("tiny", None, tmp_path / "r", show_progress=False)


def test_validate_runs_before_the_model_loads_and_leaves_no_directory(tmp_path):
    with pytest.raises(Exception, match="corrupt; fix: --set fail_validate=false"):
        run("tiny", "counting-t2i", tmp_path / "r", overrides=["fail_validate=true"], show_progress=False)
    assert fakes.CONSTRUCTED == []
    assert not (tmp_path / "r").exists()


def test_a_run_that_fails_before_its_manifest_leaves_no_directory(tmp_path):
    with pytest.raises(Exception, match="does not accept options"):
        run("dummy", "dummy-t2i", tmp_path / "r", overrides=["model.no_such_option=1"], show_progress=False)
    assert not (tmp_path / "r").exists()


def test_an_existing_directory_is_never_removed_on_failure(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="does not accept options"):
        run("dummy", "dummy-t2i", tmp_path / "r", overrides=["model.no_such_option=1"], show_progress=False)
    assert (tmp_path / "r" / "keep.txt").read_text() == "mine"


def test_adapter_is_told_the_run_batch_size(tmp_path):
    run("dummy", "counting-t2i", tmp_path / "r", overrides=["num_items=3"], batch_size=2, show_progress=False)
    assert fakes.CountingT2I.batch_sizes == [2]


def test_second_writer_is_refused_before_the_model_loads(tmp_path):
    from harness.records import RecordWriter, ShardBusyError

    run("dummy", "counting-t2i", tmp_path / "r", overrides=["num_items=4"], show_progress=False,
        aggregate_when_done=False, shard="0/2")
    fakes.CONSTRUCTED.clear()
    with RecordWriter(tmp_path / "r" / "records" / "shard-1-of-2.jsonl"):
        with pytest.raises(ShardBusyError, match="another process"):
            run("dummy", "counting-t2i", tmp_path / "r", overrides=["num_items=4"], show_progress=False,
                shard="1/2")
    assert fakes.CONSTRUCTED == []


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        run("dummy", "dummy-t2i", tmp_path / "r", overrides=["num_items=2", "save_images=true"],
            show_progress=False)
    finally:
        os.umask(old)
    r = tmp_path / "r"
    for f in ["manifest.json", "plan.jsonl", "summary.json", "report.md", "invocations.jsonl",
              "records/shard-0-of-1.jsonl", "artifacts/images/" + sorted(os.listdir(r / "artifacts/images"))[0]]:
        assert stat.S_IMODE((r / f).stat().st_mode) == 0o644, f


def test_finished_run_is_not_reaggregated_unless_asked(tmp_path, capsys):
    run("tiny", None, tmp_path / "r", show_progress=False)
    summary = tmp_path / "r" / "summary.json"
    os.utime(summary, (1, 1))
    res = run("tiny", None, tmp_path / "r", show_progress=True)
    assert res.summary is None and summary.stat().st_mtime == 1
    assert "already done" in capsys.readouterr().err
    res = run("tiny", None, tmp_path / "r", show_progress=False, reaggregate=True)
    assert res.summary is not None and summary.stat().st_mtime > 1


def test_aggregate_accepts_only_the_suites_aggregate_keys(tmp_path):
    run("tiny", None, tmp_path / "r", show_progress=False)
    summary = aggregate(tmp_path / "r", overrides=["report.label=b"])
    assert summary["results"]["label"] == "b" and summary["aggregate_overrides"] == {"report.label": "b"}
    with pytest.raises(ConfigError, match="'n' changes records.*report"):
        aggregate(tmp_path / "r", overrides=["n=5"])


def test_aggregate_of_an_unfinished_run_names_the_gap(tmp_path):
    run("tiny", None, tmp_path / "r", show_progress=False, shard="0/2")
    with pytest.raises(IncompleteRunError, match="1 of 3 planned items have no record"):
        aggregate(tmp_path / "r")


def test_stale_temp_files_are_removed_on_resume_live_ones_kept(tmp_path):
    import socket

    run("tiny", None, tmp_path / "r", show_progress=False, shard="0/2")
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())
    art = tmp_path / "r" / "artifacts" / "images"
    art.mkdir(parents=True)
    dead = art / f".0001.png.{host}-999999999.abc123.tmp"
    live = art / f".0002.png.{host}-{os.getpid()}.def456.tmp"
    dead.write_bytes(b"x")
    live.write_bytes(b"y")
    run("tiny", None, tmp_path / "r", show_progress=False, shard="1/2")
    assert not dead.exists() and live.exists()


def test_a_suites_resume_keys_may_change_on_resume_and_are_logged(tmp_path, monkeypatch):
    monkeypatch.setattr(fakes.TinySuite, "default_config",
                        classmethod(lambda cls: {"n": 3, "fail_validate": False, "skip": False,
                                                 "report": {"label": "a"}, "batch_size": 2}))
    monkeypatch.setattr(fakes.TinySuite, "resume_keys", ("skip",))
    run("tiny", None, tmp_path / "r", show_progress=False, shard="0/2")
    run("tiny", None, tmp_path / "r", show_progress=False, shard="1/2", overrides=["skip=true"])
    lines = [json.loads(x) for x in (tmp_path / "r" / "invocations.jsonl").read_text().splitlines()]
    assert [x["resume_keys"] for x in lines] == [{"skip": False}, {"skip": True}]
    with pytest.raises(ConfigMismatchError, match="config.n: 3 -> 4"):
        run("tiny", None, tmp_path / "r", show_progress=False, overrides=["n=4"])


def test_resumed_batches_keep_their_plan_positions():
    from harness.api import WorkItem
    from harness.runner.core import batches_to_run

    items = [WorkItem(f"i{k}") for k in range(10)]
    todo = [it for it in items if it.id in {"i3", "i4", "i9"}]
    assert [[it.id for it in b] for b in batches_to_run(items, todo, 4)] == [
        ["i0", "i1", "i2", "i3"], ["i4", "i5", "i6", "i7"], ["i8", "i9"]]


def test_a_resume_recomputes_a_batch_whole_but_writes_only_the_missing_records_and_artifacts(tmp_path):
    run("dummy", "dummy-t2i", tmp_path / "r", overrides=["num_items=6", "save_images=true"], batch_size=4,
        show_progress=False, aggregate_when_done=False)
    rec_file = tmp_path / "r" / "records" / "shard-0-of-1.jsonl"
    lines = rec_file.read_bytes().splitlines(keepends=True)
    rec_file.write_bytes(b"".join(lines[:2]) + lines[2][:7])  # items 0, 1 kept; 2 torn; 3..5 lost
    kept = json.loads(lines[0])
    done_png = tmp_path / "r" / "artifacts" / kept["image"]
    os.utime(done_png, (1, 1))
    res = run("dummy", "dummy-t2i", tmp_path / "r", overrides=["num_items=6", "save_images=true"], batch_size=4,
              show_progress=False)
    assert res.completed == 4 and res.skipped == 2
    ids = [json.loads(x)["item_id"] for x in rec_file.read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6  # no item recorded twice
    assert done_png.stat().st_mtime == 1  # a recorded item's artifact is not rewritten by the replay


def test_a_lost_plan_file_is_restored_by_rerunning_the_command(tmp_path):
    run("tiny", None, tmp_path / "r", show_progress=False)
    (tmp_path / "r" / "plan.jsonl").unlink()
    with pytest.raises(RunDirError, match="Rerun the same `dcar-bench run` command"):
        aggregate(tmp_path / "r")
    run("tiny", None, tmp_path / "r", show_progress=False)
    assert aggregate(tmp_path / "r")["results"]["n"] == 3


def test_aggregate_corrections_persist_and_run_accepts_them(tmp_path):
    run("tiny", None, tmp_path / "r", show_progress=False)
    assert aggregate(tmp_path / "r", overrides=["report.label=b"])["results"]["label"] == "b"
    again = aggregate(tmp_path / "r")
    assert again["results"]["label"] == "b" and again["aggregate_overrides"] == {"report.label": "b"}
    res = run("tiny", None, tmp_path / "r", show_progress=False, overrides=["report.label=c"])
    assert res.summary is not None and res.summary["results"]["label"] == "c"
    assert run("tiny", None, tmp_path / "r", show_progress=False, reaggregate=True).summary["results"]["label"] == "c"
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        aggregate(tmp_path / "r", overrides=["bogus=1"])
