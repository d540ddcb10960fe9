"""The work items of the two GenEval suites: (prompt, sample) pairs to generate, images (and gate images) to detect.

Why item ids are paths: ``PPPPP/SSSS`` (generate) and ``img/PPPPP/samples/SSSS.png`` (detect) name the
file an item writes or reads, so a record can be traced to its image by eye, and a generate item's
seed (``hash(run seed, id)``) does not depend on how the prompts were selected.
"""
from __future__ import annotations

from typing import Any

from harness.api import WorkItem
from harness.geneval.folder import FolderScan, sample_relpath
from harness.geneval.gate import gate_item_ids
from harness.geneval.prompts import load_prompts
from harness.runner.config import ConfigError


def select_prompts(spec: Any, n: int) -> list[int]:
    """``null``/``"all"`` = all; an index; a list of indices; or ``"a:b"`` slice text."""
    if spec is None or spec == "all":
        return list(range(n))
    if isinstance(spec, str) and ":" in spec:
        a, _, b = spec.partition(":")
        try:
            return list(range(n))[slice(int(a) if a else None, int(b) if b else None)]
        except ValueError:
            raise ConfigError(f"geneval: prompts={spec!r} is not a slice; use e.g. --set prompts=0:10") from None
    try:
        idx = [int(i) for i in (spec if isinstance(spec, (list, tuple)) else [spec])]
    except ValueError:
        raise ConfigError(f"geneval: prompts={spec!r}: expected null, an index, a list of indices or a slice "
                          "'a:b' (e.g. --set prompts=0:10)") from None
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ConfigError(f"geneval: prompt indices {bad} are outside 0..{n - 1} (--set prompts=...)")
    return idx


def generate_items(prompts_spec: Any, samples_per_prompt: int) -> list[WorkItem]:
    """One item per (prompt, sample), prompt-major, payload = what the adapter and the folder writer need."""
    prompts = load_prompts()
    items = []
    for p in select_prompts(prompts_spec, len(prompts)):
        for s in range(samples_per_prompt):
            items.append(WorkItem(id=f"{p:05d}/{s:04d}", payload={"prompt_index": p, "sample_index": s,
                                                                  "prompt": prompts[p]["prompt"],
                                                                  "file": sample_relpath(p, s)}))
    return items


def detect_items(scan: FolderScan, sanity_gate: bool) -> list[WorkItem]:
    """The gate images first (when ``sanity_gate``), then one item per PNG sample the official scorer would read."""
    items = [WorkItem(id=i, payload={"gate": True}) for i in gate_item_ids()] if sanity_gate else []
    for pf in scan.prompts:
        for path in pf.samples:
            rel = scan.relpath(path)
            items.append(WorkItem(id=f"img/{rel}", payload={"file": rel, "prompt_index": pf.index,
                                                            "metadata": pf.metadata}))
    return items
