"""The dcar-bench CLI: no torch at start-up, clear errors, report/smoke/doctor/tool dispatch."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import registry
from harness.api import UserError
from harness.cli import load_smoke_list, main

SMALL = ["--set", "num_items=5", "--set", "model.resolution=8", "-q"]

PROBE = """
import json, sys
from harness.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
heavy = [m for m in ("torch", "numpy", "PIL", "tqdm", "yaml", "baselines.dummy", "suites.dummy") if m in sys.modules]
print(json.dumps({"rc": rc, "heavy": heavy}))
"""


@pytest.mark.parametrize("argv", [["--help"], ["ls"], ["ls", "suite"], ["run", "--help"], []])
def test_help_and_ls_do_not_import_torch(argv):
    res = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60)
    probe = json.loads(res.stdout.strip().splitlines()[-1])
    assert probe["heavy"] == [], probe
    assert probe["rc"] in (0, 2, None)


def test_ls_lists_registry_without_importing(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for kind in ("adapters:", "suites:", "metrics:", "tools:"):
        assert kind in out
    assert "dummy-t2i" in out and "baselines.dummy:DummyTextToImage" in out and "parity" in out


@pytest.mark.parametrize("argv, needle", [
    (["run", "dumy", "--model", "dummy-t2i", "--out", "{tmp}/x"], "Did you mean 'dummy'"),
    (["run", "dummy", "--model", "dumy-t2i", "--out", "{tmp}/x"], "Did you mean 'dummy-t2i'"),
    (["run", "dummy", "--model", "dummy-t2i", "--out", "{tmp}/x", "--set", "num_item=3"], "Did you mean 'num_items'"),
    (["run", "dummy", "--model", "dummy-t2i", "--out", "{tmp}/x", "--shard", "2/2"], "0 <= i < n"),
    (["doctor", "dc-htt"], "Did you mean 'dc-ht'"),
    (["aggregate", "{tmp}"], "not a run directory"),
    (["report", "{tmp}"], "not a run directory"),
])
def test_user_errors_are_one_clear_line(tmp_path, capsys, argv, needle):
    rc = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert rc == 1 and needle in err and "Traceback" not in err and err.startswith("dcar-bench: error:")


def test_run_config_mismatch_and_unwritable_via_cli(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["run", "dummy", "--model", "dummy-t2i", "--out", out, *SMALL]) == 0
    assert "report:" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["provenance"]["command"] == ["dcar-bench", "run", "dummy", "--model", "dummy-t2i", "--out", out,
                                                 *SMALL]
    assert main(["run", "dummy", "--model", "dummy-t2i", "--out", out, *SMALL, "--set", "num_items=6"]) == 1
    err = capsys.readouterr().err
    assert "different setup" in err and "config.num_items: 5 -> 6" in err
    (tmp_path / "file").write_text("x")
    assert main(["run", "dummy", "--model", "dummy-t2i", "--out", str(tmp_path / "file" / "r"), *SMALL]) == 1
    assert "is not writable" in capsys.readouterr().err


def test_no_aggregate_then_aggregate_command(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "dummy", "--model", "dummy-t2i", "--out", str(out), "--no-aggregate", *SMALL]) == 0
    assert not (out / "summary.json").exists()
    assert main(["aggregate", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["num_items"] == 5


def test_report_banner_only_without_real_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(registry._TABLE["adapter"], "fake-real", "tests.harness.fakes:RealWeightsT2I")
    assert main(["run", "dummy", "--model", "dummy-t2i", "--out", str(tmp_path / "fake"), *SMALL]) == 0
    assert main(["run", "dummy", "--model", "fake-real", "--out", str(tmp_path / "real"), *SMALL]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "real")]) == 0
    real = capsys.readouterr().out
    assert "NOT THE PAPER" not in real and "`model.safetensors`: `abababab" in real and "| real weights | yes |" in real
    assert main(["report", str(tmp_path / "real"), str(tmp_path / "fake"), "--out", str(tmp_path / "rep.md")]) == 0
    both = (tmp_path / "rep.md").read_text()
    assert both.count("NOT THE PAPER'S METRIC") == 1  # the fake run's section
    assert "NOT the paper's metrics" in both  # and the top banner
    assert both.count("## dummy ×") == 2 and "| mean pixel (0-255) |" in both


def test_smoke_runs_every_entry_and_reports(tmp_path, capsys):
    lst = tmp_path / "smoke.yaml"
    lst.write_text("- {suite: dummy, model: dummy-t2i, set: {num_items: 3, model: {resolution: 8}}}\n"
                   "- {suite: dummy, model: dummy-t2i, name: seeded, set: {num_items: 2, seed: 5}}\n")
    assert main(["smoke", "--out", str(tmp_path / "s"), "--list", str(lst), "-q"]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "s" / "report.md"
    assert f"report: {report}" in out
    text = report.read_text()
    assert text.count("## dummy × dummy-t2i") == 2 and "Failed" not in text
    assert json.loads((tmp_path / "s" / "01-seeded" / "manifest.json").read_text())["seed"] == 5


def test_smoke_failure_is_reported_and_fails(tmp_path, capsys):
    lst = tmp_path / "smoke.yaml"
    lst.write_text("- {suite: dummy, model: dummy-t2i, set: {num_items: 2}}\n- {suite: nope, model: dummy-t2i}\n")
    assert main(["smoke", "--out", str(tmp_path / "s"), "--list", str(lst), "-q"]) == 1
    text = (tmp_path / "s" / "report.md").read_text()
    assert "## Failed runs" in text and "unknown suite 'nope'" in text and "## dummy × dummy-t2i" in text


def test_smoke_list_is_valid_and_names_registered_entries(tmp_path):
    entries = load_smoke_list()
    assert entries
    for e in entries:
        registry.target("suite", e["suite"])
        if e.get("model"):
            registry.target("adapter", e["model"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {suite: dummy, modle: x}\n")
    with pytest.raises(Exception, match="unknown keys \\['modle'\\]"):
        load_smoke_list(bad)


def test_smoke_entry_config_is_a_suite_file_by_name_or_a_path(tmp_path):
    """``config:`` names a file of the suites package (the profile's quick preset) or a path; a missing one is named."""
    from pathlib import Path

    by_name = tmp_path / "a.yaml"
    by_name.write_text("- {suite: profile, config: profile_quick.yaml}\n")
    (entry,) = load_smoke_list(by_name)
    assert Path(entry["config"]).name == "profile_quick.yaml" and Path(entry["config"]).is_file()
    own = tmp_path / "mine.yaml"
    own.write_text("iterations: 1\n")
    by_path = tmp_path / "b.yaml"
    by_path.write_text(f"- {{suite: profile, config: {own}}}\n")
    assert load_smoke_list(by_path)[0]["config"] == str(own)
    missing = tmp_path / "c.yaml"
    missing.write_text("- {suite: profile, config: no_such_preset.yaml}\n")
    with pytest.raises(UserError, match="entry 0: config file 'no_such_preset.yaml' not found"):
        load_smoke_list(missing)


def test_tools_are_dispatched_through_the_registry(monkeypatch):
    import tests.harness.fakes as fm

    monkeypatch.setitem(registry._TABLE["tool"], "echo-tool", "tests.harness.fakes:echo_tool")
    fm.TOOL_CALLS.clear()
    assert main(["echo-tool", "DIR", "--flag"]) == 3
    assert fm.TOOL_CALLS == [["DIR", "--flag"]]


def test_doctor_shows_where_each_file_is_looked_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(registry._TABLE["adapter"], "fake-needs", "tests.harness.fakes:NeedsWeightsT2I")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("DCAR_TEST_FAKE_WEIGHTS", raising=False)
    assert main(["doctor", "fake-needs", "dummy"]) == 0
    out = capsys.readouterr().out
    assert "[MISSING] fake generator weights" in out
    assert "env:DCAR_TEST_FAKE_WEIGHTS: - [absent (not set)]" in out
    assert str(tmp_path / "hf" / "hub" / "models--fake-org--fake-model" / "snapshots") in out
    assert "suite dummy" in out and "needs no external files" in out
    assert main(["doctor", "--strict", "fake-needs"]) == 1
    capsys.readouterr()
    w = tmp_path / "w"
    w.mkdir()
    (w / "model.safetensors").write_bytes(b"0")
    monkeypatch.setenv("DCAR_TEST_FAKE_WEIGHTS", str(w))
    assert main(["doctor", "--strict", "fake-needs"]) == 0
    assert f"[ok] fake generator weights -> {w}" in capsys.readouterr().out
