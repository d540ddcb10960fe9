"""Provenance facts and the tox install hook that shares one torch between envs."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from harness.provenance import collect, git_state, package_versions
from tests.paths import REPO_ROOT

REPO = REPO_ROOT


def test_git_state_of_a_repo_and_of_a_plain_dir(tmp_path):
    inside = git_state(REPO)
    if inside["commit"] is not None:  # a source checkout
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        assert inside["commit"] == head and isinstance(inside["dirty"], bool)
    assert git_state(tmp_path) == {"commit": None, "dirty": None, "root": None}


def test_package_versions_and_collect():
    import numpy
    import torch

    v = package_versions(["definitely-not-a-package-xyz"])
    assert v["numpy"] == numpy.__version__ and v["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert v["definitely-not-a-package-xyz"] is None
    p = collect(argv=["dcar-bench", "run", "x"])
    assert p["command"] == ["dcar-bench", "run", "x"] and p["python"] == sys.version.split()[0]
    assert p["device"]["cpu_count"] and "cuda" in p["device"] and p["created"].endswith("+00:00")


def _load_tox_install():
    spec = importlib.util.spec_from_file_location("tox_install", REPO / "scripts" / "tox_install.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tox_install_reuses_a_complete_shared_torch(tmp_path, monkeypatch):
    mod = _load_tox_install()
    shared = tmp_path / "shared-torch"
    shared.mkdir()
    (shared / ".dcar-bench-complete").write_text(" ".join(mod.TORCH_PINS) + "\n")

    def no_pip(*a, **k):
        raise AssertionError("torch must not be installed again")

    monkeypatch.setattr(mod.subprocess, "check_call", no_pip)
    mod.ensure_shared_torch(shared)  # returns without calling pip
    purelib = tmp_path / "site"
    purelib.mkdir()
    monkeypatch.setattr(mod.sysconfig, "get_paths", lambda: {"purelib": str(purelib)})
    mod.link_into_env(shared)
    assert (purelib / mod.PTH_NAME).read_text().strip() == str(shared.resolve())


def test_tox_install_installs_when_marker_is_stale(tmp_path, monkeypatch):
    mod = _load_tox_install()
    shared = tmp_path / "shared-torch"
    calls = []
    monkeypatch.setattr(mod.subprocess, "check_call", lambda cmd: calls.append(cmd))
    mod.ensure_shared_torch(shared)
    assert calls and calls[0][-2:] == list(mod.TORCH_PINS) and "--target" in calls[0]
    assert (shared / ".dcar-bench-complete").read_text().split() == list(mod.TORCH_PINS)
    with pytest.raises(SystemExit):
        mod.main([])  # --shared-torch is required
