"""sha256 of weight and data files, computed once per process.

Why one helper: provenance (manifest weights hashes), metric extractors and loaders all hash
multi-GB files; memoising on (resolved path, size, mtime) keeps a 2.7 GB checkpoint from being
read twice and keeps every record's hash computed the same way.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path


@functools.lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at ``path`` (memoised per resolved path, size and mtime)."""
    st = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
