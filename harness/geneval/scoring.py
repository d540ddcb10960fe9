"""Score detection records: sanity gate, rules, completeness, labels, and the Table 3 layout.

Used by the ``geneval_detect`` suite's aggregate, which ``dcar-bench geneval score`` re-runs with
other rule constants (``rules.*``, ``allow_partial``, ``skip_sanity_gate`` are the keys the
aggregate step accepts) without re-detecting. Pure Python.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from harness.api import UserError
from harness.geneval.gate import evaluate_gate, gate_message
from harness.geneval.rules import (
    TAGS,
    Expected,
    RuleConfig,
    check_complete,
    completeness_message,
    judge_record,
    summarize,
)
from harness.markdown_table import markdown_table

REFERENCE_TABLE = "Table3_GenEval"
TABLE_COLUMNS = (("single_object", "Single Obj."), ("two_object", "Two Obj."), ("counting", "Counting"),
                 ("colors", "Colors"), ("position", "Position"), ("color_attr", "Color Attri."))


class SanityGateError(UserError, RuntimeError):
    """The detector or colour classifier got the known images wrong: its scores would be meaningless."""


def score_records(
    records: Iterable[Mapping[str, Any]],
    *,
    rules: RuleConfig | None = None,
    allow_partial: bool = False,
    require_gate: bool = True,
    models: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Gate check, per-image judgements, per-tag accuracy and overall; raises when refusing to score."""
    rules = rules or RuleConfig()
    records = list(records)
    gate = evaluate_gate(records)
    if require_gate and not gate["passed"]:
        raise SanityGateError(
            "the detector/colour classifier failed the sanity gate on known images, so this run's detections are "
            "not trustworthy and it is not scored:\n" + gate_message(gate) + "\nCheck the checkpoint files, the "
            "mmcv/mmdet install (`dcar-bench geneval check`), and docs/geneval.md. To score it anyway, labelled "
            "as not the GenEval metric: `dcar-bench geneval score RUN --skip-sanity-gate` (--set skip_sanity_gate=true)."
        )
    rows = []
    for rec in records:
        if rec.get("gate"):
            continue
        j = judge_record(rec, rules)
        rows.append({"tag": rec["metadata"]["tag"], "prompt_index": rec["prompt_index"], "correct": j.correct,
                     "reason": j.reason, "file": rec.get("file")})
    summary = summarize(rows, Expected())  # complete = 553 prompts x 4 images, whatever the run was asked for
    check_complete(summary, allow_partial=allow_partial)
    models = dict(models or {})
    real = {k: bool(v.get("real_weights")) for k, v in models.items() if isinstance(v, Mapping)}
    labels = []
    if not summary["complete"]:
        labels.append("INCOMPLETE: " + completeness_message(summary))
    fake = sorted(k for k, ok in real.items() if not ok)
    if fake:
        labels.append(f"NOT THE GENEVAL METRIC: random weights for {', '.join(fake)}")
    if not gate["passed"]:
        labels.append("NOT THE GENEVAL METRIC: the sanity gate failed or was skipped")
    summary.update({
        "rules": rules.to_dict(),
        "sanity_gate": gate,
        "models": models,
        "is_geneval_metric": not labels,
        "labels": labels,
        "per_image": rows,
    })
    return summary


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def render_table3(summary: Mapping[str, Any], reference: Mapping[str, Mapping[str, Any]], our_label: str = "ours") -> str:
    """Table 3 of the paper (GenEval) with our row beside the published ones.

    ``reference``: the paper's rows, ``{model: {"GenEval_<tag>": value, "GenEval_overall": value}}``
    (``harness.report.reference.reference_table(REFERENCE_TABLE)``; passed in, as the report layer sits above this one).
    """
    ts = summary["tag_scores"]
    mark = "" if summary.get("is_geneval_metric") else " †"
    rows = [[f"{model} (paper)", *(fmt(m.get(f"GenEval_{t}")) for t, _ in TABLE_COLUMNS), fmt(m.get("GenEval_overall"))]
            for model, m in reference.items()]
    rows.append([f"**{our_label}{mark}**", *(fmt(ts.get(t)) for t, _ in TABLE_COLUMNS),
                 f"**{fmt(summary.get('overall'))}**"])
    table = markdown_table(["model", *(n for _, n in TABLE_COLUMNS), "Overall"], rows)
    out = []
    for label in summary.get("labels", []):
        out.append(f"> **{label}**")
    if out:
        out.append("")
    out.append(table)
    if mark:
        out.append("† not comparable with the paper: " + "; ".join(summary.get("labels", [])))
        out.append("")
    counts = ", ".join(f"{t} {summary['images_per_tag'][t]}/{summary['expected_images_per_tag'][t]}" for t in TAGS)
    out.append(f"Images: {summary['total_images']} of {summary['expected_total_images']} "
               f"({summary['total_prompts']} of {summary['expected_total_prompts']} prompts); per tag: {counts}.")
    r = summary["rules"]
    out.append(f"Rules (djghosh13/geneval af4902f): score > {r['threshold']} (counting > {r['counting_threshold']}), "
               f"at most {r['max_objects']} per class, NMS IoU {r['max_overlap']} (1.0 = off), position c = "
               f"{r['position_threshold']}. Overall = mean of the 6 per-tag image accuracies (unrounded).")
    gate = summary["sanity_gate"]
    out.append(f"Sanity gate: {'passed' if gate['passed'] else 'FAILED/SKIPPED'} "
               f"({sum(v['passed'] for v in gate['items'].values())}/{len(gate['items'])} known images right).")
    return "\n".join(out) + "\n"


def score_detect_run(records: Iterable[Mapping[str, Any]], cfg: Any, images_folder: Mapping[str, Any]) -> dict[str, Any]:
    """The ``geneval_detect`` aggregate: :func:`score_records` with the run's switches, plus the folder facts.

    ``cfg``: the run's :class:`~harness.geneval.config.DetectConfig` (with any aggregate-time
    overrides); ``images_folder``: what the run recorded about its input folder at plan time
    (``dir``, ``generator``, ``warnings``), so scoring reads no folder.
    """
    from harness.geneval.provenance import models_info

    records = list(records)
    models = models_info(random_weights=cfg.random_weights, detector_checkpoint=cfg.detector_checkpoint,
                         clip_weights=cfg.clip_weights, generator=images_folder.get("generator"), records=records)
    summary = score_records(records, rules=cfg.rules, allow_partial=cfg.allow_partial,
                            require_gate=cfg.require_gate, models=models)
    summary["images_dir"] = images_folder.get("dir")
    summary["folder_warnings"] = list(images_folder.get("warnings") or [])
    summary["per_image"] = [{k: r[k] for k in ("file", "tag", "correct", "reason")} for r in summary["per_image"]]
    return summary


def detector_line(det: Mapping[str, Any]) -> str:
    """One line naming the detector backend, its versions and the weights that ran (from the gate record)."""
    backend = det.get("backend")
    if backend == "transformers":
        ver = f"transformers {det.get('transformers')}, torch {det.get('torch')}"
        weights = f"converted weights sha256 {str(det.get('converted_sha256'))[:12]}"
    else:
        ops = det.get("ops") or {}
        ver = f"mmdet {det.get('mmdet')}, {det.get('mmcv')}, deformable attention {ops.get('ms_deform_attn', '?')}"
        weights = "weights loaded as is"
    ckpt = str(det.get("checkpoint_sha256"))[:12] if det.get("checkpoint_sha256") else "random weights"
    return (f"Detector: Mask2Former Swin-S COCO, backend {backend} ({ver}); checkpoint sha256 {ckpt} "
            f"({det.get('checkpoint_format') or '-'}), {weights}; device {det.get('device')}.")


def render_detect_run(summary: Mapping[str, Any], reference: Mapping[str, Mapping[str, Any]]) -> str:
    """Table 3 with this run's row (labelled by the images' generator), then the folder's warnings."""
    gen = (summary.get("models") or {}).get("generator") or {}
    text = render_table3(summary, reference, our_label=gen.get("name") or "ours")
    det = (summary.get("models") or {}).get("detector") or {}
    if det.get("backend"):
        text += detector_line(det) + "\n"
    if summary.get("folder_warnings"):
        text += "\nFolder warnings:\n" + "\n".join(f"- {w}" for w in summary["folder_warnings"]) + "\n"
    return text
