"""``python -m dcar_training mini-defaults``: a miniature of the command that made the shipped mini weights trains,
exports folders the adapters load through ``config: mini``'s loaders, and writes sums, training.json and a README."""
from __future__ import annotations

import json

import pytest


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_a_tiny_mini_defaults_run_exports_loadable_checked_models(tmp_path):
    from baselines.dcar.mini import COMPONENT_DIRS, mini_component, read_sums
    from dcar_training.cli import main
    from harness import registry

    out, work = tmp_path / "mini", tmp_path / "work"
    sets = ["tokenizer_n=16", "generator_n=16", "generator_steps=3", "generator_batch=8", "heldout_n=4",
            "tokenizer_epochs.continuous_warmup=0.5", "tokenizer_epochs.discrete=0.5"]  # alternate: the default
    argv = ["mini-defaults", "--out", str(out), "--work", str(work), "--no-progress", "--threads", "1"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    sums = read_sums(out)
    assert {name.split("/")[0] for name in sums} == set(COMPONENT_DIRS.values())
    report = json.loads((out / "training.json").read_text())
    assert report["config"]["generator_steps"] == 3
    from dcar_training.mini_defaults import MiniDefaultsConfig

    default_alternate = MiniDefaultsConfig().tokenizer_epochs["alternate_finetune"]  # kept: only two stages were set
    assert report["config"]["tokenizer_epochs"] == {"continuous_warmup": 0.5, "discrete": 0.5,
                                                    "alternate_finetune": default_alternate}
    assert report["command"].startswith("python -m dcar_training mini-defaults --out ")
    assert set(report["heldout_psnr"]) == {"mini", "random_init_seed_0"}
    assert len(report["data"]["heldout"]["indices"]) == 4
    assert "NOT the released weights" in (out / "README.md").read_text()
    # the exported folders load through the adapters' loaders (explicit paths: the shipped ones stay untouched)
    dirs = {c: mini_component(c, out) for c in COMPONENT_DIRS}
    gen = registry.resolve("adapter", "dc-ar")(weights=str(dirs["generator"]), tokenizer_weights=str(dirs["dcht"]),
                                               text_encoder=str(dirs["t5"]), config="mini")
    assert gen.resolution == 128
    info = gen.info()  # an export outside mini_weights/ is still recognised (by its training.json) as mini-trained
    assert info.real_weights is False and info.extra["weights_kind"] == "mini-trained"
    images = gen.generate(["a big red circle in the center on a blue background"], [0])
    assert tuple(images.shape) == (1, 3, 128, 128)
    # resuming a finished run retrains nothing and exports the same files
    assert main(argv) == 0
    assert read_sums(out) == sums


def test_mini_defaults_refuses_unknown_keys_in_one_line(tmp_path, capsys):
    from dcar_training.cli import main

    assert main(["mini-defaults", "--out", str(tmp_path / "o"), "--set", "generator_stepz=3"]) == 1
    err = capsys.readouterr().err
    assert "generator_stepz" in err and "Traceback" not in err
