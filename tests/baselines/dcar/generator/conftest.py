"""Generator tests run offline (no Hub access) with a private harness cache."""
from __future__ import annotations

import pytest

from tests.paths import PARITY_FIXTURES

FIXTURE_DIR = PARITY_FIXTURES


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No hub access from the generator tests (the tiny T5 is built locally)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """One cache folder for the tiny T5 of the whole session (building it once saves seconds)."""
    return tmp_path_factory.mktemp("dcar-tiny-cache")


@pytest.fixture(scope="session")
def fixture_model():
    """Our DCAR built from the small official config with the fixture's weights, plus the fixture io."""
    import torch

    from baselines.dcar.generator.config import DCARConfig
    from baselines.dcar.generator.transformer import DCAR

    config = DCARConfig.from_official(FIXTURE_DIR / "generator_small_config.json")
    model = DCAR.from_pretrained(FIXTURE_DIR / "generator_small_state_dict.pt", config)  # strict, eval mode
    io = torch.load(FIXTURE_DIR / "generator_small_io.pt", weights_only=True)
    return model, io
