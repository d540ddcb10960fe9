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
