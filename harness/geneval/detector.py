"""The GenEval detector's mmdet backend: Mask2Former Swin-S (COCO instance segmentation) through mmdet 3.

(The default backend is :mod:`harness.geneval.hf_mask2former`, the same network and weights through
transformers; this one is kept, in the ``geneval-mmdet`` extra, to cross-check it. ``RawDetections``,
the checkpoint requirement and file resolution here are shared by both.)

Why mmdet 3.3.0 and not the official mmdet 2.x: both run on CPU without compiled ops
(see :mod:`harness.geneval.mmcv_ops`), but only mmdet 3.3.0 + mmcv-lite 2.1.0 + mmengine
install with plain ``pip install 'dcar-bench[geneval]'``; mmcv 1.7.2 needs
``--no-deps --no-build-isolation`` and ``setuptools<81``, which an extra cannot express.
The official 2.x checkpoint is accepted by renaming its keys
(:mod:`harness.geneval.checkpoint`), and :func:`detect` returns the per-class lists the
official scorer reads from mmdet 2's ``inference_detector``.

Config and checkpoint come from local paths only (:data:`DETECTOR_CONFIG`,
:data:`DETECTOR_CHECKPOINT`); the config defaults to the one shipped inside the mmdet
wheel.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.api import DataError, MissingDependencyError, MissingResourceError, Requirement
from harness.io import file_sha256

CONFIG_NAME = "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py"  # mmdet 3 name of the official model
CKPT_2X = "mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco_20220504_001756-743b7d99.pth"
CKPT_3X = "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco_20220504_001756-c9d0c4f2.pth"
CKPT_GENEVAL_NAME = "mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco.pth"  # name download_models.sh saves it as
NUM_CLASSES = 80

DETECTOR_CHECKPOINT = Requirement(
    name="GenEval detector checkpoint (Mask2Former Swin-S COCO)",
    description=(
        "the official GenEval detector weights: either "
        f"https://download.openmmlab.com/mmdetection/v2.0/mask2former/mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco/{CKPT_2X} "
        "(what GenEval's download_models.sh fetches) or the mmdet 3 release "
        f"https://download.openmmlab.com/mmdetection/v3.0/mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco/{CKPT_3X}; "
        "a file, or a directory holding one of them; pass it as `dcar-bench geneval detect --detector-checkpoint PATH` "
        "(suite config key detector_checkpoint)"
    ),
    env_var="DCAR_GENEVAL_DETECTOR_CKPT",
    default_paths=(
        f"~/.cache/dcar-bench/geneval/{CKPT_2X}",
        f"~/.cache/dcar-bench/geneval/{CKPT_3X}",
        f"~/.cache/dcar-bench/geneval/{CKPT_GENEVAL_NAME}",
    ),
    must_contain=(CKPT_2X, CKPT_3X, CKPT_GENEVAL_NAME),
)

DETECTOR_CONFIG = Requirement(
    name="GenEval detector config (mmdet 3 Mask2Former Swin-S COCO instance)",
    description=f"the mmdet 3 config {CONFIG_NAME}; shipped inside the mmdet 3.3.0 wheel (mmdet/.mim/configs/mask2former/)",
    env_var="DCAR_GENEVAL_DETECTOR_CONFIG",
    optional=True,  # defaults to the copy inside the installed mmdet wheel
)


def resolve_checkpoint_file(path: Path) -> Path:
    """A directory holding one of the known checkpoint names -> that file."""
    if path.is_dir():
        for name in DETECTOR_CHECKPOINT.must_contain:
            if (path / name).is_file():
                return path / name
    return path


def default_config_path() -> Path:
    """The config shipped in the installed mmdet 3 wheel."""
    import importlib.util

    spec = importlib.util.find_spec("mmdet")
    if spec is None or spec.origin is None:
        raise MissingDependencyError("mmdet is not installed: pip install 'dcar-bench[geneval]' (docs/geneval.md)")
    path = Path(spec.origin).parent / ".mim" / "configs" / "mask2former" / CONFIG_NAME
    if not path.is_file():
        raise MissingResourceError(
            f"{path} is missing: the installed mmdet has no bundled Mask2Former config (need mmdet 3.3.0 from the "
            f"wheel), or set {DETECTOR_CONFIG.env_var} to a copy of {CONFIG_NAME}"
        )
    return path


@dataclass
class RawDetections:
    """One image's detector output in the official per-class form.

    ``boxes[c]``: ``(N_c, 5)`` float array ``[x1, y1, x2, y2, score]``; ``masks[c]``: ``(N_c, H, W)`` bool.
    """

    boxes: list[Any]
    masks: list[Any]
    height: int
    width: int


@dataclass
class Detector:
    """A loaded Mask2Former plus what a result must record about it."""

    model: Any
    device: str
    config_path: str
    checkpoint: str | None  # None = random weights
    checkpoint_sha256: str | None = None
    checkpoint_format: str | None = None  # "mmdet2" | "mmdet3"
    mmcv: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    backend: str = "mmdet"

    @property
    def real_weights(self) -> bool:
        return self.checkpoint is not None

    def info(self) -> dict[str, Any]:
        import mmdet

        extra = {k: v for k, v in self.extra.items() if not k.startswith("pipeline_")}
        from harness.geneval.mmcv_ops import op_implementation

        return {
            "model": "Mask2Former Swin-S COCO instance",
            "backend": "mmdet",
            "ops": op_implementation(self.device),
            "config": self.config_path,
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "checkpoint_format": self.checkpoint_format,
            "real_weights": self.real_weights,
            "device": self.device,
            "mmdet": mmdet.__version__,
            "mmcv": self.mmcv,
            **extra,
        }


def load_detector(config: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
                  device: str = "cpu", random_init_seed: int | None = None) -> Detector:
    """Build Mask2Former from the mmdet config and load the checkpoint (2.x keys are renamed).

    ``checkpoint=None`` requires ``random_init_seed`` (tests only: detections are then
    meaningless and every result says so).
    """
    from harness.geneval.mmcv_ops import check_device_support, ensure_mmcv_ops, route_ops_to_pytorch

    status = ensure_mmcv_ops()
    route_ops_to_pytorch()  # no compiled ops: CUDA deformable attention takes mmcv's pure-PyTorch path
    check_device_support(device)
    import torch
    from mmdet.apis import init_detector

    config_path = Path(config) if config else default_config_path()
    if not config_path.is_file():
        raise MissingResourceError(f"detector config {config_path} does not exist (detector_config / "
                                   f"${DETECTOR_CONFIG.env_var}); unset it to use the config inside the mmdet wheel")
    if checkpoint is None and random_init_seed is None:
        raise ValueError("load_detector needs a checkpoint, or random_init_seed for a random-weight test detector")
    if random_init_seed is not None:
        torch.manual_seed(int(random_init_seed))
    import warnings

    from mmengine.config import Config

    cfg = Config.fromfile(str(config_path))
    match_official_test_pipeline(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = init_detector(cfg, None, device="cpu")
    det = Detector(model=model, device=device, config_path=str(config_path), checkpoint=None, mmcv=status.describe())
    if checkpoint is not None:
        ckpt_path = resolve_checkpoint_file(Path(checkpoint))
        if not ckpt_path.is_file():
            raise MissingResourceError(f"detector checkpoint {ckpt_path} does not exist. {DETECTOR_CHECKPOINT.description}")
        det.checkpoint = str(ckpt_path)
        det.checkpoint_sha256 = file_sha256(ckpt_path)
        det.checkpoint_format = load_weights(model, ckpt_path)
    else:
        det.extra["random_init_seed"] = int(random_init_seed)  # type: ignore[arg-type]
    model.to(device)
    model.eval()
    return det


def match_official_test_pipeline(cfg: Any) -> None:
    """Make mmdet 3's test pipeline compute what the official mmdet 2.x one does.

    mmdet 2.x (GenEval's config): load uint8 -> Resize (1333, 800) keep-ratio on uint8 ->
    Pad to a multiple of 32 with pixel value 128 -> Normalize. mmdet 3.3's shipped config
    loads ``to_float32=True`` (resizing floats, which shifts scores by ~1e-4) and pads
    after normalising with 0. We load uint8 and pad with 128 before the data
    preprocessor, whose own padding then has nothing left to do, keeping ``img_shape``
    unpadded as mmdet 2 did. Measured: identical boxes, scores and masks to mmdet 2.28.2
    on the same weights (tests/harness/geneval/test_mmdet2_parity.py).
    """
    pipeline = cfg.test_dataloader.dataset.pipeline
    for t in pipeline:
        if t["type"] in ("LoadImageFromFile", "mmdet.LoadImageFromFile"):
            t["to_float32"] = False
    # the official pipeline has no annotations at test time
    pipeline[:] = [t for t in pipeline if t["type"] not in ("LoadAnnotations", "mmdet.LoadAnnotations")]
    pack = next(i for i, t in enumerate(pipeline) if t["type"] in ("PackDetInputs", "mmdet.PackDetInputs"))
    if not any(t["type"] in (PAD_TRANSFORM, "Pad", "mmdet.Pad") for t in pipeline):
        _register_pad_transform()
        pipeline.insert(pack, dict(type=PAD_TRANSFORM, size_divisor=32, pad_val=dict(img=(128, 128, 128), seg=255)))


PAD_TRANSFORM = "DcarBenchPadKeepImgShape"


def _register_pad_transform() -> None:
    """mmdet's ``Pad`` that leaves ``img_shape`` at the unpadded size, as mmdet 2's ``Pad`` did.

    (mmcv 2's ``Pad`` overwrites ``img_shape`` with the padded shape, and Mask2Former's
    post-processing crops its masks to ``img_shape``: on images whose resized size is not
    a multiple of 32 the masks and boxes would then be stretched over the padding.)
    """
    from mmdet.datasets.transforms import Pad
    from mmdet.registry import TRANSFORMS

    if PAD_TRANSFORM in TRANSFORMS.module_dict:
        return

    class PadKeepImgShape(Pad):
        def transform(self, results: dict) -> dict:
            shape = results["img"].shape[:2]
            results = super().transform(results)
            results["img_shape"] = shape
            return results

    TRANSFORMS.register_module(name=PAD_TRANSFORM, module=PadKeepImgShape)


def load_weights(model: Any, path: Path) -> str:
    """Load an mmdet 2.x or 3.x Mask2Former checkpoint strictly; returns the detected format."""
    import torch

    from harness.geneval.checkpoint import convert_mmdet2_state_dict, extract_state_dict, is_mmdet2_state_dict

    # OpenMMLab checkpoints carry numpy objects in 'meta': torch>=2.6 refuses them with weights_only=True.
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # torch.load raises pickle/zip/EOF errors of many types on a non-checkpoint
        raise DataError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {exc}); expected the "
                        f"Mask2Former Swin-S COCO .pth. {DETECTOR_CHECKPOINT.description}") from exc
    try:
        sd = extract_state_dict(raw)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from exc
    fmt = "mmdet2" if is_mmdet2_state_dict(sd) else "mmdet3"
    if fmt == "mmdet2":
        sd = convert_mmdet2_state_dict(sd)
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise DataError(
            f"{path} does not fit Mask2Former Swin-S COCO ({fmt} keys): {len(result.missing_keys)} missing "
            f"(e.g. {result.missing_keys[:3]}), {len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]})"
        )
    return fmt


def detect(detector: Detector, images: Sequence[Any]) -> list[RawDetections]:
    """Run Mask2Former on images (file paths, or RGB uint8 HxWx3 arrays); per-class boxes+scores and masks.

    File paths go through mmdet's own loader exactly as the official scorer passes them.
    Arrays are converted to BGR first (mmdet's pipeline expects OpenCV order).
    """
    import numpy as np
    import torch
    from mmdet.apis import inference_detector

    inputs = []
    for img in images:
        if isinstance(img, (str, os.PathLike)):
            inputs.append(str(img))
        else:
            arr = np.asarray(img)
            if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
                raise ValueError(f"detector input arrays must be HxWx3 uint8 RGB, got {arr.shape} {arr.dtype}")
            inputs.append(np.ascontiguousarray(arr[:, :, ::-1]))
    out = []
    with torch.no_grad():
        for item in inputs:  # one at a time, as the official scorer: results do not depend on batching
            pipeline = _pipeline(detector, from_array=not isinstance(item, str))
            sample = inference_detector(detector.model, item, test_pipeline=pipeline)
            out.append(to_per_class(sample, NUM_CLASSES))
    return out


def _pipeline(detector: Detector, from_array: bool):
    """The test pipeline for file paths or arrays, built from a deep copy of the config.

    (mmdet's ``inference_detector`` builds it from a shallow copy and, for arrays, rewrites
    the model config's first step in place, which breaks later calls with file paths.)
    """
    key = "pipeline_array" if from_array else "pipeline_file"
    if key not in detector.extra:
        import copy

        from mmcv.transforms import Compose
        from mmdet.utils import get_test_pipeline_cfg

        steps = copy.deepcopy(get_test_pipeline_cfg(detector.model.cfg))
        if from_array:
            steps[0]["type"] = "mmdet.LoadImageFromNDArray"
        detector.extra[key] = Compose(steps)
    return detector.extra[key]


def to_per_class(sample: Any, num_classes: int = NUM_CLASSES) -> RawDetections:
    """mmdet 3 ``DetDataSample.pred_instances`` -> the mmdet 2 per-class lists (``bbox2result`` order)."""
    import numpy as np

    inst = sample.pred_instances
    bboxes = inst.bboxes.detach().cpu().numpy().astype(np.float32)
    scores = inst.scores.detach().cpu().numpy().astype(np.float32)
    labels = inst.labels.detach().cpu().numpy()
    masks = inst.masks.detach().cpu().numpy().astype(bool) if "masks" in inst else None
    h, w = sample.ori_shape[:2]
    boxes_pc, masks_pc = [], []
    for c in range(num_classes):
        idx = np.nonzero(labels == c)[0]
        boxes_pc.append(np.concatenate([bboxes[idx], scores[idx, None]], axis=1) if len(idx) else np.zeros((0, 5), np.float32))
        masks_pc.append(masks[idx] if masks is not None else np.zeros((len(idx), h, w), bool))
    return RawDetections(boxes_pc, masks_pc, int(h), int(w))
