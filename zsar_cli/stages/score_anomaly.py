"""Anomaly scoring: per-frame anomaly scores against annotated anomalous frame spans.

Input: a `frame_scores` table (video_id, frame_index, score, optional label) and an `AnomalyGT`
(UCF-Crime temporal annotations).
Output: an `AnomalyReport` (frame-level ROC-AUC and AP over all frames of all videos) with its
JSON summary and `metrics` rows.

Annotated videos without scores and scored videos unknown to the ground truth are left out and
reported as warnings, as are rows without a frame_index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.datasets import AnomalyGT, normalize_label
from zsar_cli.errors import InputError
from zsar_cli.metrics import FrameResult, expand_frame_scores, frame_metrics, span_labels
from zsar_cli.stages.score_common import IdMatcher, column_codes, json_number, listed, metric_row
from zsar_cli.stages.score_config import ScoreConfig


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
            "roc_auc": json_number(r.roc_auc),
            "ap": json_number(r.ap),
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
            metric_row(self.task, "roc_auc", r.roc_auc, label=self.label),
            metric_row(self.task, "ap", r.ap, label=self.label),
            metric_row(self.task, "videos", self.n_videos),
            metric_row(self.task, "frames", r.n_frames),
            metric_row(self.task, "anomalous_frames", r.n_positive),
            metric_row(self.task, "missing_videos", len(self.missing)),
            metric_row(self.task, "extra_videos", len(self.extra_videos)),
        ]

    def headline(self) -> list[tuple[str, str]]:
        r = self.result
        return [
            ("frame ROC-AUC", f"{r.roc_auc:.4f}"),
            ("frame AP", f"{r.ap:.4f}"),
            ("videos / frames (anomalous)", f"{self.n_videos} / {r.n_frames} ({r.n_positive})"),
        ]


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
            f"frame_scores hold scores for {len(present)} labels ({listed(present)}); "
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
    uniq, inv = column_codes(rows.column("video_id"))
    frame = rows.column("frame_index").to_numpy(zero_copy_only=False)
    score = rows.column("score").to_numpy(zero_copy_only=False).astype(float)
    valid = ~np.isnan(frame.astype(float)) if frame.dtype.kind == "f" else np.ones(len(frame), bool)
    inv, frame, score = inv[valid], frame[valid].astype(np.int64), score[valid]
    matcher = IdMatcher(list(gt.spans))
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
            f"{len(missing)} annotated video(s) have no scores (not evaluated): {listed(missing)}"
        )
    if extra:
        warnings.append(
            f"{len(extra)} scored video(s) are not in the ground truth (ignored): {listed(extra)}"
        )
    if (~valid).any():
        warnings.append(f"{int((~valid).sum())} row(s) without frame_index ignored")
    if math.isnan(result.roc_auc):
        warnings.append("ROC-AUC undefined: the evaluated frames are all normal or all anomalous")
    return AnomalyReport(
        result, len(per_video), label, config.fill, missing, extra, warnings, per_video
    )
