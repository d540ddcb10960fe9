"""steps_sweep: every point is an ordinary inner run, the figure shows exactly the records, a killed sweep keeps its points.

The inner suite here is ``dummy`` (its ``results.mean_std`` depends on the dummy generator's ``num_steps``), so the
tests need neither the MJHQ suite nor weights; the class-to-image path (Fig. 11) is in test_steps_sweep_fig11.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.jobs import aggregate, run
from harness.registry import UnknownNameError
from harness.runner.config import ConfigError
from suites.steps_sweep import SweepMetricError

METRIC = "results.mean_std"
SWEEP = ["steps=[4,8,12]", "adapters=[dummy-t2i]", "inner.suite=dummy", f"inner.metric={METRIC}",
         "inner.config.num_items=3", "inner.model.resolution=8"]


def _records(run_dir: Path) -> list[dict]:
    f = run_dir / "records" / "shard-0-of-1.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    res = run("steps_sweep", None, out, overrides=SWEEP, show_progress=False)
    return out, res.summary


def test_png_data_points_equal_the_records_and_the_point_summaries(sweep):
    out, summary = sweep
    records = {r["steps"]: r for r in _records(out)}
    assert sorted(records) == [4, 8, 12]
    data = json.loads((out / "figures" / "fig6.json").read_text())
    assert data["png"] == "figures/fig6.png" and (out / data["png"]).stat().st_size > 1000
    (line,) = data["series"]
    assert line["label"] == "dummy-t2i" and line["real_weights"] is False and line["is_paper"] is False
    assert line["x"] == [4.0, 8.0, 12.0]
    assert line["y"] == [records[s]["values"][METRIC] for s in (4, 8, 12)]
    for s in (4, 8, 12):  # ... which are the inner runs' own numbers
        inner = json.loads((out / records[s]["point_dir"] / "summary.json").read_text())
        assert inner["results"]["mean_std"] == records[s]["values"][METRIC]
    assert len(set(line["y"])) == 3  # the step count changes the dummy's images
    assert [f["value"] for f in data["paper_facts"]] == [12.0]  # the paper's 12-step choice is marked
    res = summary["results"]
    assert res["figure"] == "fig6" and res["figure_series"]["fig6"][0]["y"] == line["y"]
    assert res["best_steps"]["dummy-t2i"] == min(records, key=lambda s: records[s]["values"][METRIC])


def test_each_point_is_a_run_of_the_inner_suite_with_the_step_option(sweep):
    out, _ = sweep
    for rec in _records(out):
        manifest = json.loads((out / rec["point_dir"] / "manifest.json").read_text())
        assert manifest["suite"] == "dummy" and manifest["adapter"] == "dummy-t2i"
        assert manifest["config"]["model"] == {"resolution": 8, "num_steps": rec["steps"]}
        assert manifest["adapter_info"]["steps"] == rec["steps"] == rec["inner"]["adapter_steps"]
        assert rec["inner"]["plan_sha256"] == manifest["plan_sha256"] and rec["inner"]["num_items"] == 3
        assert rec["point_dir"] == f"points/dummy-t2i/steps-{rec['steps']:03d}"


def test_report_embeds_the_png_and_the_report_directory_draws_fig6(sweep, tmp_path):
    from harness.report.build import read_index, write_report_dir
    from harness.report.collect import collect_runs
    from harness.report.figures import series_from_runs

    out, summary = sweep
    md = (out / "report.md").read_text()
    # a metric that is not a FID: the figure keeps Fig. 6's shape but does not claim gFID in its title
    assert "![Fig. 6 shape: " in md and "vs sampling steps](figures/fig6.png)" in md and "gFID" not in md.split("](figures/fig6.png)")[0].rsplit("![", 1)[1]
    assert "points/dummy-t2i/steps-008" in md
    (series,) = series_from_runs(collect_runs([out]), "fig6")
    assert list(series.y) == summary["results"]["figure_series"]["fig6"][0]["y"] and series.real_weights is False
    write_report_dir([out], tmp_path / "report")
    fig6 = next(f for f in read_index(tmp_path / "report")["figures"] if f["id"] == "fig6")
    assert fig6["status"] == "drawn" and (tmp_path / "report" / fig6["path"]).is_file()
    assert summary["results"]["figure_y_label"] == {"fig6": f"{METRIC} (lower is better)"}  # not a gFID: said so
    # the report directory's copy of the plotted numbers (figures/fig6.json beside the PNG) shows the records
    data = json.loads((tmp_path / "report" / fig6["data"]).read_text())["data"]
    by_steps = {r["steps"]: r["values"][METRIC] for r in _records(out)}
    assert data["series"][0]["x"] == [4.0, 8.0, 12.0] and data["series"][0]["y"] == [by_steps[s] for s in (4, 8, 12)]


def test_metric_is_an_aggregation_only_key(sweep, tmp_path):
    import shutil

    out, _ = sweep
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    again = aggregate(copy, overrides=["inner.metric=results.mean_pixel", "report.labels.dummy-t2i=stand-in"])
    by_steps = {r["steps"]: r["values"]["results.mean_pixel"] for r in _records(copy)}
    assert again["results"]["figure_series"]["fig6"] == [
        {"label": "stand-in", "x": [4, 8, 12], "y": [by_steps[s] for s in (4, 8, 12)], "real_weights": False}]
    assert json.loads((copy / "figures" / "fig6.json").read_text())["series"][0]["label"] == "stand-in"


@pytest.mark.parametrize("overrides, error, words", [
    (["inner.suite=dumy"], UnknownNameError, "Did you mean 'dummy'"),
    (["inner.suite=steps_sweep"], ConfigError, "cannot be steps_sweep"),
    (["adapters=[dummy-t2j]"], UnknownNameError, "dummy-t2i"),
    (["adapters=[dummy-c2i]"], ConfigError, "needs a text_to_image adapter"),
    (["inner.config.num_itmes=3"], ConfigError, "num_itmes"),
    (["inner.config.num_items=0"], ConfigError, "num_items must be >= 1"),
    (["steps_option.dummy-t2i=nsteps"], ConfigError, "has no option 'nsteps'"),
    (["inner.model_per_adapter.dc-ar.config=tiny"], ConfigError, "not in adapters"),
    (["steps=[4,4]"], ConfigError, "distinct positive"),
    (["inner.metric=results."], ConfigError, "dotted summary key"),
    (["batch_size=4"], ConfigError, "--set inner.config.batch_size=N"),
])
def test_mistakes_are_one_line_before_any_point_runs(tmp_path, overrides, error, words):
    out = tmp_path / "run"
    with pytest.raises(error) as exc:
        run("steps_sweep", None, out, overrides=[*SWEEP, *overrides], show_progress=False)
    assert words in str(exc.value) and "\n" not in str(exc.value)
    assert not out.exists()


def test_a_metric_absent_from_the_point_summary_stops_the_sweep_and_a_corrected_one_reuses_the_point(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SweepMetricError) as exc:
        run("steps_sweep", None, out, overrides=[*SWEEP, "inner.metric=results.mean_sdt"], show_progress=False)
    text = str(exc.value)
    assert "\n" not in text and "Did you mean 'results.mean_std'" in text and "dummy-t2i/steps-004" in text
    first = out / "points" / "dummy-t2i" / "steps-004"
    assert (first / "summary.json").is_file() and not _records(out)
    stamp = (first / "records" / "shard-0-of-1.jsonl").stat().st_mtime_ns
    res = run("steps_sweep", None, out, overrides=SWEEP, show_progress=False)
    assert len(res.summary["results"]["points"]) == 3
    assert (first / "records" / "shard-0-of-1.jsonl").stat().st_mtime_ns == stamp
    assert len((first / "invocations.jsonl").read_text().splitlines()) == 1  # the inner run was not repeated


# --------------------------------------------------------------------------- SIGKILL between points

SLOW = [*SWEEP, "inner.model.delay_s=0.4"]  # 3 items x 0.4 s: a point takes > 1 s, so the kill lands between points


def _cmd(out: Path) -> list[str]:
    args = ["run", "steps_sweep", "--out", str(out), "--quiet"]
    for s in SLOW:
        args += ["--set", s]
    return [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())", *args]


def test_sigkill_after_k_points_then_rerun_recomputes_none_of_them(tmp_path):
    ref = run("steps_sweep", None, tmp_path / "ref", overrides=SWEEP, show_progress=False).summary
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline and len(_records(out)) < 1:
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = [r["point_dir"] for r in _records(out)]
    assert 1 <= len(done) < 3 and not (out / "summary.json").exists()
    stamps = {d: (out / d / "records" / "shard-0-of-1.jsonl").stat().st_mtime_ns for d in done}
    res = run("steps_sweep", None, out, overrides=SLOW, show_progress=False)
    assert res.skipped == len(done) and res.completed == 3 - len(done)
    for d in done:  # the k finished points: neither their records nor their runs were touched
        assert (out / d / "records" / "shard-0-of-1.jsonl").stat().st_mtime_ns == stamps[d]
        assert len((out / d / "invocations.jsonl").read_text().splitlines()) == 1
    assert [r["point_dir"] for r in _records(out)][: len(done)] == done
    assert res.summary["results"]["figure_series"] == ref["results"]["figure_series"]


def test_default_adapters_dcar_and_discrete_only_take_num_steps(tmp_path):
    """The sweep's defaults (dc-ar, dc-ar-discrete-only; model.num_steps) on the tiny random-init DC-AR config."""
    out = tmp_path / "run"
    sets = ["steps=[2,4]", "inner.suite=dummy", f"inner.metric={METRIC}", "inner.config.num_items=2",
            "inner.config.batch_size=2", "inner.model.config=tiny", "inner.model.resolution=128"]
    res = run("steps_sweep", None, out, overrides=sets, show_progress=False).summary["results"]
    assert [s["label"] for s in res["figure_series"]["fig6"]] == ["dc-ar", "dc-ar-discrete-only"]
    for p in res["points"]:
        info = json.loads((out / p["point_dir"] / "manifest.json").read_text())["adapter_info"]
        assert info["name"] == p["adapter"] and info["steps"] == p["steps"]


def test_an_inner_suites_missing_file_is_named_with_the_sweeps_key(tmp_path):
    """imagenet_gfid's missing reference file, found before any point runs, says which sweep key sets it."""
    from harness.api import MissingResourceError

    sets = ["steps=[4]", "adapters=[dummy-c2i]", "inner.suite=imagenet_gfid", "inner.metric=results.fid",
            "inner.config.metrics.inception.random_init_seed=0", f"inner.config.reference.stats_path={tmp_path}/no.npz"]
    with pytest.raises(MissingResourceError) as exc:
        run("steps_sweep", None, tmp_path / "run", overrides=sets, show_progress=False)
    assert "--set inner.config.reference.stats_path=" in str(exc.value) and "imagenet_gfid" in str(exc.value)
    assert not (tmp_path / "run").exists()
