"""Config pieces and helpers the two training suites share (``tokenizer_ablation``, ``train_efficiency``).

Why here and not in each suite: both suites train, read loss logs, measure device-hours and compute
Fréchet distances from stored features in the same way; one copy keeps their numbers comparable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

MINI_NOTE = ("**Miniature reproduction.** This run trained tiny models for a few minutes on the project's own "
             "procedural pictures (or scikit-image samples), with a random-weight Inception: it checks that the "
             "recipes run end to end and shows their *relative* behaviour at toy scale. Its numbers are NOT the "
             "paper's metric and are not comparable with the paper's values printed beside them.")


@dataclass(frozen=True)
class DataConfig:
    kind: Literal["shapes", "skimage_samples", "folder"]
    n: int
    seed: int
    root: str | None = None

    def __post_init__(self) -> None:
        if self.kind != "skimage_samples" and self.n < 2 and self.kind == "shapes":
            raise ValueError(f"a shapes dataset needs n >= 2 images, got {self.n}")

    def build(self, resolution: int):
        from .data import build_dataset

        return build_dataset(self.kind, n=self.n, resolution=resolution, seed=self.seed, root=self.root)


@dataclass(frozen=True)
class InceptionConfig:
    weights_path: str | None
    random_init_seed: int | None
    resize: Literal["bilinear_pytorch", "bilinear_tf1x"]
    batch_size: int

    def __post_init__(self) -> None:
        if self.weights_path and self.random_init_seed is not None:
            raise ValueError("inception: give weights_path or random_init_seed, not both. "
                             "Fix: --set inception.random_init_seed=null")

    def extractor(self, device: str):
        from .evaluate import make_extractor

        return make_extractor(self.weights_path, self.random_init_seed, self.resize, self.batch_size, device)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def downsample_curve(rows: Sequence[Mapping[str, Any]], key: str = "loss", limit: int = 1000,
                     first_steps: int | None = None) -> dict[str, list[float]]:
    """``{"step": [...], key: [...]}`` of a loss log, at most ``limit`` evenly spaced rows (the last one kept)."""
    rows = [r for r in rows if first_steps is None or r["step"] <= first_steps]
    if len(rows) > limit:
        idx = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
        rows = [rows[i] for i in idx]
    return {"step": [int(r["step"]) for r in rows], key: [float(r[key]) for r in rows]}


def load_features(ctx, entry: Mapping[str, str], item_id: str | None = None) -> dict[str, np.ndarray]:
    """A record's feature artifact (``{"path", "sha256"}``), checked against its sha256 (a modified file is refused)."""
    import io

    blob = ctx.read_artifact(entry["path"], entry["sha256"], item_id=item_id)
    with np.load(io.BytesIO(blob), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def fid(a: np.ndarray, b: np.ndarray, method: str) -> float | None:
    from harness.metrics.fid import fid_from_features

    if len(a) < 2 or len(b) < 2:
        return None
    return float(fid_from_features(a, b, method=method))
