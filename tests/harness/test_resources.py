"""harness.resources.locate: lookup order, HF cache layout, and the error listing every place searched."""
from __future__ import annotations

import os
import time

import pytest

from harness.api import MissingResourceError, Requirement
from harness.resources import hf_repo_dir, locate, search, status

REQ = Requirement(
    name="toy weights",
    description="a toy checkpoint; get it from nowhere",
    env_var="DCAR_TEST_TOY_PATH",
    config_key="toy_path",
    hf_repo="org/toy-model",
    default_paths=("~/definitely-not-here/toy",),
    must_contain=("model.safetensors", "pytorch_model.bin"),
)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("DCAR_TEST_TOY_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _weights_dir(path, name="model.safetensors"):
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(b"x")
    return path


def test_missing_everywhere_lists_every_place(tmp_path):
    with pytest.raises(MissingResourceError) as exc:
        locate(REQ)
    msg = str(exc.value)
    assert "toy weights not found" in msg
    assert "env:DCAR_TEST_TOY_PATH" in msg and "not set" in msg
    assert str(hf_repo_dir("org/toy-model")) in msg
    assert "definitely-not-here/toy" in msg
    assert "export DCAR_TEST_TOY_PATH=/path" in msg and "--set model.toy_path=/path" in msg


def test_env_var_then_hf_cache_then_default(tmp_path, monkeypatch):
    snap = _weights_dir(tmp_path / "hf" / "hub" / "models--org--toy-model" / "snapshots" / "abc123")
    assert locate(REQ) == snap
    env_dir = _weights_dir(tmp_path / "envdir", "pytorch_model.bin")
    monkeypatch.setenv("DCAR_TEST_TOY_PATH", str(env_dir))
    assert locate(REQ) == env_dir  # env var outranks the HF cache
    explicit = _weights_dir(tmp_path / "explicit")
    assert locate(REQ, explicit=explicit) == explicit
    assert locate(REQ, config={"toy_path": str(explicit)}) == explicit


def test_hf_cache_prefers_refs_main(tmp_path):
    repo = tmp_path / "hf" / "hub" / "models--org--toy-model"
    _weights_dir(repo / "snapshots" / "old")
    main = _weights_dir(repo / "snapshots" / "main-rev")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("main-rev")  # huggingface_hub writes the bare hash
    assert locate(REQ) == main
    # the refs/main revision comes first even when another one is newer
    newer = _weights_dir(repo / "snapshots" / "newer")
    os.utime(newer / "model.safetensors", (time.time() + 60, time.time() + 60))
    assert [c.path for c in search(REQ) if c.source == "hf-cache"][:2] == [main, newer]


def test_hf_cache_dir_is_read_at_call_time_from_hf_hub_cache(tmp_path, monkeypatch):
    """HF_HUB_CACHE set after huggingface_hub was imported still counts (the library reads it at import)."""
    import huggingface_hub  # noqa: F401

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    snap = _weights_dir(tmp_path / "elsewhere" / "models--org--toy-model" / "snapshots" / "rev1", "pytorch_model.bin")
    assert locate(REQ) == snap
    # a snapshot without any expected file is listed, marked absent, and skipped
    _weights_dir(tmp_path / "elsewhere" / "models--org--toy-model" / "snapshots" / "rev0", "README.md")
    found, cands = status(REQ)
    assert found == snap
    rev0 = [c for c in cands if c.path is not None and c.path.name == "rev0"][0]
    assert not rev0.present and "lacks any of" in rev0.note


def test_corrupted_hf_cache_entry_is_reported_with_the_reason(tmp_path):
    repo = tmp_path / "hf" / "hub" / "models--org--toy-model"
    _weights_dir(repo / "snapshots" / "abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("gone")  # refers to a snapshot that is not there
    with pytest.raises(MissingResourceError) as exc:
        locate(REQ)
    assert "corrupted cache entry" in str(exc.value) and "gone" in str(exc.value)


def test_directory_without_expected_files_is_absent(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DCAR_TEST_TOY_PATH", str(empty))
    found, cands = status(REQ)
    assert found is None
    env = [c for c in cands if c.source == "env:DCAR_TEST_TOY_PATH"][0]
    assert not env.present and "lacks any of" in env.note


def test_explicit_path_that_is_absent_is_an_error_even_if_others_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("DCAR_TEST_TOY_PATH", str(_weights_dir(tmp_path / "envdir")))
    with pytest.raises(MissingResourceError, match="explicit"):
        locate(REQ, explicit=tmp_path / "typo")


def test_plain_file_is_accepted(tmp_path):
    f = tmp_path / "ckpt.bin"
    f.write_bytes(b"1")
    assert locate(REQ, explicit=str(f)) == f
    assert [c.source for c in search(REQ, explicit=f)][0] == "explicit (toy_path)"


def test_datasets_repo_layout(tmp_path):
    assert hf_repo_dir("datasets/org/data").name == "datasets--org--data"


def test_hint_names_a_suite_key_as_is_and_an_adapter_option_under_model():
    suite_req = Requirement(name="data", description="", config_key="dataset.root")
    with pytest.raises(MissingResourceError) as exc:
        locate(suite_req)
    assert "--set dataset.root=/path" in str(exc.value) and "model.dataset.root" not in str(exc.value)
    with pytest.raises(MissingResourceError, match=r"--set model\.toy_path=/path"):
        locate(REQ)
