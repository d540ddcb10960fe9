"""Registry targets for the runner tests: a suite with aggregate-only keys and a validate hook,
an adapter that counts constructions (to prove checks run before a model loads)."""
from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping, Sequence

from baselines.dummy import DummyTextToImage
from harness.api import DataError, Suite, WorkItem

CONSTRUCTED: list[str] = []


class CountingT2I(DummyTextToImage):
    """dummy-t2i that records each construction and the batch size it was told."""

    batch_sizes: ClassVar[list[int]] = []

    def __init__(self, **kw: Any):
        CONSTRUCTED.append("counting-t2i")
        super().__init__(**kw)

    def set_batch_size(self, batch_size: int) -> None:
        CountingT2I.batch_sizes.append(batch_size)


class TinySuite(Suite):
    """n items, records their seed; aggregate reports n and the label (an aggregate-only key)."""

    name = "tiny"
    adapter_kind = None
    aggregate_keys: ClassVar[tuple[str, ...]] = ("report",)
    plan_calls: ClassVar[list[int]] = []

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return {"n": 3, "fail_validate": False, "report": {"label": "a"}, "batch_size": 2}

    def plan(self) -> list[WorkItem]:
        TinySuite.plan_calls.append(1)
        return [WorkItem(f"i{k}", {"k": k}) for k in range(int(self.config["n"]))]

    def validate(self, items: Sequence[WorkItem]) -> None:
        if self.config["fail_validate"]:
            raise DataError("input /data/x.png is corrupt; fix: --set fail_validate=false")

    def run_batch(self, items, adapter, ctx) -> list[dict[str, Any]]:
        return [{"k": it.payload["k"]} for it in items]

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx) -> dict[str, Any]:
        records = list(records)
        return {"n": len(records), "label": self.config["report"]["label"],
                "manifest_suite": ctx.manifest.suite if ctx.manifest else None}
