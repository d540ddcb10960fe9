"""GenEval detect + score stages (paper Table 3) over any GenEval image folder, ours or another tool's.

Items are the sanity-gate images, then one per PNG sample; each record is the image's compact
detections (boxes, scores, RLE masks and CLIP colours where the prompt asks a colour). Before any
model loads, ``validate`` refuses what would fail later: a wrong layout, a partial folder (unless
``allow_partial``), an undecodable PNG, missing packages or weights. The aggregate applies the
ported rules: gate first, then completeness, then per-tag accuracy and overall, rendered as
Table 3 beside the paper's numbers; ``dcar-bench geneval score`` re-aggregates with other rule
constants. The GenEval logic lives in :mod:`harness.geneval`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness.api import Adapter, MetricSpec, Requirement, RunContext, Suite, WorkItem
from harness.geneval.config import DetectConfig
from harness.geneval.rules import GENEVAL_METRIC
from harness.runner.config import ConfigError, suite_yaml


class GenEvalDetectSuite(Suite):
    """Detect objects (Mask2Former) and colours (CLIP) in a GenEval folder; aggregate = the GenEval score."""

    name = "geneval_detect"
    adapter_kind = None
    libraries = ("transformers", "opencv-python-headless", "mmdet", "mmcv", "mmcv-lite", "mmengine", "open-clip-torch",
                 "pycocotools")
    metrics: tuple[MetricSpec, ...] = (GENEVAL_METRIC,)
    #: keys `dcar-bench aggregate --set` / `geneval score` may change: they change no record
    aggregate_keys = ("rules", "allow_partial", "skip_sanity_gate")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.cfg = DetectConfig.from_mapping(self.config)
        self._scan: Any = None
        self._folder: dict[str, Any] | None = None
        self._stage: Any = None

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return suite_yaml(__file__)

    @classmethod
    def requirements(cls, config: Mapping[str, Any] | None = None) -> list[Requirement]:
        from harness.geneval.color import CLIP_WEIGHTS
        from harness.geneval.detector import DETECTOR_CHECKPOINT

        return [DETECTOR_CHECKPOINT, CLIP_WEIGHTS]

    # ---------------------------------------------------------------- plan and validate

    def images_root(self) -> Path:
        if not self.cfg.images_dir:
            raise ConfigError("geneval_detect needs images_dir: the GenEval folder to score "
                              "(`dcar-bench geneval detect --images DIR`, or --set images_dir=DIR)")
        return Path(self.cfg.images_dir).expanduser().resolve()

    def scan(self):
        """The folder's inventory (names and metadata), once per process."""
        from harness.geneval.folder import scan_folder

        if self._scan is None:
            self._scan = scan_folder(self.images_root(), strict_metadata=self.cfg.strict_metadata)
        return self._scan

    def plan(self) -> list[WorkItem]:
        from harness.geneval.plan import detect_items

        return detect_items(self.scan(), self.cfg.sanity_gate)

    def validate(self, items: Sequence[WorkItem]) -> None:
        """Completeness, every PNG decodable, packages, device and weights: all before the detector loads."""
        from harness.geneval.detection import check_ready
        from harness.geneval.folder import check_decodable, image_rows
        from harness.geneval.rules import check_complete, summarize

        check_complete(summarize(image_rows(self.scan())), allow_partial=self.cfg.allow_partial)  # as the score counts
        check_ready(self.cfg)
        check_decodable(self.scan())
        for w in self.scan().warnings():
            print(f"geneval: warning: {w}", file=sys.stderr)

    def images_folder(self) -> dict[str, Any]:
        """What scoring must know about the input folder, recorded in the manifest when the run starts."""
        from harness.geneval.provenance import generator_of

        if self._folder is None:
            scan = self.scan()
            self._folder = {"dir": str(scan.root), "num_images": scan.num_images, "generator": generator_of(scan.root),
                            "warnings": scan.warnings()}
        return self._folder

    def protocol(self) -> dict[str, Any]:
        return {**self.cfg.protocol, "rules": self.cfg.rules.to_dict(), "images_folder": self.images_folder()}

    def subject(self) -> str | None:
        folder = self.images_folder()
        gen = (folder["generator"] or {}).get("name")
        return f"images of {gen} ({folder['dir']})" if gen else f"images in {folder['dir']}"

    # ---------------------------------------------------------------- detect

    def run_batch(self, items: Sequence[WorkItem], adapter: Adapter | None, ctx: RunContext) -> list[dict[str, Any]]:
        from harness.geneval.detection import DetectStage

        if self._stage is None:
            self._stage = DetectStage(self.cfg, self.images_root())
        return [self._stage.record(it) for it in items]

    # ---------------------------------------------------------------- score

    def aggregate(self, records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, Any]:
        from harness.geneval.scoring import score_detect_run

        if ctx.manifest is None:
            raise ValueError("geneval_detect's aggregate reads the run's manifest (ctx.manifest), which is missing")
        self.cfg.check_rescore(DetectConfig.from_mapping(ctx.manifest.config))
        folder = ctx.manifest.protocol.get("images_folder") or {"dir": self.cfg.images_dir}
        return score_detect_run(records, self.cfg, folder)

    def render(self, summary: Mapping[str, Any]) -> str:
        from harness.geneval.scoring import REFERENCE_TABLE, render_detect_run
        from harness.report.reference import reference_table

        return render_detect_run(summary, reference_table(REFERENCE_TABLE))
