"""plan -> validate -> shard -> skip finished -> batch -> run -> append records -> aggregate.

Why the runner owns the loop: suites and adapters stay pure functions of their inputs, and every
guarantee a result needs (items planned up front and stored in ``plan.jsonl``, per-item seeds,
resumability after SIGKILL, identical numbers for any batch size or shard count) is implemented
once, here, and tested once.

Aggregation reads only files (the manifest, ``plan.jsonl`` and the records of every shard), so it
can run in the same process, on rank 0 after a torchrun barrier, or later as ``dcar-bench
aggregate`` on a machine that has neither the dataset nor the weights. This module never writes
Markdown: :mod:`harness.jobs` adds the report.
"""
from __future__ import annotations

import difflib
import inspect
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness import registry
from harness.api import Adapter, IncompleteRunError, RunContext, RunManifest, Suite, UserError, WorkItem
from harness.io import bytes_sha256, canonical_json, json_roundtrip, remove_stale_temp_files
from harness.records import RecordWriter, read_all, shard_filename
from harness.runner.config import ConfigError, merge_config, parse_set, set_dotted
from harness.runner.shard import Shard, resolve_shard
from harness.store import RunStore, flatten, plan_bytes

MANIFEST_FORMAT = 2  # 2: plan.jsonl + plan_sha256 over its bytes

__all__ = ["run", "aggregate", "RunResult", "RunError", "IncompleteRunError"]


class RunError(UserError, RuntimeError):
    """A run cannot proceed (bad adapter/suite pairing, a suite planned nothing or returned bad records...)."""


@dataclass
class RunResult:
    run_dir: Path
    shard: Shard
    planned: int  # items in the whole plan
    in_shard: int  # items assigned to this process
    skipped: int  # of those, already recorded before this invocation
    completed: int  # recorded by this invocation
    summary: dict[str, Any] | None  # None if this process did not aggregate
    report: Path | None


# --------------------------------------------------------------------------- building blocks


def resolve_suite_class(name: str) -> type[Suite]:
    cls = registry.resolve("suite", name)
    if not (isinstance(cls, type) and issubclass(cls, Suite)):
        raise RunError(f"registry entry suite {name!r} is {cls!r}, not a harness.api.Suite subclass")
    return cls


def build_config(
    suite_cls: type[Suite],
    config_file: str | os.PathLike | None = None,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Suite defaults + config file + ``--set`` overrides, then the ``--seed`` / ``--batch-size`` flags."""
    flags: dict[str, Any] = {}
    if seed is not None:
        flags["seed"] = int(seed)
    if batch_size is not None:
        flags["batch_size"] = int(batch_size)
    merged = merge_config(suite_cls.default_config(), config_file, overrides)
    if flags:
        merged = merge_config(merged, None, flags)
    return json_roundtrip(merged)


def check_plan(items: Sequence[WorkItem], suite_name: str) -> list[WorkItem]:
    items = list(items)
    if not items:
        raise RunError(f"suite {suite_name!r} planned no items; check its config")
    seen: set[str] = set()
    for it in items:
        if not isinstance(it, WorkItem) or not isinstance(it.id, str) or not it.id:
            raise RunError(f"suite {suite_name!r} planned an invalid item {it!r} (need WorkItem with a non-empty id)")
        if it.id in seen:
            raise RunError(f"suite {suite_name!r} planned item id {it.id!r} twice; item ids must be unique")
        seen.add(it.id)
    return items


def make_adapter(adapter_name: str, suite_cls: type[Suite], options: Mapping[str, Any]) -> Adapter:
    """Registry name + ``model.*`` options -> adapter instance, with clear errors for mismatches."""
    cls = registry.resolve("adapter", adapter_name)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise RunError(f"registry entry adapter {adapter_name!r} is {cls!r}, not a harness.api.Adapter subclass")
    if suite_cls.adapter_kind and cls.kind != suite_cls.adapter_kind:
        raise RunError(f"suite {suite_cls.name!r} needs a {suite_cls.adapter_kind} adapter, but {adapter_name!r} "
                       f"is a {cls.kind or 'kind-less'} adapter")
    options = dict(options or {})
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        sig = inspect.signature(cls).parameters
        params = [p for p in sig if p not in ("self", "args", "kwargs")]
        unknown = sorted(k for k in options if k not in sig) or sorted(options)
        close = difflib.get_close_matches(unknown[0], params, n=1, cutoff=0.6)
        hint = f" did you mean model.{close[0]}?" if close else ""
        raise RunError(f"adapter {adapter_name!r} does not accept options {', '.join(f'model.{k}' for k in unknown)} "
                       f"({exc});{hint} its options are: {', '.join(params) or '(none)'}. Set them with "
                       f"--set model.<name>=value") from None
    try:
        return cls(**options)
    except UserError:
        raise
    except (ValueError, TypeError) as exc:
        raise RunError(f"adapter {adapter_name!r} refused its options ({', '.join(f'model.{k}' for k in options) or 'none'}):"
                       f" {exc}") from exc


def _suite_libraries(*objs: Any) -> list[str]:
    libs: list[str] = []
    for o in objs:
        libs += list(getattr(o, "libraries", ()) or ())
    return libs


# --------------------------------------------------------------------------- distributed


class _Distributed:
    """A gloo process group when launched by torchrun with WORLD_SIZE > 1 (barrier only)."""

    def __init__(self, shard: Shard):
        self.active = False
        self.owned = False
        if not (shard.from_torchrun and shard.count > 1) or "MASTER_ADDR" not in os.environ:
            return  # RANK/WORLD_SIZE without a rendezvous address: independent shards, no barrier
        import torch.distributed as dist

        if not dist.is_available():
            return
        if not dist.is_initialized():
            # ranks wait for the slowest shard at the barrier; gloo's 30-minute default is too short for real runs
            import datetime

            timeout_s = float(os.environ.get("DCAR_BENCH_DIST_TIMEOUT_S", 7 * 24 * 3600))
            dist.init_process_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout_s))
            self.owned = True
        self.active = True

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owned = self.active = False


def _select_local_device() -> None:
    """Under torchrun on GPUs, make ``cuda`` mean this process's GPU (LOCAL_RANK)."""
    if "LOCAL_RANK" not in os.environ or "torch" not in sys.modules:
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())


# --------------------------------------------------------------------------- run


def finished_ids(store: RunStore) -> set[str]:
    """Item ids with a complete record in any shard file (truncated tails do not count)."""
    done: set[str] = set()
    for _, res in read_all(store.records_dir):
        done.update(r["item_id"] for r in res.records)
    return done


def _validate_records(records: Any, batch: Sequence[WorkItem], suite_name: str) -> list[dict[str, Any]]:
    if not isinstance(records, list) or len(records) != len(batch):
        n = len(records) if isinstance(records, list) else type(records).__name__
        raise RunError(f"suite {suite_name!r}.run_batch returned {n} records for {len(batch)} items; "
                       f"it must return one dict per item, in order")
    for rec, it in zip(records, batch):
        if not isinstance(rec, dict):
            raise RunError(f"suite {suite_name!r}: record for {it.id!r} is a {type(rec).__name__}, not a dict")
        if "item_id" in rec and rec["item_id"] != it.id:
            raise RunError(f"suite {suite_name!r}: record for {it.id!r} says item_id={rec['item_id']!r}")
    return records


def build_suite(suite_cls: type[Suite], suite_name: str, config: Mapping[str, Any], stage: str) -> Suite:
    """``suite_cls(config)``; a plain ValueError/TypeError/KeyError of its config checks becomes one ConfigError line."""
    try:
        return suite_cls(config)
    except UserError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"suite {suite_name!r}: invalid config ({stage}): {type(exc).__name__}: {exc}") from exc


def prepare_suite(suite_cls: type[Suite], suite_name: str, config: Mapping[str, Any]) -> tuple[Suite, list[WorkItem]]:
    """Build the suite, plan and validate: everything checkable before a run directory or a model exists."""
    suite = build_suite(suite_cls, suite_name, config, "building the suite")
    items = check_plan(suite.plan(), suite_name)
    suite.validate(items)
    return suite, items


def run(
    suite_name: str,
    adapter_name: str | None,
    out_dir: str | os.PathLike,
    *,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
    shard: Shard | str | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    show_progress: bool = True,
    aggregate_when_done: bool = True,
    reaggregate: bool = False,
    argv: list[str] | None = None,
) -> RunResult:
    """Run (or resume) ``suite_name`` with ``adapter_name`` into ``out_dir``.

    Order: config -> plan -> ``Suite.validate`` -> identity check of an existing run -> shard lock ->
    adapter -> manifest + plan.jsonl -> items -> aggregate. Every check that needs no model happens
    before the model loads, and a run that fails before its manifest is written leaves no directory
    behind. A finished run is not re-aggregated unless ``reaggregate``. Returns a :class:`RunResult`;
    ``summary`` is set when this process aggregated (single process, torchrun rank 0, or the last
    independent shard to finish).
    """
    suite_cls = resolve_suite_class(suite_name)
    if adapter_name is not None:
        registry.target("adapter", adapter_name)  # a typo fails here, before anything is written
    config = build_config(suite_cls, config_file, overrides, seed=seed, batch_size=batch_size)
    shard = resolve_shard(shard)
    suite, items = prepare_suite(suite_cls, suite_name, config)
    plan_data = plan_bytes(items)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "suite": suite_name,
        "adapter": adapter_name,
        "config": config,
        "seed": config["seed"],
        "protocol": suite.protocol(),
        "metrics": [m.to_dict() for m in suite_cls.metrics],
        "num_items": len(items),
        "plan_sha256": bytes_sha256(plan_data),
    }
    if suite.subject():
        manifest["subject"] = suite.subject()
    store = RunStore(out_dir)
    existed = store.run_dir.exists()
    agg_changes = _aggregate_key_changes(store, suite_cls, config)
    store.check_same_experiment(manifest, check_weights=False,  # before paying for the adapter
                                resume_keys=(*suite_cls.resume_keys, *suite_cls.aggregate_keys))
    store.ensure_writable()
    try:
        return _run_in(store, suite, suite_cls, items, plan_data, manifest, adapter_name, config, shard,
                       show_progress, aggregate_when_done, reaggregate or bool(agg_changes), argv, agg_changes)
    except BaseException:
        if not existed and store.read_manifest() is None:  # failed before it began: leave no debris
            shutil.rmtree(store.run_dir, ignore_errors=True)
        raise


def _run_in(store: RunStore, suite: Suite, suite_cls: type[Suite], items: list[WorkItem], plan_data: bytes,
            manifest: dict[str, Any], adapter_name: str | None, config: Mapping[str, Any], shard: Shard,
            show_progress: bool, aggregate_when_done: bool, reaggregate: bool, argv: list[str] | None,
            agg_changes: Mapping[str, Any] | None = None) -> RunResult:
    suite_name = manifest["suite"]
    mine = shard.select(items)
    done = finished_ids(store)
    todo = [it for it in mine if it.id not in done]
    first_time = store.read_manifest() is None
    if not first_time and not store.plan_path.exists():
        store.write_plan(plan_data)  # lost plan.jsonl: the identity check proved this plan has the stored digest
    if not todo and not first_time and not reaggregate and store.read_summary() is not None:
        if show_progress:
            print(f"{store.run_dir}: all {len(mine)} item(s) of shard {shard} are already done and the run is "
                  f"aggregated; nothing to do (--reaggregate recomputes summary.json and the report)", file=sys.stderr)
        return RunResult(store.run_dir, shard, len(items), len(mine), len(mine), 0, None, None)

    dist = _Distributed(shard)
    path = store.records_dir / shard_filename(shard.index, shard.count)
    try:
        with RecordWriter(path) as writer:  # the shard lock is taken before the model loads
            adapter = None
            need_adapter = suite_cls.adapter_kind is not None or adapter_name is not None
            if need_adapter and (todo or first_time):
                if adapter_name is None:
                    raise RunError(f"suite {suite_name!r} needs a {suite_cls.adapter_kind} adapter: pass --model NAME")
                _select_local_device()
                adapter = make_adapter(adapter_name, suite_cls, config.get("model") or {})
                adapter.set_batch_size(int(config["batch_size"]))
            if adapter is not None:
                manifest["adapter_info"] = adapter.info().to_dict()
                manifest["adapter_class"] = f"{type(adapter).__module__}:{type(adapter).__qualname__}"
            manifest["provenance"] = _provenance(suite_cls, adapter, argv)
            if first_time:
                store.write_plan(plan_data)
                store.prepare(manifest)
            else:  # resuming: same experiment? (weights only checked if the adapter was loaded this time)
                store.check_same_experiment(manifest, check_weights="adapter_info" in manifest,
                                            resume_keys=(*suite_cls.resume_keys, *suite_cls.aggregate_keys))
                remove_stale_temp_files(store.run_dir)
            store.log_invocation({"shard": str(shard), "pid": os.getpid(), "host": socket.gethostname(),
                                  "batch_size": config["batch_size"], "todo": len(todo),
                                  "resume_keys": {k: v for k, v in flatten(config).items()
                                                  if any(k == r or k.startswith(r + ".") for r in suite_cls.resume_keys)},
                                  "skipped": len(mine) - len(todo), "created": manifest["provenance"]["created"],
                                  "command": manifest["provenance"]["command"], "git": manifest["provenance"]["git"]})
            ctx = _context(store, config, shard, show_progress)
            completed = _execute(suite, adapter, mine, todo, ctx, writer, shard, config["batch_size"],
                                 show_progress, suite_name)
            if adapter is not None:
                adapter.close()

        summary = None
        dist.barrier()
        if aggregate_when_done:
            if dist.active:
                if shard.index == 0:
                    summary = aggregate(store.run_dir, show_progress=show_progress, overrides=agg_changes)
            elif shard.count == 1 or not (set(it.id for it in items) - finished_ids(store)):
                summary = aggregate(store.run_dir, show_progress=show_progress, overrides=agg_changes)
            elif show_progress:
                missing = len(set(it.id for it in items) - finished_ids(store))
                print(f"shard {shard} finished; {missing} items of other shards are still missing. "
                      f"When all shards are done: dcar-bench aggregate {store.run_dir}", file=sys.stderr)
        dist.barrier()
    finally:
        dist.close()
    return RunResult(store.run_dir, shard, len(items), len(mine), len(mine) - len(todo), completed, summary, None)


def _aggregate_key_changes(store: RunStore, suite_cls: type[Suite], config: Mapping[str, Any]) -> dict[str, Any]:
    """Aggregation-only keys whose requested value differs from the stored run's: applied as aggregate overrides."""
    old = store.read_manifest()
    if old is None:
        return {}
    before, after = flatten(old.get("config") or {}), flatten(config)
    return {k: v for k, v in after.items() if _under(k, suite_cls.aggregate_keys) and before.get(k, "<absent>") != v}


def _provenance(suite_cls: type[Suite], adapter: Adapter | None, argv: list[str] | None) -> dict[str, Any]:
    from harness.provenance import collect

    return collect(_suite_libraries(suite_cls, adapter), argv)


def _context(store: RunStore, config: Mapping[str, Any], shard: Shard, show_progress: bool) -> RunContext:
    from harness.cache import Cache

    stored = store.read_manifest()
    return RunContext(run_dir=store.run_dir, config=config, seed=int(config["seed"]), rank=shard.index,
                      world_size=shard.count, cache=Cache(), show_progress=show_progress,
                      manifest=RunManifest.from_dict(stored) if stored else None,
                      batch_size=int(config.get("batch_size", 1)))


def batches_to_run(mine: Sequence[WorkItem], todo: Sequence[WorkItem], batch_size: int) -> list[list[WorkItem]]:
    """The shard's items cut at fixed plan positions (0..b-1, b..2b-1, ...), keeping each batch with a missing item.

    Why fixed positions: an item's floating-point result may depend on the batch's shape and on its row in
    the batch (GEMM blocking). A resumed run therefore re-runs the whole batch an unrecorded item belonged
    to, so every item is computed with exactly the neighbours, shape and row of an uninterrupted run; the
    items of that batch that already have a record are recomputed but not written again.
    """
    missing = {it.id for it in todo}
    out = []
    for start in range(0, len(mine), batch_size):
        batch = list(mine[start:start + batch_size])
        if any(it.id in missing for it in batch):
            out.append(batch)
    return out


def _execute(suite: Suite, adapter: Adapter | None, mine: list[WorkItem], todo: list[WorkItem], ctx: RunContext,
             writer: RecordWriter, shard: Shard, batch_size: int, show_progress: bool, suite_name: str) -> int:
    from tqdm.auto import tqdm

    completed = 0
    missing = {it.id for it in todo}
    with tqdm(total=len(todo), desc=f"{suite_name} [shard {shard}]", unit="item",
              disable=not show_progress or not todo, position=shard.index, leave=True) as bar:
        for batch in batches_to_run(mine, todo, batch_size):
            ctx.replay_ids = frozenset(it.id for it in batch if it.id not in missing)
            records = _validate_records(suite.run_batch(batch, adapter, ctx), batch, suite_name)
            new = 0
            for it, rec in zip(batch, records):
                if it.id not in missing:  # recorded before this invocation: recomputed only as context
                    continue
                rec = dict(rec)
                rec["item_id"] = it.id
                rec["seed"] = ctx.item_seed(it.id)
                writer.append(rec)
                completed += 1
                new += 1
            bar.update(new)
    ctx.replay_ids = frozenset()
    return completed


# --------------------------------------------------------------------------- aggregate


def collect_records(store: RunStore, items: Sequence[WorkItem]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Union of all shard files, deduplicated by item_id, in plan order; raises on gaps or strangers."""
    by_id: dict[str, dict[str, Any]] = {}
    stats = {"files": 0, "duplicates": 0, "truncated_tails": 0}
    for _, res in read_all(store.records_dir):
        stats["files"] += 1
        stats["truncated_tails"] += int(res.truncated_tail)
        for rec in res.records:
            if rec["item_id"] in by_id:
                stats["duplicates"] += 1
                continue
            by_id[rec["item_id"]] = rec
    planned = [it.id for it in items]
    strangers = sorted(set(by_id) - set(planned))
    if strangers:
        raise RunError(f"{store.records_dir} holds records for {len(strangers)} items that are not in the plan "
                       f"(e.g. {strangers[:3]}); the records do not belong to this run's config")
    missing = [i for i in planned if i not in by_id]
    if missing:
        raise IncompleteRunError(
            f"{store.run_dir}: {len(missing)} of {len(planned)} planned items have no record "
            f"(e.g. {missing[:3]}). Finish the run first: rerun the same `dcar-bench run` command (it resumes), "
            f"or run the missing shards.")
    return [by_id[i] for i in planned], stats


def records_digest(records: Sequence[Mapping[str, Any]]) -> str:
    return bytes_sha256("".join(canonical_json(rec) + "\n" for rec in records).encode("utf-8"))


def aggregate_config(suite_cls: type[Suite], config: Mapping[str, Any],
                     overrides: Iterable[str] | Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored config with aggregation-only overrides applied (keys the suite lists in ``aggregate_keys``).

    Such keys change no record (e.g. a corrected ``reference.stats_path``), so a finished run can be
    re-aggregated with them instead of being redone; any other key is refused, naming the allowed ones.
    """
    if not overrides:
        return dict(config), {}
    pairs = list(overrides.items()) if isinstance(overrides, Mapping) else [parse_set(e) for e in overrides]
    allowed = tuple(getattr(suite_cls, "aggregate_keys", ()) or ())
    known = set(flatten(config))
    merged = json_roundtrip(dict(config))
    applied = {}
    for key, value in pairs:
        if not _under(key, allowed):
            if key not in known and not any(k.startswith(key + ".") for k in known):
                raise ConfigError(f"`aggregate --set {key}=...`: unknown config key {key!r} of suite "
                                  f"{suite_cls.name!r}. Keys aggregate accepts: {', '.join(allowed) or '(none)'}")
            raise ConfigError(f"`aggregate --set {key}=...`: {key!r} changes records, not only the aggregate; "
                              f"rerun the suite into a new --out instead. Keys aggregate accepts for suite "
                              f"{suite_cls.name!r}: {', '.join(allowed) or '(none)'}")
        set_dotted(merged, key, value)
        applied[key] = value
    return merged, applied


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def aggregate(out_dir: str | os.PathLike, *, show_progress: bool = False,
              overrides: Iterable[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Aggregate a run directory from its files (manifest, plan.jsonl, records); writes ``summary.json``.

    Never calls the suite's ``plan()``: the dataset and the model weights need not exist any more.
    """
    store = RunStore(out_dir)
    manifest = store.require_manifest()
    suite_cls = resolve_suite_class(manifest["suite"])
    items = store.read_plan(manifest.get("plan_sha256", ""))
    if len(items) != manifest.get("num_items", len(items)):
        raise RunError(f"{store.plan_path} holds {len(items)} items, the manifest says {manifest.get('num_items')}")
    if show_progress:
        print(f"aggregating {store.run_dir}: reading the records of {len(items)} item(s)", file=sys.stderr)
    records, stats = collect_records(store, items)
    new = dict(aggregate_config(suite_cls, manifest["config"], overrides)[1]) if overrides else {}
    kept = {**store.read_aggregate_overrides(), **new}  # earlier corrections stay until changed again
    config, applied = aggregate_config(suite_cls, manifest["config"], kept)
    if new:
        store.write_aggregate_overrides(applied)
    suite = build_suite(suite_cls, manifest["suite"], config, "aggregating")
    from harness.cache import Cache

    ctx = RunContext(run_dir=store.run_dir, config=config, seed=int(config.get("seed", 0)), cache=Cache(),
                     show_progress=show_progress, manifest=RunManifest.from_dict(manifest),
                     batch_size=int(config.get("batch_size", 1)))
    results = suite.aggregate(records, ctx)
    info = manifest.get("adapter_info") or {}
    summary = {
        "suite": manifest["suite"],
        "adapter": manifest.get("adapter"),
        "real_weights": bool(info.get("real_weights", False)),
        "num_items": len(records),
        "records_sha256": records_digest(records),
        "record_files": stats["files"],
        "duplicate_records": stats["duplicates"],
        "metrics": manifest.get("metrics", []),
        "aggregate_overrides": applied,
        "results": json_roundtrip(results),
    }
    store.write_summary(summary)
    return summary
