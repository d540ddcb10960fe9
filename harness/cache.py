"""Content-addressed cache for expensive artifacts (features, reference statistics).

Keys are the sha256 of a canonical JSON description of *what determines the value*
(input hashes, preprocessing, extractor name, weights hash), never a user label
(clean-fid names its stats the same way). Each entry is an
``.npz`` of arrays plus a ``.json`` sidecar holding the full key description, so a
cache directory explains itself.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.io import atomic_write_bytes, canonical_json, dump_json, json_digest, npz_bytes


def cache_key(parts: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``parts``."""
    return json_digest(dict(parts))


_ENTRY = re.compile(r"^([0-9a-f]{2})/\1[0-9a-f]{62}$")  # <first 2 hex of the key>/<64-hex key>


def default_cache_dir() -> Path:
    env = os.environ.get("DCAR_BENCH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dcar-bench"


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
        digest = atomic_write_bytes(npz, npz_bytes(**{k: np.asarray(v) for k, v in arrays.items()}))
        atomic_write_bytes(meta, dump_json({"key": key, "key_parts": json.loads(canonical_json(dict(parts))),
                                            "npz_sha256": digest}))
        return key

    def get_or_compute(self, parts: Mapping[str, Any], compute: Callable[[], Mapping[str, Any]]) -> dict:
        hit = self.get(parts)
        if hit is not None:
            return hit
        arrays = dict(compute())
        self.put(parts, arrays)
        return self.get(parts)  # type: ignore[return-value]

    # ------------------------------------------------------------------ housekeeping

    def entries(self) -> list[dict[str, Any]]:
        """Every entry: key, bytes on disk (npz + sidecar) and a one-line description of what it holds."""
        out = []
        if not self.root.is_dir():
            return out
        for meta in sorted(self.root.glob("*/*.json")):
            if not _ENTRY.match(f"{meta.parent.name}/{meta.stem}"):
                continue
            npz = meta.with_suffix(".npz")
            size = meta.stat().st_size + (npz.stat().st_size if npz.exists() else 0)
            try:
                parts = json.loads(meta.read_text(encoding="utf-8")).get("key_parts") or {}
            except (OSError, json.JSONDecodeError):
                parts = {}
            what = ", ".join(f"{k}={str(v)[:40]}" for k, v in sorted(parts.items()) if not isinstance(v, (dict, list)))
            out.append({"key": meta.stem, "bytes": size, "what": what or "(no description)"})
        return out

    def clear(self) -> tuple[int, int]:
        """Delete every entry (its ``.npz`` and ``.json``, nothing else); returns (entries removed, bytes freed).

        Only files named like entries (``<2 hex>/<64 hex>.npz|.json``) are removed, and then the folders they
        leave empty, so a cache root pointed at a folder with other content by mistake loses nothing else.
        """
        entries = self.entries()
        for e in entries:
            for suffix in (".npz", ".json"):
                (self.root / e["key"][:2] / f"{e['key']}{suffix}").unlink(missing_ok=True)
        for sub in {self.root / e["key"][:2] for e in entries}:
            try:
                sub.rmdir()
            except OSError:  # not empty: it holds something that is not ours
                pass
        return len(entries), sum(e["bytes"] for e in entries)
