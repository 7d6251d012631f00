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
  smoothed; frames at or above a threshold form anomaly intervals. A stage of its own in
  `anomaly`, which `run` hands off to after the shared plumbing (shards, up-to-date checks).

Time: all steps work in frame indices of the given sampling (ZEAL's gap of 5 frames is 5 s at
1 fps, 2.5 s at 2 fps). Intervals become seconds through the frames' real timestamps: by default
an interval spans from its start frame's cell to its end frame's cell (a frame stands for the
time halfway to its neighbours), under `compat="zeal"` it is the start and end frames'
timestamps (= ZEAL's frame indices written as seconds, at 1 fps from t=0). Other rates than
1 fps work and are reported as a note, since ZEAL's constants were tuned at 1 fps.

The artifact readers live in `localize_inputs`, the result and its table/JSON forms in
`localize_output`; their names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from zsar_cli.artifacts import read_artifact
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.jsonio import write_json
from zsar_cli.outputs import scoped
from zsar_cli.runner import input_key
from zsar_cli.sharding import Shard, shard_video_ids
from zsar_cli.stages import anomaly
from zsar_cli.stages.anomaly import ANOMALY_LABEL, anomaly_frame_scores
from zsar_cli.stages.localize_config import LocalizeConfig
from zsar_cli.stages.localize_inputs import (
    DEFAULT_LOGIT_SCALE,
    AnswerSeries,
    VideoFrames,
    adapter_head,
    check_dims,
    fps_note,
    match_labels,
    read_answers,
    read_clip_inputs,
    read_frames,
    read_gt_labels,
    read_text,
    require_inputs,
    resolve_adapter_weight,
    resolve_logit_scale,
)
from zsar_cli.stages.localize_output import (
    LocalizeResult,
    activitynet_results,
    add_interval_rows,
    intervals_table,
    new_interval_rows,
    usable,
    write_through_runner,
)
from zsar_cli.stages.localize_scores import Head, clip_baseline, pseudo_labels
from zsar_cli.stages.localize_zeal import (
    ZealCompatCrash,
    filter_labels,
    presence_boundaries,
    zeal_localize,
)

# What this module offered before its readers, outputs and anomaly scoring moved out.
__all__ = [
    "ANOMALY_LABEL",
    "DEFAULT_LOGIT_SCALE",
    "AnswerSeries",
    "LocalizeResult",
    "VideoFrames",
    "activitynet_results",
    "anomaly_frame_scores",
    "localize_clip",
    "localize_zeal",
    "read_answers",
    "read_frames",
    "read_gt_labels",
    "read_text",
    "run",
    "write_json",
]

if TYPE_CHECKING:
    from zsar_cli.engines import Engine

ABSENT_NOTES = ("mean p_yes", "every start/end p_yes is 0")


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
    rows = new_interval_rows()
    label_pos = {label: i for i, label in enumerate(labels)}
    answered: dict[str, set[str]] = {}
    for vid, label, kind in answers:
        answered.setdefault(vid, set()).add(f"{kind}\x00{label}")
    for vid in sorted(frames):
        video = frames[vid]
        result.videos += 1
        if not usable(video, result):
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
            chosen, missing = match_labels(sorted(gt_labels[vid]), labels)
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
            add_interval_rows(rows, video, label, spans, scores, compat)
        result.failed += int(video_failed)
    result.intervals = intervals_table(rows)
    return result


def localize_clip(
    frames: Mapping[str, VideoFrames],
    labels: Sequence[str],
    label_embeddings: np.ndarray,
    config: LocalizeConfig,
    gt_labels: Mapping[str, set[str]] | None = None,
    logit_scale: float = DEFAULT_LOGIT_SCALE,
    head: Head | None = None,
) -> LocalizeResult:
    """The CLIP-only baseline over every video of `frames` (`head`: an adapter's logits)."""
    result = LocalizeResult()
    rows = new_interval_rows()
    label_pos = {label: i for i, label in enumerate(labels)}
    for vid in sorted(frames):
        video = frames[vid]
        result.videos += 1
        if not usable(video, result):
            continue
        if gt_labels is not None:
            if vid not in gt_labels:
                result.failed += 1
                result.notes.append(f"video {vid}: not in the ground truth given to --gt-labels")
                continue
            chosen, _ = match_labels(sorted(gt_labels[vid]), labels)
        else:
            chosen = pseudo_labels(
                video.matrix, label_embeddings, labels, config.pseudo_labels, logit_scale, head
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
                head=head,
            )
            result.notes.extend(f"video {vid}, label {label!r}: {n}" for n in notes)
            order = np.argsort(-scores, kind="stable")
            add_interval_rows(rows, video, label, spans[order], scores[order], False)
    result.intervals = intervals_table(rows)
    return result


@scoped
def run(
    config: LocalizeConfig,
    *,
    embeddings: str | None = None,
    text: str | None = None,
    answers: str | None = None,
    gt_labels: str | None = None,
    queries: str | None = None,
    output: str | None = None,
    output_format: str = "parquet",
    intervals_output: str | None = None,
    shard: Shard | None = None,
    force: bool = False,
    engine: Engine | None = None,
) -> LocalizeResult:
    """Read the artifacts, run the method, write the outputs (when paths are given).

    With `shard`, only that shard's videos (by the ids of the embeddings, else the answers) and
    part files in the output folders. Parquet outputs go through the shared per-video runner
    (lock, up to date → `result.skipped`, other settings refused unless `force`, checkpoints).
    `engine` Ray: the videos are localized in Ray tasks, in blocks (zeal and clip).
    """
    config.validate()
    if engine is not None and engine.ray and config.method == "anomaly":
        raise ConfigError(
            "--engine ray localizes with --method zeal or clip; anomaly scoring is one cheap "
            "pass over per-frame scores: run it with the local engine"
        )
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
    gt = read_gt_labels(gt_labels) if gt_labels is not None else None
    if gt is not None and not config.use_gt_labels:
        config = _replace(config, use_gt_labels=True)
    require_inputs(config, embeddings, text, answers)
    if (config.method == "grounding") != (queries is not None):
        raise ConfigError(
            "--method grounding needs --queries FILE"
            if queries is None
            else "--queries applies to --method grounding"
        )
    if engine is not None and engine.ray and config.method == "grounding":
        raise ConfigError("--engine ray localizes with --method zeal or clip")
    config = resolve_adapter_weight(config)
    sources = (embeddings, text, answers, config.adapter)
    upstream = [input_key(p) for p in sources if p is not None and p != "-"]
    if queries is not None:  # a text file, keyed by its content
        upstream.append(queries_key(queries))
    upstream += [f"shard:{shard}"] if shard is not None else []
    if config.method == "anomaly":
        return anomaly.run(
            config,
            embeddings=embeddings,
            text=text,
            answers=answers,
            output=output,
            intervals_output=intervals_output,
            owned=owned,
            shard=shard,
            force=force,
            upstream=upstream,
        )
    computed: list[tuple[LocalizeResult, dict[str, Any]]] = []

    def result() -> tuple[LocalizeResult, dict[str, Any]]:
        if not computed:
            if config.method == "grounding":
                assert embeddings is not None and text is not None and queries is not None
                computed.append(_ground(config, embeddings, text, queries, owned))
            else:
                computed.append(_localize(config, embeddings, text, answers, gt, owned, engine))
        return computed[0]

    if output is not None and output_format == "activitynet":
        res = result()[0]
        assert res.intervals is not None
        write_json(activitynet_results(res.intervals, res.labels_used), output, force)
    elif output is not None:
        skipped = write_through_runner(
            output,
            "intervals",
            config.provenance(),
            upstream,
            result,
            lambda r: r.intervals,
            shard,
            force,
        )
        if skipped is not None:
            return skipped
    return result()[0]


def _localize(
    config: LocalizeConfig,
    embeddings: str | None,
    text: str | None,
    answers: str | None,
    gt: Mapping[str, set[str]] | None,
    owned: set[str] | None,
    engine: Engine | None = None,
) -> tuple[LocalizeResult, dict[str, Any]]:
    """ZEAL or the CLIP baseline over the (shard's) videos: the result and its metadata."""
    notes: list[str] = []
    extra: dict[str, Any] = {"method": config.method}
    if config.method == "zeal":
        assert embeddings is not None and text is not None and answers is not None  # checked above
        frames, _ = read_frames(embeddings, owned=owned)
        labels, label_emb, _ = read_text(text, prefer=("description", "descriptor"))
        series, errors, _ = read_answers(answers, ("start", "end"), owned)
        check_dims(frames, label_emb, embeddings, text)
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
        rate_note = fps_note(frames, embeddings, config)
        result = _by_video(
            engine, localize_zeal, frames, labels, label_emb, series, config, gt, errors
        )
        for vid in sorted({v for (v, _, _) in series} - set(frames)):
            result.notes.append(f"video {vid}: has answers but no frames in {embeddings}; skipped")
    else:
        assert embeddings is not None and text is not None  # checked above
        frames, labels, label_emb, metas = read_clip_inputs(embeddings, text, owned)
        scale = resolve_logit_scale(config, *metas)
        extra["logit_scale"] = scale
        frames, head = adapter_head(config, frames, labels, metas[0], extra, notes)
        rate_note = fps_note(frames, embeddings, config)
        result = _by_video(
            engine, localize_clip, frames, labels, label_emb, config, gt, scale, head
        )
    result.notes[:0] = notes + ([rate_note] if rate_note else [])

    return result, extra


def queries_key(path: str) -> str:
    import hashlib

    from zsar_cli.outputs import note_input

    note_input(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InputError(f"--queries {path}: cannot read ({exc.strerror})") from None
    return "queries:" + hashlib.sha256(data).hexdigest()[:32]


def _ground(
    config: LocalizeConfig, embeddings: str, text: str, queries: str, owned: set[str] | None
) -> tuple[LocalizeResult, dict[str, Any]]:
    """Free-text moment grounding of the (shard's) videos."""
    from zsar_cli.datasets import read_queries
    from zsar_cli.stages.localize_grounding import localize_grounding

    frames, sentences, sentence_emb, _ = read_clip_inputs(embeddings, text, owned)
    result = localize_grounding(frames, read_queries(queries), sentences, sentence_emb, config)
    rate_note = fps_note(frames, embeddings, config)
    result.notes[:0] = [rate_note] if rate_note else []
    return result, {"method": config.method}


def _by_video(
    engine: Engine | None,
    method: Callable[..., LocalizeResult],
    frames: Mapping[str, VideoFrames],
    *args: Any,
) -> LocalizeResult:
    """`method(frames, *args)` (ZEAL or the CLIP baseline, each video on its own): here, or on
    Ray in tasks over contiguous blocks of the sorted videos, whose results concatenate into
    exactly this one (the methods visit the videos in sorted order)."""
    if engine is None or not engine.ray:
        return method(frames, *args)
    from zsar_cli.engines.ray_models import localize_in_blocks

    return localize_in_blocks(engine, method, frames, args)


def _replace(config: LocalizeConfig, **changes: Any) -> LocalizeConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)
