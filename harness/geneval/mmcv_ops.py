"""Make mmdet importable and runnable without compiled mmcv ops, on CPU and on CUDA.

Why: the GenEval detector's mmdet backend imports mmcv's compiled extension ``mmcv._ext`` at import
time. ``mmcv-lite`` (a pure-Python wheel) lacks it, and building it takes ~21 minutes and a patched
``setup.py`` on these machines. Mask2Former at inference needs two ops: multi-scale deformable
attention and point sampling. Point sampling (``mmcv.ops.point_sample``) is ``F.grid_sample`` on
every device; deformable attention takes mmcv's own pure-PyTorch function
(``multi_scale_deformable_attn_pytorch``) on CPU, but the compiled kernel whenever the tensor is on
CUDA. :func:`route_ops_to_pytorch` sends the CUDA case to that same pure-PyTorch function when no
compiled ops exist, so ``--device cuda`` works from ``pip install`` alone (CPU outputs were measured
equal to a compiled mmcv 2.1.0). Every *other* op stays on a stand-in ``mmcv._ext`` whose every
function raises :class:`NotImplementedError`: a path that needs one fails loudly instead of
silently producing wrong detections. Which implementation ran is recorded (:func:`op_implementation`).
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
    """Any device works: without compiled ops, CUDA deformable attention is routed to PyTorch (kept for callers)."""
    if str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise DeviceSupportError(f"device {device!r} was asked for, but torch sees no CUDA device "
                                     f"(torch {torch.__version__}); use --device cpu or auto")


#: what :func:`ms_deform_attn_impl` answers, recorded in provenance
PYTORCH_IMPL = "pytorch (mmcv multi_scale_deformable_attn_pytorch)"
COMPILED_IMPL = "compiled (mmcv._ext ms_deform_attn_forward)"


def ms_deform_attn_impl(device_type: str, compiled_ops: bool | None = None) -> str:
    """Which deformable-attention implementation runs for tensors on ``device_type`` ("cpu", "cuda", ...).

    mmcv itself calls the compiled kernel only for CUDA (and MLU) tensors; without compiled ops we
    route those to the pure-PyTorch function too.
    """
    if compiled_ops is None:
        compiled_ops = mmcv_status().compiled_ops
    if device_type in ("cuda", "mlu") and compiled_ops:
        return COMPILED_IMPL
    return PYTORCH_IMPL


class _PytorchMSDeformAttnFunction:
    """Stands in for mmcv's ``MultiScaleDeformableAttnFunction`` (same ``apply`` signature), pure PyTorch."""

    @staticmethod
    def apply(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step):
        from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

        return multi_scale_deformable_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)


def route_ops_to_pytorch() -> bool:
    """Without compiled ops, make mmcv's deformable attention use PyTorch on CUDA too; True when routed.

    Call after :func:`ensure_mmcv_ops`, before the model runs. A no-op with a compiled mmcv.
    """
    if mmcv_status().compiled_ops:
        return False
    import mmcv.ops.multi_scale_deform_attn as msda

    if msda.MultiScaleDeformableAttnFunction is not _PytorchMSDeformAttnFunction:
        msda.MultiScaleDeformableAttnFunction = _PytorchMSDeformAttnFunction
    return True


def op_implementation(device: str) -> dict[str, str]:
    """Provenance: the implementation of each op Mask2Former uses, for ``device``."""
    return {"ms_deform_attn": ms_deform_attn_impl(str(device).split(":")[0]),
            "point_sample": "pytorch (F.grid_sample, mmcv.ops.point_sample)"}
