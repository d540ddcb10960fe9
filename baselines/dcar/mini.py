"""The mini-trained default models shipped in ``baselines/dcar/mini_weights`` (``config="mini"`` of the DC-AR and
DC-HT adapters): where they are, and a sha256 check of every file before it is loaded.

Why a check: the files are the main job's defaults and live in the repository; a truncated clone (e.g. a Git LFS
pointer or a hand-edited file) must fail in one line naming the file, not produce quiet garbage. They are
trained by ``python -m dcar_training mini-defaults`` (see ``mini_weights/README.md``) and are NOT the released
weights: adapters report ``real_weights: false`` and ``weights_kind: mini-trained``.
"""
from __future__ import annotations

from pathlib import Path

from harness.api import MissingResourceError

MINI_ROOT = Path(__file__).resolve().parent / "mini_weights"
COMPONENT_DIRS = {"dcht": "dc-ht", "generator": "dc-ar", "t5": "t5"}
SUMS_FILE = "SHA256SUMS"
WEIGHTS_KIND = "mini-trained"
WEIGHTS_NOTE = ("mini-trained, not the released weights: trained for minutes on a CPU on procedural captioned shapes "
                "by `python -m dcar_training mini-defaults` (baselines/dcar/mini_weights/README.md)")
REPRODUCE = "python -m dcar_training mini-defaults --out baselines/dcar/mini_weights"


def read_sums(root: Path = MINI_ROOT) -> dict[str, str]:
    """``{relative path: sha256}`` from ``SHA256SUMS`` (``sha256sum`` format)."""
    sums_path = root / SUMS_FILE
    if not sums_path.is_file():
        raise MissingResourceError(f"{sums_path} is missing: the mini default weights are not in this checkout. "
                                   f"Fix: restore it with `git checkout -- {root}` or retrain with `{REPRODUCE}`")
    out = {}
    for number, line in enumerate(sums_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise MissingResourceError(f"{sums_path}:{number} is not a `sha256  path` line. Fix: `git checkout -- "
                                       f"{sums_path}` or retrain with `{REPRODUCE}`")
        out[parts[1].strip().lstrip("*")] = parts[0]
    return out


def mini_component(component: str, root: Path = MINI_ROOT) -> Path:
    """The folder of one shipped component (``dcht``, ``generator``, ``t5``) after checking every file's sha256."""
    from harness.io import file_sha256

    if component not in COMPONENT_DIRS:
        raise ValueError(f"unknown mini component {component!r}; known: {', '.join(COMPONENT_DIRS)}")
    prefix = COMPONENT_DIRS[component] + "/"
    sums = {k: v for k, v in read_sums(root).items() if k.startswith(prefix)}
    if not sums:
        raise MissingResourceError(f"{root / SUMS_FILE} lists no file under {prefix}. Fix: `git checkout -- {root}` "
                                   f"or retrain with `{REPRODUCE}`")
    folder = root / COMPONENT_DIRS[component]
    unlisted = sorted(p.relative_to(root).as_posix() for p in folder.rglob("*")
                      if p.is_file() and p.relative_to(root).as_posix() not in sums)
    if unlisted:
        raise MissingResourceError(f"mini default weights: {root / unlisted[0]} is not listed in {root / SUMS_FILE} "
                                   f"(a loader could pick it up). Fix: remove it, or retrain with `{REPRODUCE}`")
    for name, digest in sorted(sums.items()):
        path = root / name
        if not path.is_file():
            raise MissingResourceError(f"mini default weights: {path} is missing. Fix: `git checkout -- {root}` or "
                                       f"retrain with `{REPRODUCE}`")
        if file_sha256(path) != digest:
            raise MissingResourceError(f"mini default weights: {path} does not match its sha256 in {root / SUMS_FILE} "
                                       f"(modified, truncated or a Git LFS pointer). Fix: `git checkout -- {root}` or "
                                       f"retrain with `{REPRODUCE}`")
    return root / COMPONENT_DIRS[component]


#: written by ``dcar_training.mini_defaults`` beside the component folders; its ``what`` names the weights' kind
TRAINING_FILE = "training.json"


def is_mini_path(value: str | Path) -> bool:
    """Whether a weights path (a file or a component folder) belongs to a mini-defaults export.

    Why not only "inside MINI_ROOT": a retrained or copied export elsewhere is still mini-trained, and must not be
    counted as real weights. An export is recognised by the ``training.json`` its command writes beside the folders.
    """
    import json

    try:
        path = Path(value).resolve()
    except (OSError, ValueError):
        return False
    if path.is_relative_to(MINI_ROOT):
        return True
    for folder in (path, path.parent, path.parent.parent):
        marker = folder / TRAINING_FILE
        if marker.is_file():
            try:
                return "mini-trained" in str(json.loads(marker.read_text(encoding="utf-8")).get("what", ""))
            except (OSError, ValueError, AttributeError):
                return False
    return False


def sums_digest(root: Path = MINI_ROOT) -> str:
    """sha256 of ``SHA256SUMS``: one value that pins every shipped file (configs and tokenizer files included)."""
    from harness.io import file_sha256

    return file_sha256(root / SUMS_FILE)


def weights_kind(weights: dict[str, str]) -> str:
    """``random-init`` if any component is random, ``mini-trained`` if any is a shipped mini one, else ``checkpoint``.

    ``weights`` maps component -> a path or a :func:`baselines.common.random_init_tag`; only ``checkpoint``
    counts as real weights (``info().real_weights``).
    """
    from baselines.common import uses_random_init

    if uses_random_init(weights):
        return "random-init"
    if any(is_mini_path(v) for v in weights.values()):
        return WEIGHTS_KIND
    return "checkpoint"
