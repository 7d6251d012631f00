"""Score stage: predictions / intervals / frame_scores against ground truth.

Input: a `predictions` artifact (classification), an `intervals` artifact or ActivityNet
predictions JSON (temporal localization), or a `frame_scores` artifact (anomaly); ground truth in
any format of `zsar_cli.datasets` (predictions with a `true_label` column need none).
Output: a report object (`ClassificationReport`, `LocalizationReport`, `AnomalyReport`,
`GroundingReport` for intervals against Charades-STA moments) with a
JSON summary, and optionally a `metrics` artifact (one row per metric value).

Nothing is dropped silently: videos without predictions or with error rows count as wrong and
are reported; predicted labels unknown to the ground truth, videos unknown to it, invalid
intervals and NaN scores are counted and listed as warnings.

This module loads, dispatches by artifact kind and writes; the scoring of each task lives in
`score_classification`, `score_localization`, `score_grounding` and `score_anomaly`
(re-exported here), the options in `score_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from zsar_cli.artifacts import STDIO, read_artifact, write_artifact
from zsar_cli.datasets import (
    ANOMALY_FORMATS,
    AnomalyGT,
    ClassificationGT,
    GroundingGT,
    LocalizationGT,
    load_ground_truth,
    read_activitynet_predictions,
)
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.metrics import ANET_TIOU, THUMOS_TIOU
from zsar_cli.outputs import note_input, scoped
from zsar_cli.stages.score_anomaly import AnomalyReport, score_anomaly
from zsar_cli.stages.score_classification import (
    ClassificationReport,
    gt_from_true_label,
    score_classification,
)
from zsar_cli.stages.score_common import IdMatcher
from zsar_cli.stages.score_config import (
    AMBIGUOUS_MODES,
    COMPAT_MODES,
    PRESET_BY_FORMAT,
    TASK_BY_KIND,
    ScoreConfig,
)
from zsar_cli.stages.score_grounding import GroundingReport, score_grounding
from zsar_cli.stages.score_localization import LocalizationReport, score_localization

PRESETS = {"thumos": THUMOS_TIOU, "anet": ANET_TIOU}

__all__ = [
    "AMBIGUOUS_MODES",
    "COMPAT_MODES",
    "PRESETS",
    "PRESET_BY_FORMAT",
    "TASK_BY_KIND",
    "AnomalyReport",
    "ClassificationReport",
    "GroundingReport",
    "LoadedPredictions",
    "LocalizationReport",
    "Report",
    "ScoreConfig",
    "evaluate",
    "load_predictions",
    "metrics_table",
    "run",
    "score_anomaly",
    "score_classification",
    "score_grounding",
    "score_localization",
]

Report = ClassificationReport | LocalizationReport | AnomalyReport | GroundingReport


def metrics_table(report: Report) -> pa.Table:
    """The report as a `metrics` table (plus a predicted_label column for confusion cells)."""
    from zsar_cli.artifacts import build_table

    rows = report.metric_rows()
    columns = {k: [r[k] for r in rows] for k in ("task", "metric", "threshold", "label", "value")}
    columns["predicted_label"] = [r["predicted_label"] for r in rows]
    return build_table("metrics", columns, extra_fields=[pa.field("predicted_label", pa.string())])


@dataclass
class LoadedPredictions:
    kind: str
    table: pa.Table
    upstream: list[str]
    source: str


def load_predictions(path: str | Path) -> LoadedPredictions:
    """An artifact of a scorable kind, or ActivityNet predictions JSON (→ intervals)."""
    source = str(path)
    if source != STDIO and Path(source).suffix.lower() == ".json":
        from zsar_cli.artifacts import build_table

        cols = read_activitynet_predictions(source)
        return LoadedPredictions("intervals", build_table("intervals", cols), [], source)
    art = read_artifact(path, tuple(TASK_BY_KIND))
    return LoadedPredictions(art.kind, art.table, [art.cache_key] if art.cache_key else [], source)


def gt_video_ids(gt: ClassificationGT | LocalizationGT | AnomalyGT | GroundingGT) -> list[str]:
    if isinstance(gt, GroundingGT):
        return gt.videos
    if isinstance(gt, ClassificationGT):
        return list(gt.labels)
    if isinstance(gt, LocalizationGT):
        return list(gt.videos)
    return list(gt.spans)


def check_overlap(
    pred: LoadedPredictions,
    gt: ClassificationGT | LocalizationGT | AnomalyGT | GroundingGT,
    gt_path: Any,
) -> None:
    """No video in common is a mistake of the command line (wrong --gt, wrong split), never a
    score of 0: refused, naming the file and one id of each side. (Partial overlaps are
    counted in each report's warnings.)"""
    gt_ids = gt_video_ids(gt)
    predicted = [v for v in dict.fromkeys(pred.table.column("video_id").to_pylist()) if v]
    if not gt_ids or not predicted:
        return
    matcher = IdMatcher(gt_ids)
    if not any(matcher(v) is not None for v in predicted):
        raise InputError(
            f"--gt {gt_path}: no video in common with {pred.source} ({len(predicted)} predicted, "
            f"e.g. {predicted[0]!r}; {len(gt_ids)} annotated, e.g. {gt_ids[0]!r}); wrong "
            "ground truth, split or subset?"
        )


def check_task_options(config: ScoreConfig, task: str, source: str) -> None:
    """An option of another task is a mistake of the command line, not something to ignore."""
    for flag, value, wanted in (
        ("--exclude-class", config.exclude_classes, "classification"),
        ("--class-splits", config.class_splits, "classification"),
        ("--frames", config.frames, "anomaly"),
    ):
        if value and task != wanted:
            raise ConfigError(f"{flag} applies to {wanted} scoring; {source} is {task}")


def evaluate(
    pred: LoadedPredictions, gt_path: str | Path | None, config: ScoreConfig
) -> tuple[Report, str | None, str | None]:
    """Score loaded predictions; returns (report, gt format, gt source)."""
    config.validate()
    task = TASK_BY_KIND[pred.kind]
    check_task_options(config, task, pred.source)
    if gt_path is None:
        if task != "classification":
            raise InputError(f"{pred.source}: {pred.kind} need ground truth: pass --gt")
        return classification(pred.table, None, config), None, None
    fmt, gt = load_ground_truth(gt_path, config.gt_format, config.split, config.subset)
    if task == "classification":
        if isinstance(gt, LocalizationGT):
            gt = gt.to_classification()
        if not isinstance(gt, ClassificationGT):
            raise InputError(f"{gt_path}: {fmt} annotations cannot score classification")
        check_overlap(pred, gt, gt_path)
        return classification(pred.table, gt, config), fmt, str(gt_path)
    if task == "localization" and isinstance(gt, GroundingGT):
        check_overlap(pred, gt, gt_path)
        return score_grounding(pred.table, gt, config.tiou), fmt, str(gt_path)
    if task == "localization":
        if not isinstance(gt, LocalizationGT):
            raise InputError(
                f"{gt_path}: {fmt} annotations cannot score localization (use THUMOS14, "
                "ActivityNet or Charades-STA ground truth)"
            )
        check_overlap(pred, gt, gt_path)
        return score_localization(pred.table, gt, config, fmt), fmt, str(gt_path)
    if not isinstance(gt, AnomalyGT):
        raise InputError(
            f"{gt_path}: {fmt} annotations cannot score anomaly frames (use {ANOMALY_FORMATS[0]})"
        )
    check_overlap(pred, gt, gt_path)
    counts = None
    if config.frames is not None:
        counts, frames_key = read_frame_counts(config.frames)
        if frames_key:  # the frames artifact decides the result too: it joins the provenance
            pred.upstream.append(frames_key)
    return score_anomaly(pred.table, gt, config, counts), fmt, str(gt_path)


def classification(
    table: pa.Table, gt: ClassificationGT | None, config: ScoreConfig
) -> ClassificationReport:
    """score_classification, under --exclude-class and --class-splits when given."""
    if not (config.exclude_classes or config.class_splits):
        return score_classification(table, gt)
    from zsar_cli.stages.score_splits import exclude_classes, score_class_splits

    gt = gt or gt_from_true_label(table)
    excluded: dict[str, int] = {}
    if config.exclude_classes:
        table, gt, excluded = exclude_classes(table, gt, config.exclude_classes)
    report = score_classification(table, gt)
    report.excluded = excluded
    if config.class_splits:
        report.class_splits = score_class_splits(report, config)
    return report


def read_frame_counts(path: str | Path) -> tuple[dict[str, int], str | None]:
    """Each video's frame_count from a frames artifact (only video_id and frame_count are
    read, never the images); returns (counts, the artifact's cache key)."""
    import numpy as np

    art = read_artifact(path, "frames", columns=["video_id", "frame_count"])
    if "frame_count" not in art.table.schema.names:
        raise InputError(
            f"--frames {path}: the frames artifact has no frame_count column (made before "
            "extract-frames recorded video lengths?)"
        )
    ids = art.table.column("video_id").to_pylist()
    values = art.table.column("frame_count").to_numpy(zero_copy_only=False)
    counts: dict[str, int] = {}
    for vid, value in zip(ids, values, strict=True):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue  # an error row: no length known
        if counts.setdefault(vid, int(value)) != int(value):
            raise InputError(f"--frames {path}: video {vid!r} has two frame_count values")
    return counts, art.cache_key


@scoped
def run(
    pred_path: str | Path,
    gt_path: str | Path | None = None,
    output: str | Path | None = None,
    config: ScoreConfig = ScoreConfig(),
    force: bool = False,
) -> Report:
    """Read, score, and write a `metrics` artifact when `output` is given."""
    if gt_path is not None:
        note_input(gt_path)
    pred = load_predictions(pred_path)
    report, fmt, gt_source = evaluate(pred, gt_path, config)
    if output is not None:
        import json

        write_artifact(
            metrics_table(report),
            output,
            "metrics",
            # The provenance, not the dataclass: options added later (--class-splits, --frames,
            # ...) stay out of the key while unset, so earlier metrics keep theirs.
            config.provenance(),
            upstream=pred.upstream,
            extra_metadata={
                "task": report.task,
                "gt": gt_source or "true_label",
                "gt_format": fmt or "true_label",
                "summary": json.dumps(report.summary(), default=str),
            },
            force=force,
        )
    return report
