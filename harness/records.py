"""Per-shard JSONL record files: fsync'd whole-line appends, crash-tolerant reading.

Why this format: one record is one line written with a single ``write`` on an
``O_APPEND`` descriptor and fsync'd before the next item starts, so after a crash
a file holds complete lines plus at most one truncated last line (no newline).
That tail is detected, dropped and its item redone. A line that *does* end in a
newline yet is not a JSON object cannot come from a crash: it is corruption, and
reading stops with an error naming ``file:line`` rather than guessing.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from harness.api import UserError

SHARD_FILE_RE = re.compile(r"^shard-(\d+)-of-(\d+)\.jsonl$")


class RecordsCorruptError(UserError, RuntimeError):
    """A complete line of a records file is not a JSON object with an ``item_id``."""


class ShardBusyError(UserError, RuntimeError):
    """Another live process is appending to the same shard file."""


def shard_filename(index: int, count: int) -> str:
    return f"shard-{index}-of-{count}.jsonl"


@dataclass
class ReadResult:
    records: list[dict[str, Any]]
    truncated_tail: bool  # the file ended in a partial line (crash while appending)


def read_records_file(path: str | os.PathLike) -> ReadResult:
    """All complete records of ``path``; a truncated last line is reported, not returned."""
    path = Path(path)
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    truncated = bool(data) and not data.endswith(b"\n")
    lines = data.split(b"\n")
    complete = lines[:-1]  # the last element is b"" or the truncated tail
    for lineno, raw in enumerate(complete, start=1):
        if not raw.strip():
            raise RecordsCorruptError(f"{path}:{lineno}: empty line in records file (corrupt; "
                                      f"fix or delete the line, then re-run to redo its item)")
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RecordsCorruptError(f"{path}:{lineno}: not valid JSON ({exc}); the records file is corrupt. "
                                      f"Delete that line (its item will be redone on the next run).") from exc
        if not isinstance(rec, dict) or not isinstance(rec.get("item_id"), str):
            raise RecordsCorruptError(f"{path}:{lineno}: a record must be a JSON object with a string 'item_id'")
        records.append(rec)
    return ReadResult(records, truncated)


def shard_files(records_dir: str | os.PathLike) -> list[Path]:
    """Every ``shard-i-of-n.jsonl`` in ``records_dir`` (any shard count: re-sharded resumes are fine)."""
    d = Path(records_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if SHARD_FILE_RE.match(p.name))


def read_all(records_dir: str | os.PathLike) -> Iterator[tuple[Path, ReadResult]]:
    for p in shard_files(records_dir):
        yield p, read_records_file(p)


def dumps_record(record: Mapping[str, Any]) -> bytes:
    try:
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"record for item {record.get('item_id')!r} is not JSON-serialisable: {exc}") from exc
    if "\n" in line:  # cannot happen with json.dumps, but the format depends on it
        raise ValueError("record serialisation produced a newline")
    return (line + "\n").encode("utf-8")


class RecordWriter:
    """Appends records to one shard file; holds an exclusive lock while open.

    On open, a truncated tail left by a crash is cut off (the file is shortened to
    its last newline) so the next append starts on a fresh line.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None
        self._lock_fd: int | None = None

    def __enter__(self) -> "RecordWriter":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            self._repair_tail(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _acquire_lock(self) -> None:
        lock_path = self.path.with_suffix(".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - non-POSIX: no locking
            pass
        except BlockingIOError:
            os.close(fd)
            raise ShardBusyError(f"{self.path} is being written by another process "
                                 f"(lock {lock_path} is held); run each shard once at a time") from None
        self._lock_fd = fd

    def _repair_tail(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        # find the last newline, reading backwards in blocks
        pos, block, last_nl = size, 65536, -1
        while pos > 0 and last_nl < 0:
            start = max(0, pos - block)
            chunk = os.pread(fd, pos - start, start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                last_nl = start + idx
            pos = start
        keep = last_nl + 1
        if keep != size:
            os.ftruncate(fd, keep)
            os.fsync(fd)

    def append(self, record: Mapping[str, Any]) -> None:
        if self._fd is None:
            raise RuntimeError("RecordWriter is not open")
        data = dumps_record(record)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
