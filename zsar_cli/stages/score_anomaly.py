"""Anomaly scoring: per-frame anomaly scores against annotated anomalous frame spans.

Input: a `frame_scores` table (video_id, frame_index, score, optional label and frame_count),
an `AnomalyGT` (UCF-Crime temporal annotations) and optionally each video's frame count (from a
`frames` artifact, `score --frames`).
Output: an `AnomalyReport` (frame-level ROC-AUC and AP over all frames of all videos, and the
ROC-AUC over the abnormal videos only) with its JSON summary and `metrics` rows.

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
    # The same over the videos with at least one anomalous span (UCF-Crime's "AUC_abn"): normal
    # videos' easy negatives left out.
    abnormal: FrameResult = field(default_factory=lambda: FrameResult(math.nan, math.nan, 0, 0))
    n_abnormal_videos: int = 0
    # Videos evaluated to their last frame (frame_count known) vs to their last sample.
    n_full_length: int = 0
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
            "roc_auc_abnormal": json_number(self.abnormal.roc_auc),
            "ap_abnormal": json_number(self.abnormal.ap),
            "abnormal_videos": self.n_abnormal_videos,
            "abnormal_frames": self.abnormal.n_frames,
            "full_length_videos": self.n_full_length,
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
            metric_row(self.task, "roc_auc_abnormal", self.abnormal.roc_auc, label=self.label),
            metric_row(self.task, "ap_abnormal", self.abnormal.ap, label=self.label),
            metric_row(self.task, "videos", self.n_videos),
            metric_row(self.task, "abnormal_videos", self.n_abnormal_videos),
            metric_row(self.task, "full_length_videos", self.n_full_length),
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
            ("frame ROC-AUC, abnormal videos", f"{self.abnormal.roc_auc:.4f}"),
            ("videos / frames (anomalous)", f"{self.n_videos} / {r.n_frames} ({r.n_positive})"),
            ("abnormal videos", str(self.n_abnormal_videos)),
            ("videos scored to their last frame", f"{self.n_full_length} / {self.n_videos}"),
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


def _table_frame_counts(rows: pa.Table) -> dict[str, int]:
    """video_id → frame_count from the frame_scores' own column (absent or null: none)."""
    if "frame_count" not in rows.schema.names:
        return {}
    counts: dict[str, int] = {}
    ids = rows.column("video_id").to_pylist()
    for vid, value in zip(ids, rows.column("frame_count").to_pylist(), strict=True):
        if value is not None:
            counts.setdefault(vid, int(value))
    return counts


def score_anomaly(
    frame_scores: pa.Table,
    gt: AnomalyGT,
    config: ScoreConfig = ScoreConfig(),
    frame_counts: dict[str, int] | None = None,
) -> AnomalyReport:
    """Frame-level ROC-AUC and AP over all frames of all videos concatenated (UCF-Crime), and
    the ROC-AUC over the abnormal videos alone.

    Each row's frame_index is the decoded frame number (0-based); UCF-Crime spans are 1-based
    inclusive and were shifted on reading. A video's frames run from 0 to frame_count - 1 when
    its length is known — from the table's frame_count column, else from `frame_counts`
    (video_id → count, `score --frames`) — and to its last scored frame otherwise (with a
    warning: the frames after it are then left out). Frames between and after samples take the
    score of the nearest (default) or previous scored frame.
    """
    config.validate()
    rows, label = _anomaly_rows(frame_scores, config.label)
    own_counts = _table_frame_counts(rows)
    given = IdMatcher(list(frame_counts)) if frame_counts else None
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
    truncated: list[str] = []
    short: list[str] = []  # frame_count at or below a scored frame: the count is wrong
    for k, vid in enumerate(uniq):
        gid = matcher(str(vid))
        if gid is None:
            extra.append(str(vid))
            continue
        sel = order[bounds[k] : bounds[k + 1]]
        if sel.size == 0:  # only rows without frame_index
            continue
        last = int(frame[sel].max()) + 1
        count = own_counts.get(str(vid))
        if count is None and given is not None:
            key = given(str(vid))
            count = None if key is None or frame_counts is None else frame_counts[key]
        if count is None:
            truncated.append(gid)
        elif count < last:
            short.append(gid)
        n_frames = last if count is None else max(count, last)
        expanded = expand_frame_scores(frame[sel], score[sel], n_frames, config.fill)
        labels = span_labels(gt.spans[gid], n_frames)
        per_video[gid] = (expanded, labels)
        all_labels.append(labels)
        all_scores.append(expanded)
    missing = sorted(set(gt.spans) - set(per_video))
    if not per_video:
        raise InputError("no frame_scores video matches the ground truth (check video ids)")
    result = frame_metrics(np.concatenate(all_labels), np.concatenate(all_scores))
    abnormal_ids = [g for g in per_video if gt.spans[g]]
    abnormal = (
        frame_metrics(
            np.concatenate([per_video[g][1] for g in abnormal_ids]),
            np.concatenate([per_video[g][0] for g in abnormal_ids]),
        )
        if abnormal_ids
        else FrameResult(math.nan, math.nan, 0, 0)
    )
    warnings = []
    if truncated:
        warnings.append(
            f"{len(truncated)} video(s) have no frame_count: evaluated up to their last scored "
            "frame, the frames after it are not (pass --frames FRAMES.parquet): "
            f"{listed(truncated)}"
        )
    if short:
        warnings.append(
            f"{len(short)} video(s) have scored frames at or past their frame_count (evaluated "
            f"to the last scored frame): {listed(short)}"
        )
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
        result,
        len(per_video),
        label,
        config.fill,
        missing,
        extra,
        warnings,
        per_video=per_video,
        abnormal=abnormal,
        n_abnormal_videos=len(abnormal_ids),
        n_full_length=len(per_video) - len(truncated),
    )
