"""Training data the project makes itself: procedural pictures with captions that describe them, and
scikit-image's sample pictures.

Why procedural: no dataset can be downloaded here, and a miniature reproduction still needs many distinct
images whose captions *say* what is in them (so text conditioning has something to learn). A scene is a
function of (seed, index) only and is drawn in relative coordinates, so item i at 256 px and at 512 px is
the same scene -- the property the 256 -> 512 fine-tuning recipe relies on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (235, 210, 40),
          "orange": (240, 140, 30), "purple": (140, 60, 180), "white": (245, 245, 245), "black": (20, 20, 20),
          "gray": (128, 128, 128), "pink": (240, 150, 190)}
SHAPES = ("circle", "square", "triangle")
PLACES = {"left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73),
          "center": (0.5, 0.5)}
SIZES = {"small": 0.13, "big": 0.22}


@dataclass(frozen=True)
class Scene:
    """One procedural picture: a background and 1-2 shapes, each (size, colour, shape, place)."""

    background: str
    objects: tuple[tuple[str, str, str, str], ...]

    @property
    def caption(self) -> str:
        parts = [f"a {size} {color} {shape} {'in the' if place == 'center' else 'on the'} {place}"
                 for size, color, shape, place in self.objects]
        article = "an" if self.background[0] in "aeiou" else "a"
        return " and ".join(parts) + f" on {article} {self.background} background"


def scene(seed: int, index: int) -> Scene:
    """The scene of item ``index`` under ``seed`` (numpy's PCG64 seeded by both; stable across versions)."""
    rng = np.random.Generator(np.random.PCG64([int(seed) & 0xFFFFFFFF, int(index)]))
    names = list(COLORS)
    background = names[int(rng.integers(len(names)))]
    places = list(PLACES)
    count = 1 + int(rng.integers(2))
    chosen = rng.choice(len(places), size=count, replace=False)
    objects = []
    for p in chosen:
        color = background
        while color == background:
            color = names[int(rng.integers(len(names)))]
        objects.append((list(SIZES)[int(rng.integers(2))], color, SHAPES[int(rng.integers(3))], places[int(p)]))
    return Scene(background, tuple(objects))


def render_scene(s: Scene, resolution: int) -> np.ndarray:
    """uint8 (H, W, 3) picture of ``s``; shapes are drawn with 4x supersampled coverage (smooth edges)."""
    ss = 4
    n = resolution * ss
    yy, xx = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) / n
    img = np.empty((n, n, 3), np.float32)
    img[:] = COLORS[s.background]
    for size, color, shape, place in s.objects:
        cx, cy = PLACES[place]
        r = SIZES[size]
        if shape == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        elif shape == "square":
            mask = (np.abs(xx - cx) <= r * 0.85) & (np.abs(yy - cy) <= r * 0.85)
        else:  # upward triangle inscribed in the circle of radius r
            top, base = cy - r, cy + r * 0.5
            half = (yy - top) / (base - top) * r * math.sqrt(3) / 2 * 1.0
            mask = (yy >= top) & (yy <= base) & (np.abs(xx - cx) <= half)
        img[mask] = COLORS[color]
    img = img.reshape(resolution, ss, resolution, ss, 3).mean(axis=(1, 3))
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


class ShapesDataset:
    """``n`` procedural (image, caption) items at ``resolution``; item i is the same scene at any resolution."""

    kind = "shapes"

    def __init__(self, n: int, resolution: int, seed: int = 0):
        if n < 1:
            raise ValueError(f"the shapes dataset needs at least one item, got n={n}")
        self.n, self.resolution, self.seed = int(n), int(resolution), int(seed)

    def __len__(self) -> int:
        return self.n

    def caption(self, index: int) -> str:
        return scene(self.seed, index).caption

    def image(self, index: int) -> np.ndarray:
        return render_scene(scene(self.seed, index), self.resolution)

    def describe(self) -> dict:
        return {"kind": self.kind, "n": self.n, "resolution": self.resolution, "seed": self.seed,
                "note": "procedural shapes with captions (dcar_training.data), NOT the paper's training data"}


#: scikit-image sample pictures (bundled with the package, no download)
SKIMAGE_SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "colorwheel",
                   "logo", "coins", "page", "cat", "hubble_deep_field")


class SkimageDataset:
    """scikit-image's sample pictures, ADM centre-cropped to ``resolution`` (captions: the picture's name)."""

    kind = "skimage_samples"

    def __init__(self, resolution: int, names: Sequence[str] = SKIMAGE_SAMPLES):
        self.resolution = int(resolution)
        self.names = tuple(names)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.names)

    def caption(self, index: int) -> str:
        return f"a photo of {self.names[index].replace('_', ' ')}"

    def image(self, index: int) -> np.ndarray:
        if index not in self._cache:
            import skimage.data
            from PIL import Image

            from harness.data.image_io import to_rgb
            from harness.data.imagenet import adm_center_crop

            arr = np.asarray(getattr(skimage.data, self.names[index])())
            if arr.dtype == bool:
                arr = arr.astype(np.uint8) * 255
            self._cache[index] = np.asarray(adm_center_crop(to_rgb(Image.fromarray(arr)), self.resolution))
        return self._cache[index]

    def describe(self) -> dict:
        return {"kind": self.kind, "n": len(self), "resolution": self.resolution,
                "note": "scikit-image sample pictures, NOT ImageNet"}


class FolderDataset:
    """Every image under ``root`` (sorted; e.g. an ImageNet split), ADM centre-cropped; caption = a ``.txt`` file
    beside the image if there is one, else the file's stem. ``n`` (if > 0) takes the first n files."""

    kind = "folder"

    def __init__(self, root: str, resolution: int, n: int = 0):
        from harness.data.image_io import list_images

        self.root = str(root)
        self.files = list_images(root)[: n if n > 0 else None]
        if not self.files:
            from harness.api import DataError

            raise DataError(f"no images under {root}. Fix: point data.root at a folder of images")
        self.resolution = int(resolution)

    def __len__(self) -> int:
        return len(self.files)

    def caption(self, index: int) -> str:
        txt = self.files[index].with_suffix(".txt")
        return txt.read_text().strip() if txt.is_file() else self.files[index].stem.replace("_", " ")

    def image(self, index: int) -> np.ndarray:
        from harness.data.image_io import open_rgb
        from harness.data.imagenet import adm_center_crop

        return np.asarray(adm_center_crop(open_rgb(self.files[index]), self.resolution))

    def describe(self) -> dict:
        return {"kind": self.kind, "root": self.root, "n": len(self), "resolution": self.resolution}


def build_dataset(kind: str, *, n: int, resolution: int, seed: int = 0, root: str | None = None):
    """``kind``: ``shapes`` (n procedural items), ``skimage_samples`` (the 12 bundled pictures) or ``folder``."""
    if kind == "shapes":
        return ShapesDataset(n, resolution, seed)
    if kind == "skimage_samples":
        return SkimageDataset(resolution)
    from harness.runner.config import ConfigError

    if kind == "folder":
        if not root:
            raise ConfigError("data kind 'folder' needs a root. Fix: --set <data section>.root=/path/to/images")
        return FolderDataset(root, resolution, n)
    raise ConfigError(f"unknown training dataset kind {kind!r}. Fix: use shapes, skimage_samples or folder")


def batch_images(dataset, indices: Sequence[int]):
    """float32 (B, 3, H, W) in [-1, 1] for the given dataset indices (the models' input range)."""
    import torch

    arr = np.stack([dataset.image(int(i)) for i in indices]).astype(np.float32)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous() / 127.5 - 1.0


def unseen_indices(seed: int, n: int, *, train_seed: int = 0, train_n: int = 4096) -> list[int]:
    """The first ``n`` indices of ``seed`` whose scene is not among items ``0..train_n-1`` of ``train_seed``.

    Why: there are few distinct one-object scenes, so a different seed alone repeats about 17-30% of the training
    pictures; a held-out figure must leave them out. A caption determines its scene, so captions are compared.
    """
    seen = {scene(train_seed, i).caption for i in range(train_n)}
    out, index = [], 0
    while len(out) < n:
        if scene(seed, index).caption not in seen:
            out.append(index)
        index += 1
    return out
