"""Readers of the `localize` stage's input artifacts, into per-video numpy arrays.

Inputs: `embeddings` (frame embeddings → `VideoFrames` per video), `text_embeddings` (one
embedding per label), `answers` (per-frame p_yes → `AnswerSeries` per video, label and query
kind) and ground-truth labels per video (any annotation format `zsar score` reads). Nothing is
written here.

Also the checks that span inputs: the options each method needs, matching embedding sizes,
label spellings, the sampling rate note, the CLIP logit scale recorded upstream and the
`--adapter` head (zsar_cli.stages.adapter) for the frames' CLIP scores.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import read_artifact
from zsar_cli.datasets import normalize_label
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.stages.localize_config import LocalizeConfig
from zsar_cli.stages.localize_zeal import sampling_fps

DEFAULT_LOGIT_SCALE = 100.0


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


@dataclass
class VideoFrames:
    """One video's usable frames, sorted by timestamp."""

    video_id: str
    frame_index: np.ndarray
    timestamp: np.ndarray
    embeddings: np.ndarray | None = None
    error: str | None = None
    frame_count: int | None = None  # frames in the whole video, when the input records it

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
    columns = ["video_id", "frame_index", "timestamp", "error", "frame_count"]
    art = read_artifact(path, "embeddings", columns=[*columns, "embedding"])
    table = _only_videos(art.table, owned)
    source = art.source
    counts = (
        table.column("frame_count").to_pylist()
        if "frame_count" in table.column_names
        else [None] * table.num_rows
    )
    videos = np.asarray(table.column("video_id").to_pylist(), dtype=object)
    errors = table.column("error").to_pylist()
    frame_index = table.column("frame_index").to_numpy(zero_copy_only=False)
    timestamp = table.column("timestamp").to_numpy(zero_copy_only=False)
    ok = np.asarray([e is None for e in errors], dtype=bool)
    result: dict[str, VideoFrames] = {}
    for i in np.flatnonzero(~ok):
        vid = str(videos[i])
        result.setdefault(
            vid,
            VideoFrames(vid, np.zeros(0, np.int64), np.zeros(0), None, str(errors[i]), counts[i]),
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
        count = counts[rows[sel[0]]]
        result[vid] = VideoFrames(
            vid, indices, ts[sel], None if emb is None else emb[sel], frame_count=count
        )
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


def read_clip_inputs(
    embeddings: str, text: str, owned: set[str] | None = None
) -> tuple[dict[str, VideoFrames], list[str], np.ndarray, list[Any]]:
    """Frames and label-name embeddings for CLIP scoring (the CLIP baseline, CLIP anomaly
    scores), checked to come from one model; plus the two artifacts' metadata."""
    frames, emb_meta = read_frames(embeddings, owned=owned)
    labels, label_emb, text_meta = read_text(text, prefer=("name", "template", "descriptor"))
    check_dims(frames, label_emb, embeddings, text)
    return frames, labels, label_emb, [emb_meta, text_meta]


# ---------------------------------------------------------------------------------------------
# Checks and settings that span the inputs


def require_inputs(
    config: LocalizeConfig, embeddings: str | None, text: str | None, answers: str | None
) -> None:
    """The artifacts the method (and for anomaly, its --source) needs are given."""
    uses_clip = config.method in ("zeal", "clip", "grounding") or config.source == "clip"
    if uses_clip and embeddings is None:
        raise ConfigError(f"--method {config.method} needs --embeddings (frame embeddings)")
    if uses_clip and text is None:
        raise ConfigError(f"--method {config.method} needs --text (text_embeddings)")
    uses_lvlm = config.method == "zeal" or (config.method == "anomaly" and config.source == "lvlm")
    if uses_lvlm and answers is None:
        raise ConfigError(f"--method {config.method} needs --answers (LVLM p_yes)")


def resolve_logit_scale(config: LocalizeConfig, *metas: Any) -> float:
    """CLIP's logit scale: the option, else the one an input artifact recorded, else 100."""
    if config.logit_scale is not None:
        return float(config.logit_scale)
    for meta in metas:
        if meta is None:
            continue
        value = meta.extra_json("logit_scale")
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return DEFAULT_LOGIT_SCALE


def resolve_adapter_weight(config: LocalizeConfig) -> LocalizeConfig:
    """The config with `--adapter`'s default weight filled in, so the provenance records the
    weight used."""
    if config.adapter is None or config.adapter_weight is not None:
        return config
    from zsar_cli.stages.adapter import read_adapter

    weight = read_adapter(config.adapter).weight
    return dataclasses.replace(config, adapter_weight=weight)


def adapter_head(
    config: LocalizeConfig,
    frames: dict[str, VideoFrames],
    labels: Sequence[str],
    embeddings_meta: Any,
    extra: dict[str, Any],
    notes: list[str],
) -> tuple[dict[str, VideoFrames], Any]:
    """(the frames without the adapter's support videos, the head for `labels`), or the frames
    as given and None without `--adapter`; what was used goes into `extra` and `notes`."""
    if config.adapter is None:
        return frames, None
    from zsar_cli.stages.adapter import align, check_model, drop_support, read_adapter

    adapter = read_adapter(config.adapter)
    made_with = (embeddings_meta.extra.get("model_spec") or "").strip('"')
    check_model(adapter, made_with or None, "the frame embeddings")
    head = align(adapter, labels, config.adapter_weight)
    kept, dropped = drop_support(frames, adapter)
    if dropped:
        notes.append(f"{dropped} support videos of --adapter left out")
    extra["adapter"] = adapter.describe(head.weight)
    return kept, head


def fps_note(frames: Mapping[str, VideoFrames], source: str, config: LocalizeConfig) -> str | None:
    """A note when the frames are not sampled at the 1 fps ZEAL's defaults assume."""
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


def match_labels(wanted: Iterable[str], available: Sequence[str]) -> tuple[list[str], list[str]]:
    """Map labels to the available spelling (normalised match); returns (matched, missing)."""
    lookup = {normalize_label(a): a for a in available}
    matched, missing = [], []
    for label in wanted:
        hit = lookup.get(normalize_label(label))
        (matched.append(hit) if hit is not None else missing.append(label))
    return matched, missing


def check_dims(
    frames: Mapping[str, VideoFrames], label_emb: np.ndarray, emb_path: str, text_path: str
) -> None:
    """Frame and text embeddings come from the same model (the same width)."""
    for video in frames.values():
        if video.embeddings is not None and len(video.embeddings):
            if video.embeddings.shape[1] != label_emb.shape[1]:
                raise InputError(
                    f"{emb_path} has {video.embeddings.shape[1]}-d embeddings but {text_path} "
                    f"has {label_emb.shape[1]}-d: encode both with the same model"
                )
            return
