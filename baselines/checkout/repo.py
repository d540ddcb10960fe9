"""Locating, verifying and importing a user-supplied checkout of a peer model's official code.

Why a checkout instead of a package: Show-o, MaskGen/TiTok (bytedance/1d-tokenizer), Meissonic, MAR and HART are not
on PyPI, and re-implementing them would compare DC-AR with our reading of their papers instead of with their code.
So each adapter imports the official modules from a clone the user names (``--set model.repo=/path`` or an
environment variable), after checking that the clone *is* that repository:

* the path exists and is a directory (else :class:`MissingCheckoutError`, naming what to clone and install);
* its ``origin`` remote, when ``.git/config`` has a hosted one, names the expected repository (a fork with the same
  name is accepted; a clone of a local mirror is not judged by its path); its expected files are all there (else
  :class:`WrongCheckoutError`: another repository, or an old or partial clone);
* the modules the adapter imports resolve to files *inside* the checkout (Show-o and MAR both have a top-level
  ``models`` package: a stale ``sys.modules`` entry from the other one is dropped first).

The commit is read from ``.git`` files (``HEAD``, loose refs, ``packed-refs``, a worktree's ``gitdir:`` file), so no
``git`` binary is needed, and lands with the remote URL in ``info().extra["checkout"]``. Uncommitted changes in the
working tree are not detected (the record says so).
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from harness.api import MissingDependencyError, MissingResourceError, Requirement, UserError


class MissingCheckoutError(MissingResourceError):
    """No checkout was given, or the given path does not exist."""


class WrongCheckoutError(UserError, ValueError):
    """The given path is not a checkout of the expected repository (other remote, missing files, foreign module)."""


@dataclass(frozen=True)
class CheckoutSpec:
    """What one official repository looks like, and how a user gets it."""

    name: str  # "Show-o"
    github: str  # "showlab/Show-o"
    env_var: str  # "DCAR_SHOWO_REPO"
    expected: tuple[str, ...]  # files that must all exist, relative to the checkout root
    install: str  # what to run inside the clone, e.g. "pip install -r requirements.txt"
    read_commit: str  # the upstream commit the adapter was written against
    config_key: str = "repo"

    @property
    def url(self) -> str:
        return f"https://github.com/{self.github}"

    def how_to_get(self) -> str:
        return (f"git clone {self.url} && cd {self.github.split('/')[1]} && {self.install}; then pass "
                f"--set model.{self.config_key}=/path/to/it or export {self.env_var}=/path/to/it "
                f"(adapter written against commit {self.read_commit[:7]})")

    def requirement(self) -> Requirement:
        """The checkout as a :class:`Requirement`, so ``dcar-bench doctor`` lists where it is looked up."""
        return Requirement(name=f"{self.name} checkout ({self.github})",
                           description=f"a clone of {self.url}: {self.how_to_get()}",
                           env_var=self.env_var, config_key=self.config_key, must_contain=(self.expected[0],))


@dataclass(frozen=True)
class Checkout:
    """A verified checkout: where it is and which commit of which remote it holds."""

    spec: CheckoutSpec
    path: Path
    commit: str | None
    remote: str | None

    def provenance(self) -> dict[str, Any]:
        """What ``info().extra["checkout"]`` records."""
        return {
            "repository": self.spec.github, "path": str(self.path), "commit": self.commit, "remote": self.remote,
            "adapter_written_against": self.spec.read_commit,
            "same_commit_as_adapter": (self.commit == self.spec.read_commit) if self.commit else None,
            "working_tree_changes": "not checked",
        }


# --------------------------------------------------------------------------- git metadata without git


def git_dir(root: Path) -> Path | None:
    """``root/.git`` as a directory, following a ``gitdir:`` file (worktrees, submodules); None if absent."""
    dot = root / ".git"
    if dot.is_dir():
        return dot
    if dot.is_file():
        text = dot.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text[len("gitdir:"):].strip())
            target = target if target.is_absolute() else (root / target)
            return target.resolve() if target.is_dir() else None
    return None


def _common_dir(gdir: Path) -> Path:
    """A worktree's git dir keeps refs in its ``commondir``."""
    common = gdir / "commondir"
    if common.is_file():
        p = Path(common.read_text(encoding="utf-8").strip())
        return (p if p.is_absolute() else gdir / p).resolve()
    return gdir


def _resolve_ref(gdir: Path, ref: str) -> str | None:
    for base in dict.fromkeys((gdir, _common_dir(gdir))):
        loose = base / ref
        if loose.is_file():
            value = loose.read_text(encoding="utf-8").strip()
            return _resolve_ref(gdir, value[5:].strip()) if value.startswith("ref:") else value
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) == 2 and not line.startswith(("#", "^")) and parts[1] == ref:
                    return parts[0]
    return None


def read_commit(root: Path) -> str | None:
    """The commit checked out at ``root`` (40 hex digits) from the ``.git`` files, or None without a ``.git``."""
    gdir = git_dir(root)
    if gdir is None or not (gdir / "HEAD").is_file():
        return None
    head = (gdir / "HEAD").read_text(encoding="utf-8").strip()
    commit = _resolve_ref(gdir, head[4:].strip()) if head.startswith("ref:") else head
    return commit if commit and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def read_remote(root: Path, name: str = "origin") -> str | None:
    """The URL of remote ``name`` from ``.git/config``, or None."""
    gdir = git_dir(root)
    if gdir is None:
        return None
    config = _common_dir(gdir) / "config"
    if not config.is_file():
        return None
    section = None
    for raw in config.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        m = re.match(r'^\[\s*(\S+)(?:\s+"([^"]*)")?\s*\]$', line)
        if m:
            section = (m.group(1).lower(), m.group(2))
            continue
        if section == ("remote", name):
            key, _, value = line.partition("=")
            if key.strip().lower() == "url":
                return value.strip()
    return None


def _is_hosted(url: str) -> bool:
    """A remote on a server (``https://host/...``, ``git@host:...``), not a local path or ``file://`` mirror.

    Only a hosted remote's repository name is compared: a clone of a local mirror may live under any name.
    """
    if url.startswith("file://"):
        return False
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://[^/]+/", url, re.IGNORECASE) or re.match(r"^[\w.-]+@[\w.-]+:", url))


def _repo_name(url: str) -> str:
    """``git@github.com:showlab/Show-o.git`` / ``https://github.com/showlab/Show-o`` -> ``show-o``."""
    tail = re.split(r"[/:]", url.rstrip("/"))[-1]
    return (tail[:-4] if tail.endswith(".git") else tail).lower()


# --------------------------------------------------------------------------- locate + verify


def find_checkout(spec: CheckoutSpec, explicit: str | os.PathLike | None = None) -> Checkout:
    """The verified checkout from ``explicit`` or ``$<spec.env_var>``; one-line errors otherwise."""
    source = f"model.{spec.config_key}"
    value: Any = explicit
    if value in (None, ""):
        value, source = os.environ.get(spec.env_var) or None, f"${spec.env_var}"
    if value is None:
        raise MissingCheckoutError(f"{spec.name} needs a checkout of its official code ({spec.url}), and none was "
                                   f"given: {spec.how_to_get()}.")
    path = Path(os.path.expandvars(str(value))).expanduser()
    if not path.exists():
        raise MissingCheckoutError(f"{spec.name} checkout {path} (from {source}) does not exist: {spec.how_to_get()}.")
    if not path.is_dir():
        raise WrongCheckoutError(f"{spec.name} checkout {path} (from {source}) is a file, not a directory: pass the "
                                 f"root of a clone of {spec.url}.")
    path = path.resolve()
    remote = read_remote(path)
    if remote and _is_hosted(remote) and _repo_name(remote) != _repo_name(spec.github):
        raise WrongCheckoutError(f"{path} (from {source}) is a checkout of {remote}, not of {spec.url}: "
                                 f"{spec.how_to_get()}.")
    missing = [f for f in spec.expected if not (path / f).is_file()]
    if missing:
        raise WrongCheckoutError(f"{path} (from {source}) does not look like a checkout of {spec.url}: it lacks "
                                 f"{', '.join(missing)} (another repository, or an old or partial clone?); "
                                 f"{spec.how_to_get()}.")
    return Checkout(spec=spec, path=path, commit=read_commit(path), remote=remote)


def _module_location(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    if file:
        return Path(file).resolve()
    paths = list(getattr(module, "__path__", []) or [])
    return Path(paths[0]).resolve() if paths else None


def _inside(path: Path | None, root: Path) -> bool:
    return path is not None and (path == root or root in path.parents)


def _bind_top_level(top: str, root: Path) -> None:
    """Import the top-level package ``top`` from ``root`` only, and put it in ``sys.modules``.

    Why not just ``sys.path[0]``: MAR's ``models`` and Meissonic's ``src`` have no ``__init__.py`` (namespace
    packages), and a *regular* package of the same name anywhere later on ``sys.path`` (another checkout's
    ``models``, a stray site-packages ``src``) wins over a namespace portion. Binding the package from a finder
    restricted to the checkout makes every submodule resolve inside it.
    """
    import importlib.machinery
    import importlib.util

    current = sys.modules.get(top)
    if current is not None and _inside(_module_location(current), root):
        return
    spec = importlib.machinery.PathFinder.find_spec(top, [str(root)])
    if spec is None:
        return  # not a package of the checkout: the import below says what is missing
    module = importlib.util.module_from_spec(spec)
    if getattr(module, "__file__", "") is None:
        # a namespace package has __file__ = None; after another checkout's `models` was seen, inspect.getmodule
        # (which torch.library calls while torchvision imports) raises on it ("is a built-in module")
        del module.__file__
    sys.modules[top] = module
    try:
        if spec.loader is not None:
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(top, None)
        raise


def import_from_checkout(checkout: Checkout, names: Sequence[str]) -> dict[str, ModuleType]:
    """Import ``names`` (dotted module names) from the checkout, and prove each came from it.

    The checkout root goes first on ``sys.path`` (and stays: official modules import their siblings lazily);
    cached modules with the same top-level names that live elsewhere are dropped from ``sys.modules``.
    """
    root = checkout.path
    tops = {n.split(".")[0] for n in names}
    for mod_name in list(sys.modules):
        if mod_name.split(".")[0] in tops and not _inside(_module_location(sys.modules[mod_name]), root):
            del sys.modules[mod_name]
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    out: dict[str, ModuleType] = {}
    for name in names:
        try:
            for top in sorted(tops):
                _bind_top_level(top, root)
            module = importlib.import_module(name)
        except ImportError as exc:
            raise MissingDependencyError(f"{checkout.spec.name} checkout {root}: `import {name}` failed ({exc}); "
                                         f"install its requirements inside the clone: {checkout.spec.install}") from exc
        where = _module_location(module)
        if not _inside(where, root):
            raise WrongCheckoutError(f"{checkout.spec.name}: `import {name}` resolved to {where}, not to the checkout "
                                     f"{root}; remove the other copy from PYTHONPATH or site-packages")
        out[name] = module
    return out
