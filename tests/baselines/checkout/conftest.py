"""Fixtures for the checkout adapters: fake checkouts in tmp dirs, weight folders, and a clean import state."""
from __future__ import annotations

import json
import sys

import pytest

from .fakes import make_checkout

FAKE_TOPS = ("models", "training", "modeling", "hart", "src")


@pytest.fixture(autouse=True)
def _restore_imports():
    """A fake checkout's modules (``models``, ``src``...) and its sys.path entry never leak into the next test."""
    path_before = list(sys.path)
    yield
    sys.path[:] = path_before
    for name in [n for n in sys.modules if n.split(".")[0] in FAKE_TOPS]:
        del sys.modules[name]


@pytest.fixture
def checkout(tmp_path):
    """``checkout(files, remote=...)`` -> path of a fake checkout."""
    def make(files, name="repo", **kw):
        return str(make_checkout(tmp_path / name, files, **kw))
    return make


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """``weights_dir(name, files=("config.json",), config=None)`` -> a folder standing in for a weights snapshot.

    The HF cache is pointed at an empty folder, so only explicit paths can be found.
    """
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))

    def make(name, files=("config.json",), config=None):
        d = tmp_path / "weights" / name
        d.mkdir(parents=True, exist_ok=True)
        for f in files:
            (d / f).parent.mkdir(parents=True, exist_ok=True)
            (d / f).write_text(json.dumps(config or {}) if f.endswith(".json") else "weights")
        return str(d)
    return make
