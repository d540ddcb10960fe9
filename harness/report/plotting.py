"""What every report figure shares: the :class:`Figure` record, plot series, the paper's figure facts, PNG output.

Why a record per figure, drawn or not: a report must say which of the paper's figures it could fill and
which it could not (and which suite or run would fill it), never leave one out silently; and the exact
numbers or files a PNG shows travel with it (``Figure.data``), so a test can check that the picture
shows the records and nothing else.

Why matplotlib is imported inside functions: it belongs to the ``report`` extra, and ``harness.report``
must import (and write Markdown) without it. Figures are drawn on the Agg backend into bytes and written
atomically, like every other file of a run or report directory.
"""
from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Sequence

from harness.io import atomic_write_bytes

#: PNGs go to ``<report dir>/figures/``; ``Figure.path`` is relative to the report directory
FIGURES_DIR = "figures"
#: pixels per inch of every PNG (a 7 x 4.4 in line plot is 840 x 528 px: sharp on a laptop, small in git)
DPI = 120
#: font sizes that stay readable when GitHub scales a figure down to the page width
STYLE = {
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
    "legend.fontsize": 9.5, "figure.titlesize": 13, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False,
}


@dataclass
class Figure:
    """One figure of a report, drawn or not.

    ``path``: the PNG relative to the report directory (``figures/fig9.png``), None when not drawn.
    ``status``: ``"drawn"``, or ``"not run: <the suite/run that would fill it>"``.
    ``caption``: what the figure shows, in a sentence, including whether the weights were real.
    ``data``: the exact numbers or files that were plotted (JSON-serialisable).
    """

    id: str
    title: str
    path: str | None
    status: str
    caption: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def drawn(self) -> bool:
        return self.status == "drawn"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def not_run(figure_id: str, title: str, needs: str, caption: str) -> Figure:
    """A figure no run can fill: its status names what would fill it."""
    return Figure(figure_id, title, None, f"not run: needs {needs}", caption, {})


@dataclass(frozen=True)
class Series:
    """One line of a plot: ``label``, x values, y values; ``is_paper`` for numbers taken from the paper.

    ``real_weights``: False marks a line made with random/dummy/mini weights (its legend says so), None
    when not applicable (the paper's own numbers).
    """

    label: str
    x: Sequence[float]
    y: Sequence[float]
    is_paper: bool = False
    real_weights: bool | None = None
    weights_kind: str | None = None  # "mini-trained" names the mini defaults in the legend

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"series {self.label!r}: {len(self.x)} x values but {len(self.y)} y values")
        if not self.x:
            raise ValueError(f"series {self.label!r} has no points")
        bad = [v for v in (*self.x, *self.y) if not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad:
            raise ValueError(f"series {self.label!r} holds non-finite or non-numeric values: {bad[:3]}")

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "x": [float(v) for v in self.x], "y": [float(v) for v in self.y],
                "is_paper": self.is_paper, "real_weights": self.real_weights}


@dataclass(frozen=True)
class FigureFact:
    """A value the paper's text states about one of its figures (the curves themselves are only drawn there)."""

    figure: str
    model: str
    quantity: str
    value: float
    unit: str
    source: str

    def phrase(self) -> str:
        """The fact as a caption says it."""
        if self.quantity == "best_sampling_steps":
            return f"{self.model} is best at {self.value:g} steps"
        if self.quantity == "steps_shown":
            return f"the paper's figure shows the first {self.value / 1000:g}K {self.unit}"
        return f"{self.model} {self.quantity.replace('_', ' ')} {self.value:g} {self.unit}"


@lru_cache(maxsize=1)
def figure_facts() -> tuple[FigureFact, ...]:
    """Every row of ``harness/report/data/figure_reference.csv`` (the paper's text, with where it says it)."""
    text = resources.files("harness.report").joinpath("data/figure_reference.csv").read_text(encoding="utf-8")
    return tuple(FigureFact(r["figure"], r["model"], r["quantity"], float(r["value"]), r["unit"], r["source"])
                 for r in csv.DictReader(text.splitlines()))


def facts_of(figure_id: str) -> list[FigureFact]:
    return [f for f in figure_facts() if f.figure == figure_id]


def whole_pixels(inches: float) -> float:
    """``inches`` rounded up to a whole number of pixels (matplotlib truncates; the PNG size is then exact)."""
    return math.ceil(inches * DPI - 1e-6) / DPI


def weights_phrase(real: Sequence[bool], kinds: Sequence[str | None] | None = None) -> str:
    """"real weights" / "random weights" / "mini-trained weights" / "mixed weights", for captions.

    ``kinds``: each run's ``weights_kind`` (aligned with ``real``), so the mini-trained defaults are named as such.
    """
    if real and all(real):
        return "real weights"
    fake_kinds = {k for r, k in zip(real, kinds or [None] * len(real)) if not r}
    if fake_kinds == {"mini-trained"}:
        return ("mini-trained weights (NOT the released models)" if not any(real) else
                "some runs with mini-trained weights (marked)")
    if not any(real):
        return "random or dummy weights (NOT the paper's models)"
    return "some runs with random, dummy or mini-trained weights (marked)"


def not_real_words(kinds: Sequence[str | None]) -> str:
    """The subtitle words for a grid or figure whose weights are not the real ones."""
    if kinds and all(k == "mini-trained" for k in kinds):
        return "MINI-TRAINED weights (minutes on procedural shapes): NOT the released models"
    return "RANDOM/DUMMY weights: NOT the paper's models"


class Canvas:
    """A matplotlib figure on the Agg backend in the report style, used as ``with Canvas(w, h) as c:``.

    The style is applied only inside the ``with`` block (a report never changes the caller's rcParams),
    and ``save`` writes the PNG.
    """

    def __init__(self, width_in: float, height_in: float):
        self.width_in, self.height_in = whole_pixels(width_in), whole_pixels(height_in)
        self._rc: Any = None
        self.fig: Any = None

    def __enter__(self) -> "Canvas":
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure as MplFigure

        self._rc = matplotlib.rc_context(STYLE)
        self._rc.__enter__()
        self.fig = MplFigure(figsize=(self.width_in, self.height_in), dpi=DPI)
        FigureCanvasAgg(self.fig)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._rc.__exit__(*exc)

    def save(self, out_dir: str | Path, name: str) -> str:
        """Render to PNG bytes (no timestamp: the same data gives the same bytes), write atomically; the rel path."""
        from io import BytesIO

        buf = BytesIO()
        self.fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        rel = f"{FIGURES_DIR}/{name}.png"
        atomic_write_bytes(Path(out_dir) / rel, buf.getvalue())
        return rel

    def size_px(self) -> tuple[int, int]:
        return round(self.width_in * DPI), round(self.height_in * DPI)


def iter_unique(values: Sequence[str]) -> Iterator[str]:
    """``values`` with repeats made unique (``a``, ``a (2)``): legends and column titles must not collide."""
    seen: dict[str, int] = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
        yield v if seen[v] == 1 else f"{v} ({seen[v]})"
