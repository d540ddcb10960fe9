"""GenEval prompts and the official image-folder contract.

Why a reader and a writer here: the official scorer (``djghosh13/geneval``) reads a
folder, not a list of records, and other tools (Sana, Show-o, MaskGen scripts) write
that folder. We write exactly that layout, so the official scorer can read our
images, and we read folders written by others, reporting instead of silently
skipping what the official scorer would skip::

    <outdir>/
      00000/                 one folder per prompt line, zero-padded line index
        metadata.jsonl       ONE JSON object: that prompt's line of evaluation_metadata.jsonl
        samples/0000.png     PNG only (the official scorer matches r"\\d+\\.png")
        samples/0001.png ...

The prompt file shipped in the package is the official one, byte-identical (sha256
below; attribution in ``geneval_files/SOURCE.md``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping
from harness.api import UserError

PROMPT_FILE = "evaluation_metadata.jsonl"
CLASS_FILE = "object_names.txt"
PROMPT_FILE_SHA256 = "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
CLASS_FILE_SHA256 = "608f6a0e5c8ca1c7a92b818430141fe268c85b7930b50f4160f1d65893b5bacd"

#: folder and file names we write (the official scorer accepts any digits)
PROMPT_DIGITS = 5
SAMPLE_DIGITS = 4
METADATA_NAME = "metadata.jsonl"
SAMPLES_DIR = "samples"

_SAMPLE_RE = re.compile(r"\d+\.png")  # the official scorer uses re.match, i.e. a prefix match
_OTHER_IMAGE_RE = re.compile(r".*\.(jpe?g|webp|bmp|tiff?|gif)$", re.IGNORECASE)


def _read_packaged(name: str) -> bytes:
    return resources.files("harness.data").joinpath("geneval_files", name).read_bytes()


@lru_cache(maxsize=1)
def load_prompts() -> tuple[dict[str, Any], ...]:
    """The 553 official prompt objects, in file order (index = folder number)."""
    data = _read_packaged(PROMPT_FILE)
    digest = hashlib.sha256(data).hexdigest()
    if digest != PROMPT_FILE_SHA256:
        raise RuntimeError(f"the packaged GenEval prompt file was modified (sha256 {digest}, expected "
                           f"{PROMPT_FILE_SHA256}); reinstall dcar-bench")
    return tuple(json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip())


@lru_cache(maxsize=1)
def load_class_names() -> tuple[str, ...]:
    """The 80 COCO class names; index = Mask2Former's COCO thing-class index (0 = person)."""
    data = _read_packaged(CLASS_FILE)
    digest = hashlib.sha256(data).hexdigest()
    if digest != CLASS_FILE_SHA256:
        raise RuntimeError(f"the packaged GenEval class file was modified (sha256 {digest}); reinstall dcar-bench")
    return tuple(line.strip() for line in data.decode("utf-8").splitlines() if line.strip())


def prompt_dir(outdir: str | os.PathLike, prompt_index: int) -> Path:
    return Path(outdir) / f"{int(prompt_index):0{PROMPT_DIGITS}d}"


def sample_relpath(prompt_index: int, sample_index: int) -> str:
    """``00012/samples/0003.png``: where sample 3 of prompt 12 goes, relative to the output folder."""
    return f"{int(prompt_index):0{PROMPT_DIGITS}d}/{SAMPLES_DIR}/{int(sample_index):0{SAMPLE_DIGITS}d}.png"


def metadata_bytes(metadata: Mapping[str, Any]) -> bytes:
    """The metadata file content: the prompt's JSON object on one line (json.dumps, as the reference generator)."""
    return (json.dumps(dict(metadata)) + "\n").encode("utf-8")


# ---------------------------------------------------------------- reading folders


class GenEvalFolderError(UserError, ValueError):
    """A folder cannot be scored the way the official scorer would score it."""


@dataclass
class PromptFolder:
    index: int  # the folder's number
    path: Path
    metadata: dict[str, Any]
    samples: list[Path]  # PNG samples the official scorer would read, sorted


@dataclass
class FolderScan:
    """What a GenEval image folder holds, and everything the official scorer would skip silently."""

    root: Path
    prompts: list[PromptFolder] = field(default_factory=list)
    ignored_non_digit: list[str] = field(default_factory=list)  # sub-folders the scorer ignores
    ignored_other_images: list[str] = field(default_factory=list)  # jpg/webp... in samples/ (skipped)
    no_png_prompts: list[int] = field(default_factory=list)  # prompt folders contributing no image
    mismatched_metadata: list[int] = field(default_factory=list)  # differs from the shipped prompt line
    out_of_range: list[int] = field(default_factory=list)  # folder numbers >= 553

    @property
    def num_images(self) -> int:
        return sum(len(p.samples) for p in self.prompts)

    def warnings(self) -> list[str]:
        out = []

        def few(xs: list, n: int = 5) -> str:
            shown = ", ".join(str(x) for x in xs[:n])
            return shown + (f", ... ({len(xs) - n} more)" if len(xs) > n else "")

        if self.ignored_non_digit:
            out.append(f"{len(self.ignored_non_digit)} sub-folder(s) with non-digit names are ignored "
                       f"(the official scorer only reads digit-named folders): {few(self.ignored_non_digit)}")
        if self.ignored_other_images:
            out.append(f"{len(self.ignored_other_images)} non-PNG sample file(s) are ignored (the official scorer "
                       f"only reads \\d+.png; save PNG): {few(self.ignored_other_images)}")
        if self.no_png_prompts:
            out.append(f"{len(self.no_png_prompts)} prompt folder(s) have no PNG sample and contribute no image: "
                       f"{few(self.no_png_prompts)}")
        if self.mismatched_metadata:
            out.append(f"{len(self.mismatched_metadata)} prompt folder(s) hold metadata that differs from line "
                       f"<folder number> of the shipped evaluation_metadata.jsonl; they are scored with their own "
                       f"metadata, so the result is not comparable with published GenEval numbers: "
                       f"{few(self.mismatched_metadata)}")
        if self.out_of_range:
            out.append(f"{len(self.out_of_range)} folder number(s) are beyond the 553 official prompts: "
                       f"{few(self.out_of_range)}")
        return out


def read_metadata_file(path: Path) -> dict[str, Any]:
    """One prompt's metadata.jsonl (a single JSON object, as the official scorer's json.load reads it)."""
    text = path.read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenEvalFolderError(f"{path}: not a single JSON object ({exc}); metadata.jsonl must hold exactly "
                                 "that prompt's line of evaluation_metadata.jsonl") from exc
    if not isinstance(obj, dict) or "tag" not in obj or "include" not in obj:
        raise GenEvalFolderError(f"{path}: expected a GenEval prompt object with 'tag' and 'include', got {text[:120]!r}")
    return obj


def scan_folder(root: str | os.PathLike, strict_metadata: bool = False) -> FolderScan:
    """Inventory ``root`` the way the official scorer reads it.

    Errors (:class:`GenEvalFolderError`): ``root`` missing or not a folder, no digit-named
    prompt folder, a prompt folder without ``metadata.jsonl`` or with unreadable metadata,
    two folders with the same number, and (``strict_metadata``) metadata that differs
    from the shipped prompt file. Everything the official scorer would skip silently is
    collected in the returned :class:`FolderScan` (see :meth:`FolderScan.warnings`).
    """
    root = Path(root)
    if not root.is_dir():
        raise GenEvalFolderError(f"GenEval image folder {root} does not exist or is not a directory")
    prompts = load_prompts()
    scan = FolderScan(root=root)
    missing_meta: list[str] = []
    seen: dict[int, str] = {}
    for entry in sorted(os.listdir(root)):
        path = root / entry
        if not path.is_dir():
            continue
        if not entry.isdigit():
            scan.ignored_non_digit.append(entry)
            continue
        index = int(entry)
        if index in seen:
            raise GenEvalFolderError(f"folders {seen[index]!r} and {entry!r} in {root} both stand for prompt {index}")
        seen[index] = entry
        meta_path = path / METADATA_NAME
        if not meta_path.is_file():
            missing_meta.append(entry)
            continue
        metadata = read_metadata_file(meta_path)
        if index >= len(prompts):
            scan.out_of_range.append(index)
        elif metadata != prompts[index]:
            scan.mismatched_metadata.append(index)
        samples_dir = path / SAMPLES_DIR
        samples: list[Path] = []
        if samples_dir.is_dir():
            for name in sorted(os.listdir(samples_dir)):
                if _SAMPLE_RE.match(name):
                    samples.append(samples_dir / name)
                elif _OTHER_IMAGE_RE.match(name):
                    scan.ignored_other_images.append(f"{entry}/{SAMPLES_DIR}/{name}")
        if not samples:
            scan.no_png_prompts.append(index)
        scan.prompts.append(PromptFolder(index, path, metadata, samples))
    if missing_meta:
        shown = ", ".join(missing_meta[:5]) + (f", ... ({len(missing_meta) - 5} more)" if len(missing_meta) > 5 else "")
        raise GenEvalFolderError(
            f"{len(missing_meta)} prompt folder(s) in {root} lack {METADATA_NAME} (the official scorer would crash): "
            f"{shown}. Each prompt folder needs the prompt's JSON object in {METADATA_NAME}."
        )
    if not scan.prompts:
        raise GenEvalFolderError(
            f"no digit-named prompt folders in {root}"
            + (f" (ignored non-digit folders: {', '.join(scan.ignored_non_digit[:5])})" if scan.ignored_non_digit else "")
            + "; expected <outdir>/00000/metadata.jsonl + samples/0000.png ..."
        )
    if strict_metadata and scan.mismatched_metadata:
        raise GenEvalFolderError("; ".join(w for w in scan.warnings() if "differs" in w))
    return scan
