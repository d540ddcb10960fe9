"""Content-addressed cache for expensive artifacts (features, reference statistics).

Keys are the sha256 of a canonical JSON description of *what determines the value*
(input hashes, preprocessing, extractor name, weights hash), never a user label
(DESIGN.md principle 5; clean-fid names its stats the same way). Each entry is an
``.npz`` of arrays plus a ``.json`` sidecar holding the full key description, so a
cache directory explains itself.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.io import atomic_write_bytes, canonical_json



def cache_key(parts: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(dict(parts)).encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    env = os.environ.get("DCAR_BENCH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dcar-bench"


class Cache:
    """``get/put/get_or_compute`` of dicts of numpy arrays, keyed by :func:`cache_key`."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def _paths(self, key: str) -> tuple[Path, Path]:
        d = self.root / key[:2]
        return d / f"{key}.npz", d / f"{key}.json"

    def get(self, parts: Mapping[str, Any]) -> dict | None:
        import numpy as np

        key = cache_key(parts)
        npz, meta = self._paths(key)
        if not npz.exists() or not meta.exists():
            return None
        stored = json.loads(meta.read_text())
        if stored.get("key_parts") != json.loads(canonical_json(dict(parts))):
            raise RuntimeError(f"cache entry {npz} does not match its key description (hash collision or tampering)")
        with np.load(npz, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def put(self, parts: Mapping[str, Any], arrays: Mapping[str, Any]) -> str:
        import numpy as np

        key = cache_key(parts)
        npz, meta = self._paths(key)
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        digest = atomic_write_bytes(npz, buf.getvalue())
        atomic_write_bytes(
            meta,
            json.dumps({"key": key, "key_parts": json.loads(canonical_json(dict(parts))), "npz_sha256": digest},
                       indent=2, sort_keys=True).encode("utf-8"),
        )
        return key

    def get_or_compute(self, parts: Mapping[str, Any], compute: Callable[[], Mapping[str, Any]]) -> dict:
        hit = self.get(parts)
        if hit is not None:
            return hit
        arrays = dict(compute())
        self.put(parts, arrays)
        return self.get(parts)  # type: ignore[return-value]
