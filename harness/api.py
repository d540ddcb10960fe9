"""The narrow contracts between the harness, the models under test and the suites.

Why this file is small and stable: every adapter (``baselines/``) and every suite
(``suites/``) is written against it, and the runner only ever talks to these
classes. An adapter turns a batch of requests into a batch of images; it never
chooses seeds, writes files or computes metrics (docs/architecture.md, principle 2).

Image convention everywhere in the harness: ``torch.float32`` tensors on the CPU,
shape ``(B, 3, H, W)``, values in ``[0, 1]``. Quantisation to uint8 (for PNG files
and per-image metrics) is done by the harness, once, with
:func:`harness.images.to_uint8` (``floor(x * 255 + 0.5)``, the DC-AE convention).

This module must stay importable without torch (``dcar-bench --help`` and ``ls``
import it); torch appears only in type hints.
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import torch

# --------------------------------------------------------------------------- user errors


class UserError(Exception):
    """An error whose message is the whole story: what is wrong, which file/key/item, and the fix.

    The CLI prints such an error as one line and exits 1 (``DCAR_BENCH_DEBUG=1`` shows the
    traceback). Everything else is a bug and keeps its traceback. Subclasses also derive from the
    matching builtin (``ValueError``, ``FileNotFoundError``...) so ``except ValueError`` still works.
    """


class IncompleteRunError(UserError, RuntimeError):
    """A run directory lacks records (or images) that the requested step needs."""


class MissingDependencyError(UserError, ImportError):
    """An optional package (an extra) that a named adapter/suite/metric needs is not installed."""


class DataError(UserError, ValueError):
    """An input file or tensor is unusable (corrupt image, NaN/Inf, wrong shape); the message names it."""


# --------------------------------------------------------------------------- adapters

ADAPTER_KINDS = ("text_to_image", "image_tokenizer", "class_to_image")


@dataclass(frozen=True)
class Requirement:
    """One file or directory an adapter or suite needs, and where it is looked up.

    ``dcar-bench doctor`` prints these; loaders raise :class:`MissingResourceError`
    built from them, so the error text and the doctor output say the same thing.
    ``candidates`` are resolved in order: explicit config value, env var, HF cache,
    default path.
    """

    name: str  # e.g. "DC-HT tokenizer weights"
    description: str  # what it is and how to get it
    env_var: str | None = None  # e.g. "DCAR_DCHT_PATH"
    config_key: str | None = None  # e.g. "tokenizer_path"
    hf_repo: str | None = None  # e.g. "mit-han-lab/dc-ht"
    default_paths: tuple[str, ...] = ()
    must_contain: tuple[str, ...] = ()  # files that must exist inside a directory (any one of)
    optional: bool = False


class MissingResourceError(UserError, FileNotFoundError):
    """A weight file or dataset the user must provide is absent.

    The message names the file, every place that was searched and how to get it.
    """


@dataclass(frozen=True)
class AdapterInfo:
    """What a result must record about the model that produced it (provenance)."""

    name: str
    kind: str
    resolution: int | None = None
    dtype: str = "float32"
    steps: int | None = None
    num_params: int | None = None
    weights: Mapping[str, str] = field(default_factory=dict)  # file -> sha256 (or "random-init:<seed>")
    real_weights: bool = False  # False => results are NOT the paper's metric; reports must say so
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["weights"] = dict(self.weights)
        d["extra"] = dict(self.extra)
        return d


class Adapter(abc.ABC):
    """Base of every model adapter.

    Constructed as ``Adapter(**options)`` from the CLI/suite config (``--set model.x=y``);
    options must be JSON-serialisable so they land in the manifest.
    """

    kind: ClassVar[str] = ""

    @classmethod
    def requirements(cls) -> list[Requirement]:
        """Files this adapter needs (for ``doctor``); empty for self-contained ones."""
        return []

    @abc.abstractmethod
    def info(self) -> AdapterInfo:
        ...

    def close(self) -> None:  # noqa: B027 - an optional hook, deliberately a no-op by default
        """Release GPU memory etc."""
        return None

    def set_batch_size(self, batch_size: int) -> None:  # noqa: B027 - optional hook
        """The run's batch size, told once before the first call.

        An adapter whose floating-point results depend on the batch's GEMM shapes may pad every
        shorter call (the last batch, a resumed tail) up to it, so that an item's output does not
        depend on how many items happened to be left.
        """
        return None


class TextToImage(Adapter):
    """Prompts + per-item seeds -> images.

    ``generate`` must be a pure function of (prompt, seed, options) per item: the
    image for item i may not depend on the other items of the batch, so results are
    invariant to batch size and sharding (docs/architecture.md, principle 4).
    """

    kind: ClassVar[str] = "text_to_image"

    @abc.abstractmethod
    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any) -> "torch.Tensor":
        """Return float32 CPU images (B, 3, H, W) in [0, 1]."""


class ClassToImage(Adapter):
    """Class labels + per-item seeds -> images (MAR-style ImageNet models)."""

    kind: ClassVar[str] = "class_to_image"

    @abc.abstractmethod
    def generate(self, class_ids: Sequence[int], seeds: Sequence[int], **options: Any) -> "torch.Tensor":
        """Return float32 CPU images (B, 3, H, W) in [0, 1]."""


class ImageTokenizer(Adapter):
    """Images -> reconstructions through a named path.

    ``paths`` lists the reconstruction paths the tokenizer supports, e.g.
    ``("continuous", "discrete")`` for DC-HT. Reconstruction is deterministic.
    """

    kind: ClassVar[str] = "image_tokenizer"
    paths: ClassVar[tuple[str, ...]] = ("continuous",)
    downsample: ClassVar[int] = 1  # image sides must be multiples of this

    @abc.abstractmethod
    def reconstruct(self, images: "torch.Tensor", path: str | None = None) -> "torch.Tensor":
        """images: float32 (B, 3, H, W) in [0, 1] -> reconstructions, same shape, in [0, 1]."""

    def tokenize(self, images: "torch.Tensor") -> Mapping[str, "torch.Tensor"]:
        """Optional: token ids (B, N) and, for hybrid tokenizers, residuals (B, N, C)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose tokens")


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class MetricSpec:
    """Every metric declares its name, direction and parameters (recorded in results)."""

    name: str
    direction: str  # "lower" or "higher" is better
    params: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""  # the library it is checked against in the tests

    def __post_init__(self) -> None:
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"metric {self.name}: direction must be 'lower' or 'higher', got {self.direction!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "direction": self.direction, "params": dict(self.params), "reference": self.reference}


# --------------------------------------------------------------------------- suites


@dataclass(frozen=True)
class WorkItem:
    """One idempotent unit of work. ``id`` is stable across runs and unique in a suite.

    ``payload`` is JSON-serialisable (prompt, file path, class id, sample index...).
    The item's seed is derived from (run seed, id) by :func:`harness.seeding.item_seed`.
    """

    id: str
    payload: Mapping[str, Any] = field(default_factory=dict)


class Suite(abc.ABC):
    """An experiment: plans items, runs batches of them through an adapter, aggregates.

    Lifecycle (owned by :mod:`harness.runner`):
      1. ``Suite(config)`` with the merged config (suite YAML defaults + user overrides).
      2. ``plan()`` -> every item of the run, deterministic order.
      3. the runner shards, skips items with records, batches the rest and calls
         ``run_batch(items, adapter, ctx)``; each returned record (a JSON dict) is appended
         atomically. Records must not depend on batch composition.
      4. ``aggregate(records, ctx)`` -> summary dict, computed from files only.
      5. ``render(summary)`` -> Markdown for the report.
    """

    name: ClassVar[str] = ""
    adapter_kind: ClassVar[str | None] = None  # which Adapter.kind it needs (None: no adapter)
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    # config keys (dotted, or a whole section) that change only the aggregate, never a record:
    # `dcar-bench aggregate DIR --set KEY=VALUE` may set them on a finished run
    aggregate_keys: ClassVar[tuple[str, ...]] = ()
    # config keys that may differ when a run is resumed because they only decide what happens to items
    # that have no record yet (e.g. skipping a corrupt input); their values per invocation are logged
    resume_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Suite defaults incl. protocol constants (usually read from the suite's YAML)."""
        return {}

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list[Requirement]:
        return []

    def protocol(self) -> dict[str, Any]:
        """Protocol constants to record in the manifest (resize, crop, counts, thresholds...)."""
        return dict(self.config.get("protocol", {}))

    @abc.abstractmethod
    def plan(self) -> list[WorkItem]:
        ...

    @abc.abstractmethod
    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: "RunContext") -> list[dict[str, Any]]:
        ...

    @abc.abstractmethod
    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: "RunContext") -> dict[str, Any]:
        ...

    def subject(self) -> str | None:
        """What the run evaluates when it has no adapter (e.g. a folder of images), for the manifest and report."""
        return None

    def validate(self, items: Sequence[WorkItem]) -> None:  # noqa: B027 - optional hook
        """Check, before any model loads, everything about the planned work that can be checked.

        Called once per run invocation after :meth:`plan` (every explicit path exists, supplied
        reference statistics match the protocol, enough samples to aggregate, inputs decodable...).
        Raise a :class:`UserError` naming the file/key and the fix.
        """
        return None

    def render(self, summary: Mapping[str, Any]) -> str:
        """Markdown for this suite's section of the report."""
        import json

        return "```json\n" + json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n```\n"


# --------------------------------------------------------------------------- run context


@dataclass(frozen=True)
class RunManifest:
    """The typed view of a run's ``manifest.json`` that suites see through :class:`RunContext`.

    Suites never read ``manifest.json`` by path: the runner hands them this, so the store's file
    format can change in one place. ``raw`` is the whole stored mapping.
    """

    suite: str
    adapter: str | None
    config: Mapping[str, Any]
    seed: int
    protocol: Mapping[str, Any]
    num_items: int
    plan_sha256: str
    adapter_info: Mapping[str, Any] | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunManifest":
        return cls(suite=d["suite"], adapter=d.get("adapter"), config=d.get("config") or {},
                   seed=int(d.get("seed", 0)), protocol=d.get("protocol") or {}, num_items=int(d.get("num_items", 0)),
                   plan_sha256=str(d.get("plan_sha256", "")), adapter_info=d.get("adapter_info"),
                   provenance=d.get("provenance") or {}, raw=dict(d))

    @property
    def real_weights(self) -> bool:
        return bool((self.adapter_info or {}).get("real_weights", False))

    @property
    def weights_kind(self) -> str | None:
        """The adapter's ``info().extra["weights_kind"]`` (``checkpoint``, ``mini-trained``, ``random-init``), if given."""
        return ((self.adapter_info or {}).get("extra") or {}).get("weights_kind")

    def not_real_weights_warning(self, what: str) -> str:
        """A summary warning for a model without real weights that names mini-trained ones as such."""
        if self.weights_kind == "mini-trained":
            return (f"{what} weights are the mini-trained defaults (baselines/dcar/mini_weights, not the released "
                    f"weights): numbers are NOT the paper's metric")
        return f"{what} weights are random/dummy: numbers are NOT the paper's metric"


@dataclass
class RunContext:
    """What a suite sees while it runs or aggregates: where to write, how to seed, the cache, the manifest.

    The runner builds one per process and passes it to ``Suite.run_batch`` and ``Suite.aggregate``.
    Suites never open the records file themselves and never seed global RNGs.

    Attributes:
        run_dir: the run directory (manifest.json, plan.jsonl, records/, artifacts/, summary.json).
        config: the merged suite config (as recorded in the manifest).
        seed: the run seed; item seeds derive from it via :meth:`item_seed`.
        rank, world_size: this process's shard.
        cache: the content-addressed cache (:class:`harness.cache.Cache`) or None.
        show_progress: whether suites should show tqdm bars for inner loops.
        manifest: the stored manifest (None only for a bare context built by a test).
        batch_size: the run's batch size.
    """

    run_dir: Path
    config: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    cache: Any = None
    show_progress: bool = True
    manifest: RunManifest | None = None
    batch_size: int = 1
    #: items of the current batch that already have a record: recomputed only so that the batch keeps its
    #: original shape and rows (see ``harness.runner.core.batches_to_run``); their artifacts are not rewritten
    replay_ids: frozenset = frozenset()

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.run_dir) / "artifacts"

    def item_seed(self, item_id: str) -> int:
        from harness.seeding import item_seed

        return item_seed(self.seed, item_id)

    def write_artifact(self, relpath: str, data: bytes, *, item_id: str | None = None) -> str:
        """Atomically write ``artifacts/<relpath>``; returns the sha256 to put in the record.

        ``item_id``: the item the file belongs to. An item of :attr:`replay_ids` keeps the file its record
        already names (on non-deterministic hardware a recomputation could differ from it).
        """
        from harness.io import atomic_write_bytes, bytes_sha256

        target = (self.artifacts_dir / relpath).resolve()
        if self.artifacts_dir.resolve() not in target.parents:
            raise ValueError(f"artifact path {relpath!r} escapes the run directory")
        if item_id is not None and item_id in self.replay_ids:
            return bytes_sha256(data)
        return atomic_write_bytes(target, data)

    def artifact_path(self, relpath: str) -> Path:
        return self.artifacts_dir / relpath

    def read_artifact(self, relpath: str, sha256: str, *, item_id: str | None = None) -> bytes:
        """The bytes of ``artifacts/<relpath>`` after checking them against the sha256 its record holds.

        The counterpart of :meth:`write_artifact` for aggregation: a missing or modified file is a
        :class:`DataError` naming it (and the item), never a silently different metric.
        """
        from harness.io import bytes_sha256

        whose = f" of item {item_id}" if item_id is not None else ""
        try:
            blob = self.artifact_path(relpath).read_bytes()
        except FileNotFoundError:
            raise DataError(f"artifact artifacts/{relpath}{whose} is missing; the run directory is incomplete "
                            f"(restore the file or rerun the suite into a new --out)") from None
        if bytes_sha256(blob) != sha256:
            raise DataError(f"artifact artifacts/{relpath}{whose} does not match the sha256 in its record; "
                            f"the run directory was modified")
        return blob

    def progress(self, iterable: Iterable, **kwargs: Any) -> Iterable:
        if not self.show_progress:
            return iterable
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
