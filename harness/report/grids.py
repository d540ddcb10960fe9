"""Image grids from stored artifacts: Fig. 9-style generator comparisons and tokenizer reconstructions.

Why grids are built from the records, not from folders: a record names each image file and its sha256,
so a grid shows exactly the images the run measured, in plan order, and says so when a file is
missing or was modified afterwards (the cell is marked, the grid is still drawn).

Which GenEval runs are compared: runs with the same stored plan (``plan_sha256``: same prompts, same
samples) and the same run seed made their images from the same per-item seeds, so a row shows the same
prompt and the same noise through each model: DC-AR beside its discrete-only baseline (the paper's
Fig. 9, baseline on the left), or any other adapters side by side. Runs of one adapter only, or of
different plans or seeds, are not paired.

Caption-following runs (``suites/caption_following.py``) are grouped the same way (same plan, same seed), but a
run alone also gets its grid (one column): each cell is marked with its verdicts (background, object colours,
mask IoU) from the record, so the grid shows what was scored.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.geneval.folder import ARTIFACTS_SUBDIR
from harness.io import bytes_sha256
from harness.report.collect import RunView, runs_of
from harness.report.plotting import (
    DPI,
    Canvas,
    Figure,
    iter_unique,
    not_real_words,
    not_run,
    weights_phrase,
    whole_pixels,
)

#: at most this many rows per grid (a grid is for looking at, the records hold the rest)
MAX_ROWS = 8
#: inches per image cell; label column; gaps
CELL_IN = 1.9
GAP_IN = 0.12
EDGE_IN = 0.15
FIG9_NEEDS = ("two geneval runs with the same prompts and seed by different adapters "
              "(e.g. dc-ar and dc-ar-discrete-only, as the smoke run makes)")
FIG9_CAPTION = ("The same GenEval prompts and seeds through two text-to-image models side by side "
                "(the paper's Fig. 9: the discrete-only baseline on the left, DC-AR on the right).")
RECON_NEEDS = "an imagenet_recon run that saved example images (report.examples > 0, the default)"
RECON_CAPTION = "Input crops beside the tokenizer's reconstructions through each path, with per-image PSNR."
CAPTION_SUITE = "caption_following"
#: the figure id (and PNG name) of the first caption-following grid; a run draws its own under this name too
CAPTION_GRID_ID = "caption_following_grid"


# --------------------------------------------------------------------------- reading images


def _read_image(path: Path, sha256: str | None) -> tuple[Any, str | None]:
    """(uint8 array or None, problem or None): a missing, modified or undecodable file is named, not fatal."""
    import io

    import numpy as np
    from PIL import Image

    try:
        blob = path.read_bytes()
    except OSError:
        return None, f"{path}: missing"
    if sha256 and bytes_sha256(blob) != sha256:
        return None, f"{path}: does not match the sha256 in its record (modified after the run)"
    try:
        with Image.open(io.BytesIO(blob)) as im:
            return np.asarray(im.convert("RGB")), None
    except Exception as exc:  # noqa: BLE001  (any decoder error: the cell says so)
        return None, f"{path}: not a decodable image ({exc})"


# --------------------------------------------------------------------------- drawing


def _wrap(text: str, width: int, max_lines: int) -> str:
    lines = textwrap.wrap(text, width) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(1, width - 1)].rstrip() + "…"
    return "\n".join(lines)


def _draw_grid(name: str, out_dir: Path, *, title: str, subtitle: str, warn: bool, col_titles: Sequence[str],
               row_labels: Sequence[str], cells: Sequence[Sequence[Any]], cell_titles: Sequence[Sequence[str]] | None,
               label_in: float) -> tuple[str, list[int]]:
    """Lay out a grid of images with a label column, column titles and a two-part title; (PNG rel path, size).

    The layout is computed in inches (no automatic layout engine), so text never overlaps an image
    whatever the prompt lengths, and the PNG size is known from the row and column counts.
    """
    ncols, nrows = len(col_titles), len(row_labels)
    cell_title_in = 0.26 if cell_titles else 0.0
    row_in = CELL_IN + cell_title_in + GAP_IN
    width = whole_pixels(EDGE_IN + label_in + ncols * (CELL_IN + GAP_IN) + EDGE_IN)
    title_chars = max(30, int(width * 72 / 7.5))  # ~7.5 pt per character at 13 pt bold
    title_txt = _wrap(title, title_chars, 2)
    sub_txt = _wrap(subtitle, int(width * 72 / 6.0), 3)
    head_in = 0.25 + 0.24 * (title_txt.count("\n") + 1) + 0.19 * (sub_txt.count("\n") + 1) + 0.34
    height = whole_pixels(head_in + nrows * row_in + EDGE_IN)
    with Canvas(width, height) as c:
        fig = c.fig
        fig.text(0.5, 1 - 0.15 / height, title_txt, ha="center", va="top", fontsize=13, fontweight="bold")
        y_sub = 0.15 + 0.24 * (title_txt.count("\n") + 1) + 0.04
        fig.text(0.5, 1 - y_sub / height, sub_txt, ha="center", va="top", fontsize=10,
                 color="#b00020" if warn else "0.25")
        for j, col in enumerate(col_titles):
            x_mid = EDGE_IN + label_in + j * (CELL_IN + GAP_IN) + CELL_IN / 2
            fig.text(x_mid / width, 1 - (head_in - 0.08) / height, _wrap(col, 24, 2), ha="center", va="bottom",
                     fontsize=11, fontweight="bold")
        for i, label in enumerate(row_labels):
            top = head_in + i * row_in + cell_title_in
            fig.text((EDGE_IN + label_in - 0.1) / width, 1 - (top + CELL_IN / 2) / height, label, ha="right",
                     va="center", fontsize=9.5, linespacing=1.25)
            for j in range(ncols):
                left = EDGE_IN + label_in + j * (CELL_IN + GAP_IN)
                ax = fig.add_axes((left / width, 1 - (top + CELL_IN) / height, CELL_IN / width, CELL_IN / height))
                img = cells[i][j]
                if img is None:
                    ax.set_facecolor("0.92")
                    ax.text(0.5, 0.5, "image missing\nor modified", ha="center", va="center", fontsize=9,
                            color="#b00020", transform=ax.transAxes)
                else:  # small images (tiny models) keep their pixels instead of being blurred up
                    small = max(img.shape[:2]) < CELL_IN * DPI
                    ax.imshow(img, interpolation="nearest" if small else "antialiased")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_linewidth(0.6)
                    spine.set_color("0.6")
                if cell_titles:
                    ax.set_title(cell_titles[i][j], fontsize=9.5, pad=3)
        rel = c.save(out_dir, name)
        return rel, list(c.size_px())


# --------------------------------------------------------------------------- Fig. 9: generators side by side


def _omissions(noun: str, capped: Sequence[Any], not_in_all: Sequence[Any], problems: Sequence[Any]) -> str:
    """The caption's closing sentences: rows left out (cap, not made by every model) and damaged images."""
    out = ""
    if capped:
        out += f" {len(capped)} more {noun}(s) are not shown (at most {MAX_ROWS} rows)."
    if not_in_all:
        out += f" {len(not_in_all)} {noun}(s) not shown: not yet generated by every model."
    if problems:
        out += f" {len(problems)} image(s) are missing or modified (marked)."
    return out


def _column_key(run: RunView) -> tuple[int, str, str]:
    """The discrete-only baseline first (the paper's Fig. 9 puts it on the left), then by adapter name."""
    adapter = run.adapter or ""
    return (0 if "discrete" in adapter else 1, adapter, str(run.run_dir))


def geneval_pairs(runs: Sequence[RunView]) -> list[list[RunView]]:
    """Groups of geneval runs with the same plan and seed and at least two different adapters, in run order."""
    groups: dict[tuple[str, int], list[RunView]] = {}
    for r in runs_of(runs, "geneval"):
        if r.items and r.records:
            groups.setdefault((r.manifest.plan_sha256, r.manifest.seed), []).append(r)
    return [sorted(g, key=_column_key) for g in groups.values() if len({r.adapter for r in g}) >= 2]


def _first_samples(run: RunView) -> dict[int, Mapping[str, Any]]:
    """prompt index -> the record of its lowest sample index."""
    out: dict[int, Mapping[str, Any]] = {}
    for rec in run.records:
        p = int(rec["prompt_index"])
        if p not in out or int(rec["sample_index"]) < int(out[p]["sample_index"]):
            out[p] = rec
    return out


def geneval_grid(group: Sequence[RunView], out_dir: Path, figure_id: str) -> Figure:
    """One row per prompt (its first sample), one column per run of ``group``; the prompt as row label."""
    prompts: dict[int, str] = {}
    for it in group[0].items:  # plan order; every run of the group has the same plan
        prompts.setdefault(int(it.payload["prompt_index"]), str(it.payload.get("prompt", "")))
    firsts = [_first_samples(r) for r in group]
    shown = [p for p in prompts if all(p in f for f in firsts)]
    not_in_all = [p for p in prompts if p not in shown]
    capped = shown[MAX_ROWS:]
    shown = shown[:MAX_ROWS]
    labels = list(iter_unique([r.label for r in group]))
    problems: list[str] = []
    cells, columns = [], []
    for r, f, label in zip(group, firsts, labels):
        columns.append({"label": label, "adapter": r.adapter, "run": str(r.run_dir), "real_weights": r.real_weights,
                        "completeness": r.completeness(), "files": [f[p]["file"] for p in shown],
                        "image_sha256": [f[p].get("image_sha256") for p in shown],
                        "seeds": [f[p].get("seed") for p in shown]})
    for p in shown:
        row = []
        for r, f in zip(group, firsts):
            img, problem = _read_image(r.artifact(f"{ARTIFACTS_SUBDIR}/{f[p]['file']}"), f[p].get("image_sha256"))
            row.append(img)
            if problem:
                problems.append(problem)
        cells.append(row)
    real = [r.real_weights for r in group]
    kinds = [r.weights_kind for r in group]
    partial = [f"{lab}: {r.completeness()}" for lab, r in zip(labels, group) if not r.complete]
    vs = " vs ".join(labels)
    subtitle = ("REAL weights" if all(real) else
                not_real_words(kinds) + ("" if set(kinds) == {"mini-trained"} else
                                         ", a check of the harness, not of image quality")
                if not any(real) else "some columns do not use the real weights: " +
                ", ".join(lab for lab, rw in zip(labels, real) if not rw))
    subtitle += f" · same prompts, same per-item seeds (run seed {group[0].manifest.seed}) · first sample per prompt"
    if partial:
        subtitle += " · " + "; ".join(partial)
    row_labels = [f"#{p}\n" + _wrap(prompts[p], 30, 5) for p in shown]
    rel, size = _draw_grid(figure_id, out_dir, title=f"{vs}: the same prompts and seeds", subtitle=subtitle,
                           warn=not all(real), col_titles=labels, row_labels=row_labels, cells=cells,
                           cell_titles=None, label_in=2.6)
    caption = (f"{len(shown)} GenEval prompt(s) (first sample of each, same per-item seeds) generated by {vs}, "
               f"one column per model; {weights_phrase(real, kinds)}.")
    caption += _omissions("prompt", capped, not_in_all, problems)
    data = {"plan_sha256": group[0].manifest.plan_sha256, "seed": group[0].manifest.seed,
            "prompt_indices": shown, "prompts": [prompts[p] for p in shown], "columns": columns,
            "not_shown": {"over_row_cap": capped, "missing_in_some_run": not_in_all}, "problems": problems,
            "size_px": size}
    return Figure(figure_id, f"Fig. 9-style comparison: {vs}", rel, "drawn", caption, data)


def geneval_grids(runs: Sequence[RunView], out_dir: Path) -> list[Figure]:
    """A grid per pairable group of geneval runs (``fig9``, ``fig9_2``, ...), or one not-run figure."""
    groups = geneval_pairs(runs)
    if not groups:
        return [not_run("fig9", "Fig. 9: DC-AR vs the discrete-only baseline", FIG9_NEEDS, FIG9_CAPTION)]
    return [geneval_grid(g, out_dir, "fig9" if k == 0 else f"fig9_{k + 1}") for k, g in enumerate(groups)]


# --------------------------------------------------------------------------- tokenizer reconstructions


def _path_order(paths: Sequence[str]) -> list[str]:
    return sorted(paths, key=lambda p: (p != "continuous", p))


def recon_grid(run: RunView, out_dir: Path, figure_id: str) -> Figure:
    """Rows: the run's example items (plan order); columns: input, then each reconstruction path."""
    recs = [r for r in run.records if r.get("examples")][:MAX_ROWS]
    total = sum(1 for r in run.records if r.get("examples"))
    paths = _path_order([k for k in recs[0]["examples"] if k != "input"])
    cols = ["input", *paths]
    problems: list[str] = []
    cells, titles, rows = [], [], []
    for rec in recs:
        ex = rec["examples"]
        row_cells, row_titles = [], []
        for col in cols:
            entry = ex.get(col) or {}
            img, problem = (_read_image(run.artifact(entry["file"]), entry.get("sha256")) if entry.get("file")
                            else (None, f"item {rec['item_id']}: no {col} example"))
            if problem:
                problems.append(problem)
            row_cells.append(img)
            psnr = (rec.get("psnr") or {}).get(col)
            row_titles.append("crop" + (f" {img.shape[1]}×{img.shape[0]}" if img is not None else "") if col == "input"
                              else f"PSNR {psnr:.2f} dB" if psnr is not None else "PSNR –")
        cells.append(row_cells)
        titles.append(row_titles)
        rows.append({"item_id": rec["item_id"], "files": {c: (ex.get(c) or {}).get("file") for c in cols},
                     "sha256": {c: (ex.get(c) or {}).get("sha256") for c in cols},
                     "psnr": {p: (rec.get("psnr") or {}).get(p) for p in paths}})
    dataset = (run.results.get("dataset") or {}).get("label") or str(
        (run.manifest.config.get("dataset") or {}).get("kind", "unknown data"))
    label = run.label
    subtitle = ("REAL tokenizer weights" if run.real_weights else
                "MINI-TRAINED tokenizer weights (minutes on procedural shapes): NOT the released model"
                if run.weights_kind == "mini-trained" else
                "RANDOM/DUMMY tokenizer weights: NOT the paper's model, a check of the harness")
    subtitle += f" · {dataset}"
    if not run.complete:
        subtitle += f" · {run.completeness()}"
    rel, size = _draw_grid(figure_id, out_dir, title=f"{label} reconstructions: input vs each path",
                           subtitle=subtitle, warn=not run.real_weights, col_titles=cols,
                           row_labels=[_wrap(str(r["item_id"]), 22, 3) for r in rows], cells=cells,
                           cell_titles=titles, label_in=1.7)
    caption = (f"{len(recs)} example image(s) of {dataset} and their reconstructions by {label} through the "
               f"{', '.join(paths)} path(s), PSNR per image (higher is better); "
               f"{weights_phrase([run.real_weights], [run.weights_kind])}.")
    if total > len(recs):
        caption += f" {total - len(recs)} more example(s) are not shown (at most {MAX_ROWS} rows)."
    if problems:
        caption += f" {len(problems)} image(s) are missing or modified (marked)."
    data = {"run": str(run.run_dir), "adapter": run.adapter, "real_weights": run.real_weights, "columns": cols,
            "rows": rows, "files": [r["files"][c] for r in rows for c in cols], "problems": problems,
            "size_px": size}
    return Figure(figure_id, f"Reconstructions: {label}", rel, "drawn", caption, data)


def recon_grids(runs: Sequence[RunView], out_dir: Path) -> list[Figure]:
    """A grid per imagenet_recon run with example images (``recon_grid``, ``recon_grid_2``, ...)."""
    with_examples = [r for r in runs_of(runs, "imagenet_recon") if any(rec.get("examples") for rec in r.records)]
    if not with_examples:
        return [not_run("recon_grid", "Tokenizer reconstructions", RECON_NEEDS, RECON_CAPTION)]
    return [recon_grid(r, out_dir, "recon_grid" if k == 0 else f"recon_grid_{k + 1}")
            for k, r in enumerate(with_examples)]


# --------------------------------------------------------------------------- caption following: verdicts per cell


def caption_groups(runs: Sequence[RunView]) -> list[list[RunView]]:
    """caption_following runs with saved images grouped by (plan, seed), in run order; a group may be one run."""
    groups: dict[tuple[str, int], list[RunView]] = {}
    for r in runs_of(runs, CAPTION_SUITE):
        if r.items and any(rec.get("image") for rec in r.records):
            groups.setdefault((r.manifest.plan_sha256, r.manifest.seed), []).append(r)
    return [sorted(g, key=_column_key) for g in groups.values()]


def caption_verdict(rec: Mapping[str, Any]) -> str:
    """A cell's title: ``✓``/``✗`` (all correct), the background, object colours right, mean IoU."""
    objs = rec.get("objects") or []
    right = sum(bool(o.get("color_correct")) for o in objs)
    iou = sum(float(o.get("iou", 0.0)) for o in objs) / len(objs) if objs else 0.0
    bg = "bg ok" if (rec.get("background") or {}).get("correct") else "bg wrong"
    return f"{'✓' if rec.get('all_correct') else '✗'} {bg}, {right}/{len(objs)} obj, IoU {iou:.2f}"


def _caption_labels(group: Sequence[RunView]) -> list[str]:
    """Column titles: the adapter, with the run directory's name when one adapter has several columns."""
    names = [r.label for r in group]
    return list(iter_unique([f"{n} ({r.run_dir.name})" if names.count(n) > 1 else n for n, r in zip(names, group)]))


def caption_following_grid(group: Sequence[RunView], out_dir: Path, figure_id: str) -> Figure:
    """One row per item (its caption as label, first :data:`MAX_ROWS` items every run has), one column per run."""
    items = [(it.id, it.payload) for it in group[0].items]
    by_id = [{rec["item_id"]: rec for rec in r.records} for r in group]
    shown = [(i, p) for i, p in items if all(i in b for b in by_id)]
    not_in_all = [i for i, _ in items if not all(i in b for b in by_id)]
    capped = [i for i, _ in shown[MAX_ROWS:]]
    shown = shown[:MAX_ROWS]
    labels = _caption_labels(group)
    problems: list[str] = []
    cells, titles, columns = [], [], []
    for r, b, label in zip(group, by_id, labels):
        recs = [b[i] for i, _ in shown]
        columns.append({"label": label, "adapter": r.adapter, "run": str(r.run_dir), "real_weights": r.real_weights,
                        "completeness": r.completeness(), "files": [rec.get("image") for rec in recs],
                        "image_sha256": [rec.get("image_sha256") for rec in recs],
                        "verdicts": [caption_verdict(rec) for rec in recs],
                        "all_correct": [bool(rec.get("all_correct")) for rec in recs]})
    for i, _ in shown:
        row, row_titles = [], []
        for r, b in zip(group, by_id):
            rec = b[i]
            if rec.get("image"):
                img, problem = _read_image(r.artifact(rec["image"]), rec.get("image_sha256"))
            else:
                img, problem = None, f"{r.run_dir}: item {i} has no saved image (save_images was false)"
            if problem:
                problems.append(problem)
            row.append(img)
            row_titles.append(caption_verdict(rec))
        cells.append(row)
        titles.append(row_titles)
    real = [r.real_weights for r in group]
    kinds = [r.weights_kind for r in group]
    subtitle = ("REAL weights" if all(real) else not_real_words(kinds) if not any(real) else
                "some columns do not use the real weights: " + ", ".join(lab for lab, rw in zip(labels, real) if not rw))
    scene_seed = group[0].manifest.config.get("scene_seed")
    subtitle += f" · procedural scenes of seed {scene_seed}, run seed {group[0].manifest.seed}"
    if len(group) > 1:
        subtitle += " · same captions, same per-item seeds"
    subtitle += " · ✓ = background and every object colour right"
    partial = [f"{lab}: {r.completeness()}" for lab, r in zip(labels, group) if not r.complete]
    if partial:
        subtitle += " · " + "; ".join(partial)
    vs = " vs ".join(labels)
    row_labels = [f"#{p.get('index', i)}\n" + _wrap(str(p.get("caption", "")), 30, 5) for i, p in shown]
    rel, size = _draw_grid(figure_id, out_dir, title=f"{vs}: caption following", subtitle=subtitle,
                           warn=not all(real), col_titles=labels, row_labels=row_labels, cells=cells,
                           cell_titles=titles, label_in=2.6)
    caption = (f"{len(shown)} procedural caption(s) of the caption_following suite generated by {vs}, one column "
               f"per model, each image marked with its verdicts (background colour, object colours right, mean "
               f"object mask IoU); {weights_phrase(real, kinds)}.")
    caption += _omissions("item", capped, not_in_all, problems)
    data = {"plan_sha256": group[0].manifest.plan_sha256, "seed": group[0].manifest.seed, "scene_seed": scene_seed,
            "items": [i for i, _ in shown], "captions": [p.get("caption") for _, p in shown], "columns": columns,
            "not_shown": {"over_row_cap": capped, "missing_in_some_run": not_in_all}, "problems": problems,
            "size_px": size}
    return Figure(figure_id, f"Caption following: {vs}", rel, "drawn", caption, data)


def caption_following_grids(runs: Sequence[RunView], out_dir: Path) -> list[Figure]:
    """A grid per group of caption_following runs (``caption_following_grid``, ``..._2``); none without such runs.

    Not a figure of the paper, so a report without caption_following runs lists no placeholder for it.
    """
    return [caption_following_grid(g, out_dir, CAPTION_GRID_ID if k == 0 else f"{CAPTION_GRID_ID}_{k + 1}")
            for k, g in enumerate(caption_groups(runs))]
