"""pip install for tox environments, with one shared install of torch for all of them.

Why: torch + torchvision (with their CUDA libraries) are ~5.5 GB. tox 4 cannot share
one env dir between envs of different names (it recreates an env whose recorded name
differs), and ``system_site_packages`` only exposes the base interpreter's
site-packages, not a venv's. So ``tox.ini`` sets ``install_command`` to this script,
which (once, under a lock) installs the pinned torch/torchvision into
``--shared-torch DIR`` with ``pip install --target``, drops a ``.pth`` file pointing
at DIR into the env's site-packages, and then runs the ordinary
``python -m pip install ARGS``. pip sees torch==2.14.1 as already satisfied and
skips it, so every env reuses the same files.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")
PTH_NAME = "_dcar_bench_shared_torch.pth"


def ensure_shared_torch(shared: Path) -> None:
    marker = shared / ".dcar-bench-complete"
    if marker.exists() and marker.read_text().strip() == " ".join(TORCH_PINS):
        return
    shared.parent.mkdir(parents=True, exist_ok=True)
    lock_path = shared.parent / f".{shared.name}.lock"
    with open(lock_path, "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # parallel tox envs wait for the first one
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        if marker.exists() and marker.read_text().strip() == " ".join(TORCH_PINS):
            return
        print(f"[tox_install] installing {' '.join(TORCH_PINS)} once into {shared} (shared by all tox envs)",
              flush=True)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade", "--target", str(shared),
                               *TORCH_PINS])
        shared.mkdir(parents=True, exist_ok=True)
        marker.write_text(" ".join(TORCH_PINS) + "\n")


def link_into_env(shared: Path) -> None:
    purelib = Path(sysconfig.get_paths()["purelib"])
    (purelib / PTH_NAME).write_text(str(shared.resolve()) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-torch", required=True, type=Path, help="directory holding the shared torch")
    ns, pip_args = parser.parse_known_args(argv)
    if not pip_args:
        return 0
    ensure_shared_torch(ns.shared_torch)
    link_into_env(ns.shared_torch)
    os.execv(sys.executable, [sys.executable, "-m", "pip", "install", *pip_args])
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
