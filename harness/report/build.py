"""A report directory: ``report.md`` with the paper's tables and figures first, then one section per run.

Why a directory: a report is Markdown plus the PNG figures it shows and the same numbers as CSV/JSON for
people who post-process; all of it comes from the run directories' files (plan, records, manifests,
summaries, artifacts), never from re-running anything, so it can be rebuilt anywhere, months later,
without the datasets or the weights. The first screen says in three lines what ran, what is real and
what is not.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness.io import atomic_write_bytes, dump_json
from harness.report.collect import RunView, collect_runs
from harness.report.markdown import failures_section, render_run
from harness.store import ensure_output_dir

REPORT_MD = "report.md"
REPORT_JSON = "report.json"


def first_screen(runs: Sequence[RunView], failures: Sequence[tuple[str, str]] = ()) -> list[str]:
    """Three lines: what was run, what is real, what is not (each naming runs by ``suite × label``)."""
    def name(r: RunView) -> str:
        return f"`{r.suite} × {r.label}`"

    real = [r for r in runs if r.real_weights and r.complete and not _not_paper_metric(r)]
    timing = [r for r in runs if not r.real_weights and not r.weights_affect_results]
    mini = [r for r in runs if not r.real_weights and r not in timing and r.weights_kind == "mini-trained"]
    fake = [r for r in runs if not r.real_weights and r not in timing and r not in mini]
    other = [r for r in runs if r not in real and r not in fake and r not in timing and r not in mini]
    ran = f"**Ran:** {len(runs)} run(s): " + (", ".join(name(r) for r in runs) or "none")
    if failures:
        ran += f"; **{len(failures)} failed**: " + ", ".join(f"`{label}`" for label, _ in failures)
    real_line = "**Real:** " + (", ".join(name(r) for r in real) if real else
                                "nothing: no run used the real weights on the paper's full protocol")
    parts = []
    if mini:
        parts.append("mini-trained weights shipped with the harness (minutes on a CPU on procedural shapes; "
                     "not the released weights): " + ", ".join(name(r) for r in mini))
    if fake:
        parts.append("random, dummy or tiny weights: " + ", ".join(name(r) for r in fake))
    if timing:
        parts.append("timings of random-weight models on this machine (speed does not depend on the weights; "
                     "compare ratios, not seconds): " + ", ".join(name(r) for r in timing))
    if other:
        parts.append("real weights but not the paper's protocol or not complete: "
                     + ", ".join(f"{name(r)} ({r.completeness()})" for r in other))
    not_line = "**Not the paper's metric:** " + ("; ".join(parts) if parts else "nothing")
    return [f"> {ran}.  ", f"> {real_line}.  ", f"> {not_line}."]


def _not_paper_metric(run: RunView) -> bool:
    res = run.results
    return res.get("is_paper_metric") is False or res.get("is_geneval_metric") is False


def render_report_dir(runs: Sequence[RunView], out_dir: Path, title: str,
                      failures: Sequence[tuple[str, str]] = ()) -> tuple[str, dict[str, Any]]:
    """The Markdown of ``report.md`` and the index written as ``report.json``; writes tables and figures."""
    from harness.report.figures import build_figures
    from harness.report.paper_tables import build_paper_tables

    tables = build_paper_tables(runs)
    figures = build_figures(runs, out_dir)
    md = [f"# {title}\n", *first_screen(runs, failures), ""]
    md.append("## The paper's tables\n")
    md.append("Our values beside the paper's (from the runs below; a cell no run fills says *not run*). "
              "The same numbers are in `tables/*.csv` and `tables/*.json`.\n")
    for t in tables:
        t.write(out_dir)
        md.append(f"### {t.title}\n")
        md.append(t.to_markdown())
        md.extend(f"- {line}" for line in t.legend)
        if t.footer:
            md.append("\n<details><summary>Provenance</summary>\n")
            md.extend(f"- {line}" for line in t.footer)
            md.append("\n</details>")
        md.append("")
    md.append("## Figures\n")
    for f in figures:
        md.append(f"### {f.title}\n")
        if f.path:  # the plotted numbers beside the PNG (figures/<id>.json), so a reader can check what it shows
            atomic_write_bytes(out_dir / Path(f.path).with_suffix(".json"), dump_json(f.to_dict()))
            md.append(f"![{f.title}]({f.path})\n")
            md.append(f"{f.caption}\n")
        else:
            md.append(f"*{f.status}.* {f.caption}\n")
    md.append("## Runs\n")
    md.extend(render_run(r.run_dir) for r in runs)
    if failures:
        md.append(failures_section(failures))
    index = {
        "title": title,
        "runs": [{"run_dir": str(r.run_dir), "suite": r.suite, "adapter": r.adapter, "real_weights": r.real_weights,
                  "completeness": r.completeness()} for r in runs],
        "tables": [{"id": t.id, "title": t.title, "csv": f"tables/{t.id}.csv", "json": f"tables/{t.id}.json"}
                   for t in tables],
        "figures": [{"id": f.id, "title": f.title, "path": f.path, "status": f.status, "caption": f.caption,
                     "data": str(Path(f.path).with_suffix(".json").as_posix()) if f.path else None}
                    for f in figures],
        "failures": [{"label": label, "error": msg} for label, msg in failures],
    }
    return "\n".join(md) + "\n", index


def write_report_dir(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                     title: str = "dcar-bench report", failures: Iterable[tuple[str, str]] = ()) -> Path:
    """Build the report directory ``out_dir`` (``report.md``, ``report.json``, ``tables/``, ``figures/``) from runs.

    ``paths``: run directories, or folders of run directories (e.g. a smoke ``--out``). Returns report.md's path.
    """
    out_dir = ensure_output_dir(out_dir)
    damaged: list[tuple[str, str]] = []
    runs = collect_runs(paths, damaged=damaged)
    text, index = render_report_dir(runs, out_dir, title, [*failures, *damaged])
    atomic_write_bytes(out_dir / REPORT_JSON, dump_json(index))
    atomic_write_bytes(out_dir / REPORT_MD, text.encode("utf-8"))
    return out_dir / REPORT_MD


def read_index(out_dir: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(out_dir) / REPORT_JSON).read_text(encoding="utf-8"))
