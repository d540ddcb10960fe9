"""The runs a report covers, read from their directories only (manifest, plan.jsonl, records, summary).

Why one reader: every paper table and figure needs the same facts about a run (which suite and adapter,
real weights or not, complete or partial with counts, its summary, its records and artifacts), and none
of them may re-run anything, load a model or need the dataset. A run directory that is damaged is kept
with the reason, so the report can say so instead of silently dropping it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness.api import RunManifest, UserError, WorkItem
from harness.records import RecordsCorruptError, read_all
from harness.store import MANIFEST, RunStore


def run_real_weights(manifest: Mapping[str, Any], summary: Mapping[str, Any] | None) -> bool:
    """Whether a run's numbers come from real weights: its adapter's ``info().real_weights``.

    A suite with no adapter of its own (a steps sweep over several models, the profile, detection of a folder)
    states it in its summary as ``results.real_weights``; without that it counts as not real.
    """
    if manifest.get("adapter"):
        return bool((manifest.get("adapter_info") or {}).get("real_weights", False))
    results = (summary or {}).get("results") or {}
    return bool(results.get("real_weights", False))


def run_weights_kind(manifest: Mapping[str, Any], summary: Mapping[str, Any] | None) -> str | None:
    """``info().extra.weights_kind`` of the run's adapter (``checkpoint``, ``mini-trained``, ``random-init``), or for a
    suite without an adapter the single kind in ``results.weights_kinds``; None when unknown or mixed."""
    if manifest.get("adapter"):
        return ((manifest.get("adapter_info") or {}).get("extra") or {}).get("weights_kind")
    kinds = set(((summary or {}).get("results") or {}).get("weights_kinds") or ())
    return kinds.pop() if len(kinds) == 1 else None


def weights_affect_results(summary: Mapping[str, Any] | None) -> bool:
    """False when the suite says its numbers do not depend on the weights' values (``results.weights_affect_results``)."""
    return ((summary or {}).get("results") or {}).get("weights_affect_results") is not False


@dataclass
class RunView:
    """One run directory as a report sees it."""

    run_dir: Path
    manifest: RunManifest
    summary: Mapping[str, Any] | None  # None: not aggregated (yet)
    problems: list[str] = field(default_factory=list)  # why parts of it cannot be trusted (corrupt records...)

    @property
    def suite(self) -> str:
        return self.manifest.suite

    @property
    def adapter(self) -> str | None:
        return self.manifest.adapter

    @property
    def label(self) -> str:
        """``adapter`` (or the suite's subject) for table rows."""
        return self.adapter or str(self.manifest.raw.get("subject") or self.run_dir.name)

    @property
    def real_weights(self) -> bool:
        return run_real_weights(self.manifest.raw, self.summary)

    @property
    def weights_kind(self) -> str | None:
        return run_weights_kind(self.manifest.raw, self.summary)

    @property
    def weights_affect_results(self) -> bool:
        """False for a suite whose numbers do not depend on the weights' values (profile: speed)."""
        return weights_affect_results(self.summary)

    @property
    def results(self) -> Mapping[str, Any]:
        """The suite's aggregate (``summary["results"]``), empty when not aggregated."""
        return (self.summary or {}).get("results") or {}

    @property
    def planned(self) -> int:
        return self.manifest.num_items

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """Every record of every shard, de-duplicated by item id, in plan order (unplanned ones dropped)."""
        by_id: dict[str, dict[str, Any]] = {}
        try:
            for _, res in read_all(self.run_dir / "records"):
                for rec in res.records:
                    by_id.setdefault(rec["item_id"], rec)
        except RecordsCorruptError as exc:
            self.problems.append(f"records are corrupt: {exc}")
        order = {it.id: i for i, it in enumerate(self.items)}
        return sorted((r for r in by_id.values() if r["item_id"] in order), key=lambda r: order[r["item_id"]])

    @cached_property
    def items(self) -> list[WorkItem]:
        """The stored plan (``plan.jsonl``); empty, with a problem noted, when it is missing or modified."""
        try:
            return RunStore(self.run_dir).read_plan(self.manifest.plan_sha256)
        except UserError as exc:
            self.problems.append(str(exc))
            return []

    @property
    def recorded(self) -> int:
        return len(self.records)

    @property
    def complete(self) -> bool:
        """Every planned item has a record, the records are readable and the run is aggregated."""
        recorded = self.recorded  # reads the records first: that is where damage is found
        return recorded >= self.planned and not self.problems and self.summary is not None

    def completeness(self) -> str:
        """``"complete"`` or e.g. ``"partial: 12 of 2212 items"`` / ``"not aggregated"``, for table cells."""
        recorded = self.recorded  # reads the records first: that is where damage is found
        if self.problems:
            return "damaged: " + self.problems[0]
        if recorded < self.planned:
            return f"partial: {recorded} of {self.planned} items"
        if self.summary is None:
            return "not aggregated"
        return "complete"

    def artifact(self, relpath: str) -> Path:
        return self.run_dir / "artifacts" / relpath

    def provenance(self) -> dict[str, Any]:
        """The facts a table footer states about this run: device, dtype, commit, versions, weights, counts."""
        prov = self.manifest.provenance
        dev = prov.get("device") or {}
        cuda = dev.get("cuda")
        info = self.manifest.adapter_info or {}
        git = prov.get("git") or {}
        return {
            "run": str(self.run_dir),
            "suite": self.suite,
            "adapter": self.adapter,
            "device": (", ".join(cuda["devices"]) if cuda else f"CPU ({dev.get('cpu_count')} cores, {dev.get('machine')})"),
            "dtype": info.get("dtype"),
            "commit": (git.get("commit") or "unknown")[:12] + (" (dirty)" if git.get("dirty") else ""),
            "torch": (prov.get("packages") or {}).get("torch"),
            "weights": dict(info.get("weights") or {}),
            "real_weights": self.real_weights,
            "items": f"{self.recorded} of {self.planned}",
            "protocol": dict(self.manifest.protocol),
        }


def find_run_dirs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Run directories among ``paths``: each path itself if it holds a manifest, else its run subdirectories."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / MANIFEST).is_file():
            out.append(p)
        elif p.is_dir():
            subs = sorted(d for d in p.iterdir() if (d / MANIFEST).is_file())
            if not subs:
                raise UserError(f"{p} is not a run directory (no {MANIFEST}) and holds no run directories")
            out.extend(subs)
        else:
            raise UserError(f"{p} does not exist; give run directories (or a folder of them, e.g. a smoke --out)")
    return out


def collect_runs(paths: Sequence[str | os.PathLike], *, damaged: list[tuple[str, str]] | None = None) -> list[RunView]:
    """A :class:`RunView` per run directory in ``paths`` (a path may also be a folder of run directories).

    A run whose manifest cannot be read is appended to ``damaged`` as (directory, reason) when a list is
    given, so one broken run does not hide the others; without a list its error is raised.
    """
    views = []
    for d in find_run_dirs(paths):
        store = RunStore(d)
        try:
            manifest = RunManifest.from_dict(store.require_manifest())
        except UserError as exc:
            if damaged is None:
                raise
            damaged.append((str(d), str(exc)))
            continue
        problems: list[str] = []
        try:
            summary = store.read_summary()
        except UserError as exc:
            summary, problems = None, [str(exc)]
        views.append(RunView(d, manifest, summary, problems))
    return views


def runs_of(runs: Iterable[RunView], suite: str) -> list[RunView]:
    return [r for r in runs if r.suite == suite]
