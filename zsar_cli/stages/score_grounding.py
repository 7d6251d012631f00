"""Moment grounding scoring: an `intervals` table (one ranked list of moments per video and
query sentence, from `localize --method grounding`) against Charades-STA moments.

Input: an `intervals` table (video_id, label = the query sentence, t_start, t_end, score) and a
`GroundingGT`. Output: a `GroundingReport`: R@1 and R@5 at temporal IoU 0.3 / 0.5 / 0.7 (the
share of annotated moments whose top-1 / any of the top-5 predicted moments overlaps it at
least that much) and mIoU (mean top-1 IoU), the Charades-STA protocol, with its JSON summary and
`metrics` rows.

Each annotated line is one query: a moment without a prediction counts as a miss (IoU 0) and is
reported; predictions of sentences or videos not annotated are counted and ignored. Sentences
match after whitespace is collapsed (the same cleaning as the readers), case-sensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.datasets import GroundingGT
from zsar_cli.datasets.grounding import clean_sentence
from zsar_cli.stages.score_common import IdMatcher, json_number, listed, metric_row

GROUNDING_TIOU: tuple[float, ...] = (0.3, 0.5, 0.7)
RECALL_AT: tuple[int, ...] = (1, 5)


def temporal_iou(starts: np.ndarray, ends: np.ndarray, start: float, end: float) -> np.ndarray:
    """IoU in time of each [starts[i], ends[i]] with [start, end] (0 for empty unions)."""
    inter = np.clip(np.minimum(ends, end) - np.maximum(starts, start), 0.0, None)
    union = np.maximum(ends, end) - np.minimum(starts, start)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


@dataclass
class GroundingReport:
    recall: dict[tuple[int, float], float]  # (k, tIoU) → share of moments
    miou: float
    n_moments: int
    missing: int  # annotated moments without a predicted one
    extra_queries: int  # (video, sentence) pairs predicted but not annotated
    per_moment_iou: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    warnings: list[str] = field(default_factory=list)

    task = "grounding"

    def summary(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "recall": {f"R@{k},IoU={t:g}": json_number(v) for (k, t), v in self.recall.items()},
            "miou": json_number(self.miou),
            "moments": self.n_moments,
            "missing_moments": self.missing,
            "extra_queries": self.extra_queries,
            "warnings": self.warnings,
        }

    def metric_rows(self) -> list[dict[str, Any]]:
        rows = [
            metric_row(self.task, f"recall_at_{k}", v, threshold=t)
            for (k, t), v in self.recall.items()
        ]
        rows.append(metric_row(self.task, "miou", self.miou))
        rows.append(metric_row(self.task, "moments", self.n_moments))
        rows.append(metric_row(self.task, "missing_moments", self.missing))
        return rows

    def headline(self) -> list[tuple[str, str]]:
        out = [
            (f"R@{k} IoU={t:g}", f"{100 * v:.2f}")
            for (k, t), v in self.recall.items()
            if k == 1 or self.recall.get((5, t)) is not None
        ]
        out.append(("mIoU", f"{100 * self.miou:.2f}"))
        out.append(("moments (no prediction)", f"{self.n_moments} ({self.missing})"))
        return out


def _ranked(table: pa.Table) -> dict[tuple[str, str], np.ndarray]:
    """(video_id, sentence) → its predicted [start, end] rows, best score first."""
    vid = table.column("video_id").to_pylist()
    label = table.column("label").to_pylist()
    start = table.column("t_start").to_numpy(zero_copy_only=False).astype(float)
    end = table.column("t_end").to_numpy(zero_copy_only=False).astype(float)
    score = table.column("score").to_numpy(zero_copy_only=False).astype(float)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (v, s) in enumerate(zip(vid, label, strict=True)):
        if v is None or s is None:
            continue
        groups.setdefault((v, clean_sentence(s)), []).append(i)
    out: dict[tuple[str, str], np.ndarray] = {}
    for key, rows in groups.items():
        idx = np.asarray(rows)
        # NaN scores last, ties in table order (the order localize wrote them)
        keyed = np.where(np.isnan(score[idx]), -np.inf, score[idx])
        idx = idx[np.argsort(-keyed, kind="stable")]
        out[key] = np.stack([start[idx], end[idx]], axis=1)
    return out


def score_grounding(
    intervals: pa.Table,
    gt: GroundingGT,
    tiou: tuple[float, ...] | None = None,
) -> GroundingReport:
    """R@{1,5} at each tIoU (default 0.3, 0.5, 0.7) and mIoU over every annotated moment."""
    thresholds = tuple(tiou) if tiou else GROUNDING_TIOU
    matcher = IdMatcher(gt.videos)
    predicted: dict[tuple[str, str], np.ndarray] = {}
    extra = 0
    for (vid, sentence), spans in _ranked(intervals).items():
        gid = matcher(vid)
        if gid is None:
            extra += 1
            continue
        predicted[(gid, sentence)] = spans
    annotated = {(m.video_id, m.sentence) for m in gt.moments}
    extra += sum(1 for key in predicted if key not in annotated)
    ious = np.zeros((len(gt.moments), max(RECALL_AT)))
    have = np.zeros((len(gt.moments), max(RECALL_AT)), bool)
    missing: list[str] = []
    for i, m in enumerate(gt.moments):
        found = predicted.get((m.video_id, m.sentence))
        if found is None or len(found) == 0:
            missing.append(f"{m.video_id}: {m.sentence!r}")
            continue
        top = found[: max(RECALL_AT)]
        ious[i, : len(top)] = temporal_iou(top[:, 0], top[:, 1], m.start, m.end)
        have[i, : len(top)] = True
    recall: dict[tuple[int, float], float] = {}
    for k in RECALL_AT:
        best = ious[:, :k].max(axis=1)
        for t in thresholds:
            recall[(k, t)] = float((best >= t).mean()) if len(best) else float("nan")
    warnings = []
    if missing:
        warnings.append(f"{len(missing)} annotated moment(s) have no prediction: {listed(missing)}")
    if extra:
        warnings.append(f"{extra} predicted (video, sentence) pair(s) are not annotated (ignored)")
    if have.any() and not have[:, 1:].any():
        warnings.append("one moment per query predicted: R@5 equals R@1")
    top1 = ious[:, 0]
    return GroundingReport(
        recall,
        float(top1.mean()) if len(top1) else float("nan"),
        len(gt.moments),
        len(missing),
        extra,
        top1,
        warnings,
    )
