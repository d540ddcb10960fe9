"""The run directory: one place per run, self-describing, safe to resume.

Layout::

    <run_dir>/manifest.json        suite, adapter (+ info), full config, protocol, seed, provenance, plan digest
    <run_dir>/plan.jsonl           every planned item (id + payload), written once by the first invocation
    <run_dir>/invocations.jsonl    one line per process that worked on the run (resumes, shards)
    <run_dir>/records/shard-i-of-n.jsonl   per-item records (see harness.records)
    <run_dir>/artifacts/           files suites write through RunContext.write_artifact
    <run_dir>/summary.json         the aggregate, written atomically from records only
    <run_dir>/report.md            Markdown for this run

Why the identity check: a run directory holds one experiment. Resuming into it with a
different suite, adapter, seed or config would mix records of two experiments, so it
is refused with the list of differing keys. Provenance (time, git, versions) may
differ between invocations and is logged in ``invocations.jsonl``.

Why ``plan.jsonl``: aggregation and reports must work from the run directory alone, months
later, on a machine without the dataset; so the items are stored once and never re-planned.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.api import UserError, WorkItem
from harness.io import atomic_write_bytes, bytes_sha256, canonical_json, dump_json, json_roundtrip

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
REPORT = "report.md"
INVOCATIONS = "invocations.jsonl"
PLAN = "plan.jsonl"
AGGREGATE_OVERRIDES = "aggregate_overrides.json"  # aggregation-only keys changed after the run (kept for re-runs)
# config keys that change how work is executed but never the result: may differ on resume
EXECUTION_KEYS = ("batch_size",)


class RunDirError(UserError, RuntimeError):
    """The run directory cannot be used (unwritable, or holds a different experiment)."""


class ConfigMismatchError(RunDirError):
    """An existing run directory was made with a different suite/adapter/seed/config."""




class RunStore:
    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)

    # ------------------------------------------------------------------ paths
    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    @property
    def records_dir(self) -> Path:
        return self.run_dir / "records"

    @property
    def plan_path(self) -> Path:
        return self.run_dir / PLAN

    @property
    def summary_path(self) -> Path:
        return self.run_dir / SUMMARY

    @property
    def report_path(self) -> Path:
        return self.run_dir / REPORT

    # ------------------------------------------------------------------ checks
    def ensure_writable(self) -> None:
        """Create the run dir and prove we can write there, or raise RunDirError saying why."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.records_dir.mkdir(exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.records_dir, prefix=".write-probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise RunDirError(f"output directory {self.run_dir} is not writable: {exc.strerror or exc}. "
                              f"Choose another --out or fix its permissions.") from exc

    # ------------------------------------------------------------------ manifest
    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{self.manifest_path} is not valid JSON ({exc}); the run directory is damaged") from exc
        if not isinstance(data, dict) or not isinstance(data.get("suite"), str) or not isinstance(data.get("config"),
                                                                                                dict):
            raise RunDirError(f"{self.manifest_path} is not a dcar-bench manifest (needs a 'suite' name and a "
                              f"'config' mapping); the run directory is damaged")
        return data

    def require_manifest(self) -> dict[str, Any]:
        m = self.read_manifest()
        if m is None:
            raise RunDirError(f"{self.run_dir} is not a run directory (no {MANIFEST}); "
                              f"create one with `dcar-bench run SUITE --model NAME --out {self.run_dir}`")
        return m

    def prepare(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``manifest`` if the dir is new, else check it describes the same experiment.

        Returns the manifest in force (the stored one when resuming).
        """
        new = json_roundtrip(dict(manifest))
        old = self.read_manifest()
        if old is None:
            atomic_write_bytes(self.manifest_path, dump_json(new))
            return new
        self.check_same_experiment(new)
        return old

    def check_same_experiment(self, manifest: Mapping[str, Any], *, check_weights: bool = True,
                              resume_keys: Sequence[str] = ()) -> None:
        """Raise ConfigMismatchError listing the differing keys if the stored manifest differs.

        ``resume_keys``: config keys (dotted, or a section) the suite allows to change on resume.
        """
        old = self.read_manifest()
        if old is None:
            return
        diffs = identity_diff(old, json_roundtrip(dict(manifest)), check_weights=check_weights,
                              resume_keys=resume_keys)
        if diffs:
            raise ConfigMismatchError(
                f"{self.run_dir} already holds a run with a different setup; refusing to mix results. Differences "
                f"(stored -> requested):\n" + "\n".join(f"  - {d}" for d in diffs)
                + "\nUse a new --out directory, or rerun with the original settings to resume."
            )

    def log_invocation(self, entry: Mapping[str, Any]) -> None:
        """Append one line to invocations.jsonl (best-effort provenance of resumes and shards)."""
        line = (json.dumps(json_roundtrip(dict(entry)), sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.run_dir / INVOCATIONS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ plan
    def write_plan(self, data: bytes) -> str:
        """Store the plan (bytes from :func:`plan_bytes`) once; returns its sha256."""
        return atomic_write_bytes(self.plan_path, data)

    def read_plan(self, expected_sha256: str) -> list[WorkItem]:
        """The stored items, after checking the file against the manifest's digest."""
        try:
            data = self.plan_path.read_bytes()
        except FileNotFoundError:
            raise RunDirError(f"{self.plan_path} is missing; the run directory is incomplete or was made by an "
                              f"older dcar-bench. Rerun the same `dcar-bench run` command into it: it restores "
                              f"plan.jsonl when the suite still plans the same items (plan_sha256).") from None
        if bytes_sha256(data) != expected_sha256:
            raise RunDirError(f"{self.plan_path} does not match the plan_sha256 in {MANIFEST}; the run directory "
                              f"was modified. Restore plan.jsonl or start a new run.")
        items = []
        for lineno, line in enumerate(data.splitlines(), start=1):
            try:
                d = json.loads(line)
                items.append(WorkItem(d["id"], d.get("payload") or {}))
            except (ValueError, KeyError, TypeError) as exc:
                raise RunDirError(f"{self.plan_path}:{lineno}: not a plan line ({exc})") from None
        return items

    # ------------------------------------------------------------------ aggregation-only overrides
    def read_aggregate_overrides(self) -> dict[str, Any]:
        path = self.run_dir / AGGREGATE_OVERRIDES
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} is not valid JSON ({exc}); delete it to aggregate with the run's own config") from exc
        return dict(data)

    def write_aggregate_overrides(self, overrides: Mapping[str, Any]) -> None:
        atomic_write_bytes(self.run_dir / AGGREGATE_OVERRIDES, dump_json(dict(overrides)))

    # ------------------------------------------------------------------ summary
    def write_summary(self, summary: Mapping[str, Any]) -> str:
        return atomic_write_bytes(self.summary_path, dump_json(summary))

    def read_summary(self) -> dict[str, Any] | None:
        if not self.summary_path.exists():
            return None
        try:
            return json.loads(self.summary_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{self.summary_path} is not valid JSON ({exc}); rerun `dcar-bench aggregate "
                              f"{self.run_dir}` to rebuild it") from exc


def ensure_output_dir(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Create directory ``path`` (and parents) or raise a one-line :class:`RunDirError` naming it.

    Called before any work, so a typo in an output path costs nothing.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise RunDirError(f"{what} {path} cannot be used as an output directory: {exc.strerror or exc}. "
                        f"Choose another path or fix its permissions.") from None
    return path


def plan_bytes(items: Sequence[WorkItem]) -> bytes:
    """The canonical bytes of a plan: one ``{"id", "payload"}`` JSON line per item, in plan order."""
    return "".join(canonical_json({"id": it.id, "payload": dict(it.payload)}) + "\n" for it in items).encode("utf-8")


def plan_digest(items: Sequence[WorkItem]) -> str:
    """sha256 of :func:`plan_bytes`: the ``plan_sha256`` of the manifest."""
    return bytes_sha256(plan_bytes(items))


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


def config_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as it determines results: flattened, without :data:`EXECUTION_KEYS`."""
    return {k: v for k, v in flatten(config).items() if k.split(".")[0] not in EXECUTION_KEYS}


def diff_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two configs, formatted ``key: old -> new``."""
    a, b = config_identity(old), config_identity(new)
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            out.append(f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}")
    return out


def identity_diff(old: Mapping[str, Any], new: Mapping[str, Any], *, check_weights: bool = True,
                  resume_keys: Sequence[str] = ()) -> list[str]:
    """Differences that make two manifests different experiments.

    Suite, adapter, planned items, adapter weights and config (incl. the seed) must
    match; ``check_weights=False`` skips the weights (used before the adapter is loaded).
    """
    out = []
    for key in ("suite", "adapter"):
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    out += [f"config.{d}" for d in diff_keys(old.get("config") or {}, new.get("config") or {})
            if not any(d.split(":")[0] == k or d.startswith(k + ".") for k in resume_keys)]
    if old.get("plan_sha256") != new.get("plan_sha256"):
        out.append(f"plan_sha256 (the planned items): {old.get('plan_sha256')!r} -> {new.get('plan_sha256')!r}")
    if not check_weights:
        return out
    old_w = (old.get("adapter_info") or {}).get("weights")
    new_w = (new.get("adapter_info") or {}).get("weights")
    if old_w != new_w:
        out.append(f"adapter_info.weights: {old_w!r} -> {new_w!r}")
    return out
