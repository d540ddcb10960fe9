"""``python -m dcar_training``: a mistake is one line and exit 1; a tiny run writes its checkpoints, log and final model."""
from __future__ import annotations

import json

from dcar_training.cli import main


def test_unknown_recipe_is_one_line(tmp_path, capsys):
    assert main(["tokenizer", "--out", str(tmp_path), "--set", "recipe=nope", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown tokenizer recipe 'nope'" in err[0] and "three_stage" in err[0]


def test_missing_tokenizer_dir_is_one_line(tmp_path, capsys):
    rc = main(["generator", "--out", str(tmp_path), "--set", f"tokenizer={tmp_path / 'none'}", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "does not exist" in err[0]


def test_generator_defaults_to_the_released_models_and_says_where_it_looked(tmp_path, capsys):
    assert main(["generator", "--out", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    # the harness's missing-resource message: every place searched, one per line, and how to get it; no traceback
    assert "DC-HT tokenizer weights not found" in err and "DCAR_DCHT_PATH" in err and "Traceback" not in err


def test_tiny_generator_run(tmp_path, capsys):
    args = ["generator", "--out", str(tmp_path), "--no-progress", "--set", "recipe=scratch", "--set", "data.n=4",
            "--set", "high_resolution=32", "--set", "low_resolution=32", "--set", "batch_size=2",
            "--set", "micro_batch_size=1", "--set", "stage_steps.scratch=2", "--set", "tokenizer=random:0",
            "--set", "text_encoder=tiny"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["done"] is True and (tmp_path / "final" / "pytorch_model.bin").is_file()
    assert len((tmp_path / "stage1_scratch_32" / "loss_log.jsonl").read_text().splitlines()) == 2
