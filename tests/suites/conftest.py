"""Stand-in detector and colour classifier for the detect suite, so its whole flow runs without mmdet or weights.

The stand-ins sit behind the same three seams the real models use (:mod:`harness.geneval.detection`:
``check_ready``, ``load_models``, ``run_detector``); everything else (plan, validate, records,
rules, scoring, report) is the real code.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

GATE_CLASSES = ("person", "cat", "cup")  # what the object gate images must show


class StandInDetector:
    """Finds exactly what each prompt asks for (score 0.95), and every gate class in a gate image."""

    def __init__(self):
        self.inputs: list[str] = []

    def info(self):
        return {"model": "stand-in detector", "real_weights": False}

    def detect(self, image):
        from harness.geneval.detector import RawDetections
        from harness.geneval.prompts import load_class_names

        if isinstance(image, (str, Path)):
            self.inputs.append(str(image))
            meta = json.loads((Path(image).parent.parent / "metadata.jsonl").read_text())
            w, h = Image.open(image).size
            wanted = {r["class"]: int(r["count"]) for r in meta["include"]}
        else:
            self.inputs.append("array")
            h, w = np.asarray(image).shape[:2]
            wanted = {c: 1 for c in GATE_CLASSES}
        boxes, masks = [], []
        for name in load_class_names():
            n = wanted.get(name, 0)
            boxes.append(np.array([[k, 0, k + 4, 4, 0.95] for k in range(n)], np.float32).reshape(-1, 5))
            masks.append(np.zeros((n, h, w), bool))
        return RawDetections(boxes, masks, int(h), int(w))


class StandInClassifier:
    """Names a crop by the nearest of red/green/blue to its mean pixel (enough for the colour gate)."""

    def info(self):
        return {"model": "stand-in classifier", "real_weights": False}

    def classify(self, image, objects, cls):
        from harness.geneval.rules import COLORS

        mean = np.asarray(image, np.float64).reshape(-1, 3).mean(0)
        refs = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
        color = min(refs, key=lambda c: float(((mean - refs[c]) ** 2).sum()))
        return [(color, [1.0 if c == color else 0.0 for c in COLORS]) for _ in objects]


@pytest.fixture
def stand_in_models(monkeypatch):
    """Patch the detect stage's model seams; returns the detector (its ``inputs`` show what it was run on)."""
    from harness.geneval import detection

    det, clf = StandInDetector(), StandInClassifier()
    monkeypatch.setattr(detection, "check_ready", lambda cfg: None)
    monkeypatch.setattr(detection, "load_models", lambda cfg: (det, clf))
    monkeypatch.setattr(detection, "run_detector", lambda d, image: d.detect(image))
    return det
