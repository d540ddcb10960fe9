"""The runner's guarantees, in-process: batch-size/shard invariance, resume, seeds, clear errors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.jobs import aggregate, run
from harness.records import RecordsCorruptError
from harness.runner.config import ConfigError
from harness.runner.core import IncompleteRunError, RunError
from harness.seeding import item_seed
from harness.store import ConfigMismatchError, RunDirError
from tests.harness.helpers import read_records

SMALL = {"num_items": 7, "model.resolution": 8}


def _run(out, **kw):
    kw.setdefault("overrides", SMALL)
    return run("dummy", "dummy-t2i", out, show_progress=False, **kw)


def test_run_writes_manifest_records_summary_report(tmp_path):
    res = _run(tmp_path / "r")
    assert (res.planned, res.completed, res.skipped) == (7, 7, 0)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["suite"] == "dummy" and manifest["adapter"] == "dummy-t2i"
    assert manifest["config"]["num_items"] == 7 and manifest["config"]["model"]["resolution"] == 8
    assert manifest["adapter_info"]["real_weights"] is False
    assert manifest["provenance"]["packages"]["torch"]
    assert "commit" in manifest["provenance"]["git"] and "dirty" in manifest["provenance"]["git"]
    recs = read_records(tmp_path / "r")
    assert [r["item_id"] for r in recs] == [f"dummy-{i:05d}" for i in range(7)]
    assert all(r["seed"] == item_seed(0, r["item_id"]) for r in recs)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary == res.summary and summary["results"]["num_images"] == 7
    # the aggregate is a real function of the records: mean of the per-image means
    assert summary["results"]["mean_pixel"] == pytest.approx(sum(r["mean"] for r in recs) / 7)
    assert "NOT THE PAPER'S METRIC" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("batch_size", [1, 3, 7, 50])
def test_results_do_not_depend_on_batch_size(tmp_path, batch_size):
    ref = _run(tmp_path / "ref", batch_size=2)
    other = _run(tmp_path / f"b{batch_size}", batch_size=batch_size)
    assert other.summary["records_sha256"] == ref.summary["records_sha256"]
    assert other.summary["results"] == ref.summary["results"]


def test_independent_shards_equal_one_process(tmp_path):
    ref = _run(tmp_path / "one")
    a = _run(tmp_path / "sharded", shard="0/2")
    assert a.summary is None and a.in_shard == 4  # items 0,2,4,6: the other shard is still missing
    with pytest.raises(IncompleteRunError, match="3 of 7 planned items have no record"):
        aggregate(tmp_path / "sharded")
    b = _run(tmp_path / "sharded", shard="1/2")
    assert b.in_shard == 3 and b.summary is not None  # the last shard to finish aggregates
    assert b.summary["results"] == ref.summary["results"]
    assert read_records(tmp_path / "sharded") == read_records(tmp_path / "one")
    assert sorted(p.name for p in (tmp_path / "sharded" / "records").glob("*.jsonl")) == [
        "shard-0-of-2.jsonl", "shard-1-of-2.jsonl"]


def test_resume_skips_done_items_and_can_reshard(tmp_path):
    ref = _run(tmp_path / "ref")
    _run(tmp_path / "r", shard="0/3")  # part of the work, then resume with no sharding
    res = _run(tmp_path / "r")
    assert (res.skipped, res.completed) == (3, 4)
    assert res.summary["results"] == ref.summary["results"]
    again = _run(tmp_path / "r")
    assert (again.skipped, again.completed) == (7, 0)
    assert len(read_records(tmp_path / "r")) == 7  # no duplicates


def test_seed_changes_results_and_is_recorded(tmp_path):
    a = _run(tmp_path / "a", seed=0)
    b = _run(tmp_path / "b", seed=1)
    assert a.summary["results"]["images_sha256"] != b.summary["results"]["images_sha256"]
    assert all(r["seed"] == item_seed(1, r["item_id"]) for r in read_records(tmp_path / "b"))


def test_config_mismatch_lists_differing_keys(tmp_path):
    _run(tmp_path / "r")
    with pytest.raises(ConfigMismatchError) as exc:
        _run(tmp_path / "r", overrides={**SMALL, "model.resolution": 16, "prompt_template": "x {i}"}, seed=3)
    msg = str(exc.value)
    assert "config.model.resolution: 8 -> 16" in msg
    assert "config.prompt_template" in msg and "config.seed: 0 -> 3" in msg
    assert "config.num_items" not in msg  # only what differs
    # batch size is an execution detail: resuming with another batch size is allowed
    assert _run(tmp_path / "r", batch_size=5).skipped == 7


def test_other_adapter_into_same_dir_is_refused(tmp_path):
    _run(tmp_path / "r")
    with pytest.raises(ConfigMismatchError, match="adapter: 'dummy-t2i' -> None"):
        run("dummy", None, tmp_path / "r", overrides=SMALL, show_progress=False)


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(RunDirError, match="is not writable"):
        _run(blocker / "run")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RunDirError, match="is not writable"):
            _run(ro / "run")
    finally:
        ro.chmod(0o700)


def test_corrupt_record_line_names_file_and_line(tmp_path):
    _run(tmp_path / "r")
    f = tmp_path / "r" / "records" / "shard-0-of-1.jsonl"
    lines = f.read_text().splitlines(keepends=True)
    lines[2] = '{"item_id": "dummy-00002", "mean": 1.0, BROKEN\n'
    f.write_text("".join(lines))
    with pytest.raises(RecordsCorruptError, match=r"shard-0-of-1\.jsonl:3: not valid JSON"):
        aggregate(tmp_path / "r")
    with pytest.raises(RecordsCorruptError, match=r":3:"):
        _run(tmp_path / "r")  # resuming refuses to guess too


def test_truncated_tail_is_dropped_and_redone(tmp_path):
    ref = _run(tmp_path / "ref")
    _run(tmp_path / "r")
    f = tmp_path / "r" / "records" / "shard-0-of-1.jsonl"
    data = f.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    f.write_bytes(data[: last_start + 25])  # a crash in the middle of the last append
    with pytest.raises(IncompleteRunError, match="1 of 7"):
        aggregate(tmp_path / "r")
    res = _run(tmp_path / "r")
    assert (res.skipped, res.completed) == (6, 1)
    assert f.read_bytes() == (tmp_path / "ref" / "records" / "shard-0-of-1.jsonl").read_bytes()
    assert res.summary["results"] == ref.summary["results"]


def test_records_for_unplanned_items_are_refused(tmp_path):
    _run(tmp_path / "r")
    with open(tmp_path / "r" / "records" / "shard-0-of-1.jsonl", "a") as fh:
        fh.write('{"item_id": "intruder", "mean": 0}\n')
    with pytest.raises(RunError, match="not in the plan"):
        aggregate(tmp_path / "r")


def test_unknown_names_and_keys_suggest(tmp_path):
    from harness.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'dummy'"):
        run("dumy", "dummy-t2i", tmp_path / "x", show_progress=False)
    with pytest.raises(UnknownNameError, match="Did you mean 'dummy-t2i'"):
        run("dummy", "dummy-t2", tmp_path / "x", show_progress=False)
    assert not (tmp_path / "x").exists()  # nothing written for a typo
    with pytest.raises(ConfigError, match="Did you mean 'num_items'"):
        _run(tmp_path / "x", overrides={"num_itms": 3})


def test_wrong_adapter_kind_and_options(tmp_path):
    with pytest.raises(RunError, match="needs a text_to_image adapter, but 'dummy-tokenizer' is a image_tokenizer"):
        run("dummy", "dummy-tokenizer", tmp_path / "a", overrides={"model": {}}, show_progress=False)
    with pytest.raises(RunError, match="does not accept options.*its options are: resolution, delay_s"):
        _run(tmp_path / "b", overrides={**SMALL, "model.resoluton": 8})


def test_config_file_and_yaml_typed_set(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_items: 3\nmodel:\n  resolution: 4\n")
    res = run("dummy", "dummy-t2i", tmp_path / "r", config_file=cfg, overrides=["prompt_template=p{i}"],
              show_progress=False)
    recs = read_records(tmp_path / "r")
    assert res.planned == 3 and recs[0]["shape"] == [3, 4, 4] and recs[2]["prompt"] == "p2"


def test_save_images_writes_artifacts_with_hashes(tmp_path):
    import hashlib

    _run(tmp_path / "r", overrides={**SMALL, "save_images": True})
    for rec in read_records(tmp_path / "r"):
        png = tmp_path / "r" / "artifacts" / rec["image"]
        assert hashlib.sha256(png.read_bytes()).hexdigest() == rec["image_sha256"]


def test_aggregate_is_reproducible_from_files(tmp_path):
    res = _run(tmp_path / "r")
    summary_bytes = (tmp_path / "r" / "summary.json").read_bytes()
    (tmp_path / "r" / "summary.json").unlink()
    assert aggregate(tmp_path / "r") == res.summary
    assert (tmp_path / "r" / "summary.json").read_bytes() == summary_bytes


def test_aggregate_needs_a_run_dir(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        aggregate(tmp_path)


def test_invocations_are_logged(tmp_path):
    _run(tmp_path / "r", shard="0/2")
    _run(tmp_path / "r", shard="1/2", batch_size=1)
    lines = [json.loads(x) for x in Path(tmp_path / "r" / "invocations.jsonl").read_text().splitlines()]
    assert [(x["shard"], x["batch_size"], x["todo"]) for x in lines] == [("0/2", 4, 4), ("1/2", 1, 3)]
