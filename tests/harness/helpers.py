"""Helpers shared by the foundation tests (imported as a plain module: tests/ has no packages)."""
from __future__ import annotations

import json
from pathlib import Path


def read_records(run_dir: Path) -> list[dict]:
    """All records of a run dir, sorted by item_id (for comparisons across runs)."""
    out = []
    for p in sorted((Path(run_dir) / "records").glob("shard-*.jsonl")):
        out += [json.loads(line) for line in p.read_text().splitlines()]
    return sorted(out, key=lambda r: r["item_id"])
