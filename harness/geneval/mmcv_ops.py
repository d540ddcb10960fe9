"""Make mmdet importable without compiled mmcv ops (CPU), and tell when real ones exist (GPU).

Why: the GenEval detector (Mask2Former) is served by mmdet, which imports mmcv's compiled
extension ``mmcv._ext`` at import time. ``mmcv-lite`` (a pure-Python wheel) lacks it, and
building it takes ~21 minutes and a patched ``setup.py`` on these machines. On CPU,
Mask2Former never calls a compiled op: mmcv's multi-scale deformable attention and point
sampling take their pure-PyTorch paths, and outputs were measured identical to a compiled
build of mmcv 2.1.0 on the same CPU. So on CPU we register a stand-in ``mmcv._ext`` whose
every function raises :class:`NotImplementedError` — any code path that does need a compiled op
fails loudly instead of silently producing wrong detections. On CUDA the compiled ops are
required; :func:`check_device_support` refuses to run there without them.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from dataclasses import dataclass

from harness.api import MissingDependencyError, UserError

STUB_MARKER = "__dcar_bench_stub__"


@dataclass(frozen=True)
class MmcvStatus:
    installed: bool
    version: str | None
    compiled_ops: bool  # a real mmcv._ext is importable
    stub_active: bool  # our stand-in is registered

    def describe(self) -> str:
        if not self.installed:
            return "mmcv not installed (pip install 'dcar-bench[geneval]')"
        kind = "compiled ops" if self.compiled_ops else ("no compiled ops; CPU stub active" if self.stub_active
                                                         else "no compiled ops")
        return f"mmcv {self.version} ({kind})"


def _stub_function(name: str):
    def missing(*args, **kwargs):
        raise NotImplementedError(
            f"mmcv compiled op {name!r} was called, but this mmcv has no compiled ops (mmcv-lite + dcar-bench stub). "
            "On CPU, Mask2Former should not need it; on GPU install a compiled mmcv (docs/geneval.md)."
        )

    missing.__name__ = name
    return missing


def _make_stub() -> types.ModuleType:
    module = types.ModuleType("mmcv._ext", "dcar-bench stand-in for mmcv's compiled ops; every function raises")
    # a real spec: importlib.util.find_spec('mmcv._ext') and mmcv's ext_loader work with it
    module.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", loader=None, origin="dcar-bench-stub")
    setattr(module, STUB_MARKER, True)

    def __getattr__(name: str):  # noqa: N807 - module-level __getattr__ (PEP 562)
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_function(name)

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


def _real_ext_present() -> bool:
    existing = sys.modules.get("mmcv._ext")
    if existing is not None:
        return not getattr(existing, STUB_MARKER, False)
    try:
        spec = importlib.util.find_spec("mmcv._ext")
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin not in (None, "dcar-bench-stub")


def mmcv_status() -> MmcvStatus:
    """What mmcv is installed and whether it has compiled ops; imports nothing heavy."""
    try:
        spec = importlib.util.find_spec("mmcv")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return MmcvStatus(False, None, False, False)
    from importlib import metadata

    version = None
    for dist in ("mmcv", "mmcv-lite", "mmcv-full"):
        try:
            version = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    stub = getattr(sys.modules.get("mmcv._ext"), STUB_MARKER, False)
    return MmcvStatus(True, version, _real_ext_present(), bool(stub))


def ensure_mmcv_ops() -> MmcvStatus:
    """Register the stand-in ``mmcv._ext`` unless a compiled one exists; call before importing mmdet."""
    status = mmcv_status()
    if not status.installed:
        raise MissingDependencyError("the GenEval detector needs mmcv/mmdet: pip install 'dcar-bench[geneval]' "
                                     "(mmengine 0.10.7, mmcv-lite 2.1.0, mmdet 3.3.0; see docs/geneval.md)")
    if not status.compiled_ops and "mmcv._ext" not in sys.modules:
        sys.modules["mmcv._ext"] = _make_stub()
        status = mmcv_status()
    return status


class DeviceSupportError(UserError, RuntimeError):
    """The requested device cannot run the detector with the installed mmcv."""


def check_device_support(device: str) -> None:
    """CUDA needs compiled mmcv ops (deformable attention); refuse early with the fix."""
    status = mmcv_status()
    if str(device).startswith("cuda") and not status.compiled_ops:
        raise DeviceSupportError(
            f"device {device!r} needs mmcv with compiled CUDA ops, but {status.describe()}. "
            "Either run the detector on CPU (--device cpu; identical outputs, slower) or build mmcv 2.1.0 "
            "with CUDA as described in docs/geneval.md ('Install: GPU')."
        )
