"""Anomaly stage (`zsar localize --method anomaly`): per-frame anomaly scores.

Inputs: `--source clip`: `embeddings` (frame embeddings) and `text_embeddings` (the normal
prompts and the anomaly labels); `--source lvlm`: `answers` (p_yes of the anomaly question,
query_kind `anomaly`).
Outputs: a `frame_scores` artifact (video_id, frame_index, timestamp, label "anomaly", score,
and the video's `frame_count` when the embeddings carry it, so that `score` can expand the
sampled scores to every frame) and optionally an `intervals` artifact of the frames at or above
the threshold.

A frame's raw score is P(any anomaly label) from CLIP against the normal prompts, or the LVLM's
p_yes (the highest when several anomaly questions were asked about the frame); it is smoothed
by a centred moving average before the threshold.

`localize.run` resolves shards, skips up-to-date outputs and checks the options, then calls
`run` here; the settings are `LocalizeConfig`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zsar_cli.artifacts import build_table, write_artifact
from zsar_cli.errors import InputError
from zsar_cli.sharding import Shard, shard_output
from zsar_cli.stages.localize_config import LocalizeConfig
from zsar_cli.stages.localize_inputs import (
    AnswerSeries,
    VideoFrames,
    adapter_head,
    fps_note,
    match_labels,
    read_answers,
    read_clip_inputs,
    resolve_logit_scale,
)
from zsar_cli.stages.localize_output import (
    LocalizeResult,
    add_interval_rows,
    intervals_table,
    new_interval_rows,
    usable,
    write_through_runner,
)
from zsar_cli.stages.localize_scores import (
    Head,
    clip_anomaly_scores,
    moving_average,
    threshold_intervals,
)

ANOMALY_LABEL = "anomaly"

# Per video: its frames and one raw anomaly score per frame (empty for a failed video).
VideoScores = dict[str, tuple[VideoFrames, np.ndarray]]


def split_labels(
    labels: Sequence[str], config: LocalizeConfig, source: str
) -> tuple[list[str], list[str]]:
    """(anomaly labels, normal prompts) among the text embeddings' labels: the normal prompts
    of the config, and its anomaly labels or else every other label."""
    normal, _ = match_labels(config.normal_labels, labels)
    if not normal:
        raise InputError(
            f"{source}: none of the normal prompts {list(config.normal_labels)} is among its "
            f"labels ({', '.join(labels[:6])}{', ...' if len(labels) > 6 else ''}); "
            "pass --normal LABEL"
        )
    if config.anomaly_labels:
        anomalous, missing = match_labels(config.anomaly_labels, labels)
        if missing:
            raise InputError(f"{source}: anomaly label(s) {missing} have no text embedding")
    else:
        anomalous = [lb for lb in labels if lb not in normal]
    if not anomalous:
        raise InputError(f"{source}: no anomaly labels left besides the normal prompts")
    return anomalous, normal


def clip_video_scores(
    frames: Mapping[str, VideoFrames],
    labels: Sequence[str],
    label_embeddings: np.ndarray,
    anomalous: Sequence[str],
    normal: Sequence[str],
    scale: float,
    head: Head | None = None,
) -> VideoScores:
    """P(any anomaly label) per frame, from CLIP similarities to anomaly and normal prompts
    (+ an adapter's logits, `head`, for the labels anomalous + normal in that order)."""
    pos = {label: i for i, label in enumerate(labels)}
    a_emb = label_embeddings[[pos[lb] for lb in anomalous]]
    n_emb = label_embeddings[[pos[lb] for lb in normal]]
    video_scores: VideoScores = {}
    for vid, video in frames.items():
        raw = (
            clip_anomaly_scores(video.matrix, a_emb, n_emb, scale, head)
            if video.error is None
            else np.zeros(0)
        )
        video_scores[vid] = (video, raw)
    return video_scores


def answer_video_scores(
    series: Mapping[tuple[str, str, str], AnswerSeries], errors: Mapping[str, str], source: str
) -> VideoScores:
    """The LVLM's anomaly p_yes per frame, frames in timestamp order; videos whose answers
    failed upstream become failed videos."""
    if not series and not errors:
        raise InputError(f"{source}: no frame-level anomaly answers (query_kind anomaly)")
    video_scores: VideoScores = {}
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
            raise InputError(f"{source}: anomaly answers of video {vid} lack timestamps")
        order = np.argsort(ts, kind="stable")
        video = VideoFrames(vid, all_fi[order], ts[order])
        video_scores[vid] = (video, score[order])
    return video_scores


def anomaly_frame_scores(
    video_scores: Mapping[str, tuple[VideoFrames, np.ndarray]],
    config: LocalizeConfig,
) -> LocalizeResult:
    """Smooth raw per-frame anomaly scores; frame_scores table + threshold intervals."""
    result = LocalizeResult()
    rows = new_interval_rows()
    frame_rows: dict[str, list[Any]] = {
        k: [] for k in ("video_id", "frame_index", "timestamp", "label", "score", "frame_count")
    }
    for vid in sorted(video_scores):
        video, raw = video_scores[vid]
        result.videos += 1
        if not usable(video, result):
            continue
        smooth = moving_average(raw, config.smooth)
        n = len(smooth)
        frame_rows["video_id"].extend([vid] * n)
        frame_rows["frame_index"].extend(video.frame_index.tolist())
        frame_rows["timestamp"].extend(video.timestamp.tolist())
        frame_rows["label"].extend([ANOMALY_LABEL] * n)
        frame_rows["score"].extend(smooth.tolist())
        frame_rows["frame_count"].extend([video.frame_count] * n)
        spans, scores = threshold_intervals(smooth, config.threshold)
        add_interval_rows(rows, video, ANOMALY_LABEL, spans, scores, False)
    if all(c is None for c in frame_rows["frame_count"]):
        del frame_rows["frame_count"]  # inputs without frame counts: no all-null column
    result.frame_scores = build_table("frame_scores", frame_rows)
    result.intervals = intervals_table(rows)
    return result


def run(
    config: LocalizeConfig,
    *,
    embeddings: str | None = None,
    text: str | None = None,
    answers: str | None = None,
    output: str | None = None,
    intervals_output: str | None = None,
    owned: set[str] | None = None,
    shard: Shard | None = None,
    force: bool = False,
    upstream: Sequence[str] = (),
) -> LocalizeResult:
    """Score the frames of `config.source`, write `frame_scores` to `output` (through the
    per-video runner) and the anomaly intervals to `intervals_output` (when given). `owned`:
    only these videos (a shard's, whose part names `shard` gives); `upstream`: the inputs' keys.

    The inputs `config.source` needs must be given (`localize.run` checks them first)."""
    computed: list[tuple[LocalizeResult, dict[str, Any]]] = []

    def result() -> tuple[LocalizeResult, dict[str, Any]]:
        if not computed:
            computed.append(_score(config, embeddings, text, answers, owned))
        return computed[0]

    if output is not None:
        skipped = write_through_runner(
            output,
            "frame_scores",
            config.provenance(),
            upstream,
            result,
            lambda r: r.frame_scores,
            shard,
            force,
        )
        if skipped is not None:
            return skipped
    res, extra = result()
    if intervals_output is not None:
        assert res.intervals is not None
        target = shard_output(intervals_output, shard)
        provenance = config.provenance()
        write_artifact(res.intervals, target, "intervals", provenance, upstream, extra, force)
    return res


def _score(
    config: LocalizeConfig,
    embeddings: str | None,
    text: str | None,
    answers: str | None,
    owned: set[str] | None,
) -> tuple[LocalizeResult, dict[str, Any]]:
    extra: dict[str, Any] = {"method": config.method}
    notes: list[str] = []
    if config.source == "clip":
        assert embeddings is not None and text is not None  # checked by localize.run
        frames, labels, label_emb, metas = read_clip_inputs(embeddings, text, owned)
        anomalous, normal = split_labels(labels, config, text)
        scale = resolve_logit_scale(config, *metas)
        extra["logit_scale"] = scale
        frames, head = adapter_head(config, frames, [*anomalous, *normal], metas[0], extra, notes)
        video_scores = clip_video_scores(frames, labels, label_emb, anomalous, normal, scale, head)
        rate_note = fps_note(frames, embeddings, config)
        notes += [rate_note] if rate_note else []
    else:
        assert answers is not None  # checked by localize.run
        series, errors, _ = read_answers(answers, ("anomaly",), owned)
        video_scores = answer_video_scores(series, errors, answers)
    result = anomaly_frame_scores(video_scores, config)
    result.notes[:0] = notes
    assert result.frame_scores is not None and result.intervals is not None
    return result, extra
