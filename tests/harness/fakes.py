"""Test-only registry targets: an adapter that claims real weights, one that needs a file, a tool."""
from __future__ import annotations

from baselines.dummy import DummyTextToImage
from harness.api import AdapterInfo, Requirement

TOOL_CALLS: list[list[str]] = []


class RealWeightsT2I(DummyTextToImage):
    """Pretends to be a real model, so the report must NOT print the not-the-paper banner."""

    def info(self) -> AdapterInfo:
        return AdapterInfo(name="fake-real", kind=self.kind, resolution=self.resolution, num_params=123,
                           weights={"/w/model.safetensors": "ab" * 32}, real_weights=True)


class NeedsWeightsT2I(DummyTextToImage):
    @classmethod
    def requirements(cls) -> list[Requirement]:
        return [Requirement(name="fake generator weights", description="test weights",
                            env_var="DCAR_TEST_FAKE_WEIGHTS", config_key="weights_path",
                            hf_repo="fake-org/fake-model", must_contain=("model.safetensors",))]


def echo_tool(argv: list[str]) -> int:
    TOOL_CALLS.append(list(argv))
    return 3
