"""harness.profiling: statistics against numpy, exclusive component times on a fake clock, method restore, peak RSS."""
from __future__ import annotations

import numpy as np
import pytest

from harness import profiling
from harness.profiling import ComponentTimer, PeakMemory, find_components, summarize, time_call


def test_summary_statistics_match_numpy():
    xs = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
    s = summarize(xs)
    assert s["n"] == 7 and s["mean"] == pytest.approx(np.mean(xs))
    for key, q in (("median", 50), ("p10", 10), ("p90", 90)):
        assert s[key] == pytest.approx(np.percentile(xs, q))
    assert summarize([]) == {"n": 0}


class FakeClock:
    """perf_counter that advances only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Part:
    def __init__(self, clock, cost, inner=None):
        self.clock, self.cost, self.inner = clock, cost, inner

    def run(self, x):
        self.clock.now += self.cost
        if self.inner is not None:
            self.inner.run(x)
        return x + 1


def test_component_times_are_exclusive_and_methods_are_restored(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(profiling.time, "perf_counter", clock)
    inner = Part(clock, 2.0)
    outer = Part(clock, 5.0, inner)
    with ComponentTimer([("decoder", outer, "run"), ("text_encoder", inner, "run")]) as timer:
        assert outer.run(1) == 2
        inner.run(0)
    assert timer.seconds == {"text_encoder": 4.0, "decoder": 5.0}  # the inner call is not counted twice
    assert timer.calls == {"text_encoder": 2, "decoder": 1}
    assert "run" not in vars(outer) and "run" not in vars(inner)  # back to the class method


def test_time_call_returns_the_result_and_the_cpu_method():
    t = time_call(lambda: 41 + 1, "cpu")
    assert t.result == 42 and t.method == "perf_counter" and t.seconds >= 0


def test_cpu_peak_memory_covers_an_allocation_inside_the_block():
    size = 64 * 2**20
    with PeakMemory("cpu") as mem:
        block = np.ones(size, dtype=np.uint8)
        block[::4096] = 2  # touch every page
    del block
    assert mem.kind == "cpu_peak_rss"  # the high-water mark was reset (Linux)
    assert mem.peak_bytes >= size


def test_find_components_prefers_the_adapters_own_list_then_a_diffusers_pipeline():
    class Own:
        def profile_components(self):
            return [("decoder", self, "profile_components")]

    assert find_components(Own())[0][0] == "decoder"

    class Module:
        def forward(self):
            return None

        def decode(self):
            return None

    class Pipe:
        text_encoder, transformer, vae = Module(), Module(), Module()

    class Diffusers:
        pipe = Pipe()

    assert [(c, m) for c, _, m in find_components(Diffusers())] == [
        ("text_encoder", "forward"), ("generator_steps", "forward"), ("decoder", "decode")]
    assert find_components(object()) == []


def test_environment_names_device_threads_and_torch():
    import torch

    env = profiling.environment("cpu")
    assert env["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    assert env["device"] == "cpu" and "CPU" in env["device_name"]
