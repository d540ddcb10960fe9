"""Merged run configuration: suite YAML defaults + ``--config FILE`` + ``--set key=value``.

Why a strict merge: a typo in ``--set num_itmes=10`` that silently did nothing would
produce a run that looks valid but is not the one asked for. Keys must exist in the
suite's defaults (did-you-mean otherwise), except under ``model.`` (adapter options,
which depend on the adapter) and the runner's own keys (:data:`RUNNER_KEYS`).
Values of ``--set`` are parsed as YAML, so ``--set n=8`` is an int and
``--set model.path=~/w`` a string. Importable without torch.
"""
from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

# keys every suite accepts even if its YAML does not list them
RUNNER_KEYS = ("seed", "batch_size", "model")
# keys that change how work is executed but never the result: may differ on resume
EXECUTION_KEYS = ("batch_size",)


class ConfigError(ValueError):
    """A config file or override is malformed or names an unknown key."""


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at top level, got {type(data).__name__}")
    return data


def suite_yaml(module_file: str | os.PathLike) -> dict[str, Any]:
    """The YAML shipped beside a suite module: ``suites/foo.py`` -> ``suites/foo.yaml``.

    Suites use it as ``default_config = classmethod(lambda cls: suite_yaml(__file__))``.
    """
    return load_yaml(Path(module_file).with_suffix(".yaml"))


def parse_set(expr: str) -> tuple[str, Any]:
    """``"a.b=3"`` -> ``("a.b", 3)``; the value is parsed as YAML (``"x"`` stays a string)."""
    import yaml

    key, sep, raw = expr.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {expr!r}")
    if any(not part for part in key.split(".")):
        raise ConfigError(f"--set key {key!r} has an empty component")
    if raw == "":
        return key, ""
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError:
        return key, raw


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b.c": leaf}`` (lists are leaves)."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _known(defaults: Mapping[str, Any], key: str) -> bool:
    parts = key.split(".")
    if parts[0] in RUNNER_KEYS and (parts[0] == "model" or len(parts) == 1):
        return True
    node: Any = defaults
    for i, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
        if node is None or (isinstance(node, Mapping) and not node and i < len(parts) - 1):
            return True  # an empty/None section in the defaults is open for user keys
    return True


def set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is a {type(nxt).__name__}, not a section")
        node = nxt
    node[parts[-1]] = value


def _check_known(defaults: Mapping[str, Any], keys: Iterable[str], source: str) -> None:
    known = sorted(set(flatten(defaults)) | set(RUNNER_KEYS))
    for key in keys:
        if not _known(defaults, key):
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown config key {key!r} (from {source}).{hint} "
                              f"Known keys: {', '.join(sorted(known))}.")


def merge_config(
    defaults: Mapping[str, Any],
    config_file: str | os.PathLike | None = None,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """defaults <- config file <- overrides (``["k=v", ...]`` or ``{"a.b": v}``), unknown keys refused."""
    merged = copy.deepcopy(dict(defaults))
    if config_file:
        data = load_yaml(config_file)
        flat = flatten(data)
        _check_known(defaults, flat, f"config file {config_file}")
        for k, v in flat.items():
            set_dotted(merged, k, copy.deepcopy(v))
    if overrides:
        pairs = list(overrides.items()) if isinstance(overrides, Mapping) else [parse_set(e) for e in overrides]
        _check_known(defaults, [k for k, _ in pairs], "--set")
        for k, v in pairs:
            set_dotted(merged, k, v)
    merged.setdefault("seed", 0)
    merged.setdefault("model", {})
    if merged["model"] is None:
        merged["model"] = {}
    if not isinstance(merged["seed"], int) or isinstance(merged["seed"], bool):
        raise ConfigError(f"seed must be an integer, got {merged['seed']!r}")
    bs = merged.get("batch_size", 1)
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {bs!r}")
    merged["batch_size"] = bs
    return merged


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as it determines results: flattened, without :data:`EXECUTION_KEYS`."""
    flat = flatten(config)
    return {k: v for k, v in flat.items() if k.split(".")[0] not in EXECUTION_KEYS}


def diff_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two configs, formatted ``key: old -> new``."""
    a, b = identity(old), identity(new)
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            out.append(f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}")
    return out
