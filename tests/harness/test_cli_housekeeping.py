"""`cache ls|clear`, `--quiet`, and reports that say when records are corrupt or missing."""
from __future__ import annotations

import os

import numpy as np

from harness import cli
from harness.cache import Cache
from harness.jobs import run
from harness.report.markdown import render_run


def test_cache_ls_and_clear(tmp_path, capsys):
    cache = Cache()  # DCAR_BENCH_CACHE points into tmp_path (conftest)
    assert str(cache.root).startswith(str(tmp_path))
    cache.put({"kind": "fid-reference-stats", "inputs_sha256": "ab" * 32}, {"mu": np.zeros(4)})
    cache.put({"kind": "features", "n": 3}, {"f": np.ones((3, 8))})
    assert cli.main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert "2 entries" in out and "kind=fid-reference-stats" in out and "kind=features" in out
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert Cache().entries() == []
    assert cache.get({"kind": "features", "n": 3}) is None


def test_quiet_silences_library_progress_bars():
    cli.quiet_libraries()
    assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"


def test_report_says_when_records_are_corrupt(tmp_path):
    run("dummy", "dummy-t2i", tmp_path / "r", overrides=["num_items=3"], show_progress=False)
    rec = tmp_path / "r" / "records" / "shard-0-of-1.jsonl"
    rec.write_bytes(rec.read_bytes() + b"{not json}\n")
    text = render_run(tmp_path / "r")
    assert "Records are corrupt" in text and "shard-0-of-1.jsonl:4" in text


def test_report_says_when_records_are_missing(tmp_path):
    run("dummy", "dummy-t2i", tmp_path / "r", overrides=["num_items=4"], show_progress=False, shard="0/2")
    text = render_run(tmp_path / "r")
    assert "Incomplete run" in text and "2 of 4 planned items" in text


def test_aggregate_cli_set_and_one_line_refusal(tmp_path, capsys):
    run("dummy", "dummy-t2i", tmp_path / "r", overrides=["num_items=2"], show_progress=False)
    assert cli.main(["aggregate", str(tmp_path / "r"), "--set", "num_items=3", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "changes records" in err


def test_aggregate_shows_progress_unless_quiet(tmp_path, capsys):
    run("dummy", "dummy-t2i", tmp_path / "r", overrides=["num_items=3"], show_progress=False, aggregate_when_done=False)
    assert cli.main(["aggregate", str(tmp_path / "r")]) == 0
    assert "aggregating" in capsys.readouterr().err
    assert cli.main(["aggregate", str(tmp_path / "r"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_cache_clear_removes_only_cache_entries(tmp_path, monkeypatch, capsys):
    root = tmp_path / "home"
    monkeypatch.setenv("DCAR_BENCH_CACHE", str(root))
    (root / "go" / "src").mkdir(parents=True)
    (root / "go" / "src" / "main.go").write_text("package main")
    (root / "ab").mkdir()
    (root / "ab" / "notes.json").write_text("{}")
    key = Cache().put({"kind": "features", "n": 1}, {"f": np.ones(2)})
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert (root / "go" / "src" / "main.go").read_text() == "package main"
    assert (root / "ab" / "notes.json").exists() and not (root / key[:2] / f"{key}.npz").exists()


def test_output_paths_and_damaged_inputs_are_one_line(tmp_path, capsys):
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    (tmp_path / "bad.yaml").write_text("- {suite: [unclosed\n")
    run("dummy", "dummy-t2i", tmp_path / "r", overrides=["num_items=2"], show_progress=False)
    cases = [
        (["report", str(tmp_path / "r"), "--out", str(a_file / "rep")], "cannot be used as an output directory"),
        (["smoke", "--out", str(tmp_path / "s"), "--list", str(tmp_path / "missing.yaml")], "cannot read it"),
        (["smoke", "--out", str(tmp_path / "s"), "--list", str(tmp_path / "bad.yaml")], "not valid YAML"),
    ]
    for argv, needle in cases:
        assert cli.main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, (argv, err)


def test_one_damaged_run_does_not_hide_the_others(tmp_path, capsys):
    run("dummy", "dummy-t2i", tmp_path / "runs" / "a", overrides=["num_items=2"], show_progress=False)
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "manifest.json").write_text("[]")
    (tmp_path / "runs" / "a" / "summary.json").write_text("{not json")
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Failed runs" in text and "not a dcar-bench manifest" in text
    assert "Damaged summary" in text and "## dummy × dummy-t2i" in text
