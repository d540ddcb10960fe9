"""Content-addressed cache and manifest identity rules."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cache import Cache, cache_key
from harness.store import ConfigMismatchError, RunStore, identity_diff

PARTS = {"inputs_sha256": "ab" * 32, "preprocessing": {"resize": 299, "interp": "bicubic"}, "extractor": "inception"}


def test_key_depends_on_content_not_order():
    reordered = {"extractor": "inception", "preprocessing": {"interp": "bicubic", "resize": 299},
                 "inputs_sha256": "ab" * 32}
    assert cache_key(PARTS) == cache_key(reordered)
    assert cache_key(PARTS) != cache_key({**PARTS, "preprocessing": {"resize": 299, "interp": "bilinear"}})


def test_get_or_compute_computes_once_and_roundtrips(tmp_path):
    cache = Cache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"mu": np.arange(4, dtype=np.float64), "sigma": np.eye(4)}

    a = cache.get_or_compute(PARTS, compute)
    b = Cache(tmp_path).get_or_compute(PARTS, compute)
    assert len(calls) == 1
    assert np.array_equal(a["mu"], b["mu"]) and np.array_equal(b["sigma"], np.eye(4))
    meta = next(tmp_path.rglob("*.json"))
    assert json.loads(meta.read_text())["key_parts"]["extractor"] == "inception"  # the entry explains itself


def test_tampered_entry_is_detected(tmp_path):
    cache = Cache(tmp_path)
    cache.put(PARTS, {"x": np.zeros(2)})
    meta = next(tmp_path.rglob("*.json"))
    d = json.loads(meta.read_text())
    d["key_parts"]["extractor"] = "other"
    meta.write_text(json.dumps(d))
    with pytest.raises(RuntimeError, match="does not match its key"):
        cache.get(PARTS)


def _manifest(**kw):
    m = {"suite": "dummy", "adapter": "dummy-t2i", "plan_sha256": "p", "config": {"seed": 0, "n": 2, "batch_size": 4},
         "adapter_info": {"weights": {"w.bin": "aa"}}, "provenance": {"created": "t0", "git": {"commit": "c0"}}}
    m.update(kw)
    return m


def test_identity_ignores_provenance_and_batch_size():
    new = _manifest(provenance={"created": "t1", "git": {"commit": "c1"}}, config={"seed": 0, "n": 2, "batch_size": 1})
    assert identity_diff(_manifest(), new) == []


@pytest.mark.parametrize("change, expected", [
    ({"suite": "other"}, "suite: 'dummy' -> 'other'"),
    ({"adapter_info": {"weights": {"w.bin": "bb"}}}, "adapter_info.weights"),
    ({"config": {"seed": 1, "n": 2, "batch_size": 4}}, "config.seed: 0 -> 1"),
    ({"plan_sha256": "q"}, "plan_sha256"),
])
def test_identity_changes_are_refused(tmp_path, change, expected):
    store = RunStore(tmp_path / "r")
    store.ensure_writable()
    store.prepare(_manifest())
    with pytest.raises(ConfigMismatchError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        store.prepare(_manifest(**change))
    assert json.loads(store.manifest_path.read_text())["suite"] == "dummy"  # the stored manifest is untouched


def test_damaged_manifest_is_a_clear_error(tmp_path):
    from harness.store import RunDirError

    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(RunDirError, match="not valid JSON"):
        RunStore(tmp_path).read_manifest()
