"""Where a weight file or dataset is looked up, in one reusable function.

Why one function: ``dcar-bench doctor`` reports the very places a loader searches,
so the lookup must live in a single place. Adapters and data readers call
:func:`locate` and let :class:`~harness.api.MissingResourceError` reach the user;
``doctor`` calls :func:`search` to print every candidate and whether it is present.

Order (DESIGN.md principle 8, offline first): the explicit path (config value or
``--set model.<key>=...``), the requirement's environment variable, the Hugging Face
cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``, layout
``models--org--name/snapshots/<revision>/``), then the default paths. Nothing is
ever downloaded. Importable without torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from harness.api import MissingResourceError, Requirement


@dataclass(frozen=True)
class Candidate:
    """One place a requirement was looked for."""

    source: str  # "explicit", "env:NAME", "hf-cache", "default"
    path: Path | None  # None when the source was not set (e.g. env var unset)
    present: bool
    note: str = ""  # why it is absent, e.g. "not set", "no such path", "missing any of: a.bin, b.safetensors"

    def describe(self) -> str:
        where = str(self.path) if self.path is not None else "-"
        state = "present" if self.present else f"absent ({self.note})" if self.note else "absent"
        return f"{self.source}: {where} [{state}]"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache directory, resolved the way huggingface_hub does."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def hf_repo_dir(repo: str, cache: Path | None = None) -> Path:
    """``org/name`` -> ``<cache>/models--org--name``; ``datasets/org/name`` -> ``datasets--org--name``."""
    kind = "models"
    if repo.startswith(("datasets/", "spaces/")):
        kind, _, repo = repo.partition("/")
    return (cache or hf_hub_cache()) / f"{kind}--{repo.replace('/', '--')}"


def hf_snapshots(repo: str, cache: Path | None = None) -> list[Path]:
    """Snapshot directories of ``repo`` in the HF cache, the ``refs/main`` one first, then newest first."""
    root = hf_repo_dir(repo, cache)
    snaps_dir = root / "snapshots"
    if not snaps_dir.is_dir():
        return []
    snaps = sorted((p for p in snaps_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    main_ref = root / "refs" / "main"
    if main_ref.is_file():
        head = main_ref.read_text().strip()
        snaps.sort(key=lambda p: p.name != head)  # stable: keeps newest-first among the rest
    return snaps


def _check(path: Path, must_contain: tuple[str, ...]) -> tuple[bool, str]:
    if not path.exists():
        return False, "no such path"
    if path.is_dir() and must_contain:
        if any((path / name).exists() for name in must_contain):
            return True, ""
        return False, f"directory lacks any of: {', '.join(must_contain)}"
    return True, ""


def search(
    req: Requirement,
    explicit: str | os.PathLike | None = None,
    config: Mapping[str, object] | None = None,
) -> list[Candidate]:
    """Every candidate location of ``req`` in lookup order, each marked present or absent.

    ``explicit`` wins over ``config[req.config_key]``; both are optional.
    """
    if explicit is None and config is not None and req.config_key and config.get(req.config_key):
        explicit = config[req.config_key]  # type: ignore[assignment]
    out: list[Candidate] = []
    key = f" ({req.config_key})" if req.config_key else ""
    if explicit is not None and str(explicit) != "":
        p = Path(os.path.expandvars(str(explicit))).expanduser()
        ok, note = _check(p, req.must_contain)
        out.append(Candidate(f"explicit{key}", p, ok, note))
    elif req.config_key:
        out.append(Candidate(f"explicit{key}", None, False, "not set"))
    if req.env_var:
        val = os.environ.get(req.env_var)
        if val:
            p = Path(val).expanduser()
            ok, note = _check(p, req.must_contain)
            out.append(Candidate(f"env:{req.env_var}", p, ok, note))
        else:
            out.append(Candidate(f"env:{req.env_var}", None, False, "not set"))
    if req.hf_repo:
        snaps = hf_snapshots(req.hf_repo)
        if not snaps:
            out.append(Candidate("hf-cache", hf_repo_dir(req.hf_repo) / "snapshots" / "*", False, "not in cache"))
        for snap in snaps:
            ok, note = _check(snap, req.must_contain)
            out.append(Candidate("hf-cache", snap, ok, note))
    for d in req.default_paths:
        p = Path(os.path.expandvars(d)).expanduser()
        ok, note = _check(p, req.must_contain)
        out.append(Candidate("default", p, ok, note))
    return out


def missing_message(req: Requirement, candidates: list[Candidate]) -> str:
    """The error text: what is missing, every place searched, and how to get it."""
    lines = [f"{req.name} not found. Searched, in order:"]
    lines += [f"  - {c.describe()}" for c in candidates] or ["  - (no locations configured)"]
    how = []
    if req.config_key:
        how.append(f"pass --set model.{req.config_key}=/path")
    if req.env_var:
        how.append(f"export {req.env_var}=/path")
    if req.hf_repo:
        how.append(f"put a snapshot of {req.hf_repo} in the Hugging Face cache ({hf_hub_cache()})")
    if how:
        lines.append("Provide it: " + "; or ".join(how) + ".")
    if req.description:
        lines.append(f"What it is: {req.description}")
    return "\n".join(lines)


def locate(
    req: Requirement,
    explicit: str | os.PathLike | None = None,
    config: Mapping[str, object] | None = None,
) -> Path:
    """The first present candidate of ``req``; raises MissingResourceError naming every place searched.

    An explicit path that is given but absent is an error even if a later candidate
    exists: the user asked for that file, silently using another would be wrong.
    """
    candidates = search(req, explicit, config)
    for c in candidates:
        if c.source.startswith("explicit") and c.path is not None and not c.present:
            raise MissingResourceError(missing_message(req, [c]))
        if c.present and c.path is not None:
            return c.path
    raise MissingResourceError(missing_message(req, candidates))


def status(req: Requirement, explicit: str | os.PathLike | None = None,
           config: Mapping[str, object] | None = None) -> tuple[Path | None, list[Candidate]]:
    """(found path or None, candidates) without raising: what ``doctor`` prints."""
    candidates = search(req, explicit, config)
    try:
        return locate(req, explicit, config), candidates
    except MissingResourceError:
        return None, candidates
