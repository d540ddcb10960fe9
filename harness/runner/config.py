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
import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

from harness.api import UserError
from harness.store import flatten

T = TypeVar("T")

# keys every suite accepts even if its YAML does not list them
RUNNER_KEYS = ("seed", "batch_size", "model")


class ConfigError(UserError, ValueError):
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
    """The YAML shipped beside a suite module: ``suites/dummy.py`` -> ``suites/dummy.yaml``.

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
        raise ConfigError(f"seed must be an integer, got {merged['seed']!r}. Fix: --seed 0 (or --set seed=0)")
    bs = merged.get("batch_size", 1)
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {bs!r}. Fix: --batch-size 4 "
                          f"(or --set batch_size=4)")
    merged["batch_size"] = bs
    return merged




# --------------------------------------------------------------------------- typed configs

_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
               dict: "a mapping"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return _TYPE_WORDS.get(origin or tp, getattr(tp, "__name__", str(tp)))


def _example(tp: Any) -> str:
    """A value of type ``tp`` as it would be typed after ``--set key=`` (a hint that works when fed back)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return str(args[0]).lower() if isinstance(args[0], bool) else str(args[0])
    if origin in (typing.Union, types.UnionType):
        return _example(next(a for a in args if a is not type(None)))
    if origin in (list, tuple) or tp in (list, tuple):
        return "[" + (_example(args[0]) if args else "1") + "]"
    return {int: "8", float: "0.5", str: "text", bool: "true"}.get(tp, "{}")


def _coerce(tp: Any, value: Any, key: str, source: str) -> Any:
    """``value`` checked (and, for int -> float, converted) against the annotation ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, key, source)
            except ConfigError:
                continue
    elif origin is typing.Literal:
        if value in args:
            return value
    elif dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if isinstance(value, Mapping):
            return fill_dataclass(tp, value, source=source, prefix=key + ".")
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (list, tuple)):
            inner = args[0] if args else Any
            return [_coerce(inner, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    elif origin is dict or tp is dict or origin is Mapping:
        if isinstance(value, Mapping):
            return dict(value)
    else:
        return value
    raise ConfigError(f"config key {key!r} ({source}): expected {_describe(tp)}, got {value!r}. "
                      f"Fix: --set {key}={_example(tp)}")


def fill_dataclass(cls: type[T], data: Mapping[str, Any] | None, *, source: str = "config",
                   prefix: str = "", ignore: Iterable[str] = ()) -> T:
    """A config dataclass filled from a mapping, every value type-checked, unknown keys refused.

    Why: a suite that read ``int(cfg.get("n", 8))`` repeated its YAML default in code and turned
    a wrong ``--set n=abc`` into a traceback that named no key. Here the YAML is the only source of
    defaults (fields without one are required), and a wrong type is one line naming the dotted key.
    Nested dataclass fields take nested mappings. Keys in ``ignore`` are skipped (e.g. ``model``).
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    skip = set(ignore)
    unknown = sorted(k for k in data if k not in fields and k not in skip)
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(fields), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(prefix + c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r} ({source}).{hint} "
                          f"Known keys here: {', '.join(prefix + k for k in fields)}.")
    kwargs = {}
    for name, f in fields.items():
        key = prefix + name
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], key, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if dataclasses.is_dataclass(hints[name]):
                kwargs[name] = fill_dataclass(hints[name], {}, source=source, prefix=key + ".")
            else:
                raise ConfigError(f"config key {key!r} is missing ({source}); the suite's YAML should define it")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"config {prefix or '(top level)'} ({source}): {exc}") from None
