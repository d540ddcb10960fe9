"""Bytes on disk, written once and the same way everywhere.

Why one module: every file a run leaves (manifest, plan, summary, report, images, feature
arrays, cache entries) goes through the same atomic write, the same canonical JSON and the
same hash, so a crash never leaves half a file, files get the user's umask (a team can read a
shared run directory), and a digest computed in one place matches one computed in another.
Importable without torch or numpy (numpy/PIL are imported inside the functions that need them).
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _owner_tag() -> str:
    """``<host>-<pid>`` of the writing process (computed per call: correct after a fork)."""
    import socket

    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` via a temp file + fsync + rename; return its sha256.

    The file gets mode ``0o666 & ~umask`` like ``open(path, "wb")`` would (``mkstemp`` alone
    makes it owner-only). The temp file is ``.<name>.<random>.tmp`` beside the target; a kill
    may leave one, which :func:`remove_stale_temp_files` clears on resume.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_owner_tag()}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
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
    return bytes_sha256(data)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(root: str | os.PathLike, *, foreign_age_s: float = 24 * 3600) -> list[Path]:
    """Delete the temp files interrupted :func:`atomic_write_bytes` calls left under ``root``.

    A temp file is ``.<name>.<host>-<pid>.<random>.tmp``. It is stale when its writer was on this
    host and is no longer alive, or (another host's, e.g. a shard on a shared file system) when it is
    older than ``foreign_age_s``; a live writer's file is never touched, so concurrent shards are safe.
    """
    import time

    removed: list[Path] = []
    root = Path(root)
    if not root.is_dir():
        return removed
    host = _owner_tag().rsplit("-", 1)[0]
    now = time.time()
    for p in root.rglob(".*.tmp"):
        parts = p.name[:-len(".tmp")].rsplit(".", 2)
        if len(parts) != 3 or not p.is_file():
            continue
        owner_host, _, pid = parts[1].rpartition("-")
        if owner_host == host and pid.isdigit():
            stale = not _pid_alive(int(pid))
        else:
            try:
                stale = now - p.stat().st_mtime > foreign_age_s
            except FileNotFoundError:
                continue
        if stale:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# --------------------------------------------------------------------------- JSON


def canonical_json(obj: Any) -> str:
    """Compact, key-sorted JSON: the form every digest of a JSON value is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def dump_json(obj: Any) -> bytes:
    """Indented, key-sorted JSON with a final newline: the form JSON files are written in."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def json_roundtrip(obj: Any) -> Any:
    """What ``obj`` looks like after being stored (tuples -> lists etc.), for comparisons."""
    return json.loads(json.dumps(obj, default=str))


def json_digest(obj: Any) -> str:
    """sha256 hex of :func:`canonical_json` of ``obj``."""
    return bytes_sha256(canonical_json(obj).encode("utf-8"))


# --------------------------------------------------------------------------- hashes


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at ``path``, memoised on (resolved path, size, mtime).

    Provenance, metric extractors and loaders all hash multi-GB weight files; the memo keeps a
    2.7 GB checkpoint from being read twice in one process.
    """
    st = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


# --------------------------------------------------------------------------- array payloads


def png_bytes(image_u8: Any) -> bytes:
    """PNG bytes of one uint8 (H, W, 3) image (numpy array or CPU tensor)."""
    import numpy as np
    from PIL import Image

    arr = image_u8.numpy() if hasattr(image_u8, "numpy") else np.asarray(image_u8)
    if arr.dtype != np.uint8:
        raise TypeError(f"png_bytes needs uint8 pixels, got {arr.dtype}")
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"png_bytes needs an (H, W, 3) image, got shape {tuple(arr.shape)}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def npz_bytes(**arrays: Any) -> bytes:
    """Bytes of an uncompressed ``.npz`` holding ``arrays``."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
