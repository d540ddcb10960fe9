"""The runner: plan -> shard -> skip finished -> batch -> records -> aggregate.

``run`` and ``aggregate`` are imported lazily so that importing ``harness.runner.context``
(which ``harness.cache`` does) stays cheap and free of import cycles.
"""
from __future__ import annotations

from typing import Any

__all__ = ["run", "aggregate", "RunResult"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from harness.runner import core

        return getattr(core, name)
    raise AttributeError(f"module 'harness.runner' has no attribute {name!r}")
