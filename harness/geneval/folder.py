"""The official GenEval image-folder contract: the layout we write, and an inventory of folders others wrote.

Why a reader and a writer here: the official scorer (``djghosh13/geneval``) reads a folder, not a
list of records, and other tools (Sana, Show-o, MaskGen scripts) write that folder. We write exactly
that layout, so the official scorer can read our images, and we read folders written by others,
reporting instead of silently skipping what the official scorer would skip::

    <outdir>/
      00000/                 one folder per prompt line, zero-padded line index
        metadata.jsonl       ONE JSON object: that prompt's line of evaluation_metadata.jsonl
        samples/0000.png     PNG only (the official scorer matches r"\\d+\\.png")
        samples/0001.png ...

``geneval check`` and the detect suite's ``validate`` both call :func:`inspect_folder`, so a folder
that passes the check is one that detection can read (every PNG is decoded, not just listed).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.api import UserError
from harness.geneval.prompts import is_shipped_metadata, load_prompts

#: folder and file names we write (the official scorer accepts any digits)
PROMPT_DIGITS = 5
SAMPLE_DIGITS = 4
METADATA_NAME = "metadata.jsonl"
SAMPLES_DIR = "samples"
#: where the generate suite writes the folder: under its run's artifacts/, i.e. <run>/artifacts/geneval
ARTIFACTS_SUBDIR = "geneval"
RUN_SUBDIR = f"artifacts/{ARTIFACTS_SUBDIR}"

_SAMPLE_RE = re.compile(r"\d+\.png")  # the official scorer uses re.match, i.e. a prefix match
_OTHER_IMAGE_RE = re.compile(r".*\.(jpe?g|webp|bmp|tiff?|gif)$", re.IGNORECASE)
_LAYOUT = f"<folder>/00000/{METADATA_NAME} + <folder>/00000/{SAMPLES_DIR}/0000.png ..."


class GenEvalFolderError(UserError, ValueError):
    """A folder cannot be scored the way the official scorer would score it."""


def prompt_dir(outdir: str | os.PathLike, prompt_index: int) -> Path:
    return Path(outdir) / f"{int(prompt_index):0{PROMPT_DIGITS}d}"


def sample_relpath(prompt_index: int, sample_index: int) -> str:
    """``00012/samples/0003.png``: where sample 3 of prompt 12 goes, relative to the output folder."""
    return f"{int(prompt_index):0{PROMPT_DIGITS}d}/{SAMPLES_DIR}/{int(sample_index):0{SAMPLE_DIGITS}d}.png"


def metadata_relpath(prompt_index: int) -> str:
    return f"{int(prompt_index):0{PROMPT_DIGITS}d}/{METADATA_NAME}"


def metadata_bytes(metadata: Mapping[str, Any]) -> bytes:
    """The metadata file content: the prompt's JSON object on one line (json.dumps, as the reference generator)."""
    return (json.dumps(dict(metadata)) + "\n").encode("utf-8")


# ---------------------------------------------------------------- reading folders


@dataclass
class PromptFolder:
    index: int  # the folder's number
    path: Path
    metadata: dict[str, Any]
    samples: list[Path]  # PNG samples the official scorer would read, sorted


def _few(xs: list, n: int = 5) -> str:
    shown = ", ".join(str(x) for x in xs[:n])
    return shown + (f", ... ({len(xs) - n} more)" if len(xs) > n else "")


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

    def relpath(self, sample: Path) -> str:
        """``00012/samples/0003.png`` for a sample of this folder."""
        return sample.relative_to(self.root).as_posix()

    def warnings(self) -> list[str]:
        out = []
        if self.ignored_non_digit:
            out.append(f"{len(self.ignored_non_digit)} sub-folder(s) with non-digit names are ignored "
                       f"(the official scorer only reads digit-named folders): {_few(self.ignored_non_digit)}")
        if self.ignored_other_images:
            out.append(f"{len(self.ignored_other_images)} non-PNG sample file(s) are ignored (the official scorer "
                       f"only reads \\d+.png; save PNG): {_few(self.ignored_other_images)}")
        if self.no_png_prompts:
            out.append(f"{len(self.no_png_prompts)} prompt folder(s) have no PNG sample and contribute no image: "
                       f"{_few(self.no_png_prompts)}")
        if self.mismatched_metadata:
            out.append(f"{len(self.mismatched_metadata)} prompt folder(s) hold metadata that differs from line "
                       f"<folder number> of the shipped evaluation_metadata.jsonl; they are scored with their own "
                       f"metadata, so the result is not comparable with published GenEval numbers: "
                       f"{_few(self.mismatched_metadata)}")
        if self.out_of_range:
            out.append(f"{len(self.out_of_range)} folder number(s) are beyond the 553 official prompts: "
                       f"{_few(self.out_of_range)}")
        return out


def image_rows(scan: FolderScan) -> list[dict[str, Any]]:
    """One row per sample as the score counts images (tag, prompt), for completeness checks before detection."""
    return [{"tag": pf.metadata["tag"], "prompt_index": pf.index, "correct": False} for pf in scan.prompts
            for _ in pf.samples]


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


def _layout_hint(root: Path) -> str:
    """A fix for a folder that holds no prompt folders: the GenEval folder one level down, if there is one."""
    nested = root / RUN_SUBDIR
    if nested.is_dir():
        return f" {root} looks like a generate run directory: pass its images folder, --images {nested}"
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if loose:
        return (f" It holds {len(loose)} loose image file(s) ({_few(loose, 3)}): GenEval needs one folder per prompt "
                f"with that prompt's metadata ({_LAYOUT}); write the images with `dcar-bench geneval generate` or in "
                "that layout")
    return f" Expected {_LAYOUT}"


def scan_folder(root: str | os.PathLike, strict_metadata: bool = False) -> FolderScan:
    """Inventory ``root`` the way the official scorer reads it (names only; :func:`inspect_folder` also decodes).

    Errors (:class:`GenEvalFolderError`): ``root`` missing or not a folder, no digit-named
    prompt folder, a prompt folder without ``metadata.jsonl`` or with unreadable metadata,
    two folders with the same number, and (``strict_metadata``) metadata that differs
    from the shipped prompt file. Everything the official scorer would skip silently is
    collected in the returned :class:`FolderScan` (see :meth:`FolderScan.warnings`).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise GenEvalFolderError(f"GenEval image folder {root} does not exist or is not a directory "
                                 f"(expected {_LAYOUT})")
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
            raise GenEvalFolderError(f"folders {seen[index]!r} and {entry!r} in {root} both stand for prompt {index}; "
                                     "keep one of them")
        seen[index] = entry
        meta_path = path / METADATA_NAME
        if not meta_path.is_file():
            missing_meta.append(entry)
            continue
        metadata = read_metadata_file(meta_path)
        if index >= len(load_prompts()):
            scan.out_of_range.append(index)
        elif not is_shipped_metadata(index, metadata):
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
        raise GenEvalFolderError(
            f"{len(missing_meta)} prompt folder(s) in {root} lack {METADATA_NAME} (the official scorer would crash): "
            f"{_few(missing_meta)}. Each prompt folder needs the prompt's JSON object in {METADATA_NAME}."
        )
    if not scan.prompts:
        ignored = f" (ignored non-digit folders: {_few(scan.ignored_non_digit)})" if scan.ignored_non_digit else ""
        raise GenEvalFolderError(f"no digit-named prompt folders in {root}{ignored}.{_layout_hint(root)}")
    if strict_metadata and scan.mismatched_metadata:
        raise GenEvalFolderError("; ".join(w for w in scan.warnings() if "differs" in w)
                                 + " (strict_metadata is on: set it to false to score them anyway, labelled)")
    return scan


def undecodable_images(scan: FolderScan) -> dict[str, str]:
    """``{relative path: reason}`` for every sample PNG that does not decode (zero-byte, truncated, not a PNG)."""
    from harness.data.image_io import CorruptImageError, open_rgb

    bad: dict[str, str] = {}
    for pf in scan.prompts:
        for path in pf.samples:
            try:
                open_rgb(path)
            except CorruptImageError as exc:
                bad[scan.relpath(path)] = exc.reason
    return bad


def check_decodable(scan: FolderScan) -> None:
    """Decode every sample of ``scan``; raise one :class:`GenEvalFolderError` naming the files that do not decode.

    A sample that would stop detection hours into a run (an empty or truncated PNG) is refused here,
    before any model loads.
    """
    bad = undecodable_images(scan)
    if bad:
        first = next(iter(bad))
        raise GenEvalFolderError(
            f"{len(bad)} of {scan.num_images} PNG sample(s) in {scan.root} cannot be decoded: "
            + "; ".join(f"{k} ({v})" for k, v in list(bad.items())[:5]) + (" ..." if len(bad) > 5 else "")
            + f". Re-create them with the tool that wrote the folder, or delete them (e.g. {scan.root / first}) and "
            "score the rest with --allow-partial (labelled INCOMPLETE)."
        )


def inspect_folder(root: str | os.PathLike, strict_metadata: bool = False) -> FolderScan:
    """:func:`scan_folder`, then :func:`check_decodable`: what ``geneval check`` runs on a folder."""
    scan = scan_folder(root, strict_metadata=strict_metadata)
    check_decodable(scan)
    return scan
