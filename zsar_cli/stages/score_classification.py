"""Classification scoring: a `predictions` table against video labels.

Input: a `predictions` table (video_id, label, score, rank, optional true_label and error) and
a `ClassificationGT` (or none: the table's true_label column is the ground truth).
Output: a `ClassificationReport` (top-1, top-5, mean-class accuracy, per-class recall and the
confusion matrix) with its JSON summary and `metrics` rows.

Videos without predictions or with error rows count as wrong; labels unknown to the ground
truth count as wrong and become extra confusion columns; videos unknown to it are ignored. All
of them are reported as warnings.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.datasets import ClassificationGT, normalize_label
from zsar_cli.errors import InputError
from zsar_cli.metrics import AccuracyResult, accuracy_metrics
from zsar_cli.stages.score_common import IdMatcher, class_index, json_number, listed, metric_row


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
    # Per video and class: the class's place in the video's ranking (0 = best), NOT_RANKED
    # where the video has no row for it; restricting the ranking to some classes (class
    # splits) keeps this order, which is the predictions' rank, not always their score order.
    rank_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32), repr=False)
    # Classes dropped by --exclude-class, and how many ground-truth videos went with them.
    excluded: dict[str, int] = field(default_factory=dict)
    # Zero-shot class splits (zsar_cli.stages.score_splits.SplitsResult), when asked.
    class_splits: Any = None

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
                c: json_number(float(r))
                for c, r in zip(gt_classes, acc.per_class_recall, strict=False)
            },
            "confusion": {
                "rows": gt_classes,
                "columns": [*self.classes, "(no prediction)"],
                "matrix": acc.confusion[: self.n_gt_classes].tolist(),
            },
            **({"excluded_classes": self.excluded} if self.excluded else {}),
            **({"class_splits": self.class_splits.summary()} if self.class_splits else {}),
            "warnings": self.warnings,
        }

    def metric_rows(self) -> list[dict[str, Any]]:
        acc = self.accuracy
        rows = [
            metric_row(self.task, "top1", acc.top1),
            metric_row(self.task, "top5", acc.top5),
            metric_row(self.task, "mean_class_accuracy", acc.mean_class),
            metric_row(self.task, "videos", self.n_videos),
            metric_row(self.task, "missing_videos", len(self.missing)),
            metric_row(self.task, "error_videos", len(self.errors)),
            metric_row(self.task, "extra_videos", len(self.extra_videos)),
        ]
        for label, recall in zip(
            self.classes[: self.n_gt_classes], acc.per_class_recall, strict=False
        ):
            rows.append(metric_row(self.task, "recall", float(recall), label=label))
        columns = [*self.classes, "(no prediction)"]
        for i, label in enumerate(self.classes[: self.n_gt_classes]):
            for j, count in enumerate(acc.confusion[i]):
                if count:
                    rows.append(
                        metric_row(
                            self.task, "confusion", float(count), label=label, predicted=columns[j]
                        )
                    )
        if self.class_splits:
            rows.extend(self.class_splits.metric_rows(self.task))
        return rows

    def headline(self) -> list[tuple[str, str]]:
        acc = self.accuracy
        return [
            ("videos", str(self.n_videos)),
            ("top-1", f"{acc.top1:.4f}"),
            ("top-5", f"{acc.top5:.4f}"),
            ("mean-class accuracy", f"{acc.mean_class:.4f}"),
            ("missing / error videos (wrong)", f"{len(self.missing)} / {len(self.errors)}"),
            *((f"excluded class {c} (videos)", str(n)) for c, n in self.excluded.items()),
            *(self.class_splits.headline() if self.class_splits else ()),
        ]


NOT_RANKED = np.iinfo(np.int32).max


def gt_from_true_label(predictions: pa.Table) -> ClassificationGT:
    """The ground truth a `predictions` table carries in its true_label column."""
    names = predictions.schema.names
    if "true_label" not in names:
        raise InputError("predictions have no true_label column; give ground truth with --gt")
    truth: dict[str, str] = {}
    ids = predictions.column("video_id").to_pylist()
    for vid, tl in zip(ids, predictions.column("true_label").to_pylist(), strict=True):
        if tl is not None:
            truth.setdefault(vid, tl)
    if not truth:
        raise InputError("predictions' true_label column is empty; give ground truth with --gt")
    return ClassificationGT(truth, sorted(set(truth.values()), key=normalize_label), "true_label")


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
        gt = gt_from_true_label(predictions)

    matcher = IdMatcher(list(gt.labels))
    classes = list(gt.classes)
    index = class_index(classes)
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
    rank_matrix = np.full((n, len(classes)), NOT_RANKED, np.int32)
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
        for place, (_r, neg, cls) in enumerate(entries):
            score_matrix[row, cls] = -neg
            # A label listed twice keeps its better place (the first after sorting).
            rank_matrix[row, cls] = min(rank_matrix[row, cls], place)

    acc = accuracy_metrics(true_idx, ranked, len(classes))
    warnings = []
    if missing:
        warnings.append(
            f"{len(missing)} video(s) have no prediction (counted wrong): {listed(missing)}"
        )
    if error_videos:
        warnings.append(
            f"{len(error_videos)} video(s) failed upstream (counted wrong): "
            f"{listed(sorted(error_videos))}"
        )
    if extra:
        warnings.append(
            f"{len(extra)} predicted video(s) are not in the ground truth (ignored): "
            f"{listed(sorted(extra))}"
        )
    if unknown:
        warnings.append(
            f"{sum(unknown.values())} prediction(s) use labels absent from the ground truth "
            f"(counted wrong): {listed(sorted(unknown))}"
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
        rank_matrix,
    )
