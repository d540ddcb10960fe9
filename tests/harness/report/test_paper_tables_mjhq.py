"""mjhq_fid runs fill the gFID cells of Tables 2 and 4 with their ``sana`` value; a subset or random-weight
run carries the marker and says why; the other protocols' numbers appear in the provenance footer."""
from __future__ import annotations

import pytest

from harness.report.collect import collect_runs
from harness.report.paper_tables import MARK, NOT_RUN, build_paper_tables
from tests.harness.report.synthetic_runs import write_run

pytest.importorskip("pandas")

FID = {"sana": 5.4321, "clean_fid": 15.3, "torch_fidelity": 6.1, "fd_dinov2": 250.0, "cmmd": 0.7}


def _mjhq(full: bool, n: int) -> dict:
    warnings = [] if full else [f"{n} of 30,000 MJHQ-30K prompts (reference n=30000): NOT MJHQ-30K FID"]
    return {"label": "MJHQ-30K FID" if full else "subset", "num_images": n, "fid": dict(FID), "per_category": {},
            "reference_stats": {"sana": {"source": "cache", "n": 30000}},
            "protocols": {"sana": {"weights": "sha256:" + "12" * 32}}, "is_full_mjhq": full,
            "is_paper_metric": full, "warnings": warnings}


def _row(table, model, source):
    name = "Method" if table.id == "table2" else "Model"
    rows = [r for r in table.to_records() if r[name].rstrip("*") == model and r["Source"].startswith(source)]
    assert len(rows) == 1, rows
    return rows[0]


def test_mjhq_runs_fill_tables_2_and_4(tmp_path):
    write_run(tmp_path, "full", suite="mjhq_fid", adapter="dc-ar", results=_mjhq(True, 30000), num_items=3)
    write_run(tmp_path, "sub", suite="mjhq_fid", adapter="dc-ar-discrete-only", results=_mjhq(False, 100),
              num_items=3)
    tables = {t.id: t for t in build_paper_tables(collect_runs([tmp_path]))}
    t2, t4 = tables["table2"], tables["table4"]
    assert _row(t2, "DC-AR", "ours")["gFID↓"] == "5.43"
    assert _row(t2, "DC-AR", "Δ")["gFID↓"].startswith(("+", "-"))
    assert _row(t4, "DC-AR (hybrid tokens)", "ours")["gFID↓"].startswith("5.43")
    assert _row(t4, "Discrete-only variant", "ours")["gFID↓"].startswith("5.43") \
        and MARK in _row(t4, "Discrete-only variant", "ours")["gFID↓"]
    legend = " ".join(t4.legend)
    assert "NOT MJHQ-30K FID" in legend
    footer = " ".join(t2.footer)
    assert "gFID protocol sana" in footer and "clean_fid 15.300" in footer and "30000 of 30,000" in footer


def test_without_mjhq_runs_the_cells_say_not_run_and_name_the_suite(tmp_path):
    tables = {t.id: t for t in build_paper_tables([])}
    assert _row(tables["table2"], "DC-AR", "ours")["gFID↓"] == NOT_RUN
    assert any("`dcar-bench run mjhq_fid --model dc-ar`" in line for line in tables["table2"].legend)
