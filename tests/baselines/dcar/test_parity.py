"""`dcar-bench parity DIR`: the official tokenizer fixture passes, and the command fails loudly when it should."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from baselines.dcar import parity
from baselines.dcar.parity_common import ParityResult
from tests.paths import REPO_ROOT

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "parity"
TOKENIZER_FILES = [f"tokenizer_small_{s}" for s in ("config.json", "state_dict.pt", "io.pt")]



def _rows(text: str) -> dict[str, str]:
    """output name -> last column ("ok"/"FAIL") of the printed table."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(("tokenizer_", "generator_")):
            out[parts[1]] = parts[-1]
    return out


def _copy_tokenizer_set(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(FIXTURE / name, dest / name)
    return dest


def test_official_tokenizer_fixture_passes_every_output(capsys):
    assert parity.main([str(FIXTURE), "--only", "tokenizer"]) == 0
    rows = _rows(capsys.readouterr().out)
    io = torch.load(FIXTURE / "tokenizer_small_io.pt", weights_only=True)
    expected = [k for k in io if k not in ("input_image", "probes")] + [f"probes.{p}" for p in io["probes"]]
    assert sorted(rows) == sorted(expected)  # every saved output and probe was compared
    assert set(rows.values()) == {"ok"}


def test_dcar_bench_cli_dispatches_to_parity(capsys):
    from harness import cli

    assert cli.main(["parity", str(FIXTURE), "--only", "tokenizer"]) == 0
    assert "parity ok" in capsys.readouterr().out


def test_perturbed_output_and_flipped_index_fail_by_name(tmp_path, capsys):
    d = _copy_tokenizer_set(tmp_path)
    io = torch.load(d / "tokenizer_small_io.pt", weights_only=True)
    io["decoded_hybrid"] = io["decoded_hybrid"] + 2e-5
    io["indices"][1, 3] = (io["indices"][1, 3] + 1) % 1024
    torch.save(io, d / "tokenizer_small_io.pt")
    assert parity.main([str(d)]) == 1
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows["decoded_hybrid"] == "FAIL" and rows["indices"] == "FAIL"
    assert "1 differ" in out and rows["decoded_tokens_only"] == "ok"


def test_unknown_output_and_incomplete_set_fail(tmp_path, capsys):
    d = _copy_tokenizer_set(tmp_path / "a")
    io = torch.load(d / "tokenizer_small_io.pt", weights_only=True)
    io["mystery_output"] = torch.zeros(2)
    torch.save(io, d / "tokenizer_small_io.pt")
    assert parity.main([str(d)]) == 1
    assert "unknown output 'mystery_output'" in capsys.readouterr().out
    d = _copy_tokenizer_set(tmp_path / "b")
    (d / "tokenizer_small_io.pt").unlink()
    assert parity.main([str(d)]) == 1
    assert "incomplete set, missing tokenizer_small_io.pt" in capsys.readouterr().out


def test_empty_directory_fails(tmp_path, capsys):
    assert parity.main([str(tmp_path)]) == 1
    assert "no fixture set" in capsys.readouterr().err
    assert parity.main([str(tmp_path / "absent")]) == 1


def _link_generator_set(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "state_dict.pt", "io.pt"):
        shutil.copy(FIXTURE / f"generator_small_{name}", dest / f"generator_small_{name}")


def test_generator_sets_are_dispatched_or_reported_unchecked(tmp_path, monkeypatch, capsys):
    _link_generator_set(tmp_path)
    monkeypatch.setattr(parity, "_generator_checker", lambda: None)
    assert parity.main([str(tmp_path)]) == 1
    assert "not checked: generator parity not available" in capsys.readouterr().out
    calls = []

    def fake_check(config_path, state_dict_path, io_path):
        calls.append((Path(config_path).name, Path(state_dict_path).name, Path(io_path).name))
        return [ParityResult("generator", "cond_logits", 1e-7, 1e-5, False, (2, 16, 1024))]

    monkeypatch.setattr(parity, "_generator_checker", lambda: fake_check)
    assert parity.main([str(tmp_path)]) == 0
    assert calls == [("generator_small_config.json", "generator_small_state_dict.pt", "generator_small_io.pt")]


def test_other_fixture_shapes_are_derived_from_config_and_io(tmp_path, capsys):
    """A fixture with other widths/depths/codebook/batch/image size/seed: nothing is hard-wired to the shipped one."""
    from baselines.dcar.tokenizer import DCHT, DCHTConfig

    cfg = DCHTConfig(encoder_width_list=(8, 16, 64, 32, 64, 32), encoder_depth_list=(0, 2, 1, 1, 2, 1),
                     decoder_width_list=(8, 16, 64, 32, 64, 32), decoder_depth_list=(0, 1, 1, 2, 1, 1),
                     codebook_size=64)
    g = torch.Generator().manual_seed(5)
    model = DCHT(cfg).double().eval()
    with torch.no_grad():  # seeded non-trivial values everywhere (norm weights ~1, BN variances > 0)
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=g, dtype=torch.float64)
            if name.endswith("running_var"):
                t.copy_(0.5 + noise.abs())
            elif t.ndim == 1:
                t.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
            else:
                t.copy_(noise / t[0].numel() ** 0.5)
    image = torch.rand(3, 3, 96, 96, generator=g, dtype=torch.float64) * 2 - 1
    computed = parity.tokenizer_outputs(model, image)
    io = {"input_image": image.float(), **{k: v.float() if v.is_floating_point() else v
                                           for k, v in computed["outputs"].items()}}
    io["probes"] = {k: v.float() for k, v in computed["probes"].items() if k not in ("enc.stages.0", "dec.stages.0")}
    fields = {"model_name": cfg.model_name, "codebook_size": 64, "codebook_embed_dim": 32,
              "codebook_l2_norm": True, "commit_loss_beta": 0.25, "quantizer_type": "hybrid_vq"}
    (tmp_path / "tokenizer_other_config.json").write_text(
        json.dumps({"dc_ae_dotlist": cfg.to_dotlist(), "DCHTConfig": fields}))
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()},
               tmp_path / "tokenizer_other_state_dict.pt")
    torch.save(io, tmp_path / "tokenizer_other_io.pt")
    assert parity.main([str(tmp_path)]) == 0, capsys.readouterr().out
    rows = _rows(capsys.readouterr().out)
    assert "probes.enc.stages.4" in rows and set(rows.values()) == {"ok"}


@pytest.mark.slow
def test_python_dash_m_entry_point():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "baselines.dcar.parity", str(FIXTURE), "--only", "tokenizer"],
                          cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "parity ok" in proc.stdout
