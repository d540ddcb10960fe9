"""Paper-shaped Markdown tables with the paper's numbers beside ours.

Why here and not in each suite: Table 1 (reconstruction), Table 4 (hybrid vs discrete-only)
and Table 5 (tokenizer training) all show rFID-type columns of the same runs; one module
formats them the same way, always from :mod:`harness.report.reference` (the paper's values,
shipped with the package) and a run's ``summary.json`` results. Our rows made with random
weights or on non-ImageNet pictures carry that label in the row itself, so a table copied
out of the report cannot be mistaken for a reproduction.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from harness.markdown_table import markdown_table
from harness.report.reference import reference_table, reference_value

TABLE1_COLUMNS = (("rFID", "rFID↓", 2), ("PSNR", "PSNR↑", 2), ("SSIM", "SSIM↑", 4), ("LPIPS", "LPIPS↓", 4))
GOLDEN_TABLE = "DC-AE_README_ImageNet512"
GOLDEN_TOLERANCE = {"rFID": 0.02, "PSNR": 0.05, "SSIM": 0.002, "LPIPS": 0.002}


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.{digits}f}"


def _tokens_from_name(model: str) -> str:
    m = re.search(r"(\d+)\s*tokens", model)
    return m.group(1) if m else "–"


def table1_markdown(resolution: int, ours: Sequence[Mapping[str, Any]], *, with_paper: bool = True) -> str:
    """Table 1 for one resolution: the paper's rows, then ours.

    ``ours``: rows with ``label``, ``tokens``, ``rFID``, ``PSNR``, ``SSIM``, ``LPIPS`` and
    ``note`` (e.g. "random weights — not the paper's metric").
    """
    paper = reference_table(f"Table1_ImageNet{int(resolution)}") if with_paper else {}
    header = ["Tokenizer", "# Tokens", *(c[1] for c in TABLE1_COLUMNS), "source"]
    rows = [[model, _tokens_from_name(model), *(_fmt(vals.get(k), d) for k, _, d in TABLE1_COLUMNS), "paper"]
            for model, vals in paper.items()]
    for row in ours:
        note = f" ({row['note']})" if row.get("note") else ""
        rows.append([f"**{row['label']}**{note}", row.get("tokens") or "–",
                     *(_fmt(row.get(k), d) for k, _, d in TABLE1_COLUMNS), "this run"])
    return markdown_table(header, rows)


def rfid_table_markdown(table_id: str, ours: Mapping[str, Mapping[str, Any]],
                        metrics: Sequence[str] = ("discrete_rFID", "rFID")) -> str:
    """Table 4/5-style rFID columns: each paper row, then each of ours (label -> {metric: value})."""
    paper = reference_table(table_id)
    cols = [m for m in metrics if any(m in v for v in paper.values())] or list(metrics)
    rows = [[model, *(_fmt(vals.get(c), 2) for c in cols), "paper"] for model, vals in paper.items()]
    rows += [[f"**{label}**", *(_fmt(vals.get(c), 2) for c in cols), "this run"] for label, vals in ours.items()]
    return markdown_table(["", *(f"{c}↓" for c in cols), "source"], rows)


def golden_check(model: str, measured: Mapping[str, Any]) -> list[tuple[str, float | None, float | None, bool]]:
    """Compare a run with the DC-AE README's expected output (setup sanity check).

    Returns (metric, expected, measured, within tolerance) rows.
    """
    rows = []
    for metric, tol in GOLDEN_TOLERANCE.items():
        expected = reference_value(GOLDEN_TABLE, model, metric)
        got = measured.get(metric)
        ok = expected is not None and got is not None and abs(float(got) - expected) <= tol
        rows.append((metric, expected, None if got is None else float(got), ok))
    return rows


def imagenet_recon_section(summary: Mapping[str, Any]) -> str:
    """The imagenet_recon suite's report section: Table 1 shape, discrete-rFID (Table 5 shape), warnings."""
    res = int(summary["dataset"]["resolution"])
    paths = summary.get("paths", {})
    rep = summary.get("report", {}) or {}
    label = rep.get("model_label") or "ours"
    note = "" if summary.get("is_paper_metric") else "NOT the paper's metric"
    out = [f"**Data:** {summary['dataset'].get('label')}, {summary['num_images']} images evaluated"
           + (f", {summary['num_skipped']} skipped as corrupt" if summary.get("num_skipped") else "") + "."]
    for w in summary.get("warnings", []):
        out.append(f"> ⚠ {w}")
    out.append("")
    ours = []
    for path, vals in paths.items():
        ours.append({"label": f"{label} [{path}]", "tokens": rep.get("tokens"), "note": note, **vals})
    if res in (256, 512) and (summary.get("dataset") or {}).get("dataset") != "procedural-shapes":
        out.append(f"Table 1 (ImageNet {res}×{res}):\n")
        out.append(table1_markdown(res, ours))
    else:
        out.append(f"No paper table at {res} px; our values only:\n")
        out.append(table1_markdown(res, ours, with_paper=False))
    if "discrete" in paths and "continuous" in paths and (summary.get("dataset") or {}).get("dataset") != "procedural-shapes":
        out.append("\nTable 5 columns (discrete path = discrete-rFID):\n")
        out.append(rfid_table_markdown("Table5_tokenizer_training", {
            f"{label}" + (f" ({note})" if note else ""): {"discrete_rFID": paths["discrete"].get("rFID"),
                                                          "rFID": paths["continuous"].get("rFID")}}))
    if any("KID" in v for v in paths.values()):
        out.append("\nKID (extra): " + ", ".join(f"{p}: {v['KID']:.5f} ± {v['KID_std']:.5f}"
                                                 for p, v in paths.items() if "KID" in v) + "\n")
    ref = summary.get("reference_stats", {})
    out.append(f"\nrFID reference statistics: {ref.get('source')} (n = {ref.get('n')}); "
               f"Inception weights `{str(summary['weights'].get('inception'))[:24]}`, resize "
               f"`{summary['fid_protocol'].get('resize')}`; SSIM border `{summary['ssim']['params']['border']}`.\n")
    if rep.get("golden") and "continuous" in paths:
        rows = golden_check(rep["golden"], paths["continuous"])
        out.append(f"\nSanity check against the DC-AE README ({rep['golden']}):\n")
        out.append(markdown_table(("metric", "expected", "measured", "ok"),
                                  [(m, _fmt(exp, 4), _fmt(got, 4), "yes" if ok else "**no**") for m, exp, got, ok in rows]))
    return "\n".join(out) + "\n"
