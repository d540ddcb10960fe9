"""MJHQ-30K reader: prompts in ``meta_data.json`` key order, real images from the zip's folder tree or the parquet copy.

Why the key order matters: Sana's toolkit (the protocol behind DC-AR's Table 2) takes
``list(meta.keys())[:N]`` as "the first N" prompts, so a subset here is the same subset there.
Layouts (HF dataset card ``playgroundai/MJHQ-30K``):

* ``folder``: ``<root>/meta_data.json`` and ``<root>/<category>/<image id>.jpg`` (``mjhq30k_imgs.zip``
  unpacked; a ``mjhq30k_imgs/`` or ``imgs/`` sub-folder holding the category folders is found too);
* ``parquet``: ``<root>/meta_data.json`` and ``*.parquet`` files under ``<root>`` whose rows hold
  ``image`` (``{"bytes", "path"}``, the path's stem is the image id) and ``label`` (category index).

Why the whole layout is checked up front: a half-unpacked zip otherwise shows up as a silently
lower FID over fewer reference images. The checks say which category, how many files are missing
and which file is unreadable or not RGB (Sana's toolkit asserts RGB and would stop there too).
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from harness.api import DataError, MissingDependencyError, Requirement

#: the 10 categories in the order of the HF ``label`` class ids 0-9
CATEGORIES = ("animals", "art", "fashion", "food", "indoor", "landscape", "logo", "people", "plants", "vehicles")
PER_CATEGORY = 3000
NUM_IMAGES = len(CATEGORIES) * PER_CATEGORY  # 30,000
META_FILE = "meta_data.json"
IMAGE_SUBDIRS = ("", "mjhq30k_imgs", "imgs")  # where the category folders may sit under the root
ENV_VAR = "DCAR_MJHQ_ROOT"
HF_REPO = "datasets/playgroundai/MJHQ-30K"
GET_IT = ("download meta_data.json and mjhq30k_imgs.zip from the Hugging Face dataset playgroundai/MJHQ-30K and "
          "unzip the images next to meta_data.json")

MJHQ_REQUIREMENT = Requirement(
    name="MJHQ-30K (meta_data.json + images)",
    description=f"30,000 Midjourney images, 10 categories x 3,000, and their prompts: {GET_IT}",
    env_var=ENV_VAR,
    config_key="dataset.root",
    hf_repo=HF_REPO,
    must_contain=(META_FILE,),
)


class MJHQLayoutError(DataError):
    """The MJHQ-30K folder is not laid out as expected; the message says what is wrong and where."""


@dataclass(frozen=True)
class MJHQEntry:
    """One prompt of ``meta_data.json``: the image id (file stem), its category and its caption."""

    id: str
    category: str
    prompt: str
    index: int  # position in meta_data.json key order


def read_meta(path: str | os.PathLike) -> list[MJHQEntry]:
    """Entries of ``meta_data.json`` in key order; a malformed file is refused naming the key."""
    path = Path(path)
    if not path.is_file():
        raise MJHQLayoutError(f"{path}: no such file; the MJHQ-30K root must contain {META_FILE} ({GET_IT})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MJHQLayoutError(f"{path} is not valid JSON ({exc}); re-download {META_FILE}") from None
    if not isinstance(meta, dict):
        raise MJHQLayoutError(f"{path}: expected a JSON object keyed by image id, got {type(meta).__name__}")
    out = []
    for i, (key, value) in enumerate(meta.items()):
        if not isinstance(value, dict) or not isinstance(value.get("prompt"), str) or "category" not in value:
            raise MJHQLayoutError(f"{path}: entry {key!r} lacks a 'prompt' string or a 'category'")
        if value["category"] not in CATEGORIES:
            raise MJHQLayoutError(f"{path}: entry {key!r} has category {value['category']!r}, not one of "
                                  f"{', '.join(CATEGORIES)}")
        out.append(MJHQEntry(str(key), value["category"], value["prompt"], i))
    return out


def resolve_root(root: str | os.PathLike | None) -> Path:
    """Explicit root, then ``$DCAR_MJHQ_ROOT``, then the HF dataset cache; never downloads."""
    from harness.resources import locate

    return locate(MJHQ_REQUIREMENT, root)


class MJHQ30K:
    """The dataset: entries in key order, the layout, and the bytes of each real image.

    ``require_full`` (the default) refuses anything but 30,000 = 10 x 3,000 entries; tests and
    smoke runs on a small tree in the same layout turn it off (their results are labelled).
    """

    def __init__(self, root: str | os.PathLike | None, *, require_full: bool = True):
        self.root = resolve_root(root)
        self.entries = read_meta(self.root / META_FILE)
        self.require_full = require_full
        self.layout, self.images_dir = self._detect_layout()
        self._parquet_index: dict[str, tuple[Path, int]] | None = None

    # ------------------------------------------------------------------ layout

    def _detect_layout(self) -> tuple[str, Path]:
        for sub in IMAGE_SUBDIRS:
            d = self.root / sub if sub else self.root
            if any((d / c).is_dir() for c in CATEGORIES):
                return "folder", d
        if self.parquet_files():
            return "parquet", self.root
        raise MJHQLayoutError(
            f"{self.root}: no category folders ({', '.join(CATEGORIES)}) and no *.parquet files found next to "
            f"{META_FILE}; expected <root>/<category>/<image id>.jpg ({GET_IT}) or the HF parquet copy")

    def parquet_files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*.parquet") if p.is_file())

    def image_path(self, entry: MJHQEntry) -> Path:
        """``<images dir>/<category>/<id>.jpg`` (folder layout) or ``<parquet file>#<row>`` (for messages)."""
        if self.layout == "folder":
            return self.images_dir / entry.category / f"{entry.id}.jpg"
        path, row = self._parquet()[entry.id]
        return Path(f"{path}#row{row}")

    def relpath(self, entry: MJHQEntry) -> str:
        return f"{entry.category}/{entry.id}.jpg"

    def validate(self) -> None:
        """Every count and file the run needs, before any model loads (one error naming what is wrong)."""
        from collections import Counter

        counts = Counter(e.category for e in self.entries)
        absent = [c for c in CATEGORIES if counts[c] == 0]
        if absent:
            raise MJHQLayoutError(f"{self.root / META_FILE}: no prompts of categor{'y' if len(absent) == 1 else 'ies'} "
                                  f"{', '.join(absent)}; MJHQ-30K has all 10 ({', '.join(CATEGORIES)})")
        if self.require_full:
            if len(self.entries) != NUM_IMAGES or any(counts[c] != PER_CATEGORY for c in CATEGORIES):
                per = ", ".join(f"{c} {counts[c]}" for c in CATEGORIES if counts[c] != PER_CATEGORY)
                raise MJHQLayoutError(
                    f"{self.root / META_FILE} holds {len(self.entries)} prompts ({per}); MJHQ-30K has {NUM_IMAGES:,} "
                    f"= 10 x {PER_CATEGORY:,}. Re-download it, or set dataset.require_full=false for a smaller "
                    f"tree in the same layout (its numbers are then not MJHQ-30K's)")
        if self.layout == "folder":
            self._validate_folder()
        else:
            self._validate_parquet()

    def _validate_folder(self) -> None:
        from harness.data.image_io import IMAGE_EXTENSIONS

        missing_dirs = [c for c in CATEGORIES if not (self.images_dir / c).is_dir()]
        if missing_dirs:
            raise MJHQLayoutError(f"{self.images_dir}: category folder{'s' if len(missing_dirs) > 1 else ''} "
                                  f"{', '.join(missing_dirs)} missing (expected <category>/<image id>.jpg; "
                                  f"was {GET_IT.split(' and ')[1]} complete?)")
        by_cat: dict[str, list[MJHQEntry]] = {c: [] for c in CATEGORIES}
        for e in self.entries:
            by_cat[e.category].append(e)
        for cat in CATEGORIES:
            folder = self.images_dir / cat
            on_disk = {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
            wanted = [f"{e.id}.jpg" for e in by_cat[cat]]
            lost = [w for w in wanted if w not in on_disk]
            if lost:
                raise MJHQLayoutError(
                    f"{folder}: {len(lost)} of the {len(wanted)} images meta_data.json lists for category {cat} are "
                    f"missing (e.g. {', '.join(lost[:3])}); {len(on_disk)} image files are there. Re-extract "
                    f"mjhq30k_imgs.zip")
            extra = len(on_disk) - len(wanted)
            if extra > 0 and self.require_full:
                raise MJHQLayoutError(f"{folder}: {len(on_disk)} image files for {len(wanted)} prompts of category "
                                      f"{cat} in {META_FILE}; the prompt and image counts must match")

    def _validate_parquet(self) -> None:
        index = self._parquet()
        lost = [e for e in self.entries if e.id not in index]
        if lost:
            cats = sorted({e.category for e in lost})
            raise MJHQLayoutError(f"{self.root}: {len(lost)} of {len(self.entries)} images in {META_FILE} are not in "
                                  f"the parquet files (categories {', '.join(cats)}; e.g. {lost[0].id}); "
                                  f"re-download the dataset")
        if self.require_full and len(index) != len(self.entries):
            raise MJHQLayoutError(f"{self.root}: the parquet files hold {len(index)} images for "
                                  f"{len(self.entries)} prompts in {META_FILE}; the counts must match")

    def check_headers(self, entries: Sequence[MJHQEntry] | None = None) -> None:
        """Header-only check of every image (folder layout): unreadable or not RGB is refused by name."""
        if self.layout != "folder":
            return
        from PIL import Image, UnidentifiedImageError

        for e in entries if entries is not None else self.entries:
            path = self.image_path(e)
            try:
                with Image.open(path) as img:
                    mode = img.mode
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                raise MJHQLayoutError(f"cannot read image {path}: {type(exc).__name__}: {exc}. Re-extract it "
                                      f"from mjhq30k_imgs.zip") from None
            if mode != "RGB":
                raise MJHQLayoutError(f"image {path} is mode {mode}, not RGB; MJHQ-30K images are RGB JPEGs and "
                                      f"Sana's toolkit refuses others. Re-extract it from mjhq30k_imgs.zip")

    # ------------------------------------------------------------------ parquet

    def _parquet(self) -> dict[str, tuple[Path, int]]:
        """image id -> (file, row), from the ``image.path`` column (read without the image bytes)."""
        if self._parquet_index is None:
            pq = _pyarrow_parquet()
            index: dict[str, tuple[Path, int]] = {}
            for f in self.parquet_files():
                table = pq.read_table(f, columns=["image"])
                paths = table.column("image").combine_chunks().field("path").to_pylist()
                for row, p in enumerate(paths):
                    if not p:
                        raise MJHQLayoutError(f"{f}: row {row} has no image.path; cannot match it to "
                                              f"{META_FILE} (re-download the dataset)")
                    index[Path(p).stem] = (f, row)
            self._parquet_index = index
        return self._parquet_index

    # ------------------------------------------------------------------ bytes

    def read_bytes(self, entry: MJHQEntry) -> bytes:
        """The encoded file of one real image (read once: it is hashed and decoded from these bytes)."""
        if self.layout == "folder":
            path = self.image_path(entry)
            try:
                return path.read_bytes()
            except FileNotFoundError:
                raise MJHQLayoutError(f"image {path} listed in {META_FILE} is missing") from None
        f, row = self._parquet()[entry.id]
        table = _pyarrow_parquet().read_table(f, columns=["image"])
        return table.column("image")[row].as_py()["bytes"]

    def iter_bytes(self, entries: Sequence[MJHQEntry]) -> Iterator[tuple[MJHQEntry, bytes]]:
        if self.layout == "folder":
            for e in entries:
                yield e, self.read_bytes(e)
            return
        by_file: dict[Path, list[tuple[int, MJHQEntry]]] = {}
        for e in entries:
            f, row = self._parquet()[e.id]
            by_file.setdefault(f, []).append((row, e))
        blobs: dict[str, bytes] = {}
        for f, rows in by_file.items():
            col = _pyarrow_parquet().read_table(f, columns=["image"]).column("image")
            for row, e in rows:
                blobs[e.id] = col[row].as_py()["bytes"]
        for e in entries:
            yield e, blobs[e.id]


def decode_rgb(data: bytes, name: str | os.PathLike):
    """Decode image bytes to an RGB PIL image; a corrupt or non-RGB file is refused naming ``name``.

    Why not convert grayscale: every MJHQ-30K image is RGB and Sana's toolkit asserts it, so another
    mode means a damaged or foreign file, and converting it would hide that.
    """
    from PIL import Image, UnidentifiedImageError

    from harness.data.image_io import CorruptImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode != "RGB":
                raise MJHQLayoutError(f"image {name} is mode {img.mode}, not RGB; MJHQ-30K images are RGB JPEGs "
                                      f"(re-extract it from mjhq30k_imgs.zip)")
            return img.copy()
    except MJHQLayoutError:
        raise
    except (UnidentifiedImageError, SyntaxError, ValueError, OSError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(name, f"{type(exc).__name__}: {exc}", "Re-extract it from mjhq30k_imgs.zip") from None


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError(f"the MJHQ-30K parquet layout needs pyarrow: pip install pyarrow ({exc}); "
                                     f"or unzip mjhq30k_imgs.zip next to meta_data.json instead") from None
    return pq
