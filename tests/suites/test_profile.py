"""The profile suite on CPU with stand-in and tiny adapters: records, warm-up exclusion, throughput, failures, resume."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Sequence

import pytest

from harness import registry
from harness.api import AdapterInfo, TextToImage
from harness.runner import core

ROOT = Path(__file__).resolve().parents[2]


class CountingT2I(TextToImage):
    """Counts generate() calls per batch size (class-wide); can fail to load, fail to generate, or 'kill' the run."""

    calls: ClassVar[list[tuple[str, int]]] = []

    def __init__(self, tag: str = "a", fail_load: bool = False, fail_generate: bool = False, kill_after: int = 0):
        if fail_load:
            raise RuntimeError("weights not found: /nowhere/model.bin")
        self.tag, self.fail_generate, self.kill_after = tag, fail_generate, kill_after

    def info(self) -> AdapterInfo:
        return AdapterInfo(name="counting-t2i", kind=self.kind, resolution=8, steps=1, real_weights=False)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any):
        import torch

        CountingT2I.calls.append((self.tag, len(prompts)))
        if self.fail_generate:
            raise ValueError("out of memory (simulated)")
        if self.kill_after and sum(1 for t, _ in CountingT2I.calls if t == self.tag) > self.kill_after:
            raise KeyboardInterrupt  # like a SIGINT in the middle of a run: not caught as a model failure
        return torch.zeros(len(prompts), 3, 8, 8)


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setitem(registry._TABLE["adapter"], "counting-t2i", "tests.suites.test_profile:CountingT2I")
    CountingT2I.calls = []
    return CountingT2I


def _overrides(models, **extra):
    base = {"models": models, "reference_model": models[0]["label"], "latency_batch_sizes": [1],
            "throughput_batch_sizes": [3], "warmup": 2, "iterations": 3, "breakdown_iterations": 1,
            "device": "cpu", "threads": None}
    return {**base, **extra}


def _records(run_dir: Path) -> list[dict]:
    out = []
    for f in sorted((run_dir / "records").glob("*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def test_records_fields_warmup_excluded_and_throughput_is_images_over_time(tmp_path, counting):
    models = [{"label": "a", "name": "counting-t2i", "options": {"tag": "a"}},
              {"label": "b", "name": "counting-t2i", "options": {"tag": "b"}}]
    result = core.run("profile", None, tmp_path / "run", overrides=_overrides(models), show_progress=False)
    recs = _records(tmp_path / "run")
    assert len(recs) == 2 * 2 * (3 + 1)  # models x batch sizes x (timed + breakdown)
    timed = [r for r in recs if r["kind"] == "timed"]
    for r in timed:
        assert r["status"] == "ok" and r["images"] == r["batch_size"]
        assert r["warmup_iterations_before"] == 2 and r["timing_method"] == "perf_counter"
        assert r["images_per_s"] == pytest.approx(r["batch_size"] / r["seconds"])
        assert r["peak_memory_bytes"] > 0 and r["memory_kind"].startswith("cpu_peak_rss")
        assert {"torch", "threads", "device_name", "dtype"} <= set(r["environment"])
    # every generate() call: 2 warm-up + 3 timed + 1 breakdown per model and batch size; only 3 are timed
    for tag in "ab":
        for batch in (1, 3):
            assert counting.calls.count((tag, batch)) == 2 + 3 + 1
    # interleaved: model a and b alternate iteration by iteration
    order = [r["model"] for r in timed if r["batch_size"] == 1]
    assert order == ["a", "b"] * 3
    res = result.summary["results"]
    a = res["models"]["a"]
    lat = a["batches"]["1"]["latency_s"]
    assert lat["n"] == 3 and a["latency_s"] == lat["median"]
    secs = [r["seconds"] for r in timed if r["model"] == "a" and r["batch_size"] == 3]
    assert a["throughput_img_per_s"] == pytest.approx(3 * 3 / sum(secs))
    assert a["latency_ratio_to_reference"] == 1.0 and a["batches"]["1"]["warmup_iterations"] == 2
    assert res["models"]["b"]["latency_ratio_to_reference"] == pytest.approx(
        res["models"]["b"]["latency_s"] / a["latency_s"])
    assert not res["is_paper_metric"] and any("not the paper's A100" in w for w in res["warnings"])
    from suites.profile import render_profile

    md = render_profile(result.summary)
    assert "latency ÷ a's" in md and "| b | counting-t2i |" in md


def test_a_failing_adapter_is_reported_without_losing_the_others(tmp_path, counting):
    models = [{"label": "good", "name": "counting-t2i"},
              {"label": "noload", "name": "counting-t2i", "options": {"fail_load": True}},
              {"label": "oom", "name": "counting-t2i", "options": {"tag": "oom", "fail_generate": True}}]
    result = core.run("profile", None, tmp_path / "run", overrides=_overrides(models), show_progress=False)
    res = result.summary["results"]
    assert res["models"]["good"]["status"] == "ok" and res["models"]["good"]["latency_s"] is not None
    assert res["failures"]["noload"]["error"] == "RuntimeError: weights not found: /nowhere/model.bin"
    assert res["failures"]["oom"]["error"].startswith("ValueError: out of memory")
    assert res["failures"]["oom"]["failed_items"] == res["failures"]["oom"]["of"] == 8
    assert counting.calls.count(("oom", 1)) == 1  # a model that failed is not retried for every item
    from suites.profile import render_profile

    assert "Failed models" in render_profile(result.summary)


def test_resume_after_a_kill_keeps_the_finished_models(tmp_path, counting):
    models = [{"label": "first", "name": "counting-t2i", "options": {"tag": "first"}},
              {"label": "second", "name": "counting-t2i", "options": {"tag": "second", "kill_after": 4}}]
    over = _overrides(models, interleave=False, throughput_batch_sizes=[])
    with pytest.raises(KeyboardInterrupt):
        core.run("profile", None, tmp_path / "run", overrides=over, show_progress=False)
    before = _records(tmp_path / "run")
    assert {r["model"] for r in before} == {"first", "second"} and len(before) == 4 + 2
    counting.calls = []
    over["models"][1]["options"]["kill_after"] = 0  # the same config but for the kill switch... is a new config:
    with pytest.raises(Exception, match="(?i)config|differ"):  # a resume must be the same experiment
        core.run("profile", None, tmp_path / "run", overrides=over, show_progress=False)
    over["models"][1]["options"]["kill_after"] = 4  # same config; the second process counts its own calls
    result = core.run("profile", None, tmp_path / "run", overrides=over, show_progress=False)
    assert all(tag == "second" for tag, _ in counting.calls)  # the finished model is not run again
    after = _records(tmp_path / "run")
    assert after[:len(before)] == before and len(after) == 8
    assert result.summary["results"]["models"]["second"]["batches"]["1"]["latency_s"]["n"] == 3


def test_config_errors_before_anything_runs(tmp_path, counting):
    from harness.runner.config import ConfigError

    dup = [{"label": "x", "name": "counting-t2i"}, {"label": "x", "name": "counting-t2i"}]
    with pytest.raises(ConfigError, match="unique"):
        core.run("profile", None, tmp_path / "a", overrides=_overrides(dup), show_progress=False)
    typo = [{"label": "x", "name": "dc-arr"}]
    with pytest.raises(ConfigError, match="(?i)did you mean"):
        core.run("profile", None, tmp_path / "b", overrides=_overrides(typo), show_progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not counting.calls


def test_quick_preset_plans_two_warmups_and_three_timed_iterations():
    from suites.profile import ProfileSuite

    config = core.build_config(ProfileSuite, ROOT / "suites" / "profile_quick.yaml")
    suite = ProfileSuite(config)
    assert suite.cfg.warmup == 2 and suite.cfg.iterations == 3
    labels = [m.label for m in suite.cfg.models]
    assert {"dc-ar", "dc-ar-official-loop", "dc-ar-discrete-only", "dummy-t2i"} <= set(labels)
    assert len(suite.plan()) == len(labels) * len(suite.cfg.batch_sizes) * (3 + 1)


def test_tiny_dcar_hybrid_and_discrete_only_with_component_breakdown(tmp_path, tiny_dcar_cache):
    models = [{"label": "dc-ar", "name": "dc-ar", "options": {"config": "tiny", "cache_dir": tiny_dcar_cache},
               "paper_row": "Table2_MJHQ30K/DC-AR"},
              {"label": "discrete", "name": "dc-ar-discrete-only",
               "options": {"config": "tiny", "cache_dir": tiny_dcar_cache}},
              {"label": "dummy", "name": "dummy-t2i", "options": {"resolution": 16}}]
    over = _overrides(models, warmup=1, iterations=1, throughput_batch_sizes=[2])
    result = core.run("profile", None, tmp_path / "run", overrides=over, show_progress=False)
    res = result.summary["results"]["models"]
    hybrid = res["dc-ar"]["batches"]["1"]["breakdown_s"]
    assert set(hybrid) == {"text_encoder", "generator_steps", "diffusion_head", "decoder", "other"}
    assert all(v >= 0 for v in hybrid.values())
    assert "diffusion_head" not in res["discrete"]["batches"]["1"]["breakdown_s"]  # never called
    assert set(res["dc-ar"]["paper"]) == {"latency_s", "throughput_img_per_s"}  # the paper's A100 cells
    assert res["dc-ar"]["speed_options"]["trim_caption"] is True and res["dc-ar"]["resolution"] == 128
    assert res["dummy"]["batches"]["1"]["breakdown_s"] == {"other": pytest.approx(
        res["dummy"]["batches"]["1"]["breakdown_total_s"])}


@pytest.fixture(scope="module")
def tiny_dcar_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tiny-dcar"))


def test_a_profile_run_fills_the_latency_and_throughput_cells_of_tables_2_and_4(tmp_path, counting):
    from harness.report.collect import collect_runs
    from harness.report.paper_tables import build_paper_tables

    models = [{"label": "dc-ar", "name": "counting-t2i", "options": {"tag": "h"}},
              {"label": "dc-ar-discrete-only", "name": "counting-t2i", "options": {"tag": "d"}}]
    result = core.run("profile", None, tmp_path / "run", overrides=_overrides(models, warmup=0, iterations=2),
                      show_progress=False)
    res = result.summary["results"]["models"]
    tables = {t.id: t for t in build_paper_tables(collect_runs([tmp_path / "run"]))}
    values = {(v["table"], v["model"], v["metric"]): v for v in tables["table2"].values + tables["table4"].values}
    lat = values[("Table2_MJHQ30K", "DC-AR", "latency_s_bs1_A100_fp16")]
    assert lat["ours"] == pytest.approx(res["dc-ar"]["latency_s"]) and lat["filled_by"] == "profile"
    thr = values[("Table4_ablation_hybrid", "Discrete-only variant", "throughput_img_per_s")]
    assert thr["ours"] == pytest.approx(res["dc-ar-discrete-only"]["throughput_img_per_s"])
    assert any("not the paper's A100" in r for r in lat["reasons"])  # the device is not the paper's


def test_on_cpu_the_timed_iterations_carry_the_breakdown_when_there_are_no_breakdown_iterations(tmp_path, tiny_dcar_cache):
    models = [{"label": "dc-ar", "name": "dc-ar", "options": {"config": "tiny", "cache_dir": tiny_dcar_cache}}]
    over = _overrides(models, warmup=0, iterations=2, breakdown_iterations=0, throughput_batch_sizes=[])
    result = core.run("profile", None, tmp_path / "run", overrides=over, show_progress=False)
    stats = result.summary["results"]["models"]["dc-ar"]["batches"]["1"]
    assert stats["breakdown_source"] == "timed iterations (CPU)" and stats["breakdown_iterations"] == 2
    recs = [r for r in _records(tmp_path / "run") if r["kind"] == "timed"]
    assert stats["breakdown_total_s"] == pytest.approx(sum(r["seconds"] for r in recs) / 2)
    assert sum(stats["breakdown_s"].values()) == pytest.approx(stats["breakdown_total_s"])


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_cuda_events_time_and_the_speed_options_keep_the_ids(tmp_path, tiny_dcar_cache):
    """GPU only: CUDA-event timing and CUDA peak memory in the records; static shapes + CUDA graphs keep the ids."""
    import torch

    from baselines.dcar.generator_adapter import DCARAdapter

    models = [{"label": "dc-ar", "name": "dc-ar", "options": {"config": "tiny", "cache_dir": tiny_dcar_cache}}]
    over = _overrides(models, warmup=1, iterations=2, throughput_batch_sizes=[2], device="cuda", dtype="float32")
    core.run("profile", None, tmp_path / "run", overrides=over, show_progress=False)
    timed = [r for r in _records(tmp_path / "run") if r["kind"] == "timed"]
    assert {r["timing_method"] for r in timed} == {"cuda_events"}
    assert {r["memory_kind"] for r in timed} == {"cuda_max_memory_allocated"}
    assert all(r["environment"]["device_name"] == torch.cuda.get_device_name() for r in timed)
    prompts, seeds = ["a cat", "a much longer prompt about a red house by a lake at dusk"], [1, 2]
    plain = DCARAdapter(config="tiny", cache_dir=tiny_dcar_cache, device="cuda")
    fast = DCARAdapter(config="tiny", cache_dir=tiny_dcar_cache, device="cuda", static_shapes=True,
                       compile="reduce-overhead")
    ref = plain.pipeline(prompts, seeds)
    for _ in range(3):  # warm-up, recording, replay
        got = fast.pipeline(prompts, seeds)
    assert torch.equal(got.ids, ref.ids)
