"""The whole GenEval flow through the CLI: generate -> detect (+ gate) -> score -> report, random weights.

Needs the ``geneval`` extra. Uses the dummy text-to-image adapter, the real (default: transformers)
Mask2Former Swin-S code path with random weights and a tiny random open_clip model, so the numbers
mean nothing and every output must say so.
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.geneval
pytest.importorskip("cv2", reason="needs the geneval extra: pip install 'dcar-bench[geneval]' (opencv-python-headless)")



@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip

    cfg = {"embed_dim": 32, "quick_gelu": True,
           "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
    path = tmp_path_factory.mktemp("clip") / "dcar-flow-tiny-clip.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return "dcar-flow-tiny-clip"


@pytest.fixture(scope="module")
def flow(tmp_path_factory, tiny_clip):
    from harness.geneval.cli import main
    from harness.geneval.prompts import load_prompts

    colors = next(i for i, p in enumerate(load_prompts()) if p["tag"] == "colors")
    out = tmp_path_factory.mktemp("flow") / "run"
    rc = main(["run", "--model", "dummy-t2i", "--out", str(out), "--set", f"prompts=[{colors}]",
               "--set", "samples_per_prompt=1", "--set", "model.resolution=64", "--random-weights", "--allow-partial",
               "--detect-set", f"clip_model={tiny_clip}", "-q"])
    assert rc == 0
    return out, colors


def test_detect_records_hold_the_gate_and_the_image(flow):
    from harness.records import read_all

    out, colors = flow
    recs = {r["item_id"]: r for _, res in read_all(out / "detect" / "records") for r in res.records}
    assert set(recs) == {"gate/object/astronaut", "gate/object/chelsea", "gate/object/coffee",
                         "gate/color/red", "gate/color/green", "gate/color/blue", f"img/{colors:05d}/samples/0000.png"}
    img = recs[f"img/{colors:05d}/samples/0000.png"]
    assert img["metadata"]["tag"] == "colors" and img["shipped_metadata"] is True and (img["height"], img["width"]) == (64, 64)
    cls = img["metadata"]["include"][0]["class"]
    for obj in img["detections"].get(cls, []):  # every candidate of the asked class carries mask + colour
        assert "mask" in obj and obj["color"] in ("red", "orange", "yellow", "green", "blue", "purple", "pink",
                                                   "brown", "black", "white")
    assert recs["gate/color/red"]["color"] in ("red", "orange", "yellow", "green", "blue", "purple", "pink",
                                                "brown", "black", "white")


def test_summary_and_report_say_this_is_not_the_metric(flow):
    out, _ = flow
    summary = json.loads((out / "detect" / "summary.json").read_text())
    res = summary["results"]
    assert res["is_geneval_metric"] is False
    assert any(lab.startswith("INCOMPLETE: incomplete GenEval run: 1 of 2212 images") for lab in res["labels"])
    assert "NOT THE GENEVAL METRIC: random weights for color_classifier, detector, generator" in res["labels"]
    assert res["models"]["generator"]["name"] == "dummy-t2i"
    det = res["models"]["detector"]  # what the detecting process actually loaded
    assert det["backend"] == "transformers" and det["transformers"] and len(det["converted_sha256"]) == 64
    assert det["random_init_seed"] == 0 and det["real_weights"] is False
    assert res["models"]["color_classifier"]["model"] == "dcar-flow-tiny-clip"
    assert res["rules"] == {"threshold": 0.3, "counting_threshold": 0.9, "max_objects": 16, "max_overlap": 1.0,
                            "position_threshold": 0.1}
    report = (out / "detect" / "report.md").read_text()
    assert "| DC-AR (paper) | 1.00 | 0.75 | 0.52 | 0.90 | 0.45 | 0.51 | 0.69 |" in report
    assert "**dummy-t2i †**" in report and "NOT THE GENEVAL METRIC" in report
    assert "Detector: Mask2Former Swin-S COCO, backend transformers (transformers " in report


def test_rescore_without_detector_refuses_partial_unless_allowed(flow, capsys):
    from harness.geneval.cli import main, score

    out, _ = flow
    # (a threshold below the record_threshold 0.3 is refused: tests/suites/test_geneval_detect.py)
    s = score(str(out / "detect"), allow_partial=True, rule_overrides=["threshold=0.35"])
    assert s["rules"]["threshold"] == 0.35 and s["total_images"] == 1
    # the run was made with --allow-partial, which the re-score inherits; a fresh refusal needs a full-run config
    rc = main(["score", str(out / "detect"), "--rule", "position_threshold=0.2"])
    assert rc == 0 and "position c = 0.2" in capsys.readouterr().out
    with pytest.raises(ValueError, match="geneval_detect run"):
        score(str(out / "generate"))
