"""What a suite sees while it runs: where to write, how to seed, the shared cache.

The runner builds one :class:`RunContext` per process and passes it to
``Suite.run_batch`` and ``Suite.aggregate``. Suites never open the records file
themselves and never seed global RNGs.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.seeding import item_seed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` via a temp file + fsync + rename; return its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return hashlib.sha256(data).hexdigest()


@dataclass
class RunContext:
    """Per-process view of a run.

    Attributes:
        run_dir: the run directory (manifest.json, records/, artifacts/, summary.json).
        config: the merged suite config (as recorded in the manifest).
        seed: the run seed; item seeds derive from it via :meth:`item_seed`.
        rank, world_size: this process's shard.
        cache: the content-addressed cache (:class:`harness.cache.Cache`) or None.
        show_progress: whether suites should show tqdm bars for inner loops.
    """

    run_dir: Path
    config: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    cache: Any = None
    show_progress: bool = True

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.run_dir) / "artifacts"

    def item_seed(self, item_id: str) -> int:
        return item_seed(self.seed, item_id)

    def write_artifact(self, relpath: str, data: bytes) -> str:
        """Atomically write ``artifacts/<relpath>``; returns the sha256 to put in the record."""
        target = (self.artifacts_dir / relpath).resolve()
        if self.artifacts_dir.resolve() not in target.parents:
            raise ValueError(f"artifact path {relpath!r} escapes the run directory")
        return atomic_write_bytes(target, data)

    def artifact_path(self, relpath: str) -> Path:
        return self.artifacts_dir / relpath

    def progress(self, iterable: Iterable, **kwargs: Any) -> Iterable:
        if not self.show_progress:
            return iterable
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
