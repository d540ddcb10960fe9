"""ImageNet validation split reader and the ADM centre crop used by the DC-AE evaluator.

Why the crop is written out step by step: rFID is only comparable when the reconstructions and
the reference statistics come from the same crop, and ADM's crop (BOX halving, then BICUBIC with
Python rounding, then a floor-offset centre crop) differs from torchvision's ``Resize +
CenterCrop`` for large images. It is the crop of the DC-AE evaluator (efficientvit's ``DMCrop``,
which its docstring says is guided-diffusion's ``center_crop_arr`` from
``guided_diffusion/image_datasets.py``).

Layouts accepted under the root (``dataset.root`` config, else ``$DCAR_IMAGENET_VAL``):
  * ImageFolder tree: ``<root>/<wnid>/<file>.JPEG`` (or the same under ``<root>/val/``);
  * flat: ``<root>/*.JPEG`` plus an optional labels file (``LOC_val_solution.csv`` from Kaggle,
    or a text file of ``<filename> <label>`` lines). Labels are not needed for reconstruction.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import MissingResourceError, Requirement
from harness.data.image_io import IMAGE_EXTENSIONS, open_rgb

ENV_VAR = "DCAR_IMAGENET_VAL"
NUM_VAL_IMAGES = 50_000
LABEL_FILENAMES = ("LOC_val_solution.csv", "val_labels.txt", "labels.txt")

IMAGENET_VAL_REQUIREMENT = Requirement(
    name="ImageNet validation images",
    description=(
        "The 50,000 ILSVRC2012 validation images (registration at image-net.org, or the Kaggle "
        "'imagenet-object-localization-challenge' copy). Either an ImageFolder tree <root>/<wnid>/*.JPEG or the flat "
        f"folder of ILSVRC2012_val_*.JPEG files; set {ENV_VAR}=<root> or dataset.root=<root>."
    ),
    env_var=ENV_VAR,
    config_key="dataset.root",
)


# --------------------------------------------------------------------------- ADM centre crop


def adm_center_crop(img, resolution: int) -> np.ndarray:
    """ADM / DC-AE ``DMCrop``: PIL RGB image -> (res, res, 3) uint8 array.

    1. an image already res x res is returned unchanged;
    2. while min(W, H) >= 2*res: resize to (W//2, H//2) with PIL BOX;
    3. scale so the shorter side is res: (round(W*s), round(H*s)), s = res/min(W, H), PIL BICUBIC;
    4. centre crop with offsets ((H-res)//2, (W-res)//2).
    """
    from PIL import Image

    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if img.mode != "RGB":
        raise ValueError(f"adm_center_crop expects an RGB image, got mode {img.mode!r} (use harness.data.image_io)")
    if img.size == (resolution, resolution):
        return np.asarray(img, dtype=np.uint8).copy()
    while min(*img.size) >= 2 * resolution:
        img = img.resize(tuple(x // 2 for x in img.size), resample=Image.BOX)
    scale = resolution / min(*img.size)
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)
    top = (arr.shape[0] - resolution) // 2
    left = (arr.shape[1] - resolution) // 2
    return arr[top:top + resolution, left:left + resolution].copy()


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class ValImage:
    """One validation image: ``id`` is its path relative to the root (stable across machines)."""

    id: str
    path: Path
    label: str | None = None


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """``dataset.root`` if given, else ``$DCAR_IMAGENET_VAL``; a clear MissingResourceError otherwise."""
    from harness.resources import locate

    p = locate(IMAGENET_VAL_REQUIREMENT, root)
    if not p.is_dir():
        raise MissingResourceError(f"ImageNet val root {p} is not a directory. " + IMAGENET_VAL_REQUIREMENT.description)
    return p


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _read_labels(path: Path) -> dict[str, str]:
    """filename stem -> label from LOC_val_solution.csv or '<filename> <label>' lines."""
    labels: dict[str, str] = {}
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if "ImageId" not in row or "PredictionString" not in row:
                    raise ValueError(f"{path}: expected columns ImageId,PredictionString")
                labels[row["ImageId"]] = row["PredictionString"].split()[0]
        return labels
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{path}:{lineno}: expected '<filename> <label>', got {line!r}")
        labels[Path(parts[0]).stem] = parts[1]
    return labels


def list_val_images(root: str | os.PathLike, labels_file: str | os.PathLike | None = None) -> tuple[list[ValImage], str]:
    """All images of the split in ImageFolder order (sorted classes, then sorted files) and the layout name."""
    root = Path(root)
    if (root / "val").is_dir() and not any(_is_image(p) for p in root.iterdir()):
        sub = root / "val"
        if any(p.is_dir() for p in sub.iterdir()) or any(_is_image(p) for p in sub.iterdir()):
            root = sub
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
    flat = sorted((p for p in root.iterdir() if _is_image(p)), key=lambda p: p.name)
    if class_dirs and not flat:
        items = []
        for d in class_dirs:
            for f in sorted((p for p in d.iterdir() if _is_image(p)), key=lambda p: p.name):
                items.append(ValImage(id=f"{d.name}/{f.name}", path=f, label=d.name))
        if not items:
            raise MissingResourceError(f"no images found in the class folders under {root}")
        return items, "imagefolder"
    if flat:
        labels: dict[str, str] = {}
        lf = Path(labels_file) if labels_file else next(
            (root / n for n in LABEL_FILENAMES if (root / n).is_file()), None)
        if lf is not None:
            if not lf.is_file():
                raise FileNotFoundError(f"labels file not found: {lf}")
            labels = _read_labels(lf)
        return [ValImage(id=f.name, path=f, label=labels.get(f.stem)) for f in flat], "flat"
    raise MissingResourceError(f"no images found under {root} (expected <root>/<wnid>/*.JPEG or <root>/*.JPEG)")


class ImageNetVal:
    """The val split as a list of items, each loadable as an ADM-cropped uint8 array."""

    def __init__(self, root: str | os.PathLike | None = None, *, resolution: int = 256,
                 labels_file: str | os.PathLike | None = None, limit: int | None = None):
        self.root = resolve_root(root)
        self.resolution = int(resolution)
        self.images, self.layout = list_val_images(self.root, labels_file)
        if limit is not None:
            # evenly spaced over the sorted split, so a quick subset still covers every class
            n, k = len(self.images), max(0, min(int(limit), len(self.images)))
            self.images = [self.images[(i * n) // k] for i in range(k)] if k else []
        self._by_id = {im.id: im for im in self.images}

    def __len__(self) -> int:
        return len(self.images)

    def ids(self) -> list[str]:
        return [im.id for im in self.images]

    def path(self, image_id: str) -> Path:
        return self._by_id[image_id].path

    def load(self, image_id: str) -> np.ndarray:
        """ADM-cropped (res, res, 3) uint8 array; corrupt files raise CorruptImageError naming the file."""
        return adm_center_crop(open_rgb(self._by_id[image_id].path), self.resolution)

    def describe(self) -> dict[str, Any]:
        return {"dataset": "imagenet-val", "layout": self.layout, "num_images": len(self.images),
                "crop": "adm_center_crop", "resolution": self.resolution}
