"""``dcar-bench geneval``: help texts that work when fed back, and user errors as one line with exit 1."""
from __future__ import annotations

import re

import pytest

from harness.geneval.cli import build_parser, main
from harness.runner.config import ConfigError, merge_config


def subparser_help(name: str) -> str:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "cmd")
    return action.choices[name].format_help()


def typed_config(suite: str, overrides: list[str]):
    from harness.geneval.config import DetectConfig, GenerateConfig
    from suites.geneval import GenEvalSuite
    from suites.geneval_detect import GenEvalDetectSuite

    cls, cfg = {"geneval": (GenEvalSuite, GenerateConfig), "geneval_detect": (GenEvalDetectSuite, DetectConfig)}[suite]
    return cfg.from_mapping(merge_config(cls.default_config(), overrides=overrides))


@pytest.mark.parametrize("cmd, flag, suite", [("generate", "--set", "geneval"), ("detect", "--set", "geneval_detect"),
                                              ("run", "--set", "geneval"), ("run", "--detect-set", "geneval_detect")])
def test_every_help_example_is_accepted_by_its_suite(cmd, flag, suite):
    text = " ".join(subparser_help(cmd).split())  # argparse wraps lines
    examples = re.findall(rf"e\.g\. {flag} (\S+)", text)
    assert examples, text
    for ex in examples:
        typed_config(suite, [ex])  # raises ConfigError if the suite refused the key or value


def test_detect_help_no_longer_offers_a_generate_key():
    assert "prompts=" not in subparser_help("detect")
    with pytest.raises(ConfigError, match="unknown config key 'prompts'"):
        typed_config("geneval_detect", ["prompts=0:10"])


def test_wrong_value_types_name_the_key(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"config key 'samples_per_prompt' .*expected an integer, got 'abc'"):
        typed_config("geneval", ["samples_per_prompt=abc"])
    with pytest.raises(ConfigError, match=r"config key 'rules.threshold' .*expected a number"):
        typed_config("geneval_detect", ["rules.threshold=high"])
    with pytest.raises(ConfigError, match="device must be cpu, cuda, cuda:N or auto"):
        typed_config("geneval_detect", ["device=gpu"])
    with pytest.raises(ConfigError, match="samples_per_prompt must be >= 1"):
        typed_config("geneval", ["samples_per_prompt=0"])
    rc = main(["generate", "--model", "dummy-t2i", "--out", str(tmp_path / "run"), "--set", "samples_per_prompt=abc"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "'samples_per_prompt'" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_prompt_selection_errors_are_user_errors():
    for bad, match in (("prompts=[553]", r"outside 0\.\.552"), ("prompts=a:b", "not a slice")):
        with pytest.raises(ConfigError, match=match):
            from harness.geneval.plan import generate_items

            cfg = typed_config("geneval", [bad])
            generate_items(cfg.prompts, cfg.samples_per_prompt)


def test_debug_env_gives_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("DCAR_BENCH_DEBUG", "1")
    with pytest.raises(ConfigError):
        main(["generate", "--model", "dummy-t2i", "--out", str(tmp_path / "run"), "--set", "samples_per_prompt=abc"])


def test_the_main_cli_dispatches_to_the_geneval_tool(tmp_path, capsys):
    from harness.cli import main as dcar_main

    rc = dcar_main(["geneval", "score", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("dcar-bench geneval: error: ") and "is not a run directory" in err


def test_check_decodes_every_image_and_names_the_bad_one(tmp_path, capsys):
    from PIL import Image

    from harness.geneval.folder import metadata_bytes, prompt_dir
    from harness.geneval.prompts import load_prompts

    for p in (0, 1):
        d = prompt_dir(tmp_path, p)
        (d / "samples").mkdir(parents=True)
        (d / "metadata.jsonl").write_bytes(metadata_bytes(load_prompts()[p]))
        Image.new("RGB", (64, 64), (200, 10, 10)).save(d / "samples" / "0000.png")
    bad = prompt_dir(tmp_path, 1) / "samples" / "0000.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated: the header lists it as a PNG, the data ends early
    rc = main(["check", "--images", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and f"1 of 2 PNG sample(s) in {tmp_path} cannot be decoded: 00001/samples/0000.png (" in err
    bad.unlink()
    main(["check", "--images", str(tmp_path)])
    out = capsys.readouterr().out
    assert "images: 1 PNG samples (all decode) in 2 prompt folders" in out
    assert "warning: incomplete GenEval run: 1 of 2212 images" in out
