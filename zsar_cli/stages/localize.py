"""`localize` stage: temporal action proposals (ZEAL, CLIP-only baseline) and anomaly scores.

Inputs: `embeddings` (frame embeddings; ZEAL assumes 1 fps), `text_embeddings` (label
descriptions and/or names), `answers` (per-frame start/end p_yes for ZEAL, anomaly p_yes for
`anomaly --source lvlm`), and optionally ground-truth labels (ActivityNet JSON or a THUMOS
annotation folder) to use instead of class filtering.
Outputs: `intervals` (video_id, label, t_start, t_end, score, frame_start, frame_end), optionally
ActivityNet results JSON; for anomaly a `frame_scores` artifact (+ optional `intervals`).

Methods (DESIGN §4):
- `zeal`: per video, class filtering (or the ground-truth labels), then per label the ZEAL steps
  of `localize_zeal` (min-max, top-p boundaries, pairing, scoring with CLIP actionness,
  soft-NMS, merge). `compat="zeal"` reproduces the reference code's stage 5 quirk for quirk.
- `clip`: the training-free CLIP-only baseline (`localize_scores.clip_baseline`).
- `anomaly`: P(any anomaly label) per frame from CLIP, or LVLM p_yes on an anomaly question,
  smoothed; frames at or above a threshold form anomaly intervals.

Time: all steps work in frame indices of the given sampling (ZEAL's gap of 5 frames is 5 s at
1 fps, 2.5 s at 2 fps). Intervals become seconds through the frames' real timestamps: by default
an interval spans from its start frame's cell to its end frame's cell (a frame stands for the
time halfway to its neighbours), under `compat="zeal"` it is the start and end frames'
timestamps (= ZEAL's frame indices written as seconds, at 1 fps from t=0). Other rates than
1 fps work and are reported as a note, since ZEAL's constants were tuned at 1 fps.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import STDIO, build_table, read_artifact, read_meta, write_artifact
from zsar_cli.datasets import normalize_label
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.sharding import Shard, plan_output, shard_output, shard_video_ids
from zsar_cli.stages.localize_config import LocalizeConfig
from zsar_cli.stages.localize_scores import (
    clip_anomaly_scores,
    clip_baseline,
    moving_average,
    pseudo_labels,
    threshold_intervals,
)
from zsar_cli.stages.localize_zeal import (
    ZealCompatCrash,
    filter_labels,
    intervals_to_seconds,
    presence_boundaries,
    sampling_fps,
    zeal_localize,
)

ANOMALY_LABEL = "anomaly"
DEFAULT_LOGIT_SCALE = 100.0
ABSENT_NOTES = ("mean p_yes", "every start/end p_yes is 0")


@dataclass
class LocalizeResult:
    """What a run produced: the output table(s) and one-line notes for the user."""

    intervals: pa.Table | None = None
    frame_scores: pa.Table | None = None
    videos: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)
    labels_used: dict[str, list[str]] = field(default_factory=dict)
    skipped: bool = False  # the output was already complete with these settings


# ---------------------------------------------------------------------------------------------
# Label names and ground truth


def read_gt_labels(path: str | os.PathLike[str]) -> dict[str, set[str]]:
    """Ground-truth labels per video from any annotation format `zsar score` reads
    (ActivityNet JSON, a THUMOS14 folder, UCF101/HMDB51 splits, label lists)."""
    from zsar_cli.datasets import ClassificationGT, LocalizationGT, load_ground_truth

    _, gt = load_ground_truth(Path(path))
    labels: dict[str, set[str]] = {}
    if isinstance(gt, LocalizationGT):
        labels = {vid: set() for vid in gt.videos}
        for vid, label in zip(gt.video_id, gt.label, strict=True):
            labels.setdefault(vid, set()).add(label)
    elif isinstance(gt, ClassificationGT):
        labels = {vid: {label} for vid, label in gt.labels.items()}
    else:
        raise InputError(f"{path}: anomaly annotations carry no action labels for --gt-labels")
    return labels


# ---------------------------------------------------------------------------------------------
# Reading artifacts into per-video arrays


@dataclass
class VideoFrames:
    """One video's usable frames, sorted by timestamp."""

    video_id: str
    frame_index: np.ndarray
    timestamp: np.ndarray
    embeddings: np.ndarray | None = None
    error: str | None = None

    @property
    def matrix(self) -> np.ndarray:
        """The frame embeddings of a video read with them (error-free videos always are)."""
        if self.embeddings is None:
            raise InputError(f"video {self.video_id}: no frame embeddings")
        return self.embeddings


def _group_bounds(codes: np.ndarray) -> list[tuple[int, int]]:
    if codes.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [codes.size]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _list_matrix(column: pa.ChunkedArray | pa.Array, source: str, what: str) -> np.ndarray:
    """A list/fixed-size-list column of equal-length vectors → N×D float32."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    values = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    if values.size % n:
        raise InputError(f"{source}: {what} vectors have different lengths")
    matrix = values.reshape(n, -1)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = np.diff(np.asarray(arr.offsets))
        if (lengths != matrix.shape[1]).any():
            raise InputError(f"{source}: {what} vectors have different lengths")
    return matrix


def read_frames(
    path: str, with_embeddings: bool = True, owned: set[str] | None = None
) -> tuple[dict[str, VideoFrames], Any]:
    """Per-video frames of an `embeddings` artifact (error rows → a VideoFrames with `error`);
    only the videos in `owned` (a shard's) when given."""
    columns = ["video_id", "frame_index", "timestamp", "error"]
    art = read_artifact(path, "embeddings", columns=[*columns, "embedding"])
    table = _only_videos(art.table, owned)
    source = art.source
    videos = np.asarray(table.column("video_id").to_pylist(), dtype=object)
    errors = table.column("error").to_pylist()
    frame_index = table.column("frame_index").to_numpy(zero_copy_only=False)
    timestamp = table.column("timestamp").to_numpy(zero_copy_only=False)
    ok = np.asarray([e is None for e in errors], dtype=bool)
    result: dict[str, VideoFrames] = {}
    for i in np.flatnonzero(~ok):
        vid = str(videos[i])
        result.setdefault(
            vid, VideoFrames(vid, np.zeros(0, np.int64), np.zeros(0), None, str(errors[i]))
        )
    if not ok.any():
        return result, art.meta
    rows = np.flatnonzero(ok)
    fi = np.asarray(frame_index[rows], dtype=np.float64)
    ts = np.asarray(timestamp[rows], dtype=np.float64)
    if np.isnan(fi).any() or np.isnan(ts).any():
        raise InputError(f"{source}: frame rows without frame_index or timestamp")
    emb = None
    if with_embeddings:
        emb = _list_matrix(table.column("embedding").take(pa.array(rows)), source, "embedding")
    _, codes = np.unique(videos[rows], return_inverse=True)
    order = np.lexsort((ts, codes))
    for lo, hi in _group_bounds(codes[order]):
        sel = order[lo:hi]
        vid = str(videos[rows[sel[0]]])
        indices = fi[sel].astype(np.int64)
        if len(np.unique(indices)) != len(indices):
            raise InputError(f"{source}: video {vid} has duplicate frame_index values")
        # A video with some good frames is usable; its error rows (if any) are dropped.
        result[vid] = VideoFrames(vid, indices, ts[sel], None if emb is None else emb[sel])
    return result, art.meta


def _only_videos(table: pa.Table, owned: set[str] | None) -> pa.Table:
    if owned is None:
        return table
    import pyarrow.compute as pc

    return table.filter(pc.is_in(table.column("video_id"), value_set=pa.array(sorted(owned))))


def _label_rows(table: pa.Table) -> dict[str, list[tuple[str, int]]]:
    rows: dict[str, list[tuple[str, int]]] = {}
    for i, (label, kind) in enumerate(
        zip(table.column("label").to_pylist(), table.column("kind").to_pylist(), strict=True)
    ):
        rows.setdefault(str(label), []).append((str(kind or ""), i))
    return rows


def read_text(path: str, prefer: Sequence[str]) -> tuple[list[str], np.ndarray, Any]:
    """One embedding per label from a `text_embeddings` artifact: the mean (renormalised) of the
    label's rows whose kind is the first of `prefer` present, else of all its rows."""
    art = read_artifact(path, "text_embeddings")
    matrix = _list_matrix(art.table.column("embedding"), art.source, "embedding")
    groups = _label_rows(art.table)
    if not groups:
        raise InputError(f"{art.source}: no text embeddings")
    labels = sorted(groups)
    out = []
    for label in labels:
        rows = groups[label]
        chosen: list[int] = []
        for kind in prefer:
            chosen = [i for k, i in rows if k == kind]
            if chosen:
                break
        if not chosen:
            chosen = [i for _, i in rows]
        mean = matrix[chosen].astype(np.float64).mean(axis=0)
        norm = np.linalg.norm(mean)
        out.append(mean / norm if norm > 0 else mean)
    return labels, np.asarray(out, dtype=np.float64), art.meta


@dataclass
class AnswerSeries:
    frame_index: np.ndarray
    p_yes: np.ndarray
    timestamp: np.ndarray


def read_answers(
    path: str, kinds: Sequence[str], owned: set[str] | None = None
) -> tuple[dict[tuple[str, str, str], AnswerSeries], dict[str, str], Any]:
    """(video, label, query_kind) → per-frame p_yes sorted by frame, for frame-level rows of
    the given kinds; plus per-video upstream errors."""
    columns = ["video_id", "frame_index", "timestamp", "label", "query_kind", "p_yes", "error"]
    art = read_artifact(path, "answers", columns=columns)
    table = _only_videos(art.table, owned)
    names = set(table.schema.names)
    n = table.num_rows
    videos = np.asarray(table.column("video_id").to_pylist(), dtype=object)
    errors = table.column("error").to_pylist() if "error" in names else [None] * n
    video_errors: dict[str, str] = {}
    for vid, err in zip(videos, errors, strict=True):
        if err is not None:
            video_errors.setdefault(str(vid), str(err))
    kind_col = np.asarray([str(k) for k in table.column("query_kind").to_pylist()], dtype=object)
    label_col = np.asarray(
        ["" if x is None else str(x) for x in table.column("label").to_pylist()], dtype=object
    )
    fi_raw = table.column("frame_index").to_pylist()
    fi = np.asarray([-1 if x is None else x for x in fi_raw], dtype=np.int64)
    p_yes = np.asarray(table.column("p_yes").to_numpy(zero_copy_only=False), dtype=np.float64)
    if "timestamp" in names:
        ts = np.asarray(table.column("timestamp").to_numpy(zero_copy_only=False), np.float64)
    else:
        ts = np.full(n, np.nan)
    use = (
        np.asarray([err is None for err in errors], dtype=bool)
        & np.isin(kind_col, list(kinds))
        & np.asarray([x is not None for x in fi_raw], dtype=bool)
    )
    rows = np.flatnonzero(use)
    if np.isnan(p_yes[rows]).any():
        raise InputError(f"{art.source}: rows with a missing (NaN) p_yes")
    series: dict[tuple[str, str, str], AnswerSeries] = {}
    if rows.size == 0:
        return series, video_errors, art.meta
    keys = np.asarray(
        [f"{videos[i]}\x00{label_col[i]}\x00{kind_col[i]}" for i in rows], dtype=object
    )
    _, codes = np.unique(keys, return_inverse=True)
    order = np.lexsort((fi[rows], codes))
    for lo, hi in _group_bounds(codes[order]):
        sel = rows[order[lo:hi]]
        vid, label, kind = keys[order[lo]].split("\x00")
        series[(vid, label, kind)] = AnswerSeries(fi[sel], p_yes[sel], ts[sel])
    return series, video_errors, art.meta


def _logit_scale(config: LocalizeConfig, *metas: Any) -> float:
    if config.logit_scale is not None:
        return float(config.logit_scale)
    for meta in metas:
        if meta is None:
            continue
        value = meta.extra_json("logit_scale")
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return DEFAULT_LOGIT_SCALE


def _fps_note(frames: Mapping[str, VideoFrames], source: str, config: LocalizeConfig) -> str | None:
    measured = [sampling_fps(v.timestamp) for v in frames.values() if v.error is None]
    rates = [r for r in measured if r is not None]
    if not rates:
        return None
    fps = float(np.median(rates))
    if abs(fps - 1.0) <= 0.05:
        return None
    gap = (
        ""
        if config.method != "zeal"
        else (f"; ZEAL's min gap of {config.min_gap} frames is {config.min_gap / fps:.3g} s here")
    )
    return (
        f"{source}: frames are sampled at {fps:.3g} fps, not the 1 fps the defaults were tuned "
        f"for: steps count frames of this sampling{gap} (intervals use the real timestamps)"
    )


def _match_labels(wanted: Iterable[str], available: Sequence[str]) -> tuple[list[str], list[str]]:
    """Map labels to the available spelling (normalised match); returns (matched, missing)."""
    lookup = {normalize_label(a): a for a in available}
    matched, missing = [], []
    for label in wanted:
        hit = lookup.get(normalize_label(label))
        (matched.append(hit) if hit is not None else missing.append(label))
    return matched, missing


# ---------------------------------------------------------------------------------------------
# Methods


def _interval_rows() -> dict[str, list[Any]]:
    return {
        k: []
        for k in ("video_id", "label", "t_start", "t_end", "score", "frame_start", "frame_end")
    }


def _add_rows(
    rows: dict[str, list[Any]],
    video: VideoFrames,
    label: str,
    spans: np.ndarray,
    scores: np.ndarray,
    compat: bool,
) -> None:
    t_start, t_end = intervals_to_seconds(spans, video.timestamp, compat)
    for (s, e), a, b, score in zip(spans.tolist(), t_start, t_end, scores, strict=True):
        rows["video_id"].append(video.video_id)
        rows["label"].append(label)
        rows["t_start"].append(float(a))
        rows["t_end"].append(float(b))
        rows["score"].append(float(score))
        rows["frame_start"].append(int(video.frame_index[s]))
        rows["frame_end"].append(int(video.frame_index[e]))


def _intervals_table(rows: dict[str, list[Any]]) -> pa.Table:
    extra = (pa.field("frame_start", pa.int64()), pa.field("frame_end", pa.int64()))
    return build_table("intervals", rows, extra_fields=extra)


def _usable(video: VideoFrames, result: LocalizeResult) -> bool:
    if video.error is not None:
        result.failed += 1
        result.notes.append(f"video {video.video_id}: no frames (upstream error: {video.error})")
        return False
    if len(video.frame_index) == 0:
        result.failed += 1
        result.notes.append(f"video {video.video_id}: no frames")
        return False
    return True


def _aligned(series: AnswerSeries, video: VideoFrames) -> np.ndarray | None:
    """p_yes in the video's frame order, or None when the answers do not cover every frame."""
    pos = np.searchsorted(series.frame_index, video.frame_index)
    pos = np.clip(pos, 0, max(0, len(series.frame_index) - 1))
    if len(series.frame_index) == 0 or (series.frame_index[pos] != video.frame_index).any():
        return None
    return series.p_yes[pos]


def localize_zeal(
    frames: Mapping[str, VideoFrames],
    labels: Sequence[str],
    label_embeddings: np.ndarray,
    answers: Mapping[tuple[str, str, str], AnswerSeries],
    config: LocalizeConfig,
    gt_labels: Mapping[str, set[str]] | None = None,
    answer_errors: Mapping[str, str] | None = None,
) -> LocalizeResult:
    """ZEAL over every video of `frames`; see the module docstring."""
    compat = config.compat == "zeal"
    result = LocalizeResult()
    rows = _interval_rows()
    label_pos = {label: i for i, label in enumerate(labels)}
    answered: dict[str, set[str]] = {}
    for vid, label, kind in answers:
        answered.setdefault(vid, set()).add(f"{kind}\x00{label}")
    for vid in sorted(frames):
        video = frames[vid]
        result.videos += 1
        if not _usable(video, result):
            continue
        if answer_errors and vid in answer_errors:
            result.failed += 1
            result.notes.append(f"video {vid}: LVLM answers failed upstream ({answer_errors[vid]})")
            continue
        have = answered.get(vid, set())
        with_both = [lb for lb in labels if f"start\x00{lb}" in have and f"end\x00{lb}" in have]
        if gt_labels is not None:
            if vid not in gt_labels:
                result.failed += 1
                result.notes.append(f"video {vid}: not in the ground truth given to --gt-labels")
                continue
            chosen, missing = _match_labels(sorted(gt_labels[vid]), labels)
            if missing:
                result.notes.append(
                    f"video {vid}: ground-truth label(s) {', '.join(map(repr, missing))} have "
                    "no text embedding in --text; skipped"
                )
        else:
            if not with_both:
                result.failed += 1
                result.notes.append(f"video {vid}: no start/end answers for it in --answers")
                continue
            # Class filtering among the labels the LVLM was asked about (query-lvlm may have
            # filtered already); ranking against every label's description embedding.
            sub = [label_pos[lb] for lb in with_both]
            chosen = filter_labels(
                video.matrix,
                label_embeddings[sub],
                with_both,
                config.top_k,
                config.filter_frames,
                compat,
            )
        result.labels_used[vid] = list(chosen)
        video_failed = False
        for label in chosen:
            start = answers.get((vid, label, "start"))
            end = answers.get((vid, label, "end"))
            if start is None or end is None:
                missing_kind = "start" if start is None else "end"
                result.notes.append(
                    f"video {vid}: label {label!r} has no {missing_kind} answers in --answers"
                )
                video_failed = True
                continue
            start_p, end_p = _aligned(start, video), _aligned(end, video)
            if start_p is None or end_p is None:
                series = start if start_p is None else end
                result.notes.append(
                    f"video {vid}: label {label!r} answers cover {len(series.frame_index)} of "
                    f"{len(video.frame_index)} frames (frame_index values must match --embeddings)"
                )
                video_failed = True
                continue
            actionness = video.matrix.astype(np.float64) @ label_embeddings[label_pos[label]]
            if config.boundaries == "presence":
                # The gates below still see the raw answers (the LVLM's view of presence).
                raw_mean = (start_p.mean() + end_p.mean()) / 2
                gate = None if gt_labels is not None else config.min_mean_score
                if gate is not None and raw_mean < gate:
                    continue
                start_p, end_p = presence_boundaries(start_p, end_p)
            notes: list[str] = []
            try:
                spans, scores = zeal_localize(
                    start_p,
                    end_p,
                    actionness,
                    eps=config.eps,
                    top_p=config.top_p,
                    min_gap=config.min_gap,
                    max_len=config.max_len,
                    lam=config.lam,
                    sigma=config.sigma,
                    drop=config.drop,
                    merge_iou=config.merge_iou,
                    score_threshold=config.score_threshold,
                    min_mean_score=None
                    if gt_labels is not None or config.boundaries == "presence"
                    else config.min_mean_score,
                    compat=compat,
                    notes=notes,
                )
            except ZealCompatCrash as exc:
                raise ZealCompatCrash(f"video {vid}, label {label!r}: {exc}") from None
            # A filtered-in label the LVLM judges absent is ordinary; anything else is worth
            # a line (with ground-truth labels, even that is).
            for note in notes:
                if gt_labels is not None or not note.startswith(ABSENT_NOTES):
                    result.notes.append(f"video {vid}, label {label!r}: {note}")
            _add_rows(rows, video, label, spans, scores, compat)
        result.failed += int(video_failed)
    result.intervals = _intervals_table(rows)
    return result


def localize_clip(
    frames: Mapping[str, VideoFrames],
    labels: Sequence[str],
    label_embeddings: np.ndarray,
    config: LocalizeConfig,
    gt_labels: Mapping[str, set[str]] | None = None,
    logit_scale: float = DEFAULT_LOGIT_SCALE,
) -> LocalizeResult:
    """The CLIP-only baseline over every video of `frames`."""
    result = LocalizeResult()
    rows = _interval_rows()
    label_pos = {label: i for i, label in enumerate(labels)}
    for vid in sorted(frames):
        video = frames[vid]
        result.videos += 1
        if not _usable(video, result):
            continue
        if gt_labels is not None:
            if vid not in gt_labels:
                result.failed += 1
                result.notes.append(f"video {vid}: not in the ground truth given to --gt-labels")
                continue
            chosen, _ = _match_labels(sorted(gt_labels[vid]), labels)
        else:
            chosen = pseudo_labels(
                video.matrix, label_embeddings, labels, config.pseudo_labels, logit_scale
            )
        result.labels_used[vid] = list(chosen)
        for label in chosen:
            notes: list[str] = []
            spans, scores = clip_baseline(
                video.matrix,
                label_embeddings,
                label_pos[label],
                window=config.window,
                max_gap=config.max_gap,
                min_frames=config.min_frames,
                logit_scale=logit_scale,
                notes=notes,
            )
            result.notes.extend(f"video {vid}, label {label!r}: {n}" for n in notes)
            order = np.argsort(-scores, kind="stable")
            _add_rows(rows, video, label, spans[order], scores[order], False)
    result.intervals = _intervals_table(rows)
    return result


def anomaly_frame_scores(
    video_scores: Mapping[str, tuple[VideoFrames, np.ndarray]],
    config: LocalizeConfig,
) -> LocalizeResult:
    """Smooth raw per-frame anomaly scores; frame_scores table + threshold intervals."""
    result = LocalizeResult()
    rows = _interval_rows()
    frame_rows: dict[str, list[Any]] = {
        k: [] for k in ("video_id", "frame_index", "timestamp", "label", "score")
    }
    for vid in sorted(video_scores):
        video, raw = video_scores[vid]
        result.videos += 1
        if not _usable(video, result):
            continue
        smooth = moving_average(raw, config.smooth)
        n = len(smooth)
        frame_rows["video_id"].extend([vid] * n)
        frame_rows["frame_index"].extend(video.frame_index.tolist())
        frame_rows["timestamp"].extend(video.timestamp.tolist())
        frame_rows["label"].extend([ANOMALY_LABEL] * n)
        frame_rows["score"].extend(smooth.tolist())
        spans, scores = threshold_intervals(smooth, config.threshold)
        _add_rows(rows, video, ANOMALY_LABEL, spans, scores, False)
    result.frame_scores = build_table("frame_scores", frame_rows)
    result.intervals = _intervals_table(rows)
    return result


# ---------------------------------------------------------------------------------------------
# Output


def activitynet_results(intervals: pa.Table, videos: Iterable[str] = ()) -> dict[str, Any]:
    """ActivityNet results JSON: {version, results: {video: [{label, score, segment}]}}."""
    results: dict[str, list[dict[str, Any]]] = {str(v): [] for v in videos}
    data = intervals.select(["video_id", "label", "t_start", "t_end", "score"]).to_pylist()
    for row in data:
        results.setdefault(row["video_id"], []).append(
            {
                "label": row["label"],
                "score": None if row["score"] != row["score"] else row["score"],
                "segment": [row["t_start"], row["t_end"]],
            }
        )
    return {
        "version": "VERSION 1.3",
        "results": results,
        "external_data": {"used": False, "details": "zsar localize"},
    }


def write_json(payload: Any, path: str) -> None:
    """Write JSON atomically (temp file + rename), or to stdout for `-`."""
    import sys

    text = json.dumps(payload, indent=1, allow_nan=True) + "\n"
    if path == STDIO:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, target)


def run(
    config: LocalizeConfig,
    *,
    embeddings: str | None = None,
    text: str | None = None,
    answers: str | None = None,
    gt_labels: str | None = None,
    output: str | None = None,
    output_format: str = "parquet",
    intervals_output: str | None = None,
    shard: Shard | None = None,
    force: bool = False,
) -> LocalizeResult:
    """Read the artifacts, run the method, write the outputs (when paths are given).

    With `shard`, only that shard's videos (by the ids of the embeddings, else the answers) and
    part files in the output folders; an output complete with the same settings is skipped
    (`result.skipped`), one made with other settings refused unless `force`.
    """
    config.validate()
    if output_format not in ("parquet", "activitynet"):
        raise ConfigError(f"--format {output_format!r}: choose parquet or activitynet")
    if shard is not None and output_format == "activitynet":
        raise ConfigError("--shard writes Parquet parts; merge them, then convert with --format")
    owned = None
    if shard is not None:
        source = embeddings or answers
        if source is None:
            raise ConfigError("--shard needs --embeddings or --answers to know the videos")
        ids = read_artifact(source, columns=["video_id"]).table.column("video_id").to_pylist()
        owned = shard_video_ids(ids, shard)
    if output is not None:
        output = shard_output(output, shard)
        kind = "frame_scores" if config.method == "anomaly" else "intervals"
        if output_format == "parquet":
            inputs = [p for p in (embeddings, text, answers) if p is not None]
            keys = [read_meta(p).cache_key for p in inputs if p != "-"]
            keys += [f"shard:{shard}"] if shard is not None else []
            plan = plan_output(output, kind, config, keys, force)
            if plan.up_to_date:
                return LocalizeResult(notes=[f"up to date: {output}"], skipped=True)
    if intervals_output is not None:
        intervals_output = shard_output(intervals_output, shard)
    gt = read_gt_labels(gt_labels) if gt_labels is not None else None
    if gt is not None and not config.use_gt_labels:
        config = _replace(config, use_gt_labels=True)
    upstream: list[str] = []
    notes: list[str] = []
    extra: dict[str, Any] = {"method": config.method}

    uses_clip = config.method in ("zeal", "clip") or config.source == "clip"
    if uses_clip and embeddings is None:
        raise ConfigError(f"--method {config.method} needs --embeddings (frame embeddings)")
    if uses_clip and text is None:
        raise ConfigError(f"--method {config.method} needs --text (text_embeddings)")
    uses_lvlm = config.method == "zeal" or (config.method == "anomaly" and config.source == "lvlm")
    if uses_lvlm and answers is None:
        raise ConfigError(f"--method {config.method} needs --answers (LVLM p_yes)")

    if config.method == "zeal":
        assert embeddings is not None and text is not None and answers is not None  # checked above
        frames, emb_meta = read_frames(embeddings, owned=owned)
        labels, label_emb, text_meta = read_text(text, prefer=("description", "descriptor"))
        series, errors, ans_meta = read_answers(answers, ("start", "end"), owned)
        upstream = [emb_meta.cache_key, text_meta.cache_key, ans_meta.cache_key]
        _check_dims(frames, label_emb, embeddings, text)
        unknown = sorted({lb for (_, lb, _) in series} - set(labels))
        if unknown and not ({lb for (_, lb, _) in series} & set(labels)):
            raise InputError(
                f"{answers}: none of its labels ({', '.join(map(repr, unknown[:5]))}) has a text "
                f"embedding in {text}"
            )
        if unknown:
            notes.append(f"{answers}: label(s) without text embedding ignored: {unknown}")
        if not series:
            raise InputError(f"{answers}: no frame-level start/end answers (query_kind start/end)")
        fps_note = _fps_note(frames, embeddings, config)
        result = localize_zeal(frames, labels, label_emb, series, config, gt, errors)
        for vid in sorted({v for (v, _, _) in series} - set(frames)):
            result.notes.append(f"video {vid}: has answers but no frames in {embeddings}; skipped")
    elif config.method == "clip":
        assert embeddings is not None and text is not None  # checked above
        frames, emb_meta = read_frames(embeddings, owned=owned)
        labels, label_emb, text_meta = read_text(text, prefer=("name", "template", "descriptor"))
        upstream = [emb_meta.cache_key, text_meta.cache_key]
        _check_dims(frames, label_emb, embeddings, text)
        scale = _logit_scale(config, emb_meta, text_meta)
        extra["logit_scale"] = scale
        fps_note = _fps_note(frames, embeddings, config)
        result = localize_clip(frames, labels, label_emb, config, gt, scale)
    else:
        result, upstream, fps_note, anomaly_scale = _run_anomaly(
            config, embeddings, text, answers, owned
        )
        if anomaly_scale is not None:
            extra["logit_scale"] = anomaly_scale
    result.notes[:0] = notes + ([fps_note] if fps_note else [])

    assert result.intervals is not None
    if config.method == "anomaly":
        assert result.frame_scores is not None
        if output is not None:
            write_artifact(result.frame_scores, output, "frame_scores", config, upstream, extra)
        if intervals_output is not None:
            write_artifact(result.intervals, intervals_output, "intervals", config, upstream, extra)
        return result
    if output is not None:
        if output_format == "activitynet":
            write_json(activitynet_results(result.intervals, result.labels_used), output)
        else:
            write_artifact(result.intervals, output, "intervals", config, upstream, extra)
    return result


def _replace(config: LocalizeConfig, **changes: Any) -> LocalizeConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


def _check_dims(
    frames: Mapping[str, VideoFrames], label_emb: np.ndarray, emb_path: str, text_path: str
) -> None:
    for video in frames.values():
        if video.embeddings is not None and len(video.embeddings):
            if video.embeddings.shape[1] != label_emb.shape[1]:
                raise InputError(
                    f"{emb_path} has {video.embeddings.shape[1]}-d embeddings but {text_path} "
                    f"has {label_emb.shape[1]}-d: encode both with the same model"
                )
            return


def _run_anomaly(
    config: LocalizeConfig,
    embeddings: str | None,
    text: str | None,
    answers: str | None,
    owned: set[str] | None = None,
) -> tuple[LocalizeResult, list[str], str | None, float | None]:
    video_scores: dict[str, tuple[VideoFrames, np.ndarray]] = {}
    if config.source == "clip":
        assert embeddings is not None and text is not None
        frames, emb_meta = read_frames(embeddings, owned=owned)
        labels, label_emb, text_meta = read_text(text, prefer=("name", "template", "descriptor"))
        _check_dims(frames, label_emb, embeddings, text)
        normal, _ = _match_labels(config.normal_labels, labels)
        if not normal:
            raise InputError(
                f"{text}: none of the normal prompts {list(config.normal_labels)} is among its "
                f"labels ({', '.join(labels[:6])}{', ...' if len(labels) > 6 else ''}); "
                "pass --normal LABEL"
            )
        if config.anomaly_labels:
            anomalous, missing = _match_labels(config.anomaly_labels, labels)
            if missing:
                raise InputError(f"{text}: anomaly label(s) {missing} have no text embedding")
        else:
            anomalous = [lb for lb in labels if lb not in normal]
        if not anomalous:
            raise InputError(f"{text}: no anomaly labels left besides the normal prompts")
        pos = {label: i for i, label in enumerate(labels)}
        a_emb = label_emb[[pos[lb] for lb in anomalous]]
        n_emb = label_emb[[pos[lb] for lb in normal]]
        scale = _logit_scale(config, emb_meta, text_meta)
        for vid, video in frames.items():
            raw = (
                clip_anomaly_scores(video.matrix, a_emb, n_emb, scale)
                if video.error is None
                else np.zeros(0)
            )
            video_scores[vid] = (video, raw)
        fps_note = _fps_note(frames, embeddings, config)
        return (
            anomaly_frame_scores(video_scores, config),
            [emb_meta.cache_key, text_meta.cache_key],
            fps_note,
            scale,
        )
    assert answers is not None
    series, errors, ans_meta = read_answers(answers, ("anomaly",), owned)
    if not series and not errors:
        raise InputError(f"{answers}: no frame-level anomaly answers (query_kind anomaly)")
    per_video: dict[str, list[AnswerSeries]] = {}
    for (vid, _, _), s in series.items():
        per_video.setdefault(vid, []).append(s)
    for vid, err in errors.items():
        if vid not in per_video:
            video_scores[vid] = (
                VideoFrames(vid, np.zeros(0, np.int64), np.zeros(0), None, err),
                np.zeros(0),
            )
    for vid, parts in per_video.items():
        all_fi = np.unique(np.concatenate([p.frame_index for p in parts]))
        # Several anomaly questions per frame (one per label, say): P(any) ≥ each, so the max.
        score = np.full(len(all_fi), -np.inf)
        ts = np.full(len(all_fi), np.nan)
        for p in parts:
            where = np.searchsorted(all_fi, p.frame_index)
            np.maximum.at(score, where, p.p_yes)
            ts[where] = np.where(np.isnan(ts[where]), p.timestamp, ts[where])
        if np.isnan(ts).any():
            raise InputError(f"{answers}: anomaly answers of video {vid} lack timestamps")
        order = np.argsort(ts, kind="stable")
        video = VideoFrames(vid, all_fi[order], ts[order])
        video_scores[vid] = (video, score[order])
    return anomaly_frame_scores(video_scores, config), [ans_meta.cache_key], None, None
