"""Config merge (YAML defaults <- file <- --set), strict keys, identity diffs, shard parsing."""
from __future__ import annotations

import pytest

from harness.runner.config import ConfigError, merge_config, parse_set, suite_yaml
from harness.runner.shard import Shard, ShardError, parse_shard, resolve_shard, shard_from_env
from harness.store import diff_keys, flatten

DEFAULTS = {"num_items": 4, "batch_size": 2, "data": {"root": None, "size": 256}, "model": {"resolution": 8},
            "protocol": {"crop": "center"}}


@pytest.mark.parametrize("expr, key, value", [
    ("a=1", "a", 1), ("a=1.5", "a", 1.5), ("a=true", "a", True), ("a=null", "a", None), ("a=[1, 2]", "a", [1, 2]),
    ("a.b=~/w", "a.b", "~/w"), ("a=x=y", "a", "x=y"), ("a=", "a", ""), ("a='007'", "a", "007"),
])
def test_parse_set_is_yaml_typed(expr, key, value):
    assert parse_set(expr) == (key, value)


@pytest.mark.parametrize("expr", ["novalue", "=3", "a..b=1"])
def test_parse_set_rejects_malformed(expr):
    with pytest.raises(ConfigError):
        parse_set(expr)


def test_merge_order_and_nested_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("num_items: 10\ndata:\n  size: 128\n")
    cfg = merge_config(DEFAULTS, f, ["data.size=64", "model.anything=3", "data.root=/d", "seed=7"])
    assert cfg["num_items"] == 10 and cfg["data"] == {"root": "/d", "size": 64}
    assert cfg["model"] == {"resolution": 8, "anything": 3} and cfg["seed"] == 7
    assert DEFAULTS["data"]["size"] == 256  # defaults are not mutated


def test_unknown_keys_are_refused_with_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'data\.sise'.*Did you mean 'data\.size'"):
        merge_config(DEFAULTS, None, ["data.sise=3"])
    f = tmp_path / "c.yaml"
    f.write_text("protocl:\n  crop: none\n")
    with pytest.raises(ConfigError, match="from config file"):
        merge_config(DEFAULTS, f)


@pytest.mark.parametrize("bad", ["batch_size=0", "batch_size=two", "seed=1.5"])
def test_bad_runner_values(bad):
    with pytest.raises(ConfigError):
        merge_config(DEFAULTS, None, [bad])


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        merge_config(DEFAULTS, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at top level"):
        merge_config(DEFAULTS, tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        merge_config(DEFAULTS, tmp_path / "bad.yaml")


def test_diff_keys_ignores_execution_keys():
    a = merge_config(DEFAULTS)
    b = merge_config(DEFAULTS, None, ["batch_size=9"])
    assert diff_keys(a, b) == []
    c = merge_config(DEFAULTS, None, ["data.size=1", "model.extra=2"])
    assert diff_keys(a, c) == ["data.size: 256 -> 1", "model.extra: '<absent>' -> 2"]


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {}}, "d": [1]}) == {"a.b": 1, "a.c": {}, "d": [1]}


def test_suite_yaml_reads_the_sibling_file():
    import suites.dummy

    cfg = suite_yaml(suites.dummy.__file__)
    assert cfg["num_items"] >= 1 and "protocol" in cfg


def test_shards():
    assert parse_shard("1/4") == Shard(1, 4)
    assert Shard(1, 3).select(list(range(8))) == [1, 4, 7]
    for bad in ("2/2", "-1/2", "a/b", "3", "0/0"):
        with pytest.raises(ShardError):
            parse_shard(bad)
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    assert shard_from_env(env) == Shard(1, 2, from_torchrun=True)
    assert shard_from_env({}) is None
    assert resolve_shard(None, {}) == Shard(0, 1)
    assert resolve_shard("0/3", {}) == Shard(0, 3)
    with pytest.raises(ShardError, match="contradicts torchrun"):
        resolve_shard("0/3", env)
