"""Typed configs of the two GenEval suites, filled from their YAML (``suites/geneval*.yaml``) plus overrides.

Why dataclasses without defaults: the YAML beside each suite is the one place a default is stated,
and :func:`harness.runner.config.fill_dataclass` turns a wrong ``--set`` into one line naming the
key. Only the rule constants (:class:`~harness.geneval.rules.RuleConfig`) carry defaults in code:
they are the official scorer's, and the YAML repeats them so a user sees what is in force.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from harness.geneval.rules import RuleConfig

#: the GenEval detector implementations (docs/geneval.md "Detector backends")
DETECTOR_BACKENDS = ("transformers", "mmdet")

#: runner keys every merged config holds; the suites do not read them from their typed config
RUNNER_ONLY = ("model", "seed", "batch_size")


@dataclass(frozen=True)
class GenerateConfig:
    """``suites/geneval.yaml``: which prompts, how many samples, options for the adapter."""

    samples_per_prompt: int
    prompts: str | int | list[int] | None  # null / "all" = all 553; an index; a list; or "a:b" slice text
    generate: dict
    protocol: dict

    def __post_init__(self) -> None:
        if self.samples_per_prompt < 1:
            raise ValueError(f"samples_per_prompt must be >= 1, got {self.samples_per_prompt}")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> "GenerateConfig":
        from harness.runner.config import fill_dataclass

        return fill_dataclass(cls, config, source="suite geneval", ignore=RUNNER_ONLY)


@dataclass(frozen=True)
class DetectConfig:
    """``suites/geneval_detect.yaml``: the folder, the two models, what a record keeps, and the scoring switches."""

    images_dir: str | None
    device: str
    detector_config: str | None
    detector_checkpoint: str | None
    clip_weights: str | None
    clip_model: str
    record_threshold: float
    sanity_gate: bool
    strict_metadata: bool
    allow_partial: bool
    skip_sanity_gate: bool
    random_weights: bool
    random_init_seed: int
    rules: RuleConfig
    protocol: dict
    #: "transformers" (pure PyTorch, default) or "mmdet" (cross-check); runs recorded before this key
    #: existed ran mmdet, so that is what a manifest without it means
    detector_backend: str = "mmdet"

    def __post_init__(self) -> None:
        if self.detector_backend not in DETECTOR_BACKENDS:
            raise ValueError(f"detector_backend must be one of {', '.join(DETECTOR_BACKENDS)}, "
                             f"got {self.detector_backend!r}")
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> "DetectConfig":
        from harness.runner.config import fill_dataclass

        return fill_dataclass(cls, config, source="suite geneval_detect", ignore=RUNNER_ONLY)

    @property
    def require_gate(self) -> bool:
        """Whether scoring refuses a run whose sanity gate failed or is missing."""
        return self.sanity_gate and not self.skip_sanity_gate and not self.random_weights

    def check_rescore(self, recorded: "DetectConfig") -> None:
        """Refuse rule constants the recorded detections cannot answer (they were cut at detect time)."""
        from harness.runner.config import ConfigError

        for key in ("threshold", "counting_threshold"):
            value = getattr(self.rules, key)
            if value < recorded.record_threshold:
                raise ConfigError(f"rules.{key}={value} is below the record_threshold={recorded.record_threshold} the "
                                  "detections were recorded with, so detections it would count were never stored; "
                                  "run `geneval detect` again into a new --out with --set record_threshold="
                                  f"{value} --set rules.{key}={value}")
        if self.rules.max_objects > recorded.rules.max_objects:
            raise ConfigError(f"rules.max_objects={self.rules.max_objects} exceeds the {recorded.rules.max_objects} "
                              "detections per class that were recorded; run `geneval detect` again into a new --out "
                              f"with --set rules.max_objects={self.rules.max_objects}")
