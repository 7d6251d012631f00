"""Temporal localization scoring: an `intervals` table against annotated action instances.

Input: an `intervals` table (video_id, label, t_start, t_end, score; ActivityNet predictions
JSON arrives as one) and a `LocalizationGT` (THUMOS14 or ActivityNet).
Output: a `LocalizationReport` (interpolated AP per class and tIoU threshold, mAP per threshold,
average mAP, optionally mAP over random class subsets) with its JSON summary and `metrics` rows.

Intervals with labels unknown to the ground truth are not scored (ActivityNet's loader refuses
them); intervals of unknown videos are false positives; reversed, negative or non-finite
intervals never match; NaN scores rank first. All of them are counted and reported as warnings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.datasets import LocalizationGT, normalize_label
from zsar_cli.errors import ConfigError
from zsar_cli.metrics import DetectionResult, subset_class_map, temporal_ap
from zsar_cli.stages.score_common import (
    IdMatcher,
    class_index,
    column_codes,
    json_number,
    listed,
    metric_row,
)
from zsar_cli.stages.score_config import ScoreConfig


@dataclass
class LocalizationReport:
    classes: list[str]
    result: DetectionResult
    gt_format: str
    compat: str | None
    n_predictions: int
    n_gt: int
    missing: list[str] = field(default_factory=list)
    extra_videos: list[str] = field(default_factory=list)
    unknown_labels: dict[str, int] = field(default_factory=dict)
    invalid: int = 0
    nan_scores: int = 0
    subset: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    # For plots: the scored predictions and ground truth in the codes the result uses.
    pred: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    gt: LocalizationGT | None = field(default=None, repr=False)
    video_names: list[str] = field(default_factory=list, repr=False)

    task = "localization"

    def summary(self) -> dict[str, Any]:
        res = self.result
        thr = [round(float(t), 6) for t in res.thresholds]
        return {
            "task": self.task,
            "gt_format": self.gt_format,
            "compat": self.compat,
            "thresholds": thr,
            "mAP": {str(t): float(m) for t, m in zip(thr, res.map, strict=True)},
            "average_mAP": res.average_map,
            "ap": {
                c: {str(t): json_number(float(res.ap[i, k])) for i, t in enumerate(thr)}
                for k, c in enumerate(self.classes)
                if res.npos[k] > 0
            },
            "classes_with_gt": int(res.has_gt.sum()),
            "predictions": self.n_predictions,
            "ground_truth_instances": self.n_gt,
            "missing_videos": len(self.missing),
            "extra_videos": len(self.extra_videos),
            "unknown_labels": self.unknown_labels,
            "invalid_intervals": self.invalid,
            "nan_scores": self.nan_scores,
            "subset_classes": self.subset,
            "warnings": self.warnings,
        }

    def metric_rows(self) -> list[dict[str, Any]]:
        res = self.result
        rows = []
        for i, t in enumerate(res.thresholds):
            rows.append(metric_row(self.task, "mAP", float(res.map[i]), threshold=float(t)))
            for k, c in enumerate(self.classes):
                if res.npos[k] > 0:
                    rows.append(metric_row(self.task, "AP", float(res.ap[i, k]), float(t), label=c))
        rows.append(metric_row(self.task, "average_mAP", res.average_map))
        if self.subset:
            for i, t in enumerate(res.thresholds):
                rows.append(
                    metric_row(self.task, "subset_mAP_mean", self.subset["mAP_mean"][i], float(t))
                )
                rows.append(
                    metric_row(self.task, "subset_mAP_std", self.subset["mAP_std"][i], float(t))
                )
            rows.append(
                metric_row(self.task, "subset_average_mAP_mean", self.subset["average_mAP_mean"])
            )
            rows.append(
                metric_row(self.task, "subset_average_mAP_std", self.subset["average_mAP_std"])
            )
        for name, value in (
            ("predictions", self.n_predictions),
            ("missing_videos", len(self.missing)),
            ("extra_videos", len(self.extra_videos)),
            ("unknown_label_predictions", sum(self.unknown_labels.values())),
            ("invalid_intervals", self.invalid),
        ):
            rows.append(metric_row(self.task, name, value))
        return rows

    def headline(self) -> list[tuple[str, str]]:
        res = self.result
        out = [(f"mAP@{t:.2f}", f"{m:.4f}") for t, m in zip(res.thresholds, res.map, strict=True)]
        out.append(("average mAP", f"{res.average_map:.4f}"))
        if self.subset:
            out.append(
                (
                    f"average mAP, {self.subset['k']} random classes × {self.subset['splits']}",
                    f"{self.subset['average_mAP_mean']:.4f} ± {self.subset['average_mAP_std']:.4f}",
                )
            )
        out.append(("classes with ground truth", str(int(res.has_gt.sum()))))
        out.append(("predictions / GT instances", f"{self.n_predictions} / {self.n_gt}"))
        return out


def score_localization(
    intervals: pa.Table,
    gt: LocalizationGT,
    config: ScoreConfig = ScoreConfig(),
    gt_format: str | None = None,
) -> LocalizationReport:
    """Per-class interpolated AP at each tIoU threshold, mAP per threshold and their mean."""
    config.validate()
    thresholds = config.thresholds(gt_format)
    compat = config.compat == "anet"
    classes = list(gt.classes)
    index = class_index(classes)
    videos = list(dict.fromkeys([*gt.videos, *gt.video_id]))
    vindex = {v: i for i, v in enumerate(videos)}
    matcher = IdMatcher(videos)

    start = intervals.column("t_start").to_numpy(zero_copy_only=False).astype(float)
    end = intervals.column("t_end").to_numpy(zero_copy_only=False).astype(float)
    score = intervals.column("score").to_numpy(zero_copy_only=False).astype(float)

    # Label and video codes via their distinct values (1e5+ rows, a few hundred distinct).
    uniq_labels, label_inv = column_codes(intervals.column("label"))
    label_code = np.array([index.get(normalize_label(u), -1) for u in uniq_labels] or [0], np.int64)
    pred_class = label_code[label_inv]
    uniq_ids, id_inv = column_codes(intervals.column("video_id"))
    extra: list[str] = []
    codes = []
    for u in uniq_ids:
        gid = matcher(u)
        if gid is None:
            extra.append(u)
            vindex[u] = len(vindex)  # its own video: it matches nothing, counts as FP
            codes.append(vindex[u])
        else:
            codes.append(vindex[gid])
    pred_video = np.asarray(codes or [0], np.int64)[id_inv]

    unknown_mask = pred_class < 0
    unknown = (
        Counter(str(uniq_labels[i]) for i in label_inv[unknown_mask])
        if unknown_mask.any()
        else Counter()
    )
    keep = ~unknown_mask
    bad = ~(np.isfinite(start) & np.isfinite(end)) | (end < start) | (start < 0)
    n_invalid = int((bad & keep).sum())
    n_nan = int((np.isnan(score) & keep).sum())

    gt_video = np.array([vindex[v] for v in gt.video_id], np.int64)
    gt_class = np.array([index[normalize_label(lab)] for lab in gt.label], np.int64)
    ambiguous = None
    if config.ambiguous == "exclude" and gt.ambiguous:
        amb = [
            (vindex[v], s, e) for v, spans in gt.ambiguous.items() if v in vindex for s, e in spans
        ]
        if amb:
            a = np.asarray(amb, float)
            ambiguous = (a[:, 0].astype(np.int64), a[:, 1], a[:, 2])

    result = temporal_ap(
        pred_video[keep],
        pred_class[keep],
        start[keep],
        end[keep],
        score[keep],
        gt_video,
        gt_class,
        gt.t_start,
        gt.t_end,
        len(classes),
        thresholds,
        compat,
        ambiguous,
    )
    predicted_videos = set(pred_video[keep].tolist())
    missing = sorted({v for v in gt.video_id if vindex[v] not in predicted_videos})

    subset = None
    if config.subset_classes:
        try:
            per_split, splits = subset_class_map(
                result.ap, result.has_gt, config.subset_classes, config.subset_splits, config.seed
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        avg = per_split.mean(axis=1)
        subset = {
            "k": config.subset_classes,
            "splits": config.subset_splits,
            "seed": config.seed,
            "mAP_mean": per_split.mean(axis=0).tolist(),
            "mAP_std": per_split.std(axis=0).tolist(),
            "average_mAP_mean": float(avg.mean()),
            "average_mAP_std": float(avg.std()),
            "split_classes": [[classes[i] for i in s] for s in splits],
        }

    warnings = []
    if unknown:
        warnings.append(
            f"{sum(unknown.values())} interval(s) have labels absent from the ground truth "
            f"(not scored; ActivityNet's loader would refuse them): {listed(sorted(unknown))}"
        )
    if extra:
        warnings.append(
            f"{len(extra)} predicted video(s) are not in the ground truth (their intervals are "
            f"false positives): {listed(extra)}"
        )
    if missing:
        warnings.append(f"{len(missing)} annotated video(s) have no interval: {listed(missing)}")
    if n_invalid:
        warnings.append(
            f"{n_invalid} interval(s) are reversed, negative or non-finite (never a match)"
        )
    if n_nan:
        warnings.append(f"{n_nan} interval(s) have NaN scores (ranked first, as ActivityNet does)")
    empty = [
        c for k, c in enumerate(classes) if result.npos[k] > 0 and not (pred_class[keep] == k).any()
    ]
    if empty:
        warnings.append(f"{len(empty)} class(es) have no prediction (AP 0): {listed(empty)}")

    return LocalizationReport(
        classes,
        result,
        gt_format or "",
        config.compat,
        int(keep.sum()),
        len(gt.video_id),
        missing,
        extra,
        dict(unknown),
        n_invalid,
        n_nan,
        subset,
        warnings,
        pred={
            "video": pred_video[keep],
            "class": pred_class[keep],
            "t_start": start[keep],
            "t_end": end[keep],
            "score": score[keep],
        },
        gt=gt,
        video_names=list(vindex),
    )
