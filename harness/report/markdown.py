"""Markdown report over run directories: one section per run, built from files only.

Why it reads only ``manifest.json`` and ``summary.json``: a report must be
reproducible from a run directory alone (copied to another machine, months later).
Each section has the suite's own table (``Suite.render(results)``, written by the
suite's owner) beside the facts that make the numbers interpretable: adapter and
weights, seed, item count, git commit, versions, device. A run made without real
weights gets a loud banner: its numbers are NOT the paper's metric.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness import registry
from harness.api import UserError
from harness.io import atomic_write_bytes
from harness.markdown_table import markdown_table
from harness.records import RecordsCorruptError, read_all
from harness.report.collect import run_real_weights, run_weights_kind, weights_affect_results
from harness.store import RunStore, ensure_output_dir

NOT_REAL_BANNER = (
    "> **⚠ NOT THE PAPER'S METRIC.** This run used random, dummy or tiny built-in weights "
    "(`real_weights: false`). Its numbers test the harness end to end; they say nothing about "
    "{adapter} and must not be compared with the paper's tables."
)
MINI_BANNER = (
    "> **Mini-trained, not the released weights.** {adapter} ran with the mini models shipped in "
    "`baselines/dcar/mini_weights` (trained for minutes on a CPU on procedural captioned shapes by "
    "`python -m dcar_training mini-defaults`). Its pictures are worth looking at; its numbers are NOT the "
    "paper's metric and must not be compared with the paper's tables."
)
TIMING_BANNER = (
    "> **Timings with random weights.** Speed does not depend on the weights' values, so these are real "
    "measurements of the architectures, but on this run's device and dtype: compare ratios measured in one run, "
    "not seconds, with the paper's A100 numbers."
)


def _fmt_weights(weights: Mapping[str, str] | None) -> str:
    if not weights:
        return "none"
    return "<br>".join(f"`{Path(k).name}`: `{str(v)[:16]}`" for k, v in sorted(weights.items()))


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _facts(manifest: Mapping[str, Any], summary: Mapping[str, Any] | None, run_dir: Path) -> list[tuple[str, str]]:
    info = manifest.get("adapter_info") or {}
    prov = manifest.get("provenance") or {}
    git = prov.get("git") or {}
    pk = prov.get("packages") or {}
    dev = prov.get("device") or {}
    cuda = dev.get("cuda")
    commit = git.get("commit")
    device = ", ".join(cuda["devices"]) + f" (CUDA {cuda.get('version')}, driver {cuda.get('driver')})" if cuda \
        else f"CPU ({dev.get('cpu_count')} cores, {dev.get('machine')})"
    rows = [
        ("run directory", f"`{run_dir}`"),
        ("suite", f"`{manifest.get('suite')}`"),
        ("adapter", f"`{manifest.get('adapter')}`" + (f" ({info.get('kind')})" if info.get("kind") else "")),
        ("real weights", "yes" if info.get("real_weights") else
         ("**no** (mini-trained, not the released weights)"
          if (info.get("extra") or {}).get("weights_kind") == "mini-trained" else "**no**")),
        ("weights", _fmt_weights(info.get("weights"))),
        ("resolution / steps / dtype", " / ".join(_dash(info.get(k)) for k in ("resolution", "steps", "dtype"))),
        ("parameters", f"{info['num_params']:,}" if isinstance(info.get("num_params"), int) else "-"),
        ("items", str(manifest.get("num_items"))),
        ("seed", str(manifest.get("seed"))),
        ("git commit", (f"`{commit[:12]}`" + (" (dirty)" if git.get("dirty") else "")) if commit else "unknown"),
        ("torch / numpy / python", f"{pk.get('torch')} / {pk.get('numpy')} / {prov.get('python')}"),
        ("device", device),
        ("created", str(prov.get("created"))),
    ]
    if summary is not None:
        rows.append(("records sha256", f"`{summary.get('records_sha256', '')[:16]}`"))
    return rows


def _suite_markdown(manifest: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    """The suite's own table (``Suite.render``), found through the registry; JSON if it cannot be imported here."""
    try:
        suite_cls = registry.resolve("suite", manifest["suite"])
        return suite_cls(manifest.get("config") or {}).render(results)
    except Exception as exc:  # noqa: BLE001 - a report must still come out if a suite cannot be imported here
        return (f"_(suite {manifest.get('suite')!r} could not render its table here: {exc})_\n\n"
                "```json\n" + json.dumps(results, indent=2, sort_keys=True, default=str) + "\n```\n")


def _records_state(run_dir: Path, manifest: Mapping[str, Any]) -> str | None:
    """A warning when the run's records are corrupt or fewer than planned (None when they are whole)."""
    try:
        n = sum(len(res.records) for _, res in read_all(run_dir / "records"))
    except RecordsCorruptError as exc:
        return f"**⚠ Records are corrupt**: {exc}"
    planned = manifest.get("num_items")
    if isinstance(planned, int) and n < planned:
        return f"**⚠ Incomplete run**: {n} of {planned} planned items have a record."
    return None


def render_run(run_dir: str | os.PathLike) -> str:
    """One report section for one run directory."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    try:
        manifest = store.read_manifest()
    except UserError as exc:
        return f"## `{run_dir}`\n\n**Damaged run directory**: {exc}\n"
    if manifest is None:
        return f"## `{run_dir}`\n\n**Not a run directory** (no manifest.json).\n"
    try:
        summary = store.read_summary()
        summary_problem = None
    except UserError as exc:
        summary, summary_problem = None, str(exc)
    subject = manifest.get("adapter") or manifest.get("subject")
    parts = [f"## {manifest.get('suite')} × {subject or 'no adapter'}\n"]
    if not run_real_weights(manifest, summary):
        if not weights_affect_results(summary):
            parts.append(TIMING_BANNER + "\n")
        elif run_weights_kind(manifest, summary) == "mini-trained":
            parts.append(MINI_BANNER.format(adapter=f"`{subject}`" if subject else "This run") + "\n")
        else:
            parts.append(NOT_REAL_BANNER.format(adapter=f"`{subject}`" if subject else "the models it ran") + "\n")
    parts.append(markdown_table(("fact", "value"), _facts(manifest, summary, run_dir)))
    protocol = manifest.get("protocol") or {}
    if protocol:
        parts.append("<details><summary>Protocol constants (from the suite's YAML)</summary>\n\n"
                     + "\n".join(f"- `{k}`: {v}" for k, v in sorted(protocol.items())) + "\n\n</details>\n")
    state = _records_state(run_dir, manifest)
    if state:
        parts.append(state + "\n")
    if summary_problem:
        parts.append(f"**⚠ Damaged summary**: {summary_problem}\n")
    if summary is None:
        parts.append("**Not aggregated yet** (no summary.json): finish the run, then `dcar-bench aggregate "
                     f"{run_dir}`.\n")
    else:
        parts.append("### Results\n\n" + _suite_markdown(manifest, summary.get("results") or {}))
    return "\n".join(parts)


def render_report(run_dirs: Sequence[str | os.PathLike], title: str = "dcar-bench report",
                  failures: Iterable[tuple[str, str]] = ()) -> str:
    """The whole report: title, a banner if any run lacks real weights, one section per run, failures last."""
    run_dirs = [Path(d) for d in run_dirs]
    failures = list(failures)
    head = [f"# {title}\n"]
    any_fake = False
    for d in run_dirs:
        try:
            m = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        try:
            summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            summary = None
        any_fake |= not run_real_weights(m, summary) and weights_affect_results(summary)
    if any_fake:
        head.append("> **⚠ Some or all results below were produced WITHOUT the real model weights. "
                    "They are NOT the paper's metrics.** See each section's banner.\n")
    head.append(f"{len(run_dirs)} run(s)" + (f", **{len(failures)} failed**" if failures else "") + ".\n")
    body = [render_run(d) for d in run_dirs]
    if failures:
        body.append(failures_section(failures))
    return "\n".join(head) + "\n" + "\n".join(body)


def failures_section(failures: Iterable[tuple[str, str]]) -> str:
    """``## Failed runs``: each failed entry with the first line of its error."""
    return "## Failed runs\n\n" + "\n".join(f"- **{label}**: `{msg.splitlines()[0] if msg else ''}`"
                                             for label, msg in failures) + "\n"


def write_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, title: str = "dcar-bench report",
                 failures: Iterable[tuple[str, str]] = ()) -> Path:
    out = Path(out)
    ensure_output_dir(out.parent, what="--out (its folder)")
    atomic_write_bytes(out, render_report(run_dirs, title, failures).encode("utf-8"))
    return out


def run_title(manifest: Mapping[str, Any]) -> str:
    """``dcar-bench: SUITE × ADAPTER``; an adapter-less suite's ``Suite.subject()`` (e.g. the images folder) instead."""
    return f"dcar-bench: {manifest.get('suite')} × {manifest.get('adapter') or manifest.get('subject') or 'no adapter'}"


def write_run_report(run_dir: str | os.PathLike) -> Path:
    """``<run_dir>/report.md`` for one run, from its files."""
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return write_report([run_dir], run_dir / "report.md", title=run_title(manifest))
