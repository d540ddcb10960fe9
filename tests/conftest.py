"""Helpers shared by the test packages."""
from __future__ import annotations

from pathlib import Path

import pytest


def read_state_dict_manifest(path: Path) -> dict[str, tuple[int, ...]]:
    """Parse a ``state_dict_keys_*.txt`` manifest (``key<TAB>(shape)<TAB>kind`` lines) into {key: shape}."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, shape, _kind = line.split("\t")
        out[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out


@pytest.fixture(scope="session")
def state_dict_manifest():
    """``state_dict_manifest(path)`` -> {key: shape} of an official state-dict key manifest."""
    return read_state_dict_manifest


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """Every test runs torch on one intra-op thread (``DCAR_TEST_THREADS`` overrides), restored afterwards.

    Why: the tiny models and tensors of the tests lose more to OpenMP barrier waits than threads gain;
    on a shared 2-core CI machine one thread ran them 10-50x faster (measured). No result depends on it.
    """
    import os

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("DCAR_TEST_THREADS", "1")))
    try:
        yield
    finally:
        torch.set_num_threads(before)
