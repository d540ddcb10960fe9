"""A metric against sampling steps: DC-AR Fig. 6 (text-to-image) and Fig. 11 (class-to-image), one run per point.

The suite takes no adapter: its planned items are the points (adapter x step count), and ``run_batch`` runs
the inner suite for a point through the ordinary runner (:func:`harness.jobs.run`) into
``<run_dir>/points/<adapter>/steps-NNN/``, with the adapter's step option (``model.num_steps`` for DC-AR) set
to the point's count. The point's record holds the value read from the inner ``summary.json`` at
``inner.metric`` (a dotted key such as ``results.fid.sana``), the point's run directory (relative) and the
inner run's identity (plan and records digests). So every guarantee of a run holds per point: a sweep killed
after k points keeps k records and their runs, and a point killed half way resumes its own items.

Why the inner run goes through :mod:`harness.jobs` and not a private loop: the point then is a normal run
directory (manifest, plan, records, summary, report.md) that ``dcar-bench report`` and the paper tables can read
on their own; suites may import any ``harness`` layer and the runner finds suites only through the registry, so
there is no import cycle. The inner run is always one shard (``0/1``): under torchrun the outer runner already
gives each rank its own points.

Aggregation reads the records only and emits ``figure_series`` for ``fig6`` or ``fig11`` (the report's figure
builder draws them), and draws the same figure into ``<run_dir>/figures/`` with its plotted numbers beside it
(``figures/<id>.json``), so the run's own report.md embeds the PNG.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Literal, Mapping, Sequence

from harness.api import Adapter, MetricSpec, RunContext, Suite, UserError, WorkItem
from harness.runner.config import ConfigError, fill_dataclass, suite_yaml

#: adapter -> the constructor option that sets its number of sampling steps (``steps_option`` overrides it)
DEFAULT_STEPS_OPTION = {
    "dc-ar": "num_steps",
    "dc-ar-discrete-only": "num_steps",
    "dummy-t2i": "num_steps",
    "dummy-c2i": "num_steps",
    "mar-b": "num_steps",  # passed to MAR's sample_tokens as num_iter (baselines/checkout/mar.py)
}
FALLBACK_STEPS_OPTION = "num_steps"
FIGURE_OF_KIND = {"text_to_image": "fig6", "class_to_image": "fig11"}
POINTS_DIR = "points"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class SweepMetricError(UserError, KeyError):
    """A finished point's summary has no value at ``inner.metric`` (or not a number)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- typed config (suites/steps_sweep.yaml)


@dataclass(frozen=True)
class InnerConfig:
    suite: str
    metric: str
    metric_direction: Literal["lower", "higher"]
    config: dict[str, Any]
    model: dict[str, Any]
    model_per_adapter: dict[str, Any]
    seed: int | None

    def __post_init__(self) -> None:
        if not self.metric or self.metric.startswith(".") or self.metric.endswith("."):
            raise ValueError(f"inner.metric must be a dotted summary key such as results.fid.sana, got {self.metric!r}")


@dataclass(frozen=True)
class ReportConfig:
    labels: dict[str, Any]
    y_label: str | None


@dataclass(frozen=True)
class SweepConfig:
    """The whole suite config; every default lives in ``suites/steps_sweep.yaml``."""

    steps: list[int]
    adapters: list[str]
    steps_option: dict[str, Any]
    inner: InnerConfig
    figure: Literal["auto", "fig6", "fig11"]
    report: ReportConfig
    protocol: dict[str, Any]

    def __post_init__(self) -> None:
        if not self.steps or any(s < 1 for s in self.steps) or len(set(self.steps)) != len(self.steps):
            raise ValueError(f"steps must be distinct positive integers, got {self.steps}. Fix: --set 'steps=[4,8,12]'")
        if not self.adapters or len(set(self.adapters)) != len(self.adapters):
            raise ValueError(f"adapters must be distinct adapter names, got {self.adapters}. "
                             f"Fix: --set 'adapters=[dc-ar,dc-ar-discrete-only]'")
        bad = [a for a in self.adapters if not _SAFE_NAME.match(a)]
        if bad:
            raise ValueError(f"adapter name {bad[0]!r} cannot name a point directory (letters, digits, _.+- only)")


def summary_value(summary: Mapping[str, Any], key: str) -> Any:
    """``summary`` at the dotted ``key`` (``results.fid.sana``), or KeyError naming the first missing part."""
    node: Any = summary
    for i, part in enumerate(key.split(".")):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(".".join(key.split(".")[: i + 1]))
        node = node[part]
    return node


def numeric_keys(summary: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of ``summary`` whose value is a number (for did-you-mean in errors)."""
    out = []
    for k, v in summary.items():
        if isinstance(v, Mapping):
            out += numeric_keys(v, f"{prefix}{k}.")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(f"{prefix}{k}")
    return out


def _as_inner_error(exc: UserError, suite: str) -> UserError:
    """The inner suite's error, prefixed and with its ``--set KEY`` hints spelled as the sweep's keys."""
    text = str(exc).replace("--set model.", "--set inner.model.").replace("--set ", "--set inner.config.")
    text = text.replace("--set inner.config.inner.model.", "--set inner.model.")
    message = f"steps_sweep inner.config for suite {suite!r} (its keys are inner.config.<key> here): {text}"
    try:
        return type(exc)(message)
    except TypeError:  # a subclass with another constructor
        return UserError(message)


class StepsSweepSuite(Suite):
    name = "steps_sweep"
    adapter_kind = None
    #: which number is plotted and how the figure looks change no point: `dcar-bench aggregate DIR --set KEY=...`
    aggregate_keys: ClassVar[tuple[str, ...]] = ("inner.metric", "inner.metric_direction", "figure", "report")
    metrics = (MetricSpec("value_vs_steps", "lower", {"value": "the inner suite's summary at inner.metric",
                                                       "x": "the adapter's sampling steps"},
                          reference="each point is an ordinary run of the inner suite (see its own metrics)"),)

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        from harness.runner.config import merge_config
        from harness.store import flatten

        # key by key over the YAML, so a partial config (a test's, doctor's) keeps the rest of every section
        merged = merge_config(self.default_config(), None, flatten(dict(config)))
        self.cfg = fill_dataclass(SweepConfig, merged, source="suite steps_sweep", ignore=("model", "seed", "batch_size"))

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list:
        """The inner suite's and every swept adapter's files (``doctor steps_sweep`` lists what the sweep needs)."""
        from harness import registry
        from harness.runner.core import build_config
        from harness.store import flatten

        cfg = cls(dict(config or {})).cfg
        reqs = []
        try:
            inner_cls = registry.resolve("suite", cfg.inner.suite)
            reqs += list(inner_cls.requirements(build_config(inner_cls, None, flatten(cfg.inner.config))))
        except (UserError, ImportError):
            pass  # the inner suite is not installed or its config is wrong: a run says so in validate()
        for name in cfg.adapters:
            try:
                reqs += list(registry.resolve("adapter", name).requirements())
            except (UserError, ImportError):
                pass
        seen, out = set(), []
        for r in reqs:
            if r not in seen:
                seen.add(r)
                out.append(r)
        return out

    def protocol(self) -> dict[str, Any]:
        return {**dict(self.cfg.protocol), "inner_suite": self.cfg.inner.suite}

    def subject(self) -> str | None:
        return f"{self.cfg.inner.suite} at {len(self.cfg.steps)} step counts × {', '.join(self.cfg.adapters)}"

    # ------------------------------------------------------------------ points

    def steps_option(self, adapter: str) -> str:
        return str(self.cfg.steps_option.get(adapter) or DEFAULT_STEPS_OPTION.get(adapter, FALLBACK_STEPS_OPTION))

    def point_overrides(self, adapter: str, steps: int) -> dict[str, Any]:
        """The inner run's ``--set`` overrides of one point (dotted keys)."""
        from harness.store import flatten

        inner = self.cfg.inner
        out = dict(flatten(inner.config))
        model = {**inner.model, **dict(inner.model_per_adapter.get(adapter) or {}),
                 self.steps_option(adapter): int(steps)}
        out.update({f"model.{k}": v for k, v in model.items()})
        return out

    def point_seed(self, ctx_seed: int) -> int:
        return int(self.cfg.inner.seed) if self.cfg.inner.seed is not None else int(ctx_seed)

    def plan(self) -> list[WorkItem]:
        return [WorkItem(id=f"{a}/steps-{s:03d}",
                         payload={"adapter": a, "steps": int(s), "point_dir": f"{POINTS_DIR}/{a}/steps-{s:03d}"})
                for a in self.cfg.adapters for s in sorted(self.cfg.steps)]

    def figure_id(self) -> str:
        if self.cfg.figure != "auto":
            return self.cfg.figure
        from harness.runner.core import resolve_suite_class

        return FIGURE_OF_KIND.get(resolve_suite_class(self.cfg.inner.suite).adapter_kind or "", "fig6")

    # ------------------------------------------------------------------ validate (before any point runs)

    def validate(self, items: Sequence[WorkItem]) -> None:
        """Inner suite, adapters, step options and the inner config are checked before the first point runs."""
        from harness import registry
        from harness.runner.core import build_config, prepare_suite, resolve_suite_class

        inner = self.cfg.inner
        if int(self.config.get("batch_size", 1)) != 1:  # a batch of points is recorded only when all of it is done
            raise ConfigError(f"steps_sweep runs one point per batch (batch_size 1) so that each finished point is "
                              f"recorded at once; got batch_size={self.config.get('batch_size')}. The generator's batch "
                              f"size is the inner suite's: --set inner.config.batch_size=N")
        if inner.suite == self.name:
            raise ConfigError("steps_sweep: inner.suite cannot be steps_sweep itself. Fix: --set inner.suite=mjhq_fid")
        registry.target("suite", inner.suite)  # unknown name: one line with did-you-mean
        inner_cls = resolve_suite_class(inner.suite)
        if inner_cls.adapter_kind is None:
            raise ConfigError(f"steps_sweep: inner.suite {inner.suite!r} takes no adapter, so it has no sampling steps "
                              f"to sweep. Fix: --set inner.suite=mjhq_fid (or imagenet_gfid, dummy)")
        unknown_per = sorted(set(inner.model_per_adapter) - set(self.cfg.adapters))
        if unknown_per:
            raise ConfigError(f"steps_sweep: inner.model_per_adapter names {unknown_per[0]!r}, which is not in adapters "
                              f"{self.cfg.adapters}")
        for name in self.cfg.adapters:
            registry.target("adapter", name)
            self._check_adapter(name, registry.resolve("adapter", name), inner_cls)
        seed = self.point_seed(int(self.config.get("seed", 0)))
        checked: set[str] = set()
        for it in items:
            adapter = it.payload["adapter"]
            overrides = self.point_overrides(adapter, it.payload["steps"])
            try:
                config = build_config(inner_cls, None, overrides, seed=seed)
                if adapter not in checked:  # plan + validate of the inner suite once per adapter (the step count is
                    checked.add(adapter)    # a model option, which no suite validates)
                    prepare_suite(inner_cls, inner.suite, config)
            except UserError as exc:
                raise _as_inner_error(exc, inner.suite) from None

    def _check_adapter(self, name: str, cls: Any, inner_cls: type[Suite]) -> None:
        kind = getattr(cls, "kind", None)
        if kind != inner_cls.adapter_kind:
            raise ConfigError(f"steps_sweep: adapter {name!r} is a {kind or 'kind-less'} adapter, but inner.suite "
                              f"{inner_cls.name!r} needs a {inner_cls.adapter_kind} adapter. Fix: --set 'adapters=[...]'")
        option = self.steps_option(name)
        params = inspect.signature(cls).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if option not in params and not takes_any:
            names = [p for p in params if p not in ("self", "args", "kwargs")]
            raise ConfigError(f"steps_sweep: adapter {name!r} has no option {option!r} to set its sampling steps (its "
                              f"options: {', '.join(names) or 'none'}). Fix: --set steps_option.{name}=<option>")

    def value_of(self, values: Mapping[str, float], point: str, where: str) -> float:
        """The point's number at ``inner.metric``, from its numeric summary keys; one line naming them if absent."""
        key = self.cfg.inner.metric
        if key in values:
            return float(values[key])
        import difflib

        have = sorted(values)
        close = difflib.get_close_matches(key, have, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SweepMetricError(
            f"steps_sweep: the summary of point {point} ({where}) has no number at inner.metric={key!r}.{hint} "
            f"Its numeric keys: {', '.join(have[:12]) or 'none'}{' ...' if len(have) > 12 else ''}. Fix: rerun or "
            f"`dcar-bench aggregate` with --set inner.metric=<key> (an aggregation-only key: no point is recomputed)")

    # ------------------------------------------------------------------ run

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        from harness import jobs
        from harness.store import RunStore

        inner = self.cfg.inner
        records = []
        for it in items:
            point_dir = Path(ctx.run_dir) / it.payload["point_dir"]
            res = jobs.run(inner.suite, it.payload["adapter"], point_dir,
                           overrides=self.point_overrides(it.payload["adapter"], it.payload["steps"]),
                           seed=self.point_seed(ctx.seed), shard="0/1", show_progress=ctx.show_progress)
            store = RunStore(point_dir)
            summary = res.summary if res.summary is not None else store.read_summary()
            if summary is None:
                raise UserError(f"steps_sweep: point {it.id} ran but {point_dir}/summary.json is missing; rerun the "
                                f"sweep (it resumes the point)")
            manifest = store.require_manifest()
            info = manifest.get("adapter_info") or {}
            values = {k: float(summary_value(summary, k)) for k in numeric_keys(summary)}
            self.value_of(values, it.id, f"{it.payload['point_dir']}/summary.json")  # a wrong key stops the sweep now
            records.append({
                "adapter": it.payload["adapter"],
                "steps": int(it.payload["steps"]),
                "steps_option": self.steps_option(it.payload["adapter"]),
                "values": values,
                "point_dir": it.payload["point_dir"],
                "inner": {"suite": inner.suite, "plan_sha256": manifest.get("plan_sha256"),
                          "records_sha256": summary.get("records_sha256"), "num_items": summary.get("num_items"),
                          "seed": manifest.get("seed"), "adapter_steps": info.get("steps"),
                          "real_weights": bool(summary.get("real_weights")),
                          "weights_kind": (info.get("extra") or {}).get("weights_kind"),
                          "is_paper_metric": (summary.get("results") or {}).get("is_paper_metric")},
            })
        return records

    # ------------------------------------------------------------------ aggregate (records only)

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        records = list(records)
        labels = self.cfg.report.labels
        direction = self.cfg.inner.metric_direction
        series, best = [], {}
        value = {r["item_id"]: self.value_of(r["values"], r["item_id"], f"record of {r['point_dir']}")
                 for r in records}
        for name in dict.fromkeys(r["adapter"] for r in records):
            pts = sorted((r["steps"], value[r["item_id"]]) for r in records if r["adapter"] == name)
            real = all(r["inner"]["real_weights"] for r in records if r["adapter"] == name)
            kinds = {r["inner"].get("weights_kind") for r in records if r["adapter"] == name}
            series.append({"label": str(labels.get(name) or name), "adapter": name, "x": [p[0] for p in pts],
                           "y": [p[1] for p in pts], "real_weights": real,
                           "weights_kind": kinds.pop() if len(kinds) == 1 else None})
            pick = min if direction == "lower" else max
            best[name] = pick(pts, key=lambda p: p[1])[0]
        figure = self.figure_id_from(ctx)
        paper = all(r["inner"].get("is_paper_metric") is True for r in records)
        warnings = [] if paper else ["some or all points are not the paper's metric (random, dummy or mini-trained "
                                     "weights, or a subset of the protocol); see each point's report"]
        summary: dict[str, Any] = {
            "figure": figure,
            "inner_suite": self.cfg.inner.suite,
            "metric": self.cfg.inner.metric,
            "metric_direction": direction,
            "points": [{"adapter": r["adapter"], "steps": r["steps"], "value": value[r["item_id"]],
                        "point_dir": r["point_dir"]} for r in records],
            "best_steps": best,
            "figure_series": {figure: [{k: s[k] for k in ("label", "x", "y", "real_weights")} for s in series]},
            "is_paper_metric": paper,
            # a sweep has no adapter of its own: the report's banner reads this (every point's model had real weights)
            "real_weights": bool(records) and all(r["inner"]["real_weights"] for r in records),
            "weights_kinds": sorted({k for r in records if (k := r["inner"].get("weights_kind"))}),
            "warnings": warnings,
        }
        y_label = self.y_label()
        if y_label:  # the report's figure builder titles the y axis with it (default: gFID)
            summary["figure_y_label"] = {figure: y_label}
        summary["plot"] = self._draw(figure, series, y_label, ctx)
        return summary

    def y_label(self) -> str | None:
        """``report.y_label``, else the metric's name when it is not a FID (None: the figures' gFID default)."""
        if self.cfg.report.y_label:
            return self.cfg.report.y_label
        metric = self.cfg.inner.metric
        return None if "fid" in metric.lower() else f"{metric} ({self.cfg.inner.metric_direction} is better)"

    def figure_id_from(self, ctx: RunContext) -> str:
        """``figure`` of the config; ``auto`` decided from the inner suite's adapter kind (the registry, no model)."""
        try:
            return self.figure_id()
        except UserError:
            return "fig6"

    def _draw(self, figure: str, series: Sequence[Mapping[str, Any]], y_label: str | None,
              ctx: RunContext) -> dict[str, Any]:
        """The figure's PNG in ``<run_dir>/figures/`` and its plotted numbers in ``figures/<id>.json`` beside it."""
        from harness.io import atomic_write_bytes, dump_json

        try:
            from harness.report.figures import GFID_Y_LABEL, Series, plot_gfid_vs_steps, plot_mar_steps
        except ImportError as exc:  # matplotlib belongs to the report extra
            return {"png": None, "reason": f"not drawn: {exc}"}
        y_label = y_label or GFID_Y_LABEL
        plot = plot_mar_steps if figure == "fig11" else plot_gfid_vs_steps
        try:
            fig = plot([Series(s["label"], s["x"], s["y"], False, s["real_weights"], s.get("weights_kind"))
                        for s in series], ctx.run_dir,
                       y_label=y_label)
        except ImportError as exc:
            return {"png": None, "reason": f"not drawn: {exc}"}
        data_rel = f"figures/{figure}.json"
        atomic_write_bytes(Path(ctx.run_dir) / data_rel, dump_json({"id": fig.id, "title": fig.title, "png": fig.path,
                                                                    "caption": fig.caption, **fig.data}))
        return {"png": fig.path, "data": data_rel, "title": fig.title, "caption": fig.caption}

    def render(self, summary: Mapping[str, Any]) -> str:
        from harness.markdown_table import markdown_table

        metric = summary.get("metric")
        rows = [(p["adapter"], p["steps"], f"{p['value']:.4f}", f"`{p['point_dir']}`") for p in summary["points"]]
        parts = [f"`{metric}` of suite `{summary.get('inner_suite')}` at each number of sampling steps "
                 f"({summary.get('metric_direction')} is better); each point is a run directory of its own.\n"]
        plot = summary.get("plot") or {}
        if plot.get("png"):
            parts.append(f"![{plot.get('title')}]({plot['png']})\n\n{plot.get('caption', '')} "
                         f"Plotted numbers: `{plot.get('data')}`.\n")
        else:
            parts.append(f"*Figure {plot.get('reason', 'not drawn')}.*\n")
        parts.append(markdown_table(("adapter", "steps", str(metric), "point run"), rows))
        best = summary.get("best_steps") or {}
        if best:
            parts.append("\nBest step count per adapter: " + ", ".join(f"{a}: {s}" for a, s in best.items()) + ".\n")
        parts.extend(f"- ⚠ {w}" for w in summary.get("warnings") or ())
        return "\n".join(parts) + "\n"
