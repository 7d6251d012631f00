"""Score-curve localizers: the CLIP-only baseline (T3AL's training-free part) and anomaly scoring.

Input: one video's frame embeddings (T×D, L2-normalised) and label/prompt text embeddings, or
per-frame LVLM p_yes. Output: frame-index intervals (K×2, end frame inclusive) with scores, or
per-frame anomaly scores. Pure numpy; `localize.py` reads and writes the artifacts.

`head` (optional everywhere): an adapter's weighted logits (zsar_cli.stages.adapter), N×D
embeddings → N×L, columns in the labels' order, added to the text logits wherever they are
formed; weight 0 adds exact zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Head = Callable[[np.ndarray], np.ndarray]


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    # A zero row (e.g. a frame equal to the background mean) stays zero instead of NaN.
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average with the edges padded by their own value (no shrink at the ends,
    no pull towards zero). Window 1 (or less) returns the values unchanged."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) == 0:
        return values.copy()
    left = (window - 1) // 2
    right = window - 1 - left
    padded = np.concatenate([np.full(left, values[0]), values, np.full(right, values[-1])])
    prefix = np.concatenate([[0.0], np.cumsum(padded)])
    return (prefix[window:] - prefix[:-window]) / window


def runs_above(mask: np.ndarray, max_gap: int = 1, min_frames: int = 1) -> np.ndarray:
    """Group selected frames into spans: frames whose index gap is ≤ max_gap join one span
    (max_gap 1 = only neighbours); spans of fewer than `min_frames` frames (end - start + 1) are
    dropped. Returns K×2 frame indices, end inclusive."""
    selected = np.flatnonzero(np.asarray(mask, dtype=bool))
    if selected.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    breaks = np.flatnonzero(np.diff(selected) > max(1, max_gap))
    starts = selected[np.concatenate([[0], breaks + 1])]
    ends = selected[np.concatenate([breaks, [selected.size - 1]])]
    spans = np.stack([starts, ends], axis=1).astype(np.int64)
    return spans[(spans[:, 1] - spans[:, 0] + 1) >= min_frames]


def pseudo_labels(
    frame_embeddings: np.ndarray,
    label_embeddings: np.ndarray,
    labels: Sequence[str],
    top_k: int,
    logit_scale: float,
    head: Head | None = None,
) -> list[str]:
    """Video-level pseudo-labels: softmax over labels of the mean frame embedding, top-k."""
    if len(frame_embeddings) == 0 or top_k <= 0:
        return []
    mean = _normalise_rows(np.asarray(frame_embeddings, dtype=np.float64).mean(axis=0))
    logits = logit_scale * (np.asarray(label_embeddings, dtype=np.float64) @ mean)
    probs = softmax(logits if head is None else logits + head(mean)[0])
    order = np.argsort(-probs, kind="stable")[:top_k]
    return [labels[i] for i in order]


def clip_baseline(
    frame_embeddings: np.ndarray,
    label_embeddings: np.ndarray,
    label_index: int,
    *,
    window: int = 20,
    max_gap: int = 20,
    min_frames: int = 2,
    logit_scale: float = 100.0,
    notes: list[str] | None = None,
    head: Head | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """CLIP-only proposals for one (video, label) (T3AL without test-time adaptation).

    The mean frame embedding stands for the background and is subtracted from every frame;
    each frame's similarity to the label is smoothed (moving average), min-max normalised, and
    frames above the curve's mean form spans (gaps ≤ max_gap merged). A span's score is the
    softmax probability of the label, over all labels, of the span's mean (raw) frame embedding.
    A `head` scores the raw frames (it was fitted on them, not on background-subtracted ones).
    """
    emb = np.asarray(frame_embeddings, dtype=np.float64)
    text = np.asarray(label_embeddings, dtype=np.float64)
    empty = (np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float64))
    notes = notes if notes is not None else []
    if len(emb) < 2:
        notes.append(f"only {len(emb)} frame(s): too short to localize")
        return empty
    foreground = _normalise_rows(emb - emb.mean(axis=0, keepdims=True))
    similarity = logit_scale * (foreground @ text[label_index])
    if head is not None:
        similarity = similarity + head(emb)[:, label_index]
    curve = moving_average(similarity, window)
    low, high = curve.min(), curve.max()
    if high - low <= 1e-12 * max(1.0, abs(high)):
        notes.append("all-equal similarity curve: nothing stands out from the background")
        return empty
    curve = (curve - low) / (high - low)
    spans = runs_above(curve > curve.mean(), max_gap=max_gap, min_frames=min_frames)
    if len(spans) == 0:
        return empty
    # Spans are few and disjoint: summing each slice beats a (T, D) cumulative sum.
    span_means = _normalise_rows(np.stack([emb[s : e + 1].sum(axis=0) for s, e in spans.tolist()]))
    logits = logit_scale * (span_means @ text.T)
    probs = softmax(logits if head is None else logits + head(span_means), axis=1)
    return spans, probs[:, label_index]


def clip_anomaly_scores(
    frame_embeddings: np.ndarray,
    anomaly_embeddings: np.ndarray,
    normal_embeddings: np.ndarray,
    logit_scale: float = 100.0,
    head: Head | None = None,
) -> np.ndarray:
    """P(any anomaly label) per frame: softmax over [anomaly labels + normal prompts] of
    logit_scale·cosine (+ `head`, columns in that order), summed over the anomaly labels."""
    emb = _normalise_rows(np.asarray(frame_embeddings, dtype=np.float64))
    anomaly = np.asarray(anomaly_embeddings, dtype=np.float64)
    normal = np.asarray(normal_embeddings, dtype=np.float64)
    if len(emb) == 0:
        return np.zeros(0, dtype=np.float64)
    logits = logit_scale * (emb @ np.concatenate([anomaly, normal]).T)
    probs = softmax(logits if head is None else logits + head(emb), axis=1)
    return probs[:, : len(anomaly)].sum(axis=1)


def threshold_intervals(
    scores: np.ndarray, threshold: float, min_frames: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive frames scoring ≥ threshold; each scored by its mean frame score."""
    scores = np.asarray(scores, dtype=np.float64)
    spans = runs_above(scores >= threshold, max_gap=1, min_frames=min_frames)
    if len(spans) == 0:
        return spans, np.zeros(0, dtype=np.float64)
    prefix = np.concatenate([[0.0], np.cumsum(scores)])
    means = (prefix[spans[:, 1] + 1] - prefix[spans[:, 0]]) / (spans[:, 1] - spans[:, 0] + 1)
    return spans, means
