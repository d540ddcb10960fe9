"""Profiling suite: latency (batch 1) and throughput (batch 16) of any registered text-to-image adapters.

What is timed: one ``adapter.generate(prompts, seeds)`` call, i.e. prompt strings -> decoded images
(tokenizer, text encoder, every step with CFG, decoder), between explicit synchronisations (CUDA events
on a GPU). Model loading happens before the warm-up; PNG encoding and disk I/O never happen.

Why every item is one timed iteration of one model (``<batch>-it<r>-<label>``): the runner records each
item as it finishes, so a killed run keeps every finished iteration and model and resumes with the rest,
and the plan's order *is* the interleaving -- round r of every model before round r + 1 of any, so the
noise of a shared machine hits all models alike and the ratios between them are measured in the same run.
Warm-up iterations are not items: each process runs ``warmup`` untimed calls per model and batch size
before its first timed one (a resumed process warms up again), and each record says how many preceded it.

A model that fails to load or to generate is recorded as failed (its error in every one of its items)
and the others go on; the summary lists it under failures. Per-component times come from separate
breakdown iterations (``harness.profiling.ComponentTimer`` synchronises every component call, which
would distort the end-to-end time).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from harness.api import Adapter, MetricSpec, RunContext, Suite, UserError, WorkItem
from harness.runner.config import ConfigError, fill_dataclass, suite_yaml

DTYPES = ("auto", "float16", "bfloat16", "float32")


class ProfileRunError(UserError, RuntimeError):
    """The profile suite was given something it cannot run (e.g. --model, which it does not use)."""


# --------------------------------------------------------------------------- typed config (suites/profile.yaml)


@dataclass(frozen=True)
class ModelEntry:
    """One model to profile: a registered adapter with its options, under a unique label."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    generate: dict[str, Any] = field(default_factory=dict)
    paper_row: str | None = None  # "TABLE/MODEL" in the paper's reference numbers

    def __post_init__(self) -> None:
        if not self.label or "/" in self.label or any(c.isspace() for c in self.label):
            raise ValueError(f"models: label {self.label!r} must be non-empty, without '/' or spaces")
        if self.paper_row is not None and "/" not in self.paper_row:
            raise ValueError(f"models[{self.label}].paper_row must look like 'Table2_MJHQ30K/DC-AR', "
                             f"got {self.paper_row!r}")


@dataclass(frozen=True)
class ProfileConfig:
    """The whole suite config; every default lives in ``suites/profile.yaml``."""

    models: list[ModelEntry]
    reference_model: str | None
    latency_batch_sizes: list[int]
    throughput_batch_sizes: list[int]
    warmup: int
    iterations: int
    breakdown_iterations: int
    interleave: bool
    prompts: list[str]
    device: str
    dtype: str
    threads: int | None
    protocol: dict[str, Any]

    def __post_init__(self) -> None:
        labels = [m.label for m in self.models]
        if not labels:
            raise ValueError("models: list at least one model. Fix: --set 'models=[{label: dc-ar, name: dc-ar}]'")
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"models: labels must be unique, {dup} repeat. Fix: give each entry its own label")
        if self.reference_model is not None and self.reference_model not in labels:
            raise ValueError(f"reference_model {self.reference_model!r} is not a model label ({', '.join(labels)}). "
                             f"Fix: --set reference_model={labels[0]}")
        for key in ("latency_batch_sizes", "throughput_batch_sizes"):
            if any(b < 1 for b in getattr(self, key)):
                raise ValueError(f"{key} must hold positive batch sizes, got {getattr(self, key)}")
        if not (self.latency_batch_sizes or self.throughput_batch_sizes):
            raise ValueError("latency_batch_sizes and throughput_batch_sizes are both empty. Fix: --set "
                             "latency_batch_sizes=[1]")
        if self.warmup < 0 or self.iterations < 1 or self.breakdown_iterations < 0:
            raise ValueError(f"need warmup >= 0, iterations >= 1, breakdown_iterations >= 0; got {self.warmup}, "
                             f"{self.iterations}, {self.breakdown_iterations}. Fix: --set iterations=20")
        if not self.prompts or not all(isinstance(p, str) for p in self.prompts):
            raise ValueError("prompts must be a non-empty list of strings")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}. Fix: --set dtype=auto")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be a positive integer or null, got {self.threads}")

    @property
    def batch_sizes(self) -> list[int]:
        return list(dict.fromkeys([*self.latency_batch_sizes, *self.throughput_batch_sizes]))

    def entry(self, label: str) -> ModelEntry:
        return next(m for m in self.models if m.label == label)


# --------------------------------------------------------------------------- one loaded model


class _Loaded:
    """An adapter built once per process, its warm-up state per batch size, or the error that stopped it."""

    def __init__(self, adapter: Adapter | None, error: str | None, info: dict[str, Any] | None):
        self.adapter = adapter
        self.error = error
        self.info = info
        self.warmed: dict[int, int] = {}  # batch size -> warm-up calls done in this process
        self.timed: dict[int, int] = {}  # batch size -> timed calls done in this process

    def close(self) -> None:
        if self.adapter is not None:
            self.adapter.close()
            self.adapter = None


def _error_text(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 600 else text[:599] + "…"


class ProfileSuite(Suite):
    name = "profile"
    adapter_kind = None  # the models come from the config (many per run), not from --model
    metrics = (
        MetricSpec("latency_s", "lower", {"batch_size": "latency_batch_sizes[0]", "statistic": "median"},
                   reference="seconds per generate() call between device synchronisations"),
        MetricSpec("throughput_img_per_s", "higher", {"batch_size": "throughput_batch_sizes[0]",
                                                      "statistic": "images / total timed seconds"}),
        MetricSpec("latency_ratio_to_reference", "lower", {"definition": "latency / reference model's latency"}),
        MetricSpec("peak_memory_bytes", "lower", {"cuda": "max_memory_allocated", "cpu": "peak RSS of the call"}),
    )

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.cfg = fill_dataclass(ProfileConfig, {**self.default_config(), **dict(config)}, source="suite profile",
                                  ignore=("model", "seed", "batch_size"))
        self._loaded: dict[str, _Loaded] = {}
        self._env: dict[str, Any] | None = None

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list[Any]:
        """Files of the listed models that run on real weights (random-init and tiny ones need none).

        All optional: a model whose files are missing is reported as failed and the others still run.
        """
        import dataclasses

        from harness import registry

        out = []
        for m in (config or cls.default_config()).get("models") or []:
            options = m.get("options") or {}
            if options.get("random_init_seed") is not None or options.get("config") == "tiny":
                continue
            try:
                adapter_cls = registry.resolve("adapter", m["name"])
                reqs = adapter_cls.requirements()
            except Exception:  # noqa: BLE001 - doctor lists the adapter's own import problem under its name
                continue
            out += [dataclasses.replace(r, name=f"{m['label']}: {r.name}", optional=True) for r in reqs]
        return out

    def protocol(self) -> dict[str, Any]:
        return dict(self.cfg.protocol)

    def subject(self) -> str | None:
        return "profile of " + ", ".join(f"{m.label} ({m.name})" for m in self.cfg.models)

    # ------------------------------------------------------------------ plan

    def plan(self) -> list[WorkItem]:
        cfg = self.cfg
        kinds = [("it", "timed", r) for r in range(cfg.iterations)] + \
                [("bd", "breakdown", k) for k in range(cfg.breakdown_iterations)]

        def item(batch: int, tag: str, kind: str, r: int, label: str) -> WorkItem:
            return WorkItem(id=f"b{batch:03d}-{tag}{r:03d}-{label}",
                            payload={"model": label, "batch_size": batch, "kind": kind, "iteration": r})

        items = []
        if cfg.interleave:
            for batch in cfg.batch_sizes:
                for tag, kind, r in kinds:
                    items += [item(batch, tag, kind, r, m.label) for m in cfg.models]
        else:
            for m in cfg.models:
                for batch in cfg.batch_sizes:
                    items += [item(batch, tag, kind, r, m.label) for tag, kind, r in kinds]
        return items

    def validate(self, items: Sequence[WorkItem]) -> None:
        from harness import registry

        for m in self.cfg.models:
            try:
                registry.target("adapter", m.name)
            except UserError as exc:
                raise ConfigError(f"models[{m.label}].name: {exc}") from None

    # ------------------------------------------------------------------ run

    def _device(self) -> str:
        from harness.profiling import resolve_device

        return resolve_device(self.cfg.device)

    def _dtype(self) -> str:
        if self.cfg.dtype != "auto":
            return self.cfg.dtype
        return "float16" if self._device().startswith("cuda") else "float32"

    def _environment(self) -> dict[str, Any]:
        if self._env is None:
            import torch

            from harness.profiling import environment

            if self.cfg.threads:
                torch.set_num_threads(self.cfg.threads)
            self._env = {**environment(self._device()), "dtype": self._dtype()}
        return self._env

    def _load(self, label: str) -> _Loaded:
        """The adapter of ``label``, built on first use (device/dtype given when it takes them and they are unset)."""
        if label in self._loaded:
            return self._loaded[label]
        if not self.cfg.interleave:  # one model in memory at a time
            for other in list(self._loaded):
                self._loaded.pop(other).close()
        entry = self.cfg.entry(label)
        from harness import registry
        from harness.runner.core import make_adapter

        try:
            cls = registry.resolve("adapter", entry.name)
            if getattr(cls, "kind", None) != "text_to_image":
                raise ProfileRunError(f"models[{label}]: adapter {entry.name!r} is not a text-to-image adapter")
            params = inspect.signature(cls).parameters
            options = dict(entry.options)
            if "device" in params and "device" not in options:
                options["device"] = self._device()
            if "dtype" in params and "dtype" not in options:
                options["dtype"] = self._dtype()
            adapter = make_adapter(entry.name, type(self), options)
            loaded = _Loaded(adapter, None, adapter.info().to_dict())
        except Exception as exc:  # noqa: BLE001 - a failing model is reported, the others go on
            loaded = _Loaded(None, _error_text(exc), None)
        self._loaded[label] = loaded
        return loaded

    def _inputs(self, batch: int, ctx: RunContext) -> tuple[list[str], list[int]]:
        prompts = [self.cfg.prompts[i % len(self.cfg.prompts)] for i in range(batch)]
        return prompts, [ctx.seed * 1000 + i for i in range(batch)]

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        if adapter is not None:
            raise ProfileRunError("the profile suite takes its models from the config, not --model. Fix: drop "
                                  "--model and list them under `models` (e.g. --config suites/profile_quick.yaml)")
        return [{"replayed": True} if it.id in ctx.replay_ids else self._run_item(it, ctx) for it in items]

    def _run_item(self, item: WorkItem, ctx: RunContext) -> dict[str, Any]:
        from harness.profiling import ComponentTimer, PeakMemory, find_components, load_average, time_call

        label, batch, kind = item.payload["model"], int(item.payload["batch_size"]), item.payload["kind"]
        entry = self.cfg.entry(label)
        env = self._environment()
        rec: dict[str, Any] = {"model": label, "adapter": entry.name, "batch_size": batch, "kind": kind,
                               "iteration": int(item.payload["iteration"]), "options": dict(entry.options),
                               "generate": dict(entry.generate), "environment": env}
        loaded = self._load(label)
        if loaded.error is not None:
            return {**rec, "status": "failed", "error": loaded.error}
        prompts, seeds = self._inputs(batch, ctx)

        def call():
            return loaded.adapter.generate(prompts, seeds, **entry.generate)

        try:
            import torch

            with torch.inference_mode():
                while loaded.warmed.get(batch, 0) < self.cfg.warmup:
                    call()
                    loaded.warmed[batch] = loaded.warmed.get(batch, 0) + 1
                rec["warmup_iterations_before"] = loaded.warmed.get(batch, 0)
                rec["load_average"] = load_average()
                if kind == "breakdown":
                    with ComponentTimer(find_components(loaded.adapter), self._device()) as timer:
                        timing = time_call(call, self._device())
                    rec["components"] = dict(timer.seconds)
                    rec["component_calls"] = dict(timer.calls)
                else:
                    rec["timed_iterations_before"] = loaded.timed.get(batch, 0)
                    # on CPU a component wrapper costs two perf_counter calls and no synchronisation, so the
                    # timed iterations carry the breakdown too; on CUDA it would add syncs, so they do not
                    parts = find_components(loaded.adapter) if not self._device().startswith("cuda") else []
                    with PeakMemory(self._device()) as mem, ComponentTimer(parts, self._device()) as timer:
                        timing = time_call(call, self._device())
                    loaded.timed[batch] = loaded.timed.get(batch, 0) + 1
                    if parts:
                        rec["components"] = dict(timer.seconds)
                        rec["component_calls"] = dict(timer.calls)
                    rec["peak_memory_bytes"] = mem.peak_bytes
                    rec["memory_kind"] = mem.kind
        except Exception as exc:  # noqa: BLE001 - reported; this model stops, the others go on
            loaded.error = _error_text(exc)
            loaded.close()
            return {**rec, "status": "failed", "error": loaded.error}
        images = timing.result
        rec.update({"status": "ok", "seconds": timing.seconds, "wall_seconds": timing.wall_seconds,
                    "timing_method": timing.method, "images": batch, "images_per_s": batch / timing.seconds,
                    "output_shape": list(getattr(images, "shape", ())), "adapter_info": loaded.info})
        return rec

    # ------------------------------------------------------------------ aggregate

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        return aggregate_profile(self.cfg, [r for r in records if not r.get("replayed")])

    def render(self, summary: Mapping[str, Any]) -> str:
        return render_profile(summary)


# --------------------------------------------------------------------------- aggregation (files only)


def _paper_numbers(paper_row: str | None) -> dict[str, float]:
    """The paper's latency / throughput cells of ``TABLE/MODEL`` (empty when none)."""
    if not paper_row:
        return {}
    from harness.report.reference import load_reference_numbers

    table, _, model = paper_row.partition("/")
    out = {}
    for ref in load_reference_numbers():
        if ref.table == table and ref.model == model and ref.value is not None:
            if "latency" in ref.metric:
                out["latency_s"] = ref.value
            elif "throughput" in ref.metric:
                out["throughput_img_per_s"] = ref.value
    return out


def _batch_stats(recs: list[Mapping[str, Any]]) -> dict[str, Any]:
    from harness.profiling import mean, summarize

    timed = [r for r in recs if r["kind"] == "timed"]
    seconds = [float(r["seconds"]) for r in timed]
    out: dict[str, Any] = {"latency_s": summarize(seconds)}
    if seconds:
        images = sum(int(r["images"]) for r in timed)
        out["images"] = images
        out["total_seconds"] = sum(seconds)
        out["throughput_img_per_s"] = images / sum(seconds)
        peaks = [r.get("peak_memory_bytes") for r in timed if r.get("peak_memory_bytes") is not None]
        out["peak_memory_bytes"] = max(peaks) if peaks else None
        out["memory_kind"] = timed[-1].get("memory_kind")
        out["warmup_iterations"] = max(int(r.get("warmup_iterations_before", 0)) for r in timed)
        out["seconds_by_iteration"] = {int(r["iteration"]): float(r["seconds"]) for r in timed}
    bd = [r for r in recs if r["kind"] == "breakdown" and r.get("components") is not None]
    source = "breakdown iterations"
    if not bd:  # CPU runs also time components inside the timed iterations
        bd, source = [r for r in timed if r.get("components") is not None], "timed iterations (CPU)"
    if bd:
        names = sorted({k for r in bd for k in r["components"]})
        parts = {k: mean(float(r["components"].get(k, 0.0)) for r in bd) for k in names}
        total = mean(float(r["seconds"]) for r in bd)
        parts["other"] = max(0.0, total - sum(parts.values()))
        out["breakdown_s"] = parts
        out["breakdown_total_s"] = total
        out["breakdown_iterations"] = len(bd)
        out["breakdown_source"] = source
    return out


def aggregate_profile(cfg: ProfileConfig, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per model: latency and throughput statistics per batch size, breakdown, ratios to the reference, paper cells."""
    from harness.profiling import paired_ratios, percentile, ratio

    lat_b = cfg.latency_batch_sizes[0] if cfg.latency_batch_sizes else None
    thr_b = cfg.throughput_batch_sizes[0] if cfg.throughput_batch_sizes else None
    models: dict[str, Any] = {}
    failures: dict[str, Any] = {}
    envs = [r["environment"] for r in records if r.get("environment")]
    for entry in cfg.models:
        recs = [r for r in records if r["model"] == entry.label]
        ok = [r for r in recs if r.get("status") == "ok"]
        bad = [r for r in recs if r.get("status") != "ok"]
        if bad:
            failures[entry.label] = {"adapter": entry.name, "failed_items": len(bad), "of": len(recs),
                                     "error": bad[0].get("error")}
        info = next((r["adapter_info"] for r in reversed(ok) if r.get("adapter_info")), None) or {}
        per_batch = {str(b): _batch_stats([r for r in ok if int(r["batch_size"]) == b]) for b in cfg.batch_sizes}
        m: dict[str, Any] = {
            "adapter": entry.name, "options": dict(entry.options), "generate": dict(entry.generate),
            "status": "ok" if not bad else ("failed" if not ok else "partly failed"),
            "resolution": info.get("resolution"), "dtype": info.get("dtype"),
            "steps": next((entry.generate[k] for k in ("num_steps", "num_inference_steps", "steps")
                           if k in entry.generate), info.get("steps")),
            "num_params": info.get("num_params"), "real_weights": info.get("real_weights"),
            "speed_options": (info.get("extra") or {}).get("speed_options"),
            "config": (info.get("extra") or {}).get("config") or entry.options.get("config"),
            "batches": per_batch, "paper_row": entry.paper_row, "paper": _paper_numbers(entry.paper_row),
        }
        lat = per_batch.get(str(lat_b), {}) if lat_b is not None else {}
        thr = per_batch.get(str(thr_b), {}) if thr_b is not None else {}
        m["latency_s"] = (lat.get("latency_s") or {}).get("median")
        m["throughput_img_per_s"] = thr.get("throughput_img_per_s")
        models[entry.label] = m
    ref_label = cfg.reference_model
    ref = models.get(ref_label) if ref_label else None
    for m in models.values():
        if ref is None:
            continue
        m["latency_ratio_to_reference"] = ratio(m["latency_s"], ref["latency_s"])
        m["reference_throughput_ratio"] = ratio(ref["throughput_img_per_s"], m["throughput_img_per_s"])
        if lat_b is not None:
            pairs = paired_ratios((m["batches"][str(lat_b)].get("seconds_by_iteration") or {}),
                                  (ref["batches"][str(lat_b)].get("seconds_by_iteration") or {}))
            m["paired_latency_ratio_median"] = percentile(pairs, 50) if pairs else None
            m["paired_rounds"] = len(pairs)
    env = envs[0] if envs else {}
    device_name = str(env.get("device_name") or env.get("device") or "unknown device")
    dtype = env.get("dtype")
    warnings = []
    if "A100" not in device_name:
        warnings.append(f"measured on {device_name}, not the paper's A100: compare the ratios, not the seconds")
    if dtype != "float16":
        warnings.append(f"dtype {dtype}, not the paper's float16")
    if failures:
        warnings.append(f"{len(failures)} model(s) failed: {', '.join(failures)}")
    tiny = [lb for lb, m in models.items() if isinstance(m.get("config"), str) and "tiny" in m["config"]]
    if tiny:
        warnings.append(f"tiny model configs ({', '.join(tiny)}): numbers test the instrument, not the models")
    return {
        "models": models, "reference_model": ref_label, "latency_batch_size": lat_b, "throughput_batch_size": thr_b,
        "failures": failures, "environment": env, "device_name": device_name, "dtype": dtype,
        "environments_differ": any(e != env for e in envs),
        "settings": {"warmup": cfg.warmup, "iterations": cfg.iterations, "breakdown_iterations":
                     cfg.breakdown_iterations, "interleave": cfg.interleave, "batch_sizes": cfg.batch_sizes,
                     "prompts": list(cfg.prompts), "device": cfg.device, "dtype": cfg.dtype, "threads": cfg.threads},
        "load_average": [r.get("load_average") for r in records if r.get("load_average")][:1]
                        + [r.get("load_average") for r in records if r.get("load_average")][-1:],
        "is_paper_metric": not warnings,
        # the suite has no adapter of its own: the report reads these two. Speed does not depend on the weights'
        # values, so random full-size weights give real timings (the banner says so instead of "not the metric")
        "real_weights": bool(models) and all(bool(m.get("real_weights")) for m in models.values()),
        "weights_affect_results": False,
        "warnings": warnings,
    }


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.{digits}f}"
    return str(value)


def render_profile(summary: Mapping[str, Any]) -> str:
    """Table-2-shaped Markdown: latency, throughput, ratios to the reference model and the paper's A100 cells."""
    from harness.markdown_table import markdown_table

    res = summary.get("results", summary)
    lat_b, thr_b, ref = res.get("latency_batch_size"), res.get("throughput_batch_size"), res.get("reference_model")
    device = res.get("device_name")
    rows = []
    for label, m in res["models"].items():
        lat = ((m["batches"].get(str(lat_b)) or {}).get("latency_s") or {}) if lat_b is not None else {}
        spread = f" [{_f(lat.get('p10'))}–{_f(lat.get('p90'))}], n={lat.get('n')}" if lat.get("n") else ""
        peak_b = thr_b if thr_b is not None else lat_b
        peak = (m["batches"].get(str(peak_b)) or {}).get("peak_memory_bytes")
        rows.append((label, m["adapter"], _f(m.get("resolution")), _f(m.get("steps")),
                     _f(m.get("latency_s")) + spread, _f(m.get("throughput_img_per_s")),
                     _f(m.get("latency_ratio_to_reference"), 2), _f(m.get("reference_throughput_ratio"), 2),
                     _f((m.get("paper") or {}).get("latency_s")), _f((m.get("paper") or {}).get("throughput_img_per_s")),
                     _f(peak / 2**20, 1) if peak else "–", m["status"]))
    head = (f"Measured on **{device}**, dtype {res.get('dtype')}, {res['settings']['warmup']} warm-up + "
            f"{res['settings']['iterations']} timed iterations per model and batch size"
            f"{', interleaved' if res['settings']['interleave'] else ''}.\n\n")
    table = markdown_table(
        ("model", "adapter", "res", "steps", f"latency s (bs {lat_b}) median [p10–p90]",
         f"images/s (bs {thr_b})" if thr_b is not None else "images/s (not measured)",
         f"latency ÷ {ref}'s", f"{ref}'s throughput ÷ this", "paper latency (A100 fp16)", "paper images/s",
         f"peak MiB (bs {thr_b if thr_b is not None else lat_b})", "status"), rows)
    parts = [head, table]
    bd_rows = []
    for label, m in res["models"].items():
        for b, stats in m["batches"].items():
            parts_s = stats.get("breakdown_s")
            if parts_s:
                bd_rows.append((label, b, *(_f(parts_s.get(k)) for k in
                                            ("text_encoder", "generator_steps", "diffusion_head", "decoder", "other")),
                                _f(stats.get("breakdown_total_s")),
                                f"{stats.get('breakdown_iterations')} {stats.get('breakdown_source')}"))
    if bd_rows:
        parts.append("\n\nPer-component seconds (mean over the iterations named in the last column):\n\n")
        parts.append(markdown_table(("model", "batch", "text encoder", "generator steps", "diffusion head",
                                     "decoder", "other", "total", "measured in"), bd_rows))
    if res.get("failures"):
        parts.append("\n\nFailed models:\n\n" + "\n".join(f"- `{k}` ({v['adapter']}): {v['error']}"
                                                          for k, v in res["failures"].items()))
    if res.get("warnings"):
        parts.append("\n\n" + "\n".join(f"> {w}" for w in res["warnings"]))
    return "".join(parts) + "\n"
