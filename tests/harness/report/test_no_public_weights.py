"""Peers without released weights (TexTok in Table 1, Fluid in Table 3) are labelled as paper-only in the legend,
and keep only their paper rows: no run can measure them."""
from __future__ import annotations

from harness.report.paper_tables import build_paper_tables


def test_textok_and_fluid_are_labelled_no_public_weights_and_have_paper_rows_only():
    tables = {t.id: t for t in build_paper_tables([])}
    for table_id, model, name_header in (("table1", "TexTok", "Tokenizer"), ("table3", "Fluid", "Method")):
        t = tables[table_id]
        assert any(line.startswith(f"{model}: no public weights") for line in t.legend), t.legend
        rows = [r for r in t.to_records() if r[name_header].startswith(model)]
        assert rows and {r["Source"] for r in rows} == {"paper"}
