"""Where a weight file or dataset is looked up, in one reusable function.

Why one function: ``dcar-bench doctor`` reports the very places a loader searches,
so the lookup must live in a single place. Adapters and data readers call
:func:`locate` and let :class:`~harness.api.MissingResourceError` reach the user;
``doctor`` calls :func:`search` to print every candidate and whether it is present.

Order (offline first: nothing is ever downloaded): the explicit path (a config value such
as ``--set model.<key>=...``), the requirement's environment variable, the Hugging Face
cache, then the default paths. The cache directory is resolved at call time
(``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``); its snapshots are read
through ``huggingface_hub`` (``scan_cache_dir`` lists a repo's revisions, the ``refs/main``
one first, and ``try_to_load_from_cache`` finds an expected file in a revision), imported only
when a requirement names an HF repo. Importable without torch.
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


def _split_repo(repo: str) -> tuple[str, str]:
    """``org/name`` -> ("model", "org/name"); ``datasets/org/name`` -> ("dataset", "org/name")."""
    if repo.startswith(("datasets/", "spaces/")):
        kind, _, repo_id = repo.partition("/")
        return kind[:-1], repo_id
    return "model", repo


def hf_repo_dir(repo: str, cache: Path | None = None) -> Path:
    """``org/name`` -> ``<cache>/models--org--name``; ``datasets/org/name`` -> ``datasets--org--name``."""
    from huggingface_hub.file_download import repo_folder_name

    repo_type, repo_id = _split_repo(repo)
    return (cache or hf_hub_cache()) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)


def _hf_candidates(repo: str, must_contain: tuple[str, ...]) -> list[Candidate]:
    """One candidate per cached revision of ``repo``: the ``refs/main`` one first, then the newest first."""
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    cache = hf_hub_cache()
    root = hf_repo_dir(repo, cache)
    absent = root / "snapshots" / "*"
    if not root.is_dir():
        return [Candidate("hf-cache", absent, False, "not in cache")]
    repo_type, repo_id = _split_repo(repo)
    info = scan_cache_dir(cache)
    cached = next((r for r in info.repos if r.repo_id == repo_id and r.repo_type == repo_type), None)
    if cached is None:  # huggingface_hub found the folder unusable; say why
        why = next((str(w) for w in info.warnings if root.name in str(w)), "no usable snapshot")
        return [Candidate("hf-cache", absent, False, f"corrupted cache entry: {why}")]
    revisions = sorted(cached.revisions, key=lambda r: r.last_modified, reverse=True)
    revisions.sort(key=lambda r: "main" not in r.refs)  # stable: newest-first among the rest
    out = []
    for rev in revisions:
        snap = root / "snapshots" / rev.commit_hash  # unresolved, as the user sees it
        found = [f for f in must_contain if isinstance(
            try_to_load_from_cache(repo_id, f, cache_dir=cache, revision=rev.commit_hash, repo_type=repo_type), str)]
        ok = bool(found) or not must_contain
        out.append(Candidate("hf-cache", snap, ok, "" if ok else f"directory lacks any of: {', '.join(must_contain)}"))
    return out or [Candidate("hf-cache", absent, False, "not in cache")]


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
        out += _hf_candidates(req.hf_repo, req.must_contain)
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
    if req.config_key:  # a dotted key is a suite config key; a bare one is an adapter option (model.*)
        key = req.config_key if "." in req.config_key else f"model.{req.config_key}"
        how.append(f"pass --set {key}=/path")
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
