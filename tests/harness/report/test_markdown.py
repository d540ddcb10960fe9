"""Markdown report: built from files only, honest about missing summaries and unknown suites."""
from __future__ import annotations

import json

from harness.jobs import run
from harness.report.markdown import render_report, render_run


def test_unaggregated_run_says_so(tmp_path):
    run("dummy", "dummy-t2i", tmp_path / "r", overrides={"num_items": 2}, show_progress=False,
        aggregate_when_done=False)
    text = render_run(tmp_path / "r")
    assert "Not aggregated yet" in text and f"dcar-bench aggregate {tmp_path / 'r'}" in text
    assert "NOT THE PAPER'S METRIC" in text


def test_suite_that_cannot_be_imported_still_reports_its_numbers(tmp_path):
    run("dummy", "dummy-t2i", tmp_path / "r", overrides={"num_items": 2}, show_progress=False)
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    m["suite"] = "gone-suite"
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(m))
    text = render_run(tmp_path / "r")
    assert "could not render its table here" in text and '"num_images": 2' in text


def test_report_over_several_dirs_and_failures(tmp_path):
    run("dummy", "dummy-t2i", tmp_path / "a", overrides={"num_items": 2}, show_progress=False)
    (tmp_path / "empty").mkdir()
    text = render_report([tmp_path / "a", tmp_path / "empty"], title="T", failures=[("x", "RunError: boom\nmore")])
    assert text.startswith("# T\n") and "2 run(s), **1 failed**" in text
    assert "**Not a run directory**" in text and "- **x**: `RunError: boom`" in text
    assert text.index("## dummy × dummy-t2i") < text.index("## Failed runs")
