"""Score stage: predictions / intervals / frame_scores against ground truth.

Input: a `predictions` artifact (classification), an `intervals` artifact or ActivityNet
predictions JSON (temporal localization), or a `frame_scores` artifact (anomaly); ground truth in
any format of `zsar_cli.datasets` (predictions with a `true_label` column need none).
Output: a report object (`ClassificationReport`, `LocalizationReport`, `AnomalyReport`) with a
JSON summary, and optionally a `metrics` artifact (one row per metric value).

Nothing is dropped silently: videos without predictions or with error rows count as wrong and
are reported; predicted labels unknown to the ground truth, videos unknown to it, invalid
intervals and NaN scores are counted and listed as warnings.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import STDIO, read_artifact, write_artifact
from zsar_cli.datasets import (
    ANOMALY_FORMATS,
    AnomalyGT,
    ClassificationGT,
    LocalizationGT,
    load_ground_truth,
    normalize_label,
    read_activitynet_predictions,
    video_key,
)
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.metrics import (
    AccuracyResult,
    DetectionResult,
    FrameResult,
    accuracy_metrics,
    expand_frame_scores,
    frame_metrics,
    span_labels,
    subset_class_map,
    temporal_ap,
)
from zsar_cli.stages.score_config import ScoreConfig as ScoreConfig

TASK_BY_KIND = {
    "predictions": "classification",
    "intervals": "localization",
    "frame_scores": "anomaly",
}
_MAX_LISTED = 5


def _listed(items: Sequence[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", … (+{len(items) - _MAX_LISTED})" if len(items) > _MAX_LISTED else "")


def _num(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class _IdMatcher:
    """Maps prediction video ids onto ground-truth ids: exact, then file stem, then with or
    without ActivityNet's "v_" prefix (its JSON keys lack it, its video files carry it)."""

    def __init__(self, gt_ids: Sequence[str]) -> None:
        self.exact = set(gt_ids)
        self.loose: dict[str, str] = {}
        for gid in gt_ids:
            for alias in self._aliases(gid):
                self.loose.setdefault(alias, gid)

    @staticmethod
    def _aliases(vid: str) -> list[str]:
        stem = video_key(vid)
        bare = stem[2:] if stem.startswith("v_") else stem
        return [stem, bare, "v_" + bare]

    def __call__(self, vid: str) -> str | None:
        if vid in self.exact:
            return vid
        for alias in self._aliases(vid):
            if alias in self.loose:
                return self.loose[alias]
        return None


# ---------------------------------------------------------------------------------------------
# Reports


@dataclass
class ClassificationReport:
    classes: list[str]
    accuracy: AccuracyResult
    n_videos: int
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extra_videos: list[str] = field(default_factory=list)
    unknown_labels: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    n_gt_classes: int = 0
    # Per video (aligned): true class index and scores per class (NaN where not predicted).
    video_ids: list[str] = field(default_factory=list, repr=False)
    true_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    score_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    task = "classification"

    def summary(self) -> dict[str, Any]:
        acc = self.accuracy
        gt_classes = self.classes[: self.n_gt_classes]
        return {
            "task": self.task,
            "videos": self.n_videos,
            "top1": acc.top1,
            "top5": acc.top5,
            "mean_class": acc.mean_class,
            "missing_videos": len(self.missing),
            "error_videos": len(self.errors),
            "extra_videos": len(self.extra_videos),
            "unknown_labels": self.unknown_labels,
            "per_class_recall": {
                c: _num(float(r)) for c, r in zip(gt_classes, acc.per_class_recall, strict=False)
            },
            "confusion": {
                "rows": gt_classes,
                "columns": [*self.classes, "(no prediction)"],
                "matrix": acc.confusion[: self.n_gt_classes].tolist(),
            },
            "warnings": self.warnings,
        }

    def metric_rows(self) -> list[dict[str, Any]]:
        acc = self.accuracy
        rows = [
            _row(self.task, "top1", acc.top1),
            _row(self.task, "top5", acc.top5),
            _row(self.task, "mean_class_accuracy", acc.mean_class),
            _row(self.task, "videos", self.n_videos),
            _row(self.task, "missing_videos", len(self.missing)),
            _row(self.task, "error_videos", len(self.errors)),
            _row(self.task, "extra_videos", len(self.extra_videos)),
        ]
        for label, recall in zip(
            self.classes[: self.n_gt_classes], acc.per_class_recall, strict=False
        ):
            rows.append(_row(self.task, "recall", float(recall), label=label))
        columns = [*self.classes, "(no prediction)"]
        for i, label in enumerate(self.classes[: self.n_gt_classes]):
            for j, count in enumerate(acc.confusion[i]):
                if count:
                    rows.append(
                        _row(
                            self.task, "confusion", float(count), label=label, predicted=columns[j]
                        )
                    )
        return rows

    def headline(self) -> list[tuple[str, str]]:
        acc = self.accuracy
        return [
            ("videos", str(self.n_videos)),
            ("top-1", f"{acc.top1:.4f}"),
            ("top-5", f"{acc.top5:.4f}"),
            ("mean-class accuracy", f"{acc.mean_class:.4f}"),
            ("missing / error videos (wrong)", f"{len(self.missing)} / {len(self.errors)}"),
        ]


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
                c: {str(t): _num(float(res.ap[i, k])) for i, t in enumerate(thr)}
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
            rows.append(_row(self.task, "mAP", float(res.map[i]), threshold=float(t)))
            for k, c in enumerate(self.classes):
                if res.npos[k] > 0:
                    rows.append(_row(self.task, "AP", float(res.ap[i, k]), float(t), label=c))
        rows.append(_row(self.task, "average_mAP", res.average_map))
        if self.subset:
            for i, t in enumerate(res.thresholds):
                rows.append(
                    _row(self.task, "subset_mAP_mean", self.subset["mAP_mean"][i], float(t))
                )
                rows.append(_row(self.task, "subset_mAP_std", self.subset["mAP_std"][i], float(t)))
            rows.append(_row(self.task, "subset_average_mAP_mean", self.subset["average_mAP_mean"]))
            rows.append(_row(self.task, "subset_average_mAP_std", self.subset["average_mAP_std"]))
        for name, value in (
            ("predictions", self.n_predictions),
            ("missing_videos", len(self.missing)),
            ("extra_videos", len(self.extra_videos)),
            ("unknown_label_predictions", sum(self.unknown_labels.values())),
            ("invalid_intervals", self.invalid),
        ):
            rows.append(_row(self.task, name, value))
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


@dataclass
class AnomalyReport:
    result: FrameResult
    n_videos: int
    label: str | None
    fill: str
    missing: list[str] = field(default_factory=list)
    extra_videos: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # For plots: per video, expanded frame scores and frame labels.
    per_video: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    task = "anomaly"

    def summary(self) -> dict[str, Any]:
        r = self.result
        return {
            "task": self.task,
            "roc_auc": _num(r.roc_auc),
            "ap": _num(r.ap),
            "videos": self.n_videos,
            "frames": r.n_frames,
            "anomalous_frames": r.n_positive,
            "label": self.label,
            "fill": self.fill,
            "missing_videos": len(self.missing),
            "extra_videos": len(self.extra_videos),
            "warnings": self.warnings,
        }

    def metric_rows(self) -> list[dict[str, Any]]:
        r = self.result
        return [
            _row(self.task, "roc_auc", r.roc_auc, label=self.label),
            _row(self.task, "ap", r.ap, label=self.label),
            _row(self.task, "videos", self.n_videos),
            _row(self.task, "frames", r.n_frames),
            _row(self.task, "anomalous_frames", r.n_positive),
            _row(self.task, "missing_videos", len(self.missing)),
            _row(self.task, "extra_videos", len(self.extra_videos)),
        ]

    def headline(self) -> list[tuple[str, str]]:
        r = self.result
        return [
            ("frame ROC-AUC", f"{r.roc_auc:.4f}"),
            ("frame AP", f"{r.ap:.4f}"),
            ("videos / frames (anomalous)", f"{self.n_videos} / {r.n_frames} ({r.n_positive})"),
        ]


Report = ClassificationReport | LocalizationReport | AnomalyReport


def _row(
    task: str,
    metric: str,
    value: float,
    threshold: float | None = None,
    label: str | None = None,
    predicted: str | None = None,
) -> dict[str, Any]:
    return {
        "task": task,
        "metric": metric,
        "threshold": threshold,
        "label": label,
        "value": float(value),
        "predicted_label": predicted,
    }


def metrics_table(report: Report) -> pa.Table:
    """The report as a `metrics` table (plus a predicted_label column for confusion cells)."""
    from zsar_cli.artifacts import build_table

    rows = report.metric_rows()
    columns = {k: [r[k] for r in rows] for k in ("task", "metric", "threshold", "label", "value")}
    columns["predicted_label"] = [r["predicted_label"] for r in rows]
    return build_table("metrics", columns, extra_fields=[pa.field("predicted_label", pa.string())])


# ---------------------------------------------------------------------------------------------
# Classification


def _class_index(classes: list[str]) -> dict[str, int]:
    return {normalize_label(c): i for i, c in enumerate(classes)}


def score_classification(
    predictions: pa.Table, gt: ClassificationGT | None = None, top_k: int = 5
) -> ClassificationReport:
    """Accuracy family of a `predictions` table against video labels.

    Without `gt`, the table's `true_label` column is the ground truth (classify writes it when
    the input list carries labels). Ground-truth videos with no prediction rows or with an
    error row count as wrong.
    """
    names = predictions.schema.names
    ids = predictions.column("video_id").to_pylist()
    labels = predictions.column("label").to_pylist()
    scores = predictions.column("score").to_numpy(zero_copy_only=False).astype(float)
    ranks = predictions.column("rank").to_pylist() if "rank" in names else [None] * len(ids)
    errors = predictions.column("error").to_pylist() if "error" in names else [None] * len(ids)
    if gt is None:
        if "true_label" not in names:
            raise InputError("predictions have no true_label column; give ground truth with --gt")
        truth: dict[str, str] = {}
        for vid, tl in zip(ids, predictions.column("true_label").to_pylist(), strict=True):
            if tl is not None:
                truth.setdefault(vid, tl)
        if not truth:
            raise InputError("predictions' true_label column is empty; give ground truth with --gt")
        gt = ClassificationGT(truth, sorted(set(truth.values()), key=normalize_label), "true_label")

    matcher = _IdMatcher(list(gt.labels))
    classes = list(gt.classes)
    index = _class_index(classes)
    n_gt_classes = len(classes)
    per_video: dict[str, list[tuple[float, float, int]]] = {}
    error_videos: set[str] = set()
    extra: set[str] = set()
    unknown: Counter[str] = Counter()
    for i, vid in enumerate(ids):
        gid = matcher(vid)
        if gid is None:
            extra.add(vid)
            continue
        if errors[i] is not None:
            error_videos.add(gid)
            continue
        label = labels[i]
        if label is None:
            continue
        key = normalize_label(label)
        if key not in index:
            unknown[label] += 1
            index[key] = len(classes)
            classes.append(label)
        rank = ranks[i]
        per_video.setdefault(gid, []).append(
            (rank if rank is not None else math.inf, -scores[i], index[key])
        )

    video_ids = list(gt.labels)
    n = len(video_ids)
    ranked = np.full((n, top_k), -1, np.int64)
    true_idx = np.empty(n, np.int64)
    score_matrix = np.full((n, len(classes)), np.nan)
    missing: list[str] = []
    for row, gid in enumerate(video_ids):
        true_idx[row] = index[normalize_label(gt.labels[gid])]
        entries = per_video.get(gid)
        if not entries or gid in error_videos:
            if gid not in error_videos:
                missing.append(gid)
            continue
        entries.sort()
        best = [e[2] for e in entries[:top_k]]
        ranked[row, : len(best)] = best
        for _r, neg, cls in entries:
            score_matrix[row, cls] = -neg

    acc = accuracy_metrics(true_idx, ranked, len(classes))
    warnings = []
    if missing:
        warnings.append(
            f"{len(missing)} video(s) have no prediction (counted wrong): {_listed(missing)}"
        )
    if error_videos:
        warnings.append(
            f"{len(error_videos)} video(s) failed upstream (counted wrong): "
            f"{_listed(sorted(error_videos))}"
        )
    if extra:
        warnings.append(
            f"{len(extra)} predicted video(s) are not in the ground truth (ignored): "
            f"{_listed(sorted(extra))}"
        )
    if unknown:
        warnings.append(
            f"{sum(unknown.values())} prediction(s) use labels absent from the ground truth "
            f"(counted wrong): {_listed(sorted(unknown))}"
        )
    return ClassificationReport(
        classes,
        acc,
        n,
        missing,
        sorted(error_videos),
        sorted(extra),
        dict(unknown),
        warnings,
        n_gt_classes,
        video_ids,
        true_idx,
        score_matrix,
    )


# ---------------------------------------------------------------------------------------------
# Localization


def _codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Distinct strings of a column (nulls as "") and each row's index into them."""
    import pyarrow.compute as pc

    # One chunk first: shard parts arrive as several, and per-chunk dictionaries would differ.
    encoded = pc.dictionary_encode(pc.fill_null(column, "").combine_chunks())
    return (
        encoded.dictionary.to_pylist(),
        encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
    )


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
    index = _class_index(classes)
    videos = list(dict.fromkeys([*gt.videos, *gt.video_id]))
    vindex = {v: i for i, v in enumerate(videos)}
    matcher = _IdMatcher(videos)

    start = intervals.column("t_start").to_numpy(zero_copy_only=False).astype(float)
    end = intervals.column("t_end").to_numpy(zero_copy_only=False).astype(float)
    score = intervals.column("score").to_numpy(zero_copy_only=False).astype(float)

    # Label and video codes via their distinct values (1e5+ rows, a few hundred distinct).
    uniq_labels, label_inv = _codes(intervals.column("label"))
    label_code = np.array([index.get(normalize_label(u), -1) for u in uniq_labels] or [0], np.int64)
    pred_class = label_code[label_inv]
    uniq_ids, id_inv = _codes(intervals.column("video_id"))
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
            f"(not scored; ActivityNet's loader would refuse them): {_listed(sorted(unknown))}"
        )
    if extra:
        warnings.append(
            f"{len(extra)} predicted video(s) are not in the ground truth (their intervals are "
            f"false positives): {_listed(extra)}"
        )
    if missing:
        warnings.append(f"{len(missing)} annotated video(s) have no interval: {_listed(missing)}")
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
        warnings.append(f"{len(empty)} class(es) have no prediction (AP 0): {_listed(empty)}")

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


# ---------------------------------------------------------------------------------------------
# Anomaly


def _anomaly_rows(frame_scores: pa.Table, label: str | None) -> tuple[pa.Table, str | None]:
    import pyarrow.compute as pc

    if "label" not in frame_scores.schema.names:
        if label is not None:
            raise InputError(f"--label {label!r}: frame_scores have no label column")
        return frame_scores, None
    col = frame_scores.column("label")
    if label is None:
        unlabeled = pc.is_null(col)
        if pc.any(unlabeled).as_py():
            return frame_scores.filter(unlabeled), None
        present = sorted({v for v in col.unique().to_pylist() if v is not None})
        if len(present) == 1:
            return frame_scores, present[0]
        raise InputError(
            f"frame_scores hold scores for {len(present)} labels ({_listed(present)}); "
            "choose one with --label"
        )
    wanted = normalize_label(label)
    keys = [v for v in col.unique().to_pylist() if v is not None and normalize_label(v) == wanted]
    if not keys:
        raise InputError(f"--label {label!r}: no frame_scores rows with that label")
    return frame_scores.filter(pc.is_in(col, pa.array(keys))), keys[0]


def score_anomaly(
    frame_scores: pa.Table, gt: AnomalyGT, config: ScoreConfig = ScoreConfig()
) -> AnomalyReport:
    """Frame-level ROC-AUC and AP over all frames of all videos concatenated (UCF-Crime).

    Each row's frame_index is the decoded frame number (0-based); UCF-Crime spans are 1-based
    inclusive and were shifted on reading. A video's frames run from 0 to its last scored
    frame; frames between samples take the score of the nearest (default) or previous scored
    frame. Frames after the last sample are not evaluated (their count is unknown here).
    """
    config.validate()
    rows, label = _anomaly_rows(frame_scores, config.label)
    uniq, inv = _codes(rows.column("video_id"))
    frame = rows.column("frame_index").to_numpy(zero_copy_only=False)
    score = rows.column("score").to_numpy(zero_copy_only=False).astype(float)
    valid = ~np.isnan(frame.astype(float)) if frame.dtype.kind == "f" else np.ones(len(frame), bool)
    inv, frame, score = inv[valid], frame[valid].astype(np.int64), score[valid]
    matcher = _IdMatcher(list(gt.spans))
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    per_video: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    extra: list[str] = []
    all_labels, all_scores = [], []
    for k, vid in enumerate(uniq):
        gid = matcher(str(vid))
        if gid is None:
            extra.append(str(vid))
            continue
        sel = order[bounds[k] : bounds[k + 1]]
        if sel.size == 0:  # only rows without frame_index
            continue
        n_frames = int(frame[sel].max()) + 1
        expanded = expand_frame_scores(frame[sel], score[sel], n_frames, config.fill)
        labels = span_labels(gt.spans[gid], n_frames)
        per_video[gid] = (expanded, labels)
        all_labels.append(labels)
        all_scores.append(expanded)
    missing = sorted(set(gt.spans) - set(per_video))
    if not per_video:
        raise InputError("no frame_scores video matches the ground truth (check video ids)")
    result = frame_metrics(np.concatenate(all_labels), np.concatenate(all_scores))
    warnings = []
    if missing:
        warnings.append(
            f"{len(missing)} annotated video(s) have no scores (not evaluated): {_listed(missing)}"
        )
    if extra:
        warnings.append(
            f"{len(extra)} scored video(s) are not in the ground truth (ignored): {_listed(extra)}"
        )
    if (~valid).any():
        warnings.append(f"{int((~valid).sum())} row(s) without frame_index ignored")
    if math.isnan(result.roc_auc):
        warnings.append("ROC-AUC undefined: the evaluated frames are all normal or all anomalous")
    return AnomalyReport(
        result, len(per_video), label, config.fill, missing, extra, warnings, per_video
    )


# ---------------------------------------------------------------------------------------------
# Whole stage


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


def evaluate(
    pred: LoadedPredictions, gt_path: str | Path | None, config: ScoreConfig
) -> tuple[Report, str | None, str | None]:
    """Score loaded predictions; returns (report, gt format, gt source)."""
    config.validate()
    task = TASK_BY_KIND[pred.kind]
    if gt_path is None:
        if task != "classification":
            raise InputError(f"{pred.source}: {pred.kind} need ground truth: pass --gt")
        return score_classification(pred.table), None, None
    fmt, gt = load_ground_truth(gt_path, config.gt_format, config.split, config.subset)
    if task == "classification":
        if isinstance(gt, LocalizationGT):
            gt = gt.to_classification()
        if not isinstance(gt, ClassificationGT):
            raise InputError(f"{gt_path}: {fmt} annotations cannot score classification")
        return score_classification(pred.table, gt), fmt, str(gt_path)
    if task == "localization":
        if not isinstance(gt, LocalizationGT):
            raise InputError(
                f"{gt_path}: {fmt} annotations cannot score localization (use THUMOS14 or "
                "ActivityNet ground truth)"
            )
        return score_localization(pred.table, gt, config, fmt), fmt, str(gt_path)
    if not isinstance(gt, AnomalyGT):
        raise InputError(
            f"{gt_path}: {fmt} annotations cannot score anomaly frames (use {ANOMALY_FORMATS[0]})"
        )
    return score_anomaly(pred.table, gt, config), fmt, str(gt_path)


def run(
    pred_path: str | Path,
    gt_path: str | Path | None = None,
    output: str | Path | None = None,
    config: ScoreConfig = ScoreConfig(),
) -> Report:
    """Read, score, and write a `metrics` artifact when `output` is given."""
    pred = load_predictions(pred_path)
    report, fmt, gt_source = evaluate(pred, gt_path, config)
    if output is not None:
        import json

        write_artifact(
            metrics_table(report),
            output,
            "metrics",
            config,
            upstream=pred.upstream,
            extra_metadata={
                "task": report.task,
                "gt": gt_source or "true_label",
                "gt_format": fmt or "true_label",
                "summary": json.dumps(report.summary(), default=str),
            },
        )
    return report
