"""Every user mistake reaches the user as one line and exit 1; a bug keeps its traceback.

Why over all subclasses: the CLI catches exactly one class, :class:`harness.api.UserError`; an
error type that forgets to derive from it escapes as a traceback, which is what this test catches.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from harness import cli
from harness.api import UserError

# the kinds of user error the architecture promises (class names; their modules may move)
REQUIRED = ("MissingResourceError", "ConfigError", "RecordsCorruptError", "SanityGateError", "IncompleteRunError",
            "ProtocolMismatchError", "GenEvalFolderError", "StateDictMismatchError", "ShardBusyError", "RunDirError",
            "UnknownNameError", "MissingDependencyError", "CorruptImageError")


def _import_everything() -> None:
    for pkg_name in ("harness", "baselines", "suites"):
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional extra (mmdet...) is missing: its errors are checked where installed
                pass


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def _all_user_errors() -> list[type[UserError]]:
    _import_everything()
    return sorted(set(_subclasses(UserError)) | {UserError}, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def test_every_required_kind_of_user_error_derives_from_user_error():
    names = {c.__name__ for c in _all_user_errors()}
    missing = [n for n in REQUIRED if n not in names]
    assert not missing, f"not UserError subclasses (or gone): {missing}"


@pytest.mark.parametrize("exc_cls", _all_user_errors(), ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_each_user_error_is_one_line_and_exit_1(exc_cls, monkeypatch, capsys):
    msg = "the thing at /some/path is wrong; fix: --set key=value"
    try:
        exc = exc_cls(msg)
    except TypeError:  # a structured constructor (path, reason...): give every required argument the message
        params = [p for p in inspect.signature(exc_cls.__init__).parameters.values()
                  if p.name != "self" and p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD]
        exc = exc_cls(*[msg] * len(params))

    def boom(args):
        raise exc

    monkeypatch.setitem(cli.HANDLERS, "ls", boom)
    monkeypatch.delenv("DCAR_BENCH_DEBUG", raising=False)
    rc = cli.main(["ls"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("dcar-bench: error: ") and "Traceback" not in err
    assert "/some/path" in err


def test_debug_env_gives_the_traceback(monkeypatch):
    from harness.runner.config import ConfigError

    def boom(args):
        raise ConfigError("bad key")

    monkeypatch.setitem(cli.HANDLERS, "ls", boom)
    monkeypatch.setenv("DCAR_BENCH_DEBUG", "1")
    with pytest.raises(ConfigError):
        cli.main(["ls"])


def test_a_bug_is_not_swallowed(monkeypatch):
    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(cli.HANDLERS, "ls", boom)
    with pytest.raises(ZeroDivisionError):
        cli.main(["ls"])


def test_a_tool_raising_a_user_error_exits_1(monkeypatch, capsys):
    from harness import registry

    monkeypatch.setitem(registry._TABLE["tool"], "boom-tool", "tests.harness.test_user_errors:_raising_tool")
    monkeypatch.delenv("DCAR_BENCH_DEBUG", raising=False)
    assert cli.main(["boom-tool", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder: x" in err


def _raising_tool(argv):
    from harness.api import DataError

    raise DataError(f"no such folder: {argv[0]}")


@pytest.mark.parametrize("suite,model,setting,key", [
    ("dummy", "dummy-t2i", "num_items=abc", "num_items"),
    ("imagenet_recon", "dc-ht", "dataset.limit=abc", "dataset.limit"),
    ("imagenet_recon", "dc-ht", "metrics.ssim_border=both", "metrics.ssim_border"),
    ("geneval", "dc-ar", "samples_per_prompt=four", "samples_per_prompt"),
    ("dummy", "dummy-t2i", "batch_size=two", "batch_size"),
])
def test_a_wrong_set_value_type_is_one_line_naming_the_key(suite, model, setting, key, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DCAR_BENCH_DEBUG", raising=False)
    rc = cli.main(["run", suite, "--model", model, "--out", str(tmp_path / "r"), "--set", setting, "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert repr(key) in err or f"{key} " in err or f"{key}=" in err, err
    assert "Traceback" not in err and not (tmp_path / "r").exists()
