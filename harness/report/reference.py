"""The paper's numbers, shipped with the package, for side-by-side tables.

Source: ``harness/report/data/reference_numbers.csv`` (see SOURCE.md there).
Kept free of pandas so reports work with the core install.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class ReferenceNumber:
    table: str
    model: str
    metric: str
    value: float | None  # None for "–" cells
    source: str


def _parse(value: str) -> float | None:
    value = value.strip()
    if value in ("", "-", "–", "—"):
        return None
    try:
        return float(value.rstrip("*"))
    except ValueError:
        return None


@lru_cache(maxsize=1)
def load_reference_numbers() -> tuple[ReferenceNumber, ...]:
    text = resources.files("harness.report").joinpath("data/reference_numbers.csv").read_text(encoding="utf-8")
    rows = []
    for row in csv.DictReader(text.splitlines()):
        rows.append(ReferenceNumber(row["table"], row["model"], row["metric"], _parse(row["value"]), row["source"]))
    return tuple(rows)


def reference_table(table: str) -> dict[str, dict[str, float | None]]:
    """``{model: {metric: value}}`` for one table id, e.g. ``"Table3_GenEval"``."""
    out: dict[str, dict[str, float | None]] = {}
    found = False
    for r in load_reference_numbers():
        if r.table == table:
            found = True
            out.setdefault(r.model, {})[r.metric] = r.value
    if not found:
        known = sorted({r.table for r in load_reference_numbers()})
        raise KeyError(f"no reference table {table!r}; known: {', '.join(known)}")
    return out


def reference_value(table: str, model: str, metric: str) -> float | None:
    return reference_table(table).get(model, {}).get(metric)
