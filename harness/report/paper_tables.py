"""The paper's Tables 1-6 from stored results: the paper's rows and columns, our values beside them.

Why one module for all six tables: they follow one set of rules, so a reader learns them once and a
number can never look better than it is.

- Rows are the paper's models in the paper's order, columns the paper's; every *paper* cell is the
  value exactly as the shipped CSV holds it (``harness/report/data/reference_numbers.csv``, checked
  against the paper; the CSV is the only place the paper's numbers live).
- A model the harness can measure gets an *ours* row under the paper's row, and a *Δ* row (ours −
  paper) once one of its cells has a value. A cell that no run measures says ``not run``: never
  blank, never a number from somewhere else. Cells whose suite does not exist yet (MJHQ gFID,
  latency/throughput, training cost) say ``not run`` and the legend names the suite that will
  fill them.
- A value from a run that did not finish says so with its counts (``0.62 (partial: 12 of 2212
  images)``): it is the average over what was done, not the paper's protocol. A run without a
  summary gives no number at all (``not aggregated (partial: 3 of 4 items)``): averaging its
  records here would be exactly the silent average this rule forbids.
- A value made with random, dummy, tiny or mini weights, or off the paper's protocol (not ImageNet,
  random Inception, a subset...), carries ``†``; the legend says why, run by run, in the suite's own
  words.
- When several runs measure the same cell, the most trustworthy is shown (a value, then the paper's
  metric, then complete, then more items, then the newest) and the others are listed in the legend
  with their values, so nothing is hidden.
- Every run a table mentions has a provenance line in its footer (device, dtype, commit, torch,
  short weights hashes, sample counts, protocol essentials), so a table copied out of the report
  still says what it was made with.

Everything comes from :class:`~harness.report.collect.RunView` (manifest, plan, records, summary):
nothing is re-run, no model is loaded and no dataset is needed. pandas is imported inside the
functions that need it, so :mod:`harness.report` imports without the ``report`` extra.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from harness.io import atomic_write_bytes, dump_json
from harness.markdown_table import markdown_table
from harness.report.collect import RunView

if TYPE_CHECKING:  # pragma: no cover
    import pandas

NOT_RUN = "not run"
MARK = "†"
NO_VALUE = "–"  # the paper prints no value / nothing to compute (markdown_table prints None the same way)
REFERENCE_CSV = "data/reference_numbers.csv"
SOURCE_HEADER = "Source"
DCHT_ADAPTERS = ("dc-ht", "dc-ht-discrete")
DCHT_PATHS = {"dc-ht": ("continuous", "discrete"), "dc-ht-discrete": ("discrete",)}
#: suites that will fill cells no suite of this harness measures yet
PENDING_SUITES: dict[str, str] = {}


# --------------------------------------------------------------------------- the paper's cells


@lru_cache(maxsize=1)
def paper_cells() -> dict[str, dict[str, dict[str, str]]]:
    """``{csv table: {model: {metric: value as printed}}}`` from the shipped CSV, rows in the paper's order.

    Read as text (not through :func:`harness.report.reference.reference_table`, which turns cells
    into floats): the tables print the paper's cells as written (``1.70``, ``2.6B``, ``1.4*``).
    """
    text = resources.files("harness.report").joinpath(REFERENCE_CSV).read_text(encoding="utf-8")
    out: dict[str, dict[str, dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        out.setdefault(row["table"], {}).setdefault(row["model"], {})[row["metric"]] = row["value"].strip()
    return out


def _number(text: str | None) -> float | None:
    """The number in a paper cell (a trailing footnote ``*`` dropped); None for text cells."""
    if text is None:
        return None
    try:
        return float(text.strip().rstrip("*"))
    except ValueError:
        return None


def _decimals(texts: Iterable[str | None]) -> int:
    """Digits after the point the paper uses in a column (ours are printed the same way)."""
    best = None
    for t in texts:
        if _number(t) is None:
            continue
        frac = t.strip().rstrip("*").partition(".")[2]
        best = max(best or 0, len(frac))
    return 2 if best is None else best


def _fmt(value: float, digits: int, signed: bool = False) -> str:
    if not math.isfinite(value):
        return str(value)
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return "+" + text[1:] if signed and float(text) == 0 else text  # no "-0.00"


# --------------------------------------------------------------------------- table layouts


@dataclass(frozen=True)
class _Fill:
    """How our runs fill one cell: ``recon`` (imagenet_recon of DC-HT), ``geneval`` (geneval_detect), ``pending``."""

    kind: str
    resolution: int | None = None  # recon
    path: str | None = None  # recon: "continuous" | "discrete"
    metric: str | None = None  # recon: summary key under paths.<path>; geneval: tag or "overall"
    generator: str | None = None  # geneval: the adapter that made the images
    suite: str | None = None  # pending: the suite that will fill it
    also: tuple["_Fill", ...] = ()  # other sources of the same cell (the most trustworthy value is shown)


def _recon(res: int, path: str, metric: str) -> _Fill:
    return _Fill("recon", resolution=res, path=path, metric=metric)


def _mjhq(generator: str, protocol: str = "sana") -> _Fill:
    """An ``mjhq_fid`` run of ``generator``: its ``fid[protocol]`` (``sana``: the toolkit behind the paper's numbers)."""
    return _Fill("mjhq", generator=generator, metric=protocol)


def _geneval(generator: str, tag: str) -> _Fill:
    return _Fill("geneval", generator=generator, metric=tag)


def _pending(suite: str) -> _Fill:
    return _Fill("pending", suite=suite)


def _trained(suite: str, row: str, metric: str) -> _Fill:
    """A training suite's ``results["paper_table"][row][metric]`` (``generator`` holds the paper's row label)."""
    return _Fill("trained", generator=row, metric=metric, suite=suite)


#: (CSV table, metric) cells whose ours value is a count, printed without decimals
INTEGER_CELLS = {("Table6_training_cost", "steps")}
#: cells whose ours value keeps 3 significant digits when the paper's digits would round it to 0
SIGNIFICANT_CELLS = {("Table6_training_cost", "GPU_hours")}
#: the training suites and what they fill, for the legend
TRAINED_SUITES = {
    "tokenizer_ablation": ("`tokenizer_ablation` fills the two alternative strategies: `dcar-bench run tokenizer_ablation` "
                           "(paper scale on image folders) or `--config suites/presets/tokenizer_ablation.mini.yaml` "
                           "(a miniature reproduction on 2 CPU cores)."),
    "train_efficiency": ("`train_efficiency` fills the training steps (total optimizer steps), device-hours (measured on "
                         "the device it ran on, not necessarily a GPU) and gFID cells: `dcar-bench run train_efficiency` "
                         "or `--config suites/presets/train_efficiency.mini.yaml` (a miniature reproduction)."),
}


def _profile(label: str, metric: str) -> _Fill:
    """A ``profile`` run's model ``label`` (else the first model of that adapter): ``latency_s`` or ``throughput_img_per_s``."""
    return _Fill("profile", generator=label, metric=metric)


@dataclass(frozen=True)
class _Spec:
    id: str
    title: str
    sections: tuple[tuple[str, str | None], ...]  # (CSV table id, section label)
    name_header: str
    descriptors: tuple[tuple[str, str], ...]  # (CSV metric, header): what a row is, not what is measured
    metrics: tuple[tuple[str, str], ...]  # (CSV metric, header)
    fills: Mapping[tuple[str, str], Mapping[str, _Fill]]  # (CSV table, model) -> {metric: fill}
    section_header: str | None = None
    notes: tuple[str, ...] = ()
    ratios: bool = False  # Table 2: latency and throughput relative to DC-AR


GENEVAL_TAGS = (("single_object", "S. Obj"), ("two_object", "T. Obj"), ("counting", "Count"), ("colors", "Colors"),
                ("position", "Position"), ("color_attr", "C. Attri."), ("overall", "Overall"))
T2_LATENCY, T2_THROUGHPUT = "latency_s_bs1_A100_fp16", "throughput_img_per_s_bs16_A100_fp16"
RATIO_HEADERS = ("Latency ÷ DC-AR's", "DC-AR's throughput ÷ this")
#: peers whose rows can only ever be the paper's: no weights were released, so no adapter can measure them
NO_PUBLIC_WEIGHTS = "{models}: no public weights; its rows are the paper's numbers only, no run can measure them."

SPECS: tuple[_Spec, ...] = (
    _Spec(
        "table1", "Table 1. Image reconstruction results on ImageNet",
        sections=(("Table1_ImageNet256", "256×256"), ("Table1_ImageNet512", "512×512")), section_header="ImageNet",
        name_header="Tokenizer",
        descriptors=(("type", "Type"), ("resolution_generalizable", "Resolution generalizable?"), ("tokens", "# Tokens")),
        metrics=(("rFID", "rFID↓"), ("PSNR", "PSNR↑"), ("SSIM", "SSIM↑"), ("LPIPS", "LPIPS↓")),
        fills={("Table1_ImageNet256", "DC-HT (64 tokens)"): {m: _recon(256, "continuous", m)
                                                               for m in ("rFID", "PSNR", "SSIM", "LPIPS")},
               ("Table1_ImageNet512", "DC-HT (256 tokens)"): {m: _recon(512, "continuous", m)
                                                                for m in ("rFID", "PSNR", "SSIM", "LPIPS")}},
        notes=("*ours* DC-HT rows: `imagenet_recon` runs of `dc-ht` at that resolution, continuous (hybrid) path, "
               "the DC-AE evaluator's protocol (rFID against the same ADM-cropped validation images).",
               NO_PUBLIC_WEIGHTS.format(models="TexTok")),
    ),
    _Spec(
        "table2", "Table 2. Text-to-image generation results on MJHQ-30K",
        sections=(("Table2_MJHQ30K", None),), name_header="Method",
        descriptors=(("type", "Type"), ("params", "#Params"), ("resolution", "Resolution"), ("steps", "#Steps")),
        metrics=(("gFID", "gFID↓"), (T2_LATENCY, "Latency (s)"), (T2_THROUGHPUT, "Throughput (images/s)")),
        fills={("Table2_MJHQ30K", "DC-AR"): {"gFID": _mjhq("dc-ar"), T2_LATENCY: _profile("dc-ar", "latency_s"),
                                              T2_THROUGHPUT: _profile("dc-ar", "throughput_img_per_s")}},
        notes=("Latency at batch 1 and throughput at batch 16, A100, float16 (the paper's profiling setup).",
               f"{RATIO_HEADERS[0]} / {RATIO_HEADERS[1]}: computed here from the latency and throughput columns "
               "(the paper's \"2.0-3.5× lower latency, 1.5-7.9× higher throughput\"); >1 means DC-AR is faster."),
        ratios=True,
    ),
    _Spec(
        "table3", "Table 3. Text-to-image generation results on GenEval",
        sections=(("Table3_GenEval", None),), name_header="Method",
        descriptors=(("type", "Type"), ("params", "#Params")),
        metrics=tuple((f"GenEval_{t}", h) for t, h in GENEVAL_TAGS),
        fills={("Table3_GenEval", "DC-AR"): {f"GenEval_{t}": _geneval("dc-ar", t) for t, _ in GENEVAL_TAGS}},
        notes=("*ours* DC-AR row: a `geneval_detect` run over the images of a `geneval` run of `dc-ar` "
               "(553 prompts × 4 images; Overall = mean of the six per-tag accuracies).",
               NO_PUBLIC_WEIGHTS.format(models="Fluid")),
    ),
    _Spec(
        "table4", "Table 4. Hybrid design vs the discrete-only baseline",
        sections=(("Table4_ablation_hybrid", None),), name_header="Model", descriptors=(),
        metrics=(("rFID", "rFID↓"), ("gFID", "gFID↓"), ("GenEval_overall", "GenEval↑"),
                 ("throughput_img_per_s", "Throughput (images/s)")),
        fills={("Table4_ablation_hybrid", "DC-AR (hybrid tokens)"): {
                   "rFID": _recon(256, "continuous", "rFID"), "gFID": _mjhq("dc-ar"),
                   "GenEval_overall": _geneval("dc-ar", "overall"),
                   "throughput_img_per_s": _profile("dc-ar", "throughput_img_per_s")},
               ("Table4_ablation_hybrid", "Discrete-only variant"): {
                   "rFID": _recon(256, "discrete", "rFID"), "gFID": _mjhq("dc-ar-discrete-only"),
                   "GenEval_overall": _geneval("dc-ar-discrete-only", "overall"),
                   "throughput_img_per_s": _profile("dc-ar-discrete-only", "throughput_img_per_s")}},
        notes=("rFID is DC-HT's at ImageNet 256×256 (the paper's 1.60 is Table 1's 256 row): the continuous "
               "(hybrid) path for DC-AR, the discrete path (`dc-ht` or `dc-ht-discrete`) for the discrete-only "
               "variant. GenEval: `geneval_detect` runs over the images of `dc-ar` and `dc-ar-discrete-only`.",),
    ),
    _Spec(
        "table5", "Table 5. Tokenizer training strategies",
        sections=(("Table5_tokenizer_training", None),), name_header="Strategy", descriptors=(),
        metrics=(("discrete_rFID", "Discrete-rFID↓"), ("rFID", "rFID↓")),
        fills={("Table5_tokenizer_training", "Three-stage adaptation (DC-HT)"): {
            m: replace(_recon(256, path, "rFID"),
                       also=(_trained("tokenizer_ablation", "Three-stage adaptation (DC-HT)", m),))
            for m, path in (("discrete_rFID", "discrete"), ("rFID", "continuous"))},
            **{("Table5_tokenizer_training", row): {m: _trained("tokenizer_ablation", row, m)
                                                    for m in ("discrete_rFID", "rFID")}
               for row in ("Discrete training + alternate fine-tuning", "Continuous warm-up + alternate training")}},
        notes=("*ours* three-stage row: the released DC-HT (three-stage adaptation) through `imagenet_recon` at "
               "256×256 (Discrete-rFID = its discrete path, rFID = its continuous (hybrid) path), else a "
               "`tokenizer_ablation` run's three-stage tokenizer; the other two strategies are not released: their "
               "rows are tokenizers trained by `tokenizer_ablation`. Compare the strategies in that suite's own "
               "report section, where all three come from one run at one scale.",),
    ),
    _Spec(
        "table6", "Table 6. Training cost: pre-training at 256 + fine-tuning at 512 vs training at 512 from scratch",
        sections=(("Table6_training_cost", None),), name_header="Strategy", descriptors=(),
        metrics=(("steps", "Training Steps"), ("GPU_hours", "GPU Hours"), ("gFID", "gFID↓")),
        fills={("Table6_training_cost", m): {k: _trained("train_efficiency", m, k) for k in ("steps", "GPU_hours", "gFID")}
               for m in ("Pretrain 256 + finetune 512", "From scratch at 512")},
        notes=("*ours*: `train_efficiency` runs; GPU Hours is the measured device-hours of the optimizer steps "
               "(summed over ranks) on the device the run names, which may be a CPU.",),
    ),
)


# --------------------------------------------------------------------------- our runs


@dataclass
class _Run:
    """A run with its report-wide id (``#1``...) and what makes its numbers not the paper's metric."""

    view: RunView
    ref: str

    @property
    def name(self) -> str:
        return self.view.run_dir.name

    @cached_property
    def state(self) -> str:
        return self.view.completeness()

    @cached_property
    def generator(self) -> str | None:
        """The adapter whose images a GenEval run holds (the generate run's adapter, the detect run's generator)."""
        if self.view.suite == "geneval":
            return self.view.adapter
        gen = (self.view.results.get("models") or {}).get("generator") \
            or ((self.view.manifest.protocol.get("images_folder") or {}).get("generator")) or {}
        return gen.get("name") if isinstance(gen, Mapping) else None

    @property
    def display(self) -> str:
        if self.view.adapter:
            return self.view.adapter
        return f"images of {self.generator}" if self.generator else self.view.label

    @cached_property
    def reasons(self) -> list[str]:
        """Why this run's numbers are not the paper's metric, in the suite's own words; empty: they are."""
        view, res = self.view, self.view.results
        out: list[str] = []
        verdict = None
        if "is_paper_metric" in res:
            verdict = bool(res["is_paper_metric"])
            if not verdict:
                out += [str(w) for w in res.get("warnings") or []] or ["the suite says: not the paper's metric"]
        if "is_geneval_metric" in res:
            verdict = bool(res["is_geneval_metric"])
            # an incomplete GenEval run is reported as partial, with its counts, instead
            out += [str(lb) for lb in res.get("labels") or [] if not str(lb).startswith("INCOMPLETE")]
        if verdict is None and view.adapter and not view.real_weights:
            out.append("random, dummy or tiny weights (`real_weights: false`)")
        size = _model_size(view)
        if size:
            out.append(f"`{size}` model config, not the paper's model size")
        return list(dict.fromkeys(out))

    @cached_property
    def created(self) -> str:
        return str(self.view.manifest.provenance.get("created") or "")


def _model_size(view: RunView) -> str | None:
    """``tiny``/``mini`` when the adapter ran a reduced built-in config (real weights or not)."""
    extra = (view.manifest.adapter_info or {}).get("extra") or {}
    model_cfg = (view.manifest.config.get("model") or {}) if isinstance(view.manifest.config, Mapping) else {}
    for v in (model_cfg.get("config"), extra.get("config_option"), extra.get("config")):
        if isinstance(v, str) and re.search(r"tiny|mini", v, re.IGNORECASE):
            return v
    return None


@dataclass
class _Measured:
    """One run's value for one cell: a number (maybe partial), or why it has none."""

    run: _Run
    value: float | None
    missing: str | None = None  # why there is no value
    partial: str | None = None  # "partial: 12 of 2212 images"

    def sort_key(self) -> tuple:
        return (self.value is not None, not self.run.reasons, self.partial is None, self.run.view.recorded,
                self.run.created)


def _run_state(run: _Run) -> tuple[bool, str | None, str | None]:
    """(summary usable, missing text, partial text) from the run's completeness."""
    state = run.state
    if state.startswith("damaged"):
        return False, "damaged", None
    if run.view.summary is None:
        partial = f" ({state})" if state.startswith("partial") else ""
        return False, f"not aggregated{partial}", None
    if state.startswith("partial"):
        return True, None, state
    return True, None, None


def _as_float(v: Any) -> float | None:
    try:
        return None if v is None or isinstance(v, bool) else float(v)
    except (TypeError, ValueError):
        return None


def _recon_resolution(view: RunView) -> int | None:
    res = (view.results.get("dataset") or {}).get("resolution")
    if res is None:
        res = (view.manifest.config.get("dataset") or {}).get("resolution")
    try:
        return int(res)
    except (TypeError, ValueError):
        return None


def _recon_paths(view: RunView) -> tuple[str, ...]:
    if view.summary is not None:
        return tuple(view.results.get("paths") or {})
    extra = (view.manifest.adapter_info or {}).get("extra") or {}
    paths = tuple(extra.get("paths") or DCHT_PATHS.get(view.adapter or "", ()))
    wanted = view.manifest.config.get("paths", "auto")
    if wanted != "auto":
        wanted = (wanted,) if isinstance(wanted, str) else tuple(wanted)
        paths = tuple(p for p in paths if p in wanted)
    return paths


def _measure(fill: _Fill, runs: Sequence[_Run]) -> list[_Measured]:
    """Every run's value for a cell, most trustworthy first."""
    if fill.also:
        found = [m for f in (replace(fill, also=()), *fill.also) for m in _measure(f, runs)]
        return sorted(found, key=_Measured.sort_key, reverse=True)
    found: list[_Measured] = []
    for run in runs:
        view = run.view
        if fill.kind == "recon":
            if view.suite != "imagenet_recon" or view.adapter not in DCHT_ADAPTERS:
                continue
            if (view.results.get("dataset") or {}).get("dataset") == "procedural-shapes":
                continue  # procedural pictures are not ImageNet: never in the paper's ImageNet cells
            if _recon_resolution(view) != fill.resolution or fill.path not in _recon_paths(view):
                continue
            usable, missing, partial = _run_state(run)
            value = _as_float(((view.results.get("paths") or {}).get(fill.path) or {}).get(fill.metric)) \
                if usable else None
            if usable and value is None:
                missing = f"no {fill.metric} in its summary"
            found.append(_Measured(run, value, missing, partial))
        elif fill.kind == "profile":
            if view.suite != "profile":
                continue
            usable, missing, partial = _run_state(run)
            value = None
            if usable:
                models = view.results.get("models") or {}
                entry = models.get(fill.generator) or next(
                    (m for m in models.values() if m.get("adapter") == fill.generator), None)
                if entry is None:
                    continue  # this profile run did not include the model
                value = _as_float(entry.get(fill.metric))
                if value is None:
                    missing = f"no {fill.metric} for {fill.generator} ({entry.get('status')})"
            found.append(_Measured(run, value, missing, partial))
        elif fill.kind == "mjhq":
            if view.suite != "mjhq_fid" or view.adapter != fill.generator:
                continue
            usable, missing, partial = _run_state(run)
            value = _as_float((view.results.get("fid") or {}).get(fill.metric)) if usable else None
            if usable and value is None:
                missing = f"no {fill.metric} gFID in its summary"
            found.append(_Measured(run, value, missing, partial))
        elif fill.kind == "trained":
            if view.suite != fill.suite:
                continue
            usable, missing, partial = _run_state(run)
            table = view.results.get("paper_table") or {}
            if usable and fill.generator not in table:
                continue  # this run did not train that recipe
            value = _as_float((table.get(fill.generator) or {}).get(fill.metric)) if usable else None
            if usable and value is None:
                missing = f"no {fill.metric} in its summary"
            found.append(_Measured(run, value, missing, partial))
        elif fill.kind == "geneval":
            if view.suite != "geneval_detect" or run.generator != fill.generator:
                continue
            usable, missing, partial = _run_state(run)
            res = view.results
            value = None
            if usable:
                value = _as_float(res.get("overall") if fill.metric == "overall"
                                  else (res.get("tag_scores") or {}).get(fill.metric))
                if res.get("complete") is False:
                    partial = (f"partial: {res.get('total_images')} of {res.get('expected_total_images')} images"
                               + (f"; {partial}" if partial else ""))
                if value is None:
                    missing = ("no overall: not every tag has images" if fill.metric == "overall"
                               else "no images of this tag")
                    missing += f" ({partial})" if partial else ""
            found.append(_Measured(run, value, missing, partial))
    return sorted(found, key=_Measured.sort_key, reverse=True)


def _waiting(fill: _Fill, runs: Sequence[_Run]) -> list[_Run]:
    """Runs that hold what a not-run cell needs but not its measurement (unscored images, unread suites)."""
    if fill.kind == "geneval":
        return [r for r in runs if r.view.suite == "geneval" and r.view.adapter == fill.generator]
    if fill.kind in ("pending", "trained"):
        return [r for r in runs if r.view.suite == fill.suite]
    if fill.kind == "profile":
        return [r for r in runs if r.view.suite == "profile"]
    if fill.kind == "mjhq":
        return [r for r in runs if r.view.suite == "mjhq_fid"]
    return []


# --------------------------------------------------------------------------- provenance


def _short(value: Any) -> str:
    text = str(value)
    m = re.fullmatch(r"((?:sha256:)?)([0-9a-fA-F]{16,})", text)
    if m:
        return m.group(1) + m.group(2)[:12]
    return text if len(text) <= 40 else text[:39] + "…"


def _weights(view: RunView) -> str:
    """``name=short hash`` of every network behind the numbers: the adapter's, the metric networks'."""
    parts: dict[str, Any] = {}
    for k, v in ((view.manifest.adapter_info or {}).get("weights") or {}).items():
        parts[view.adapter if k == "weights" and view.adapter else Path(str(k)).name] = v
    res = view.results
    for k, v in (res.get("weights") or {}).items():  # imagenet_recon: inception, lpips_backbone
        if not k.endswith("_real") and k != "adapter" and isinstance(v, str):
            parts.setdefault(k, v)
    if view.suite == "mjhq_fid":  # the backbone of every protocol it computed
        for k, v in (res.get("protocols") or {}).items():
            if isinstance(v, Mapping) and v.get("weights"):
                parts.setdefault(k, v["weights"])
    for k, v in (res.get("models") or {}).items():  # geneval_detect: detector, colour classifier
        if isinstance(v, Mapping) and k != "generator":
            ident = v.get("sha256") or v.get("checkpoint_sha256") or v.get("checkpoint") or v.get("weights")
            parts.setdefault(k, ident or ("real" if v.get("real_weights") else "random"))
    return ", ".join(f"{k}={_short(v)}" for k, v in parts.items()) or "none"


def _samples(view: RunView) -> str:
    res = view.results
    items = f"{view.recorded} of {view.planned} items"
    if view.suite == "imagenet_recon" and "num_images" in res:
        skipped = f", {res['num_skipped']} skipped" if res.get("num_skipped") else ""
        return f"{res['num_images']} images evaluated{skipped} ({items})"
    if view.suite == "mjhq_fid" and "num_images" in res:
        return f"{res['num_images']} of 30,000 MJHQ-30K prompts ({items})"
    if view.suite == "geneval_detect" and "total_images" in res:
        return (f"{res['total_images']} of {res.get('expected_total_images')} GenEval images, "
                f"{res.get('total_prompts')} of {res.get('expected_total_prompts')} prompts ({items})")
    if view.suite == "geneval" and "num_images" in res:
        return f"{res['num_images']} of {res.get('expected_images')} GenEval images ({items})"
    return items


def _protocol(view: RunView) -> str:
    """The protocol facts a reader needs beside the number (the full protocol is in the run's manifest)."""
    res = view.results
    bits: list[str] = []
    if view.suite == "imagenet_recon":
        ds, fp = res.get("dataset") or {}, res.get("fid_protocol") or {}
        ref = res.get("reference_stats") or {}
        if ds:
            bits.append(f"{ds.get('resolution')} px, {ds.get('label') or ds.get('dataset')}, crop {ds.get('crop')}")
        if fp:
            bits.append(f"FID {fp.get('extractor')} ({fp.get('resize')}, weights {_short(fp.get('weights'))})")
        if ref:
            bits.append(f"reference statistics n={ref.get('n')} ({ref.get('source')})")
        border = ((res.get("ssim") or {}).get("params") or {}).get("border")
        if border:
            bits.append(f"SSIM border {border}")
    elif view.suite == "mjhq_fid":
        fid = res.get("fid") or {}
        ref = (res.get("reference_stats") or {}).get("sana") or {}
        bits.append("gFID protocol sana (Sana's toolkit: Resize(512) bilinear + CenterCrop(512), pytorch-fid "
                    f"Inception pool3), reference n={ref.get('n')} ({ref.get('source')})")
        others = [f"{k} {v:.3f}" for k, v in fid.items() if k != "sana" and isinstance(v, (int, float))]
        if others:
            bits.append("same images under other protocols (not comparable with the paper): " + ", ".join(others))
    elif view.suite == "geneval_detect":
        r = res.get("rules") or {}
        if r:
            bits.append(f"rules: score > {r.get('threshold')} (counting > {r.get('counting_threshold')}), "
                        f"at most {r.get('max_objects')} per class, position c = {r.get('position_threshold')}")
        gate = res.get("sanity_gate") or {}
        if gate:
            bits.append("sanity gate " + ("passed" if gate.get("passed") else "failed or skipped"))
    info = view.manifest.adapter_info or {}
    bits += [f"{k} {info[k]}" for k in ("resolution", "steps") if info.get(k) is not None]
    bits.append(f"seed {view.manifest.seed}")
    if (not res or view.suite not in ("imagenet_recon", "geneval_detect", "mjhq_fid")) and view.manifest.protocol:
        bits.append("details in its manifest (" + ", ".join(sorted(view.manifest.protocol)) + ")")
    return "; ".join(bits)


def provenance_line(run: _Run) -> str:
    """One footer line: which run, and what its numbers were made with."""
    p = run.view.provenance()
    res, state = run.view.results, run.state
    if state == "complete" and res.get("complete") is False:  # every item detected, but the folder was partial
        state = f"partial: {res.get('total_images')} of {res.get('expected_total_images')} images scored"
    return (f"{run.ref} `{run.name}`: {run.view.suite} × {run.display}, {state}; device {p['device']}; "
            f"dtype {p['dtype'] or NO_VALUE}; commit {p['commit']}; torch {p['torch'] or NO_VALUE}; "
            f"weights {_weights(run.view)}; samples {_samples(run.view)}; protocol: {_protocol(run.view)}")


# --------------------------------------------------------------------------- the table object


@dataclass
class PaperTable:
    """One of the paper's tables with our rows: the cells as a DataFrame, plus what explains them.

    ``frame`` holds exactly the cells the Markdown shows (strings, the paper's digits); ``values``
    holds every *ours* cell at full precision (paper value, our value, difference, run, status),
    for people who post-process; both go to ``tables/<id>.json``, the frame also to ``tables/<id>.csv``.
    """

    id: str
    title: str
    frame: "pandas.DataFrame"
    legend: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def to_markdown(self) -> str:
        return markdown_table(self.columns, self.frame.itertuples(index=False, name=None))

    def to_records(self) -> list[dict[str, str]]:
        """The frame's rows as ``{column: cell}`` dicts, in order (what ``tables/<id>.json`` holds as ``rows``)."""
        cols = self.columns
        return [dict(zip(cols, (str(c) for c in row))) for row in self.frame.itertuples(index=False, name=None)]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "columns": self.columns, "rows": self.to_records(),
                "values": self.values, "legend": self.legend, "footer": self.footer}

    def write(self, out_dir: str | Path) -> list[Path]:
        """``tables/<id>.csv`` and ``tables/<id>.json`` under ``out_dir``, each written atomically."""
        tables = Path(out_dir) / "tables"
        csv_path, json_path = tables / f"{self.id}.csv", tables / f"{self.id}.json"
        atomic_write_bytes(csv_path, self.frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        atomic_write_bytes(json_path, dump_json(self.to_json()))
        return [csv_path, json_path]


# --------------------------------------------------------------------------- building


@dataclass
class _Builder:
    """Builds one table: the paper's rows, an *ours* (and Δ) row under each row our runs can fill, the legend."""

    spec: _Spec
    runs: Sequence[_Run]
    rows: list[list[str]] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)
    used: dict[str, _Run] = field(default_factory=dict)  # every run the table mentions -> a footer line
    hidden: dict[str, list[str]] = field(default_factory=dict)  # run ref -> "model metric: cell" not shown
    shown_partial: bool = False
    shown_marked: dict[str, _Run] = field(default_factory=dict)
    not_run: dict[str, list[_Run]] = field(default_factory=dict)  # fill kind or pending suite -> waiting runs

    @property
    def header(self) -> list[str]:
        s = self.spec
        head = ([s.section_header] if s.section_header else []) + [s.name_header] + [h for _, h in s.descriptors]
        head += [SOURCE_HEADER] + [h for _, h in s.metrics]
        return head + (list(RATIO_HEADERS) if s.ratios else [])

    def digits(self, csv_table: str, metric: str) -> int:
        if (csv_table, metric) in INTEGER_CELLS:
            return 0
        return _decimals(m.get(metric) for m in paper_cells()[csv_table].values())

    def build(self) -> PaperTable:
        import pandas as pd

        for csv_table, section in self.spec.sections:
            for model, cells in paper_cells()[csv_table].items():
                self._paper_row(csv_table, section, model, cells)
                fills = self.spec.fills.get((csv_table, model))
                if fills:
                    self._our_rows(csv_table, section, model, cells, fills)
        frame = pd.DataFrame(self.rows, columns=self.header, dtype=object)
        footer = [provenance_line(r) for r in _by_ref(self.used.values())]
        return PaperTable(self.spec.id, self.spec.title, frame, self._legend(), footer, self.values)

    def _lead(self, section: str | None, name: str) -> list[str]:
        return ([section or NO_VALUE] if self.spec.section_header else []) + [name]

    def _paper_row(self, csv_table: str, section: str | None, model: str, cells: Mapping[str, str]) -> None:
        starred = "note" in cells and not any(v.endswith("*") for v in cells.values())
        row = self._lead(section, model + ("*" if starred else ""))
        row += [cells.get(k, NO_VALUE) for k, _ in self.spec.descriptors]
        row += ["paper"] + [cells.get(k, NO_VALUE) for k, _ in self.spec.metrics]
        if self.spec.ratios:
            dcar = paper_cells()[csv_table].get("DC-AR", {})
            row += _ratios(_number(cells.get(T2_LATENCY)), _number(cells.get(T2_THROUGHPUT)),
                           _number(dcar.get(T2_LATENCY)), _number(dcar.get(T2_THROUGHPUT)))
        self.rows.append(row)

    def _our_rows(self, csv_table: str, section: str | None, model: str, cells: Mapping[str, str],
                  fills: Mapping[str, _Fill]) -> None:
        chosen: dict[str, _Measured | None] = {}
        for key, _ in self.spec.metrics:
            fill = fills.get(key)
            found = _measure(fill, self.runs) if fill is not None else []
            chosen[key] = found[0] if found else None
            if fill is not None:
                self._note(csv_table, model, key, cells.get(key), fill, found)
        refs = {m.run.ref for m in chosen.values() if m is not None}
        one_run = len(refs) == 1
        texts = {}
        for key, _ in self.spec.metrics:
            m = chosen[key]
            if m is None:
                texts[key] = NOT_RUN if key in fills else NO_VALUE
                continue
            texts[key] = self._cell(m, csv_table, key, with_ref=not one_run)
            self.shown_partial |= m.value is not None and m.partial is not None
            if m.value is not None and m.run.reasons:
                self.shown_marked[m.run.ref] = m.run
        blank = [NO_VALUE] * len(self.spec.descriptors)
        ours = self._lead(section, model) + blank + [f"ours {next(iter(refs))}" if one_run else "ours"]
        ours += [texts[k] for k, _ in self.spec.metrics]
        if self.spec.ratios:
            lat, thr = chosen.get(T2_LATENCY), chosen.get(T2_THROUGHPUT)
            has = lat is not None and lat.value is not None and thr is not None and thr.value is not None
            # ours relative to our own DC-AR: only DC-AR is measured, so 1.0× once the profile exists
            ours += _ratios(lat.value, thr.value, lat.value, thr.value) if has else [NOT_RUN, NOT_RUN]
        self.rows.append(ours)
        if any(m is not None and m.value is not None for m in chosen.values()):
            delta = self._lead(section, model) + blank + ["Δ ours − paper"]
            delta += [self._diff(chosen[k], cells.get(k), csv_table, k, texts[k]) for k, _ in self.spec.metrics]
            self.rows.append(delta + ([NO_VALUE, NO_VALUE] if self.spec.ratios else []))

    def _note(self, csv_table: str, model: str, key: str, paper: str | None, fill: _Fill,
              found: Sequence[_Measured]) -> None:
        """Remember the runs behind a cell (footer, hidden candidates, why not run) and its full-precision values."""
        p = _number(paper)
        if not found:
            waiting = _waiting(fill, self.runs)
            self.not_run.setdefault(fill.suite if fill.kind in ("pending", "trained") else fill.kind,
                                    []).extend(waiting)
            self.used.update((r.ref, r) for r in waiting)
            self.values.append({"table": csv_table, "model": model, "metric": key, "paper": p, "paper_text": paper,
                                "ours": None, "diff": None, "status": NOT_RUN, "shown": True, "run": None,
                                "ref": None, "filled_by": _filled_by(fill), "not_paper_metric": None,
                                "reasons": []})
        for rank, m in enumerate(found):
            self.used[m.run.ref] = m.run
            if rank:
                self.hidden.setdefault(m.run.ref, []).append(
                    f"{model} {key}: {self._cell(m, csv_table, key, with_ref=False)}")
            self.values.append({
                "table": csv_table, "model": model, "metric": key, "paper": p, "paper_text": paper, "ours": m.value,
                "diff": None if m.value is None or p is None else m.value - p,
                "status": m.missing if m.value is None else (m.partial or "complete"), "shown": rank == 0,
                "run": m.run.name, "ref": m.run.ref, "filled_by": _filled_by(fill),
                "not_paper_metric": bool(m.run.reasons), "reasons": list(m.run.reasons)})

    def _cell(self, m: _Measured, csv_table: str, key: str, *, with_ref: bool) -> str:
        if m.value is None:
            text = m.missing or NOT_RUN
        else:
            text = _fmt(m.value, self.digits(csv_table, key))
            if (csv_table, key) in SIGNIFICANT_CELLS and m.value and abs(float(text)) == 0:
                text = f"{m.value:.3g}"  # a miniature run's device-hours would print as 0
            text += f" ({m.partial})" if m.partial else ""
            text += MARK if m.run.reasons else ""
        return text + (f" [{m.run.ref}]" if with_ref else "")

    def _diff(self, m: _Measured | None, paper: str | None, csv_table: str, key: str, ours_text: str) -> str:
        p = _number(paper)
        if m is None:
            return ours_text  # not run (or – where nothing could fill it)
        if m.value is None or p is None:
            return NO_VALUE
        text = _fmt(m.value - p, self.digits(csv_table, key), signed=True)
        return text + (" (partial)" if m.partial else "") + (MARK if m.run.reasons else "")

    def _legend(self) -> list[str]:
        s = self.spec
        out = ["Rows and columns are the paper's, in its order. *paper*: its numbers as printed (shipped in "
               "`harness/report/data/reference_numbers.csv`). *ours*: measured by the runs in the footer (`#n`); "
               f"Δ = ours − paper, in the paper's digits (full precision in `tables/{s.id}.json`). "
               f"{NO_VALUE}: no value (the paper prints none, or there is nothing to compute)."]
        out += list(s.notes)
        notes: dict[str, list[str]] = {}
        for csv_table, _ in s.sections:
            for model, cells in paper_cells()[csv_table].items():
                if "note" in cells:
                    notes.setdefault(cells["note"], []).append(model)
        out += [f"{', '.join(models)}: {note} (the paper's footnote)." for note, models in notes.items()]
        if self.not_run:
            out.append(f"{NOT_RUN}: no run given to this report measures the cell; nothing is filled in from "
                       "elsewhere.")
        for kind, waiting in self.not_run.items():
            refs = ", ".join(f"{r.ref} `{r.name}`" for r in _by_ref({r.ref: r for r in waiting}.values()))
            if kind in TRAINED_SUITES:
                line = TRAINED_SUITES[kind] + (f" {refs}: `{kind}` runs without that value." if refs else "")
            elif kind in PENDING_SUITES:
                line = (f"`{kind}` will fill the {PENDING_SUITES[kind]} cells; this harness has no such suite yet, "
                        "so they say not run.")
                if refs:
                    line += f" {refs}: `{kind}` runs, which this report cannot read yet."
            elif kind == "profile":
                line = ("`profile` fills the latency and throughput cells: `dcar-bench run profile --out DIR` (batch 1 "
                        "and 16, the paper's A100 fp16 setup, on whatever device it runs; the device is named).")
            elif kind == "mjhq":
                line = ("`mjhq_fid` fills the MJHQ-30K gFID cells: `dcar-bench run mjhq_fid --model dc-ar` (or "
                        "`dc-ar-discrete-only`): protocol `sana` (Sana's toolkit, which the paper's numbers come from) "
                        "over all 30,000 prompts; the run also reports clean-fid, torch-fidelity, FD-DINOv2 and CMMD.")
            elif kind == "recon":
                line = ("DC-HT cells are filled by `dcar-bench run imagenet_recon --model dc-ht --set "
                        "dataset.resolution=256` (or 512).")
            else:
                line = ("GenEval cells are filled by a `geneval_detect` run over a `geneval` run's images "
                        "(`dcar-bench geneval generate`, then `dcar-bench geneval detect --images "
                        "<generate run>/artifacts/geneval --out <detect run>`).")
                if refs:
                    line += f" Generated but not scored here: {refs}."
            out.append(line)
        if self.shown_partial:
            out.append("partial: k of n: the run did not finish; the value is over the k done, not the paper's "
                       "protocol.")
        if self.shown_marked:
            out.append(f"{MARK} not the paper's metric: these numbers test the harness, not the model.")
            out += [f"{MARK} {r.ref}: " + "; ".join(r.reasons) + "." for r in _by_ref(self.shown_marked.values())]
        out += [f"{r.ref} is {r.state}" for r in _by_ref(self.used.values()) if r.state.startswith("damaged")]
        for ref in sorted(self.hidden, key=_ref_number):
            out.append(f"Also measured by {ref}, not shown (a more trustworthy run is): "
                       + "; ".join(self.hidden[ref]) + ".")
        return out


def _ratios(lat: float | None, thr: float | None, dcar_lat: float | None, dcar_thr: float | None) -> list[str]:
    """Table 2's derived columns: latency over DC-AR's, DC-AR's throughput over this one (>1: DC-AR is faster)."""
    lat_r = f"{lat / dcar_lat:.1f}×" if lat is not None and dcar_lat else NO_VALUE
    thr_r = f"{dcar_thr / thr:.1f}×" if thr and dcar_thr is not None else NO_VALUE
    return [lat_r, thr_r]


def _filled_by(fill: _Fill) -> str:
    if fill.kind == "profile":
        return "profile"
    if fill.kind == "mjhq":
        return "mjhq_fid"
    return fill.suite if fill.kind in ("pending", "trained") else ("imagenet_recon" if fill.kind == "recon" else "geneval_detect")


def _ref_number(ref: str) -> int:
    return int(ref.lstrip("#"))


def _by_ref(runs: Iterable[_Run]) -> list[_Run]:
    return sorted(runs, key=lambda r: _ref_number(r.ref))


def build_paper_tables(runs: Sequence[RunView]) -> list[PaperTable]:
    """Tables 1-6 in the paper's layout, our runs' values beside the paper's (``#n`` = the n-th run given).

    Always all six tables, whatever the runs: a table no run fills shows the paper's numbers and
    ``not run`` for ours. Reads the runs' files only (through :class:`RunView`).
    """
    tagged = [_Run(v, f"#{i}") for i, v in enumerate(runs, start=1)]
    return [_Builder(spec, tagged).build() for spec in SPECS]
