"""Locating and verifying a checkout: one-line errors for a missing one, another repository, a partial clone;
commit and remote read from .git files; modules imported from the checkout and nowhere else."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from baselines.checkout.repo import (
    MissingCheckoutError,
    WrongCheckoutError,
    find_checkout,
    import_from_checkout,
    read_commit,
    read_remote,
)
from baselines.checkout.showo import SPEC as SHOWO
from harness.api import MissingResourceError, UserError

from .fakes import MAR, SHA, make_checkout
from .fakes import SHOWO as SHOWO_FILES


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and isinstance(exc, UserError)
    return text


def test_no_checkout_given_names_what_to_clone_and_how_to_pass_it(monkeypatch):
    monkeypatch.delenv(SHOWO.env_var, raising=False)
    with pytest.raises(MissingResourceError) as e:
        find_checkout(SHOWO, None)
    text = _one_line(e.value)
    assert "git clone https://github.com/showlab/Show-o" in text and "pip install -r requirements.txt" in text
    assert "--set model.repo=" in text and "DCAR_SHOWO_REPO" in text


def test_missing_path_from_option_or_env_is_named(tmp_path, monkeypatch):
    with pytest.raises(MissingCheckoutError, match=r"nowhere \(from model.repo\) does not exist"):
        find_checkout(SHOWO, tmp_path / "nowhere")
    monkeypatch.setenv(SHOWO.env_var, str(tmp_path / "gone"))
    with pytest.raises(MissingCheckoutError, match=r"gone \(from \$DCAR_SHOWO_REPO\)") as e:
        find_checkout(SHOWO, None)
    _one_line(e.value)


def test_another_repository_is_refused_by_its_remote(tmp_path):
    root = make_checkout(tmp_path / "mar", MAR, remote="https://github.com/LTH14/mar.git")
    with pytest.raises(WrongCheckoutError, match="is a checkout of https://github.com/LTH14/mar.git, not of "
                                                 "https://github.com/showlab/Show-o") as e:
        find_checkout(SHOWO, root)
    _one_line(e.value)


def test_another_layout_without_git_is_refused_by_its_missing_files(tmp_path):
    root = make_checkout(tmp_path / "other", MAR, git=False)
    with pytest.raises(WrongCheckoutError, match="lacks models/modeling_showo.py, .*inference_t2i.py") as e:
        find_checkout(SHOWO, root)
    _one_line(e.value)
    with pytest.raises(WrongCheckoutError, match="is a file"):
        find_checkout(SHOWO, root / "engine_mar.py")


def test_a_fork_with_the_same_name_is_accepted_and_its_commit_recorded(tmp_path):
    root = make_checkout(tmp_path / "showo", SHOWO_FILES, remote="git@github.com:someone/Show-o.git", packed=True)
    co = find_checkout(SHOWO, str(root))
    assert co.commit == SHA and co.remote == "git@github.com:someone/Show-o.git"
    prov = co.provenance()
    assert prov["repository"] == "showlab/Show-o" and prov["commit"] == SHA
    assert prov["same_commit_as_adapter"] is False and prov["adapter_written_against"] == SHOWO.read_commit


def test_commit_from_loose_ref_detached_head_and_worktree_file(tmp_path):
    root = make_checkout(tmp_path / "a", {"x": ""}, remote="https://github.com/showlab/Show-o")
    assert read_commit(root) == SHA and read_remote(root) == "https://github.com/showlab/Show-o"
    other = "f" * 40
    (root / ".git" / "HEAD").write_text(other + "\n")
    assert read_commit(root) == other
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {root / '.git'}\n")
    assert read_commit(wt) == other
    assert read_commit(tmp_path / "nogit") is None and read_remote(tmp_path / "nogit") is None


def test_real_mirror_layout_reads_like_git(tmp_path):
    """A bare-style .git with HEAD -> a ref that exists only in packed-refs (how clones often look)."""
    root = make_checkout(tmp_path / "p", {"x": ""}, packed=True)
    assert not (root / ".git" / "refs" / "heads" / "main").exists()
    assert read_commit(root) == SHA


def test_modules_come_from_the_checkout_even_when_another_models_package_was_imported(tmp_path):
    mar = find_checkout(__import__("baselines.checkout.mar", fromlist=["SPEC"]).SPEC,
                        make_checkout(tmp_path / "mar", MAR, remote="https://github.com/LTH14/mar"))
    showo = find_checkout(SHOWO, make_checkout(tmp_path / "showo", SHOWO_FILES))
    try:
        m1 = import_from_checkout(mar, ["models.mar"])["models.mar"]
        assert str(tmp_path / "mar") in m1.__file__
        m2 = import_from_checkout(showo, ["models"])["models"]
        assert str(tmp_path / "showo") in m2.__file__ and hasattr(m2, "Showo")
        assert "models.mar" not in sys.modules  # the other checkout's `models` was dropped
    finally:
        for p in (str(tmp_path / "mar"), str(tmp_path / "showo")):
            while p in sys.path:
                sys.path.remove(p)
        for name in [n for n in sys.modules if n.split(".")[0] in ("models", "training")]:
            del sys.modules[name]


def test_broken_official_import_is_a_missing_dependency_naming_the_install(tmp_path):
    files = dict(SHOWO_FILES, **{"models/__init__.py": "import a_package_that_is_not_installed\n"})
    co = find_checkout(SHOWO, make_checkout(tmp_path / "s", files))
    try:
        with pytest.raises(ImportError, match="pip install -r requirements.txt") as e:
            import_from_checkout(co, ["models"])
        assert isinstance(e.value, UserError)
    finally:
        sys.path.remove(str(tmp_path / "s"))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary to make a real repository")
def test_commit_and_remote_agree_with_git_on_a_real_repository(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True,
                              env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                                   "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path), "PATH": os.environ["PATH"]}
                              ).stdout.strip()

    root = make_checkout(tmp_path / "Show-o", SHOWO_FILES, git=False)
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    git("remote", "add", "origin", "https://github.com/showlab/Show-o.git")
    co = find_checkout(SHOWO, root)
    assert co.commit == git("rev-parse", "HEAD") and co.remote == "https://github.com/showlab/Show-o.git"
    git("commit", "-q", "--allow-empty", "-m", "two")
    git("pack-refs", "--all")
    assert read_commit(root) == git("rev-parse", "HEAD")
    git("checkout", "-q", "--detach", "HEAD~1")
    assert read_commit(root) == git("rev-parse", "HEAD")
    git("remote", "set-url", "origin", "/mirrors/some-local-copy")  # a local mirror: not judged by its name
    assert find_checkout(SHOWO, root).remote == "/mirrors/some-local-copy"
    git("remote", "set-url", "origin", "git@github.com:LTH14/mar.git")
    with pytest.raises(WrongCheckoutError, match="git@github.com:LTH14/mar.git"):
        find_checkout(SHOWO, root)


def test_a_namespace_package_of_the_checkout_wins_over_a_regular_one_elsewhere_on_sys_path(tmp_path):
    """MAR's `models` has no __init__.py; Show-o's has one and stays on sys.path after a Show-o run. Found on a
    real pair of clones: without binding the package to the checkout, `import models.mar` found Show-o's."""
    from baselines.checkout.mar import SPEC as MAR_SPEC

    assert "models/__init__.py" not in MAR and "models/__init__.py" in SHOWO_FILES
    showo = find_checkout(SHOWO, make_checkout(tmp_path / "showo", SHOWO_FILES))
    mar = find_checkout(MAR_SPEC, make_checkout(tmp_path / "mar", MAR))
    import_from_checkout(showo, ["models", "training.prompting_utils"])
    _fresh_module_inspecting_itself(tmp_path / "first.py")  # inspect now caches Show-o's models/ under "models"
    got = import_from_checkout(mar, ["models.mar", "models.vae"])
    # torch.library does this while torchvision imports; a namespace module with __file__ = None made it raise
    assert _fresh_module_inspecting_itself(tmp_path / "second.py") == "<module>"
    assert all(str(tmp_path / "mar") in m.__file__ for m in got.values())
    assert list(sys.modules["models"].__path__) == [str(tmp_path / "mar" / "models")]
    again = import_from_checkout(showo, ["models"])["models"]  # and back
    assert again.__file__ == str(tmp_path / "showo" / "models" / "__init__.py")


def _fresh_module_inspecting_itself(path) -> str:
    """Import a new module file that calls ``inspect.getframeinfo`` on its own frame (as torch.library does)."""
    import importlib.util

    path.write_text("import inspect, sys\nFUNCTION = inspect.getframeinfo(sys._getframe()).function\n")
    spec = importlib.util.spec_from_file_location(path.stem + "_inspecting", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FUNCTION
