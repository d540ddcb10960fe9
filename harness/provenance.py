"""What a result must say about where it came from (docs/architecture.md, principle 5).

Collected once per run into ``manifest.json``: git commit + dirty flag of the
harness checkout, Python and package versions (torch, numpy and the libraries a
suite/adapter declares in an optional ``libraries`` class attribute), device and
driver, the command line and the time. Every probe is best effort: a machine
without git or CUDA still gets a manifest, with ``null`` where a fact is unknown.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

BASE_PACKAGES = ("dcar-bench", "torch", "torchvision", "numpy", "scipy", "pillow", "pyyaml")


def package_versions(extra: Iterable[str] = ()) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in list(BASE_PACKAGES) + [e for e in extra if e not in BASE_PACKAGES]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(args: list[str], cwd: Path) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """{commit, dirty, root} of the checkout holding the harness (or ``path``); nulls outside git."""
    cwd = Path(path) if path else Path(__file__).resolve().parent.parent
    root = _git(["rev-parse", "--show-toplevel"], cwd)
    if root is None:
        return {"commit": None, "dirty": None, "root": None}
    commit = _git(["rev-parse", "HEAD"], cwd)
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {
        "commit": commit.strip() if commit else None,
        "dirty": bool(status.strip()) if status is not None else None,
        "root": root.strip(),
    }


def device_info() -> dict[str, Any]:
    """CPU facts always; CUDA device names, CUDA version and driver when torch sees a GPU."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cuda": None,
    }
    if "torch" not in sys.modules:  # do not pay torch's import just for provenance
        try:
            import torch  # noqa: F401
        except ImportError:
            return info
    import torch

    info["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        cuda: dict[str, Any] = {
            "version": torch.version.cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "driver": None,
        }
        if shutil.which("nvidia-smi"):
            try:
                res = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                     capture_output=True, text=True, timeout=20)
                if res.returncode == 0:
                    cuda["driver"] = res.stdout.strip().splitlines()[0] if res.stdout.strip() else None
            except (OSError, subprocess.SubprocessError):
                pass
        info["cuda"] = cuda
    return info


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def collect(libraries: Iterable[str] = (), argv: list[str] | None = None) -> dict[str, Any]:
    """Environment provenance for a manifest (everything except suite/adapter/config)."""
    return {
        "created": now_iso(),
        "command": list(sys.argv if argv is None else argv),
        "cwd": os.getcwd(),
        "git": git_state(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "packages": package_versions(libraries),
        "device": device_info(),
        "env": {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES",
                                          "HF_HOME", "DCAR_BENCH_CACHE") if k in os.environ},
    }
