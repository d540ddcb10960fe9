"""What produced a detect run's inputs: the generator of the images folder, and the detector and CLIP that ran.

Why recorded at detect time: a GenEval number is only interpretable with all three, and the report
must say "NOT THE GENEVAL METRIC" when any of them had random weights. The images folder's
generating run is read once, when detection is planned, and stored in the detect run's manifest, so
scoring later needs neither that run directory nor the images.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.geneval.folder import RUN_SUBDIR


def generator_of(images_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``{"name", "real_weights", "run_dir"}`` of the dcar-bench run that wrote ``images_dir``; None for other tools.

    A folder is a run's when it is ``<run>/artifacts/geneval`` and ``<run>`` holds a manifest.
    """
    from harness.api import RunManifest
    from harness.store import RunDirError, RunStore

    images = Path(images_dir).expanduser().resolve()
    sub = Path(RUN_SUBDIR).parts
    if images.parts[-len(sub):] != sub:
        return None
    run_dir = images.parents[len(sub) - 1]
    try:
        stored = RunStore(run_dir).read_manifest()
    except RunDirError as exc:
        return {"name": None, "real_weights": False, "run_dir": str(run_dir), "error": str(exc)}
    if stored is None:
        return None
    m = RunManifest.from_dict(stored)
    return {"name": m.adapter, "real_weights": m.real_weights, "run_dir": str(run_dir)}


def models_info(*, random_weights: bool, detector_checkpoint: str | None, clip_weights: str | None,
                generator: Mapping[str, Any] | None, records: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Detector, colour classifier and generator facts for the summary.

    Detector and CLIP: what the detecting process loaded (recorded with the object gate items:
    checkpoint path and sha256, versions), else the config. Generator: as recorded at plan time.
    """
    info: dict[str, Any] = {
        "detector": {"real_weights": not random_weights, "checkpoint": detector_checkpoint},
        "color_classifier": {"real_weights": not random_weights, "weights": clip_weights},
    }
    loaded = next((r["models"] for r in records if r.get("gate") and r.get("models")), None)
    if loaded:
        info.update(loaded)
    if generator:
        info["generator"] = dict(generator)
    return info
