"""Free-text moment grounding with CLIP, training-free: where in a video does a sentence happen?

Input: a video's frame embeddings (L2-normalised, from `encode`), the query sentences asked of it
and their text embeddings (`encode-text` on a query file: one label per distinct sentence).
Output: per query, up to `moments` ranked moments (frame spans, end inclusive) with scores, as
`intervals` rows whose label is the sentence (scored by `score` against Charades-STA).

Per query: the cosine similarity of every frame to the sentence, smoothed with a centred moving
average (`smooth` frames), then every contiguous window of `min_moment`..`max_len` of the video
is a candidate, scored by its contrast: the mean similarity inside minus the mean outside (a
moment stands out from the rest of its video; a window of the whole video scores 0). Candidates
are ranked by score and thinned by greedy NMS at `nms_iou`, so the top-5 are five different
moments. All windows are scored at once from prefix sums (O(frames²) per query; 10^5 windows
for a 5-minute video at 1 fps take milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from zsar_cli.datasets import QueryLine, video_key
from zsar_cli.stages.localize_config import LocalizeConfig
from zsar_cli.stages.localize_inputs import VideoFrames
from zsar_cli.stages.localize_output import (
    LocalizeResult,
    add_interval_rows,
    intervals_table,
    new_interval_rows,
    usable,
)
from zsar_cli.stages.localize_scores import moving_average


def window_scores(similarity: np.ndarray, min_len: int, max_len: int) -> tuple[np.ndarray, ...]:
    """Every window [s, e] (frames, end inclusive) of min_len..max_len frames and its contrast
    score: mean inside minus mean outside (0 where nothing is outside)."""
    sim = np.asarray(similarity, np.float64)
    n = len(sim)
    min_len = max(1, min(min_len, n))
    max_len = max(min_len, min(max_len, n))
    prefix = np.concatenate([[0.0], np.cumsum(sim)])
    total = prefix[-1]
    starts, ends, scores = [], [], []
    for length in range(min_len, max_len + 1):
        s = np.arange(0, n - length + 1)
        inside = prefix[s + length] - prefix[s]
        rest = n - length
        outside = (total - inside) / rest if rest else inside / length
        starts.append(s)
        ends.append(s + length - 1)
        scores.append(inside / length - outside)
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(scores)


def span_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of frame span `a` (s, e inclusive) with each span of `b` (k, 2)."""
    inter = np.clip(np.minimum(a[1], b[:, 1]) - np.maximum(a[0], b[:, 0]) + 1, 0, None)
    union = (a[1] - a[0] + 1) + (b[:, 1] - b[:, 0] + 1) - inter
    return inter / union


def ground(similarity: np.ndarray, config: LocalizeConfig) -> tuple[np.ndarray, np.ndarray]:
    """The query's ranked moments: (spans (k, 2) frame positions, scores (k,)), k <= moments."""
    n = len(similarity)
    sim = moving_average(similarity, config.smooth)
    min_len = max(1, round(config.min_moment * n))
    max_len = max(min_len, int(np.floor(config.max_len * n)))
    starts, ends, scores = window_scores(sim, min_len, max_len)
    order = np.argsort(-scores, kind="stable")
    spans = np.stack([starts[order], ends[order]], axis=1)
    ranked = scores[order]
    kept: list[int] = []
    for i in range(len(spans)):
        if len(kept) >= config.moments:
            break
        if kept and (span_iou(spans[i], spans[kept]) > config.nms_iou).any():
            continue
        kept.append(i)
    return spans[kept], ranked[kept]


def queries_of(
    queries: Sequence[QueryLine], videos: Sequence[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Each video's sentences (those for every video, then its own, in file order), and the
    query video ids that match no video."""
    by_key = {video_key(v): v for v in videos}
    out: dict[str, list[str]] = {v: [] for v in videos}
    unknown: list[str] = []
    for q in queries:
        if q.video_id is None:
            targets = list(videos)
        else:
            vid = q.video_id if q.video_id in out else by_key.get(video_key(q.video_id))
            if vid is None:
                unknown.append(q.video_id)
                continue
            targets = [vid]
        for vid in targets:
            if q.sentence not in out[vid]:
                out[vid].append(q.sentence)
    return out, list(dict.fromkeys(unknown))


def localize_grounding(
    frames: Mapping[str, VideoFrames],
    queries: Sequence[QueryLine],
    sentences: Sequence[str],
    sentence_embeddings: np.ndarray,
    config: LocalizeConfig,
) -> LocalizeResult:
    """Ranked moments of every query of every video of `frames`."""
    result = LocalizeResult()
    rows = new_interval_rows()
    position = {s: i for i, s in enumerate(sentences)}
    asked, unknown = queries_of(queries, sorted(frames))
    if unknown:
        result.notes.append(
            f"{len(unknown)} query video id(s) have no frame embeddings (not grounded): "
            + ", ".join(unknown[:5])
        )
    missing: set[str] = set()
    for vid in sorted(frames):
        video = frames[vid]
        result.videos += 1
        if not asked[vid] or not usable(video, result):
            continue
        result.labels_used[vid] = []
        for sentence in asked[vid]:
            if sentence not in position:
                missing.add(sentence)
                continue
            result.labels_used[vid].append(sentence)
            similarity = video.matrix @ sentence_embeddings[position[sentence]]
            spans, scores = ground(similarity, config)
            add_interval_rows(rows, video, sentence, spans, scores, False)
    if missing:
        result.notes.append(
            f"{len(missing)} query sentence(s) have no text embedding (encode-text the query "
            f"file): {', '.join(repr(s) for s in sorted(missing)[:3])}"
        )
    result.intervals = intervals_table(rows)
    return result
