"""The train_efficiency suite end to end on a tiny config: both recipes trained, gFID from stored features,
device-hours, the Fig. 10 series, resume, render."""
from __future__ import annotations

import json

import pytest

from tests.stand_ins import TinyExtractor

TINY = {
    "preset": "mini", "device": "cpu", "tokenizer": "random:0", "text_encoder": "tiny", "text_max_length": 64,
    "train_data": {"kind": "shapes", "n": 8, "seed": 0}, "eval_data": {"kind": "shapes", "n": 4, "seed": 1},
    "training.model_config": "tiny", "training.low_resolution": 32, "training.high_resolution": 64,
    "training.stage_steps": {"pretrain": 3, "finetune": 2, "scratch": 3}, "training.batch_size": 4,
    "training.micro_batch_size": 4, "training.log_every": 1, "training.checkpoint_every": 1, "training.amp": "none",
    "sampling": {"num_steps": 2, "num_diffusion_steps": 2}, "inception.random_init_seed": 0, "frechet": "eigh",
    "fig10_steps": 100,
}


@pytest.fixture
def tiny_extractor(monkeypatch):
    monkeypatch.setattr("dcar_training.evaluate.make_extractor", lambda *a, **k: TinyExtractor())


def _run(out, **kw):
    from harness.runner.core import run

    return run("train_efficiency", None, out, overrides={**TINY, **kw}, show_progress=False)


def test_both_recipes_table6_and_fig10(tmp_path, tiny_extractor):
    _run(tmp_path / "run")
    res = json.loads((tmp_path / "run" / "summary.json").read_text())["results"]
    pf, sc = res["recipes"]["pretrain_finetune"], res["recipes"]["scratch"]
    assert pf["steps"] == "3 (32) + 2 (64)" and sc["steps"] == "3 (64)"
    assert pf["gFID"] is not None and sc["gFID"] is not None
    assert pf["device_hours"] > 0 and sc["device_hours"] > 0 and res["speedup_device_hours"] > 0
    fig = {s["label"]: s for s in res["figure_series"]["fig10"]}
    assert fig["64×64 fine-tuned from 32×32 (ours)"]["x"] == [1, 2]
    assert fig["64×64 from scratch (ours)"]["x"] == [1, 2, 3]
    assert set(res["paper_table"]) == {"Pretrain 256 + finetune 512", "From scratch at 512"}
    assert res["is_paper_metric"] is False
    from harness.registry import resolve

    cfg = json.loads((tmp_path / "run" / "manifest.json").read_text())["config"]
    md = resolve("suite", "train_efficiency")(cfg).render({"results": res})
    assert "Miniature reproduction" in md and "1440" in md


def test_report_figure_10_is_drawn_from_the_run(tmp_path, tiny_extractor):
    _run(tmp_path / "run", recipes=["scratch"])
    from harness.report.collect import collect_runs
    from harness.report.figures import build_figures

    figs = {f.id: f for f in build_figures(collect_runs([tmp_path / "run"]), tmp_path / "rep")}
    assert figs["fig10"].status == "drawn"


def test_discrete_only_and_resume(tmp_path, tiny_extractor):
    from harness.records import read_all

    kw = {"recipes": ["scratch"], "training.discrete_only": True}
    _run(tmp_path / "a", **kw)
    import dcar_training.generator as tg

    real = tg.train_generator

    def dying(*a, **k):
        real(*a, **{**k, "stop_after": (0, 1)})
        raise KeyboardInterrupt

    tg.train_generator = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(tmp_path / "b", **kw)
    finally:
        tg.train_generator = real
    _run(tmp_path / "b", **kw)
    recs = [{k: v for k, v in r.items() if k not in ("device_seconds", "device_hours", "stages")}
            for d in ("a", "b") for _, rr in read_all(tmp_path / d / "records") for r in rr.records]
    assert recs[0] == recs[1] and recs[0]["discrete_only"] is True


def test_table6_and_table5_cells_are_filled_from_the_training_runs(tmp_path, tiny_extractor):
    from harness.report.collect import collect_runs
    from harness.report.paper_tables import build_paper_tables

    _run(tmp_path / "eff")
    from harness.runner.core import run
    from tests.suites.test_tokenizer_ablation import TINY as TOK

    run("tokenizer_ablation", None, tmp_path / "tok", overrides={**TOK, "recipes": ["discrete_alternate"]},
        show_progress=False)
    tables = {t.id: t for t in build_paper_tables(collect_runs([tmp_path / "eff", tmp_path / "tok"]))}
    md6, md5 = tables["table6"].to_markdown(), tables["table5"].to_markdown()
    eff = json.loads((tmp_path / "eff" / "summary.json").read_text())["results"]["recipes"]
    assert f"{eff['scratch']['gFID']:.2f}" in md6 and "| 5 " in md6.replace("5†", "5 ")  # 3 + 2 steps, no decimals
    tok = json.loads((tmp_path / "tok" / "summary.json").read_text())["results"]["recipes"]["discrete_alternate"]
    assert f"{tok['rFID']:.2f}" in md5
    assert "not run" in md5  # the continuous warm-up + alternate row: no run trained it
    three = [ln for ln in md5.splitlines() if ln.startswith("| Three-stage adaptation (DC-HT) | ours")][0]
    assert "not run" in three  # that run trained only discrete_alternate: the three-stage cells stay empty


def test_doctor_requirements():
    from suites.tokenizer_ablation import TokenizerAblationSuite as T
    from suites.train_efficiency import TrainEfficiencySuite as E

    assert [r.name for r in E.requirements()] == ["DC-HT tokenizer weights", "T5-base text encoder",
                                                  "FID Inception weights"]
    assert E.requirements({**E.default_config(), "tokenizer": "random:0", "text_encoder": "tiny",
                           "inception": {"random_init_seed": 0}}) == []
    names = [(r.name, r.config_key) for r in T.requirements()]
    assert names == [("FID Inception weights", "inception.weights_path"),
                     ("LPIPS AlexNet backbone", "training.loss.lpips_backbone_path")]
