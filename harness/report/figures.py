"""The paper's figures from stored results: Fig. 6 / 11 (gFID vs sampling steps), Fig. 10 (training loss), image grids.

``build_figures(runs, out_dir)`` returns one :class:`~harness.report.plotting.Figure` per figure of the
paper a report covers, drawn when some run can fill it and ``"not run: needs ..."`` otherwise, plus an
image grid per pair of comparable GenEval runs, per reconstruction run with saved examples and per group of
caption_following runs (same plan and seed; one run alone gets a one-column grid).

Why line plots take plain series: the suites that produce the curves (a sampling-steps sweep over
gFID, generator training logs) pass ``Series(label, x, y, is_paper)`` lists and get a figure; a suite
may also leave them in its summary (``results["figure_series"][figure_id] = [{"label", "x", "y"}, ...]``,
one point or a whole curve per run), and ``build_figures`` merges the points of a label across runs.

The paper's text gives no curve values for Figs. 6, 10 and 11 (they exist only as drawings), so no
paper curve is drawn; what the text does state (DC-AR is best at 12 steps, MAR-B at 64, Fig. 10 spans
the first 30K steps) is drawn as marked reference lines, from ``harness/report/data/figure_reference.csv``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from harness.report.collect import RunView
from harness.report.grids import caption_following_grids, geneval_grids, recon_grids
from harness.report.plotting import Canvas, Figure, FigureFact, Series, facts_of, not_run, weights_phrase

__all__ = ["Figure", "Series", "build_figures", "plot_gfid_vs_steps", "plot_mar_steps", "plot_training_loss",
           "series_from_runs"]

#: line plots: 7 x 4.4 in at the report DPI
LINE_SIZE_IN = (7.0, 4.4)
FIG6_TITLE = "Fig. 6: gFID vs sampling steps"
FIG10_TITLE = "Fig. 10: training loss, fine-tuning vs training from scratch (512×512)"
FIG11_TITLE = "Fig. 11: MAR-B gFID vs sampling steps (ImageNet 256×256)"
STEPS_X_LABEL = "sampling steps (generator iterations, log scale)"
GFID_Y_LABEL = "gFID (FID of generated images, lower is better)"


# --------------------------------------------------------------------------- line plots


def _label(s: Series) -> str:
    if s.is_paper:
        return f"{s.label} (paper)"
    if s.real_weights is False:
        return s.label + (" [mini-trained]" if s.weights_kind == "mini-trained" else " [random/dummy weights]")
    return s.label


def _colors(series: Sequence[Series]) -> dict[str, str]:
    """One colour per model label: our line and the paper's line of the same model share it."""
    out: dict[str, str] = {}
    for s in series:
        out.setdefault(s.label, f"C{len(out) % 10}")
    return out


def _plot_lines(ax: Any, series: Sequence[Series]) -> None:
    colors = _colors(series)
    for s in series:
        pts = sorted(zip(s.x, s.y))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        many = len(xs) > 40  # a loss log: a line, no markers
        # the paper's points: larger hollow squares, so a point of ours on top of one leaves it visible
        style = dict(ls="--", marker=None if many else "s", mfc="none", ms=9, mew=1.6, lw=1.6) if s.is_paper \
            else dict(ls="-", marker=None if many else "o", lw=1.8, ms=5)
        ax.plot(xs, ys, color=colors[s.label], label=_label(s), **style)


def _checked(series: Sequence[Series], figure_id: str) -> list[Series]:
    if not series:
        raise ValueError(f"{figure_id}: no series to plot")
    return list(series)


def _subtitle(series: Sequence[Series]) -> str:
    ours = [s for s in series if not s.is_paper]
    fake = [s for s in ours if s.real_weights is False]
    if fake:
        marks = sorted({"[mini-trained]" if s.weights_kind == "mini-trained" else "[random/dummy weights]"
                        for s in fake})
        return f"\nlines marked {' or '.join(marks)} are NOT the paper's models"
    return ""


def _steps_figure(series: Sequence[Series], out_dir: str | Path, *, figure_id: str, title: str, what: str,
                  y_label: str) -> Figure:
    """gFID (or any metric) against sampling steps on a log2 axis, the paper's stated best step counts marked."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    series = _checked(series, figure_id)
    facts = [f for f in facts_of(figure_id) if f.quantity == "best_sampling_steps"]
    with Canvas(*LINE_SIZE_IN) as c:
        c.fig.set_layout_engine("constrained")
        ax = c.fig.add_subplot()
        _plot_lines(ax, series)
        for f, ls in zip(facts, (":", "-.", "--")):
            ax.axvline(f.value, color="0.35", ls=ls, lw=1.3, label=f"paper text: {f.model} best at {f.value:g} steps")
        ticks = sorted({float(v) for s in series for v in s.x} | {f.value for f in facts})
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(STEPS_X_LABEL)
        ax.set_ylabel(y_label)
        ax.set_title(title + _subtitle(series))
        ax.legend(loc="best", framealpha=0.9)
        rel = c.save(out_dir, figure_id)
        size = list(c.size_px())
    return Figure(figure_id, title, rel, "drawn", _caption(what, series, facts), _data(series, facts, size))


def _caption(what: str, series: Sequence[Series], facts: Sequence[FigureFact]) -> str:
    ours = [s for s in series if not s.is_paper]
    paper = [s for s in series if s.is_paper]
    parts = [f"{what}: {len(ours)} line(s) of ours ({', '.join(s.label for s in ours) or 'none'})"]
    if ours:
        parts[0] += f", {weights_phrase([s.real_weights is not False for s in ours], [s.weights_kind for s in ours])}"
    if paper:
        parts.append(f"the paper's values for {', '.join(s.label for s in paper)} dashed")
    if facts:
        parts.append("from the paper's text: " + "; ".join(f.phrase() for f in facts))
    return "; ".join(parts) + "."


def _data(series: Sequence[Series], facts: Sequence[FigureFact], size: list[int]) -> dict[str, Any]:
    return {"series": [s.to_dict() for s in series],
            "paper_facts": [{"model": f.model, "quantity": f.quantity, "value": f.value, "unit": f.unit,
                             "source": f.source} for f in facts],
            "size_px": size}


def plot_gfid_vs_steps(series: Sequence[Series], out_dir: str | Path, *, y_label: str = GFID_Y_LABEL) -> Figure:
    """Fig. 6: gFID of each text-to-image model at several sampling steps (the paper's 12-step choice marked)."""
    if y_label != GFID_Y_LABEL:  # another metric in the figure's shape: the title must not claim gFID
        return _steps_figure(series, out_dir, figure_id="fig6", title=f"Fig. 6 shape: {y_label} vs sampling steps",
                             y_label=y_label, what=f"{y_label} at each number of sampling steps")
    return _steps_figure(series, out_dir, figure_id="fig6", title=FIG6_TITLE, y_label=y_label,
                         what="gFID at each number of sampling steps")


def plot_mar_steps(series: Sequence[Series], out_dir: str | Path, *, y_label: str = GFID_Y_LABEL) -> Figure:
    """Fig. 11: gFID of MAR-B (class-conditional, ImageNet 256) at several sampling steps (64 and 12 marked)."""
    if y_label != GFID_Y_LABEL:
        return _steps_figure(series, out_dir, figure_id="fig11", title=f"Fig. 11 shape: {y_label} vs sampling steps",
                             y_label=y_label, what=f"{y_label} at each number of sampling steps")
    return _steps_figure(series, out_dir, figure_id="fig11", title=FIG11_TITLE, y_label=y_label,
                         what="class-conditional ImageNet 256×256 gFID at each number of sampling steps")


def plot_training_loss(series: Sequence[Series], out_dir: str | Path, *,
                       y_label: str = "training loss (as logged by the trainer)") -> Figure:
    """Fig. 10: training loss against step, the 512×512 generator fine-tuned from 256×256 vs trained from scratch."""
    from matplotlib.ticker import FuncFormatter

    series = _checked(series, "fig10")
    facts = facts_of("fig10")
    shown = [f for f in facts if f.quantity == "steps_shown"]
    with Canvas(*LINE_SIZE_IN) as c:
        c.fig.set_layout_engine("constrained")
        ax = c.fig.add_subplot()
        _plot_lines(ax, series)
        x_max = max(float(v) for s in series for v in s.x)
        for f in shown:
            if x_max >= f.value:  # only inside the data: a far-away line would squash the curves
                ax.axvline(f.value, color="0.35", ls=":", lw=1.3,
                           label=f"paper's Fig. 10 ends here ({f.value / 1000:g}K steps)")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}K" if abs(v) >= 1000 else f"{v:g}"))
        ax.set_xlabel("training steps (optimizer updates)")
        ax.set_ylabel(y_label)
        ax.set_title(FIG10_TITLE + _subtitle(series))
        ax.legend(loc="best", framealpha=0.9)
        rel = c.save(out_dir, "fig10")
        size = list(c.size_px())
    return Figure("fig10", FIG10_TITLE, rel, "drawn", _caption("Training loss against step", series, shown),
                  _data(series, shown, size))


# --------------------------------------------------------------------------- from the runs


def series_from_runs(runs: Sequence[RunView], figure_id: str) -> list[Series]:
    """The series the runs' summaries hold for ``figure_id`` (``results["figure_series"]``), merged by label.

    Each run may give whole curves or single points (a sweep stores one run per step count); the points
    of one label (and paper flag) are joined in x order, the first value of a repeated x kept. A label's
    line counts as random-weight when any run behind it was (an entry's own ``real_weights``, when given,
    stands for its run's: a sweep has no adapter of its own).
    """
    merged: dict[tuple[str, bool], dict[str, Any]] = {}
    for run in runs:
        for entry in (run.results.get("figure_series") or {}).get(figure_id) or ():
            key = (str(entry["label"]), bool(entry.get("is_paper", False)))
            slot = merged.setdefault(key, {"points": {}, "real": True, "kinds": set()})
            for x, y in zip(entry["x"], entry["y"]):
                slot["points"].setdefault(float(x), float(y))
            # an adapter-less run (a sweep) says per entry whether its points used real weights
            real = run.real_weights if entry.get("real_weights") is None else bool(entry["real_weights"])
            slot["real"] = slot["real"] and (key[1] or real)
            slot["kinds"].add(entry.get("weights_kind") or getattr(run, "weights_kind", None))
    out = []
    for (label, is_paper), slot in merged.items():
        xs = sorted(slot["points"])
        kinds = slot["kinds"]
        out.append(Series(label, xs, [slot["points"][x] for x in xs], is_paper,
                          None if is_paper else bool(slot["real"]),
                          next(iter(kinds)) if len(kinds) == 1 and not is_paper else None))
    return out


def _y_label(runs: Sequence[RunView], figure_id: str) -> str | None:
    """The y-axis title the runs behind a figure ask for (``results["figure_y_label"][id]``), when they all agree.

    Why: a sweep may plot another number than gFID (a smoke run's stand-in metric); its axis must say so.
    """
    labels = {str(v) for r in runs if (v := (r.results.get("figure_y_label") or {}).get(figure_id))}
    return labels.pop() if len(labels) == 1 else None


#: (figure id, title, plot function, what would fill it, what it shows)
LINE_FIGURES: tuple[tuple[str, str, Callable[..., Figure], str, str], ...] = (
    ("fig6", FIG6_TITLE, plot_gfid_vs_steps,
     "a steps_sweep run (gFID at several sampling steps) of dc-ar and dc-ar-discrete-only",
     "gFID of DC-AR at several sampling steps; the paper's text says 12 steps give its best quality."),
    ("fig10", FIG10_TITLE, plot_training_loss,
     "train_efficiency runs (the training-loss logs of the 512×512 generator fine-tuned from 256×256 and "
     "trained from scratch)",
     "Training-loss curves of the 512×512 generator fine-tuned from the 256×256 model vs trained from scratch; "
     "the paper shows the first 30K steps."),
    ("fig11", FIG11_TITLE, plot_mar_steps,
     "a steps_sweep run of a class-to-image MAR adapter (MAR-B, ImageNet 256×256 gFID)",
     "gFID of MAR-B at several sampling steps; the paper's text says MAR-B needs 64 steps, DC-AR 12."),
)


def build_figures(runs: Sequence[RunView], out_dir: str | Path) -> list[Figure]:
    """Every figure a report shows, drawn from the runs' files (PNGs under ``out_dir/figures/``) or marked not run.

    Order: Fig. 6, the Fig. 9-style grids, Fig. 10, Fig. 11, the reconstruction grids, the caption-following grids
    (not a paper figure: drawn only when a caption_following run saved images). Reads plan, records,
    summaries and artifacts only (no dataset, no model, no weights).
    """
    out_dir = Path(out_dir)
    line = {}
    for figure_id, title, plot, needs, caption in LINE_FIGURES:
        series = series_from_runs(runs, figure_id)
        y_label = _y_label(runs, figure_id)
        line[figure_id] = (plot(series, out_dir, **({"y_label": y_label} if y_label else {})) if series
                           else not_run(figure_id, title, needs, caption))
    return [line["fig6"], *geneval_grids(runs, out_dir), line["fig10"], line["fig11"], *recon_grids(runs, out_dir),
            *caption_following_grids(runs, out_dir)]
