"""The detect stage: models loaded once per process, one record per work item (gate image or sample PNG).

Why a class beside the suite: the suite stays a thin adapter between the runner and this; the
checks that need no model (:func:`check_ready`) run in the suite's ``validate``, before
Mask2Former is built, and :meth:`DetectStage.record` turns one item into one record through the
same :func:`~harness.geneval.records.image_record` that tests call on hand-made detections.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from harness.api import MissingDependencyError, WorkItem
from harness.geneval.config import DetectConfig

#: import name -> what to install: the ``geneval`` extra (every backend) ...
PACKAGES = {"open_clip": "open-clip-torch", "skimage": "scikit-image", "pycocotools": "pycocotools"}
#: ... plus, per detector backend, its own packages (mmdet's: the ``geneval-mmdet`` extra)
BACKEND_PACKAGES = {"transformers": {"transformers": "transformers", "cv2": "opencv-python-headless"},
                    "mmdet": {"mmdet": "mmdet", "mmengine": "mmengine", "mmcv": "mmcv-lite"}}
EXTRA = {"transformers": "geneval", "mmdet": "geneval,geneval-mmdet"}


def missing_packages(backend: str = "transformers") -> list[str]:
    """Packages ``backend`` needs that are not importable (checked without importing them)."""
    need = {**PACKAGES, **BACKEND_PACKAGES[backend]}
    return [dist for mod, dist in need.items() if importlib.util.find_spec(mod) is None]


def check_ready(cfg: DetectConfig) -> None:
    """Everything the detector and CLIP need, checked before either loads; raises a one-line UserError."""
    from harness import resources
    from harness.geneval.color import CLIP_WEIGHTS
    from harness.geneval.detector import DETECTOR_CHECKPOINT
    from harness.geneval.mmcv_ops import check_device_support

    missing = missing_packages(cfg.detector_backend)
    if missing:
        raise MissingDependencyError(f"geneval_detect (detector_backend={cfg.detector_backend}) needs "
                                     f"{', '.join(missing)}, which are not installed: pip install "
                                     f"'dcar-bench[{EXTRA[cfg.detector_backend]}]' (docs/geneval.md)")
    check_device_support(cfg.device)
    if cfg.detector_config and cfg.detector_backend != "mmdet":
        from harness.runner.config import ConfigError

        raise ConfigError(f"detector_config={cfg.detector_config} is an mmdet config, but detector_backend="
                          f"{cfg.detector_backend}; unset detector_config or use --detector-backend mmdet")
    if cfg.detector_config:
        from harness.api import MissingResourceError

        if not Path(cfg.detector_config).expanduser().is_file():
            raise MissingResourceError(f"detector_config {cfg.detector_config} does not exist; unset it to use the "
                                       "Mask2Former config inside the mmdet wheel")
    if not cfg.random_weights:
        resources.locate(DETECTOR_CHECKPOINT, cfg.detector_checkpoint)
        resources.locate(CLIP_WEIGHTS, cfg.clip_weights)


def resolve_device(device: str) -> str:
    """``auto`` -> CUDA when torch sees a GPU (no compiled mmcv needed: see :mod:`harness.geneval.mmcv_ops`), else CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_detector_backend(backend: str, config: str | None, checkpoint: Any, device: str,
                          random_init_seed: int | None = None) -> Any:
    """The detector of ``backend`` ("transformers" | "mmdet") from GenEval's checkpoint (or random weights)."""
    if backend == "transformers":
        from harness.geneval.hf_mask2former import load_hf_detector

        return load_hf_detector(checkpoint, device=device, random_init_seed=random_init_seed)
    from harness.geneval.detector import load_detector

    return load_detector(config, checkpoint, device=device, random_init_seed=random_init_seed)


def load_models(cfg: DetectConfig) -> tuple[Any, Any]:
    """(detector, colour classifier) from the config's local paths, or random weights (tests)."""
    import os

    from harness import resources
    from harness.geneval.color import CLIP_WEIGHTS, load_color_classifier
    from harness.geneval.detector import DETECTOR_CHECKPOINT, DETECTOR_CONFIG

    device = resolve_device(cfg.device)
    det_config = None
    if cfg.detector_backend == "mmdet":
        det_config = cfg.detector_config or os.environ.get(DETECTOR_CONFIG.env_var or "") or None
    if cfg.random_weights:
        seed = cfg.random_init_seed
        return (load_detector_backend(cfg.detector_backend, det_config, None, device, random_init_seed=seed),
                load_color_classifier(None, model_name=cfg.clip_model, device=device, random_init_seed=seed))
    ckpt = resources.locate(DETECTOR_CHECKPOINT, cfg.detector_checkpoint)
    clip = resources.locate(CLIP_WEIGHTS, cfg.clip_weights)
    return (load_detector_backend(cfg.detector_backend, det_config, ckpt, device),
            load_color_classifier(clip, model_name=cfg.clip_model, device=device))


def run_detector(detector: Any, image: Any) -> Any:
    """One image (path or RGB uint8 array) -> its :class:`~harness.geneval.detector.RawDetections`, either backend."""
    if getattr(detector, "backend", "mmdet") == "transformers":
        from harness.geneval.hf_mask2former import detect as hf_detect

        return hf_detect(detector, [image])[0]
    from harness.geneval.detector import detect

    return detect(detector, [image])[0]


class DetectStage:
    """Turns detect work items into records; the two models are loaded on the first item, once per process."""

    def __init__(self, cfg: DetectConfig, images_root: Path):
        self.cfg = cfg
        self.root = Path(images_root)
        self._models: tuple[Any, Any] | None = None

    def models(self) -> tuple[Any, Any]:
        if self._models is None:
            self._models = load_models(self.cfg)
        return self._models

    def record(self, item: WorkItem) -> dict[str, Any]:
        from harness.geneval.gate import gate_color_record, gate_object_image, gate_object_record, parse_gate_id
        from harness.geneval.prompts import is_shipped_metadata
        from harness.geneval.records import image_record

        det, clf = self.models()
        keep = {"record_threshold": self.cfg.record_threshold, "max_objects": self.cfg.rules.max_objects}
        if item.payload.get("gate"):
            kind, name = parse_gate_id(item.id)
            if kind == "color":
                return gate_color_record(clf, name)
            rec = gate_object_record(run_detector(det, gate_object_image(name)), name, **keep)
            rec["models"] = {"detector": det.info(), "color_classifier": clf.info()}
            return rec
        path = self.root / item.payload["file"]
        meta, index = item.payload["metadata"], int(item.payload["prompt_index"])
        rec = image_record(run_detector(det, path), meta, path, clf, **keep)
        rec.update({"file": item.payload["file"], "prompt_index": index,
                    "shipped_metadata": is_shipped_metadata(index, meta)})
        return rec
