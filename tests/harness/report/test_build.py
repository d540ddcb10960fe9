"""The report directory: first screen, the paper's tables, figures, per-run sections, CSV/JSON, files only."""
from __future__ import annotations

import re
import shutil

import pytest

from harness.jobs import run
from harness.report.build import read_index, write_report_dir
from tests.paths import REPO_ROOT

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

GENEVAL = ["prompts=[0, 200]", "samples_per_prompt=1", "model.resolution=32"]


def _runs(tmp_path):
    base = tmp_path / "runs"
    run("dummy", "dummy-t2i", base / "00-dummy", overrides=["num_items=3", "model.resolution=8"], show_progress=False)
    run("geneval", "dummy-t2i", base / "01-gen-a", overrides=GENEVAL, show_progress=False)
    run("geneval", "dummy-t2i", base / "02-gen-partial", overrides=GENEVAL, show_progress=False, shard="0/2")
    return base


def test_report_dir_has_first_screen_tables_figures_and_runs(tmp_path):
    base = _runs(tmp_path)
    out = tmp_path / "rep"
    md = write_report_dir([base], out, title="T").read_text()
    lines = md.splitlines()
    assert lines[0] == "# T"
    screen = [x for x in lines[1:6] if x.startswith("> ")]
    assert len(screen) == 3 and screen[0].startswith("> **Ran:** 3 run(s)") and "**Real:** nothing" in screen[1]
    assert "random, dummy or tiny weights" in screen[2]
    assert md.index("## The paper's tables") < md.index("## Figures") < md.index("## Runs")
    assert md.count("## dummy × dummy-t2i") == 1 and md.count("## geneval × dummy-t2i") == 2
    index = read_index(out)
    assert [t["id"] for t in index["tables"]] == ["table1", "table2", "table3", "table4", "table5", "table6"]
    for t in index["tables"]:
        assert (out / t["csv"]).is_file() and (out / t["json"]).is_file()
    for f in index["figures"]:
        assert (f["path"] is None) == (f["status"] != "drawn")
        if f["path"]:
            assert (out / f["path"]).is_file() and f"]({f['path']})" in md
    assert "not run" in md  # tables 2 and 6 have no suite yet


def test_an_incomplete_run_is_reported_with_counts(tmp_path):
    base = _runs(tmp_path)
    index = read_index(write_report_dir([base], tmp_path / "rep").parent)
    partial = [r for r in index["runs"] if r["run_dir"].endswith("02-gen-partial")]
    assert partial[0]["completeness"] == "partial: 1 of 2 items"
    assert "Incomplete run" in (tmp_path / "rep" / "report.md").read_text()


def test_cli_report_to_a_directory(tmp_path, capsys):
    from harness.cli import main

    base = _runs(tmp_path)
    assert main(["report", str(base), "--out", str(tmp_path / "rep")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "rep" / "report.md")
    assert main(["report", str(base / "00-dummy"), "--out", str(tmp_path / "one.md")]) == 0
    assert "## dummy × dummy-t2i" in (tmp_path / "one.md").read_text()


def _skeleton(text: str) -> list[str]:
    """Headings and table header rows: what the report shows, not the values of one run."""
    return [line for line in text.splitlines() if line.startswith("#") or re.match(r"^\|[^|]*\|.*\|$", line)
            and not re.search(r"\d", line)]


def _paper_rows(root, csv_path):
    return [line for line in (root / csv_path).read_text().splitlines() if ",paper," in line]


@pytest.mark.slow
def test_committed_example_report_is_current(tmp_path):
    from harness.cli import main

    assert main(["smoke", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    fresh = (tmp_path / "s" / "report.md").read_text()
    committed = (REPO_ROOT / "reports" / "smoke" / "report.md").read_text()
    stale = "reports/smoke/ is out of date: regenerate it with `bash scripts/update_example_reports.sh`"
    assert _skeleton(committed) == _skeleton(fresh), stale
    ours, theirs = read_index(tmp_path / "s"), read_index(REPO_ROOT / "reports" / "smoke")
    assert [(f["id"], f["status"], f["path"]) for f in ours["figures"]] == \
        [(f["id"], f["status"], f["path"]) for f in theirs["figures"]], stale
    assert [t["id"] for t in ours["tables"]] == [t["id"] for t in theirs["tables"]], stale
    for t in theirs["tables"]:  # the paper's rows are fixed data: they must match exactly
        assert _paper_rows(REPO_ROOT / "reports" / "smoke", t["csv"]) == _paper_rows(tmp_path / "s", t["csv"]), stale
    for f in theirs["figures"]:
        assert f["path"] is None or (REPO_ROOT / "reports" / "smoke" / f["path"]).is_file(), stale
    shutil.rmtree(tmp_path / "s")


def test_adapterless_suites_state_their_weights_in_the_report(tmp_path):
    """A run with no adapter of its own (profile, steps sweep) is judged by its summary's ``results.real_weights``;
    the profile's random-weight timings get the timing banner, not "says nothing about None"."""
    base = tmp_path / "runs"
    run("profile", None, base / "prof", overrides=[
        "models=[{label: dummy-t2i, name: dummy-t2i, options: {resolution: 16}}]", "latency_batch_sizes=[1]",
        "throughput_batch_sizes=[]", "warmup=0", "iterations=1", "breakdown_iterations=0", "reference_model=dummy-t2i"], show_progress=False)
    run("steps_sweep", None, base / "sweep", overrides=[
        "steps=[1, 2]", "adapters=[dummy-t2i]", "inner.suite=dummy", "inner.metric=results.mean_std",
        "inner.config.num_items=2", "inner.config.batch_size=2", "inner.model.resolution=8"], show_progress=False)
    md = write_report_dir([base], tmp_path / "rep").read_text()
    assert "nothing about `None`" not in md and "nothing about None" not in md
    prof = md[md.index("## profile ×"):]
    assert "Timings with random weights" in prof.split("### Results")[0]
    sweep = md[md.index("## steps_sweep ×"):]
    assert "NOT THE PAPER'S METRIC" in sweep.split("### Results")[0]  # its points used the dummy's weights
    screen = "\n".join(md.splitlines()[1:6])
    assert "timings of random-weight models" in screen and "`profile ×" in screen
