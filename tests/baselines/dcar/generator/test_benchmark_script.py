"""The latency benchmark script runs end to end (tiny config); its timings are reported, never asserted."""
from __future__ import annotations

import importlib.util
import json

from tests.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "generator_latency.py"


def test_benchmark_script_reports_both_variants_per_batch_size(tmp_path, monkeypatch):
    monkeypatch.setenv("DCAR_BENCH_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("generator_latency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "bench.json"
    report = module.main(["--config", "tiny", "--device", "cpu", "--batch-sizes", "1", "2", "--repeats", "1",
                          "--warmup", "0", "--num-steps", "3", "--num-diffusion-steps", "2",
                          "--variants", "optimised", "no-cache", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    rows = {(r["batch_size"], r["variant"]): r for r in report["rows"]}
    assert set(rows) == {(1, "optimised"), (1, "no-cache"), (2, "optimised"), (2, "no-cache")}
    for (batch, _), row in rows.items():
        assert row["repeats"] == 1 and row["median_latency_s"] > 0
        assert abs(row["images_per_s"] - batch / row["median_latency_s"]) < 1e-9
        assert set(row["median_breakdown_s"]) == {"text_encoder_s", "sampler_s", "decoder_s"}
    assert report["weights"] == "random-init:0" and report["num_diffusion_steps"] == 2
