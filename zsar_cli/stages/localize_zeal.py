"""ZEAL's proposal steps (stage 5 of josaklil-ai/zeal) as pure numpy functions, in two modes.

Input: per-frame start/end p_yes of one (video, label) and that label's per-frame CLIP actionness.
Output: frame-index intervals (K×2 int, end frame inclusive) and their scores.

Every step takes `compat`. `compat=False` is the algorithm as DESIGN §4 describes it:
deterministic (stable sorts, ties → earlier frame / earlier item), no NaN, no crash on degenerate
input. `compat=True` reproduces the reference code's stage 5 exactly on the same numpy, each quirk
of ../shared/ZEAL_NOTES.md ("ZEAL stage 5 as its code behaves", items 1-11) included; the
`# quirk N` comments point at that list. Where the two modes differ:

- (1) gates: both drop T ≤ 2 (compat) / T < 2 (default, so two frames still give one interval),
  all-zero scores, and a mean p_yes below `min_mean_score` when labels come from class filtering;
  the default also drops a label whose start *and* end columns are both constant.
- (2) a constant column: compat divides 0/0 and ends in one NaN-scored (0, 0) interval; the
  default maps it to the middle of [ε, 1-ε] (it carries no boundary information).
- (3) top-p: compat returns (0, T-1) when int(p·T) < 1; the default grows p until one frame
  qualifies (the intent of the reference's never-reached loop).
- (4) thinning order: compat visits candidates in `np.argsort(score)[::-1]` order (unstable, ties
  later-index first in practice); the default in a stable descending order.
- (6) no valid pair: compat falls back to (starts[0], ends[0]) even when end ≤ start (NaN score
  for end < start); the default emits nothing.
- (8) soft-NMS: compat fixes the visiting order once and never re-sorts after decay; the default
  is textbook soft-NMS (always the highest decayed score next).
- (9) merge: compat sorts starts unstably, uses exclusive-length IoU and a running pairwise mean
  score, and merges only when ≥ 2 intervals survive; the default sorts stably, uses the same
  inclusive-length IoU as soft-NMS, and scores a merged group by the mean of its members.
- (10) compat raises `ZealCompatCrash` where the reference crashes (the final score filter
  removes everything); the default returns no intervals.
- (11) output order: compat by start when merge ran, else soft-NMS order; the default by
  descending score (stable).
Steps (5) pairing and (7) scoring are the same in both modes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from zsar_cli.errors import ZsarError


class ZealCompatCrash(ZsarError):
    """The reference code would raise here (quirk 10); only under compat mode."""


def _desc_order(values: np.ndarray, compat: bool) -> np.ndarray:
    """Indices by descending value: the reference's exact call, or a stable order (ties → first)."""
    if compat:
        return np.argsort(values)[::-1]
    # -values keeps NaN last in a stable ascending sort; the default never has NaN anyway.
    return np.argsort(-values, kind="stable")


# ---------------------------------------------------------------------------------------------
# 1) normalisation


def minmax_scale(scores: np.ndarray, eps: float, compat: bool = False) -> np.ndarray:
    """Min-max normalise a column into [eps, 1-eps].

    A constant column has no boundary information: the default puts it at the middle (0.5);
    compat divides 0/0 like the reference (NaN, quirk 2).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores.copy()
    low, high = scores.min(), scores.max()
    if compat:
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = (scores - low) / (high - low)
        return norm * (1 - 2 * eps) + eps
    if high == low:
        return np.full_like(scores, 0.5)
    return (scores - low) / (high - low) * (1 - 2 * eps) + eps


# ---------------------------------------------------------------------------------------------
# 2) boundary candidates


def top_p_candidates(scores: np.ndarray, top_p: float) -> np.ndarray:
    """Frames whose score reaches the k-th largest, k = int(top_p·T) (at least 1).

    Ties with the k-th score are all included, so more than k frames can qualify (quirk 3 holds
    in both modes). The k ≥ 1 floor is the reference's "grow p by 0.01 until a frame qualifies".
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, int(top_p * n))
    threshold = np.sort(scores)[::-1][k - 1]
    return np.flatnonzero(scores >= threshold)


def thin_candidates(
    candidates: np.ndarray, scores: np.ndarray, min_gap: int, compat: bool = False
) -> np.ndarray:
    """Greedy 1-D NMS on boundary candidates: visit by descending score, keep a candidate if it
    is at least `min_gap` frames from every kept one (exactly min_gap is allowed). Sorted result.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    if candidates.size == 0:
        return candidates
    order = candidates[_desc_order(scores[candidates], compat)]
    if min_gap <= 1:
        return np.sort(order)
    # A blocked-frame mask makes "≥ min_gap from every kept one" O(gap) per candidate instead of
    # O(kept), which matters for hour-long videos (bench/localize.py).
    blocked = np.zeros(len(scores) + 2 * min_gap, dtype=bool)
    kept = []
    for c in order.tolist():
        if blocked[c + min_gap]:
            continue
        kept.append(c)
        blocked[c + 1 : c + 2 * min_gap] = True
    return np.sort(np.asarray(kept, dtype=np.int64))


def action_boundaries(
    start_norm: np.ndarray,
    end_norm: np.ndarray,
    top_p: float,
    min_gap: int,
    compat: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end candidate frames (each sorted), picked independently (they may coincide)."""
    n = len(start_norm)
    if compat:
        if np.isnan(start_norm).any() or np.isnan(end_norm).any():  # quirk 2
            return np.array([0]), np.array([0])
        if int(top_p * n) < 1:  # quirk 3
            return np.array([0]), np.array([n - 1])
    starts = thin_candidates(top_p_candidates(start_norm, top_p), start_norm, min_gap, compat)
    ends = thin_candidates(top_p_candidates(end_norm, top_p), end_norm, min_gap, compat)
    return starts, ends


# ---------------------------------------------------------------------------------------------
# 3) pairing


def pair_boundaries(
    starts: np.ndarray, ends: np.ndarray, max_len: float, num_frames: int, compat: bool = False
) -> np.ndarray:
    """(start, end) pairs, K×2 int.

    Start i takes every later end within max_len·T frames, scanning ends left to right, and
    stops after the first end beyond start i+1 (that end is still taken if valid; quirk 5: the
    stop fires even when that end fails the length test). The last start takes all later ends in
    the length bound. With no pair at all, compat falls back to (starts[0], ends[0]) (quirk 6).
    """
    max_length = max_len * num_frames
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    pair_starts: list[np.ndarray] = []
    pair_ends: list[np.ndarray] = []
    # Ends at or before a start can neither pair with it nor stop its scan (they are before the
    # next start too), so each scan starts at the first later end; it stops after the first end
    # beyond the next start.
    first = np.searchsorted(ends, starts, side="right")
    stop = np.searchsorted(ends, starts[1:], side="right") + 1
    last = np.concatenate([np.minimum(stop, len(ends)), [len(ends)]])
    for s, lo, hi in zip(starts.tolist(), first.tolist(), last.tolist(), strict=True):
        if lo >= hi:
            continue
        taken = ends[lo:hi]
        taken = taken[taken - s <= max_length]
        if taken.size:
            pair_starts.append(np.full(taken.size, s, dtype=np.int64))
            pair_ends.append(taken)
    if not pair_ends:
        if compat and len(starts) and len(ends):
            return np.array([(int(starts[0]), int(ends[0]))], dtype=np.int64)
        return np.zeros((0, 2), dtype=np.int64)
    return np.stack([np.concatenate(pair_starts), np.concatenate(pair_ends)], axis=1)


# ---------------------------------------------------------------------------------------------
# 4) interval scores


def interval_scores(
    intervals: np.ndarray,
    start_norm: np.ndarray,
    end_norm: np.ndarray,
    actionness: np.ndarray,
    lam: float,
    compat: bool = False,
) -> np.ndarray:
    """λ·(normalised start + normalised end) + (1-λ)·mean raw actionness over frames start..end
    (end frame included; quirk 7). An empty span (compat fallback with end < start) is NaN.
    """
    if len(intervals) == 0:
        return np.zeros(0, dtype=np.float64)
    s, e = intervals[:, 0], intervals[:, 1]
    boundary = start_norm[s] + end_norm[e]
    actionness = np.asarray(actionness, dtype=np.float64)
    if compat:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # mean of an empty slice → NaN
            mean_act = np.array([np.mean(actionness[a : b + 1]) for a, b in intervals.tolist()])
    else:
        prefix = np.concatenate([[0.0], np.cumsum(actionness)])
        mean_act = (prefix[e + 1] - prefix[s]) / (e - s + 1)
    return lam * boundary + (1 - lam) * mean_act


# ---------------------------------------------------------------------------------------------
# 5) soft-NMS and merge


def _iou_inclusive(a: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of frame spans counted inclusively (a span s..e holds e-s+1 frames)."""
    inter = np.maximum(0, np.minimum(a[1], others[:, 1]) - np.maximum(a[0], others[:, 0]) + 1)
    union = (a[1] - a[0] + 1) + (others[:, 1] - others[:, 0] + 1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def _decay_rows(intervals: np.ndarray, sigma: float):
    """A function i → exp(-IoU(i, ·)²/σ) over all intervals (inclusive-length IoU), computed
    per kept interval: cheaper than the K×K matrix since only kept rows are ever needed."""
    starts = intervals[:, 0].astype(np.float64)
    ends = intervals[:, 1].astype(np.float64)
    lengths = ends - starts + 1

    def row(i: int) -> np.ndarray:
        inter = np.minimum(ends[i], ends) - np.maximum(starts[i], starts) + 1
        np.maximum(inter, 0, out=inter)
        iou = inter / (lengths[i] + lengths - inter)
        return np.exp(-(iou * iou) / sigma)

    return row


def soft_nms(
    intervals: np.ndarray,
    scores: np.ndarray,
    sigma: float,
    drop: float,
    compat: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS: a kept interval multiplies every remaining one's score by
    exp(-IoU²/σ) (IoU of inclusive frame counts); an interval whose decayed score is below
    `drop` is discarded (and decays nobody).

    Default: the next interval is always the highest decayed score (stable ties). Compat: the
    order is fixed once by `np.argsort(score)[::-1]` and never re-sorted (quirk 8).
    Returns the kept intervals (in visiting order) and their decayed scores.
    """
    scores = np.asarray(scores, dtype=np.float64).copy()
    intervals = np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
    if len(intervals) == 0:
        return intervals, scores
    if compat:
        order = np.argsort(scores)[::-1]
        intervals, scores = intervals[order], scores[order]
        decay = _decay_rows(intervals, sigma)
        keep = []
        with np.errstate(invalid="ignore"):
            for i in range(len(scores)):
                if scores[i] < drop:
                    continue
                keep.append(i)
                scores[i + 1 :] *= decay(i)[i + 1 :]
        return intervals[keep], scores[keep]
    decay = _decay_rows(intervals, sigma)
    alive = np.ones(len(scores), dtype=bool)
    kept_idx: list[int] = []
    kept_scores: list[float] = []
    for _ in range(len(scores)):
        i = int(np.argmax(np.where(alive, scores, -np.inf)))  # first maximum: stable ties
        if scores[i] < drop:
            # Scores only decay, so once the best is under `drop` all the rest are too.
            break
        kept_idx.append(i)
        kept_scores.append(float(scores[i]))
        alive[i] = False
        if not alive.any():
            break
        scores = scores * decay(i)
    return intervals[kept_idx].reshape(-1, 2), np.asarray(kept_scores, dtype=np.float64)


def merge_intervals(
    intervals: np.ndarray,
    scores: np.ndarray,
    merge_iou: float,
    score_threshold: float,
    compat: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge near-duplicates: sorted by start, each interval is compared with the last merged
    one and joined (union span) when their IoU is strictly above `merge_iou`; then intervals
    scoring below `score_threshold` are dropped.

    Default: stable sort, inclusive-length IoU, merged score = mean of the group's members.
    Compat (quirk 9): `np.argsort(start)`, exclusive-length IoU (0/0 → NaN → no merge), merged
    score = running pairwise mean (previous + current)/2, and quirk 10 (everything filtered
    out → ZealCompatCrash).
    """
    intervals = np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64)
    if len(intervals) == 0:
        return intervals, scores
    order = np.argsort(intervals[:, 0]) if compat else np.argsort(intervals[:, 0], kind="stable")
    spans = intervals[order].tolist()
    values = scores[order].tolist()
    # Plain Python scalars: int/int true division rounds exactly as numpy's float division.
    merged: list[list[int]] = [spans[0]]
    merged_scores: list[float] = [values[0]]
    members: list[list[float]] = [[values[0]]]
    extra = 0 if compat else 1
    for (start, end), score in zip(spans[1:], values[1:], strict=True):
        prev_start, prev_end = merged[-1]
        inter = max(0, min(prev_end, end) - max(prev_start, start) + extra)
        union = (end - start + extra) + (prev_end - prev_start + extra) - inter
        iou = inter / union if union != 0 else math.nan
        if iou > merge_iou:
            merged[-1] = [min(prev_start, start), max(prev_end, end)]
            if compat:
                merged_scores[-1] = (merged_scores[-1] + score) / 2
            else:
                members[-1].append(score)
                merged_scores[-1] = float(np.mean(members[-1]))
        else:
            merged.append([start, end])
            merged_scores.append(score)
            members.append([score])
    keep = [i for i, s in enumerate(merged_scores) if s >= score_threshold]
    if not keep:
        if compat:
            raise ZealCompatCrash(
                "ZEAL's stage 5 crashes here (its merge score filter removed every interval)"
            )
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float64)
    return (
        np.asarray([merged[i] for i in keep], dtype=np.int64),
        np.asarray([merged_scores[i] for i in keep], dtype=np.float64),
    )


# ---------------------------------------------------------------------------------------------
# Composition


def zeal_localize(
    start_p: np.ndarray,
    end_p: np.ndarray,
    actionness: np.ndarray,
    *,
    eps: float = 0.05,
    top_p: float = 0.35,
    min_gap: int = 5,
    max_len: float = 0.95,
    lam: float = 0.1,
    sigma: float = 1.3,
    drop: float = 0.1,
    merge_iou: float = 0.9,
    score_threshold: float = 0.0,
    min_mean_score: float | None = 0.1,
    compat: bool = False,
    notes: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Proposals for one (video, label): frame-index intervals (K×2, end inclusive) and scores.

    `min_mean_score` gates out labels the LVLM considers absent (mean p_yes of both columns
    below it); pass None when labels are the ground truth (the reference skips the gate then).
    `notes` collects one-line reasons when a label yields nothing for a degenerate input.
    """
    start_p = np.asarray(start_p, dtype=np.float64)
    end_p = np.asarray(end_p, dtype=np.float64)
    actionness = np.asarray(actionness, dtype=np.float64)
    n = len(start_p)
    if not (len(end_p) == n == len(actionness)):
        raise ValueError("start, end and actionness must have one value per frame")
    empty = (np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float64))
    notes = notes if notes is not None else []
    # quirk 1: gates on the raw scores
    if n <= (2 if compat else 1):
        notes.append(f"only {n} frame(s): too short to localize")
        return empty
    # (T, 2) like the reference's array, so sums round the same way
    both = np.stack([start_p, end_p], axis=1)
    if both.sum() == 0:
        notes.append("every start/end p_yes is 0")
        return empty
    if min_mean_score is not None and both.mean() < min_mean_score:
        notes.append(f"mean p_yes {both.mean():.3f} < {min_mean_score} (label judged absent)")
        return empty
    if not compat and start_p.max() == start_p.min() and end_p.max() == end_p.min():
        notes.append(f"all-equal start/end p_yes ({start_p[0]:.3g}, {end_p[0]:.3g}): no boundaries")
        return empty

    start_norm = minmax_scale(start_p, eps, compat)
    end_norm = minmax_scale(end_p, eps, compat)
    starts, ends = action_boundaries(start_norm, end_norm, top_p, min_gap, compat)
    pairs = pair_boundaries(starts, ends, max_len, n, compat)
    if len(pairs) == 0:
        notes.append("no start precedes an end within the maximum length")
        return empty
    scores = interval_scores(pairs, start_norm, end_norm, actionness, lam, compat)
    kept, kept_scores = soft_nms(pairs, scores, sigma, drop, compat)
    if compat:
        if len(kept) > 1:  # quirk 9/11: merge (and its filter, quirk 10) only with ≥ 2 left
            kept, kept_scores = merge_intervals(kept, kept_scores, merge_iou, score_threshold, True)
        return kept, kept_scores
    kept, kept_scores = merge_intervals(kept, kept_scores, merge_iou, score_threshold, False)
    order = np.argsort(-kept_scores, kind="stable")
    return kept[order], kept_scores[order]


def presence_boundaries(start_p: np.ndarray, end_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start/end scores from presence-like answers (`--boundaries presence`).

    A single frame rarely shows *when* an action begins; small LVLMs often answer ZEAL's start
    and end questions as "is the action visible here?". With presence p(t) (the mean of the
    start and end p_yes), P(start at t) ≈ p(t)·(1 - p(t-1)) and P(end at t) ≈ p(t)·(1 - p(t+1)):
    visible now, not before (after). The video's edges count as "not visible" outside.
    Not part of ZEAL; off by default.
    """
    presence = (np.asarray(start_p, dtype=np.float64) + np.asarray(end_p, dtype=np.float64)) / 2
    before = np.concatenate([[0.0], presence[:-1]])
    after = np.concatenate([presence[1:], [0.0]])
    return presence * (1 - before), presence * (1 - after)


def filter_labels(
    frame_embeddings: np.ndarray,
    label_embeddings: np.ndarray,
    labels: Sequence[str],
    top_k: int,
    num_frames: int = 8,
    compat: bool = False,
) -> list[str]:
    """Class filtering: mean of `num_frames` uniformly spaced frame embeddings (indices
    linspace(0, T-1, n) truncated, as the reference) against each label's description
    embedding; the top-k labels by similarity, best first."""
    if len(frame_embeddings) == 0 or len(labels) == 0 or top_k <= 0:
        return []
    idx = np.linspace(0, len(frame_embeddings) - 1, num_frames).astype(int)
    mean = np.asarray(frame_embeddings, dtype=np.float64)[idx].mean(axis=0)
    sims = np.asarray(label_embeddings, dtype=np.float64) @ mean
    order = _desc_order(sims, compat)[:top_k]
    return [labels[i] for i in order]


def frame_cells(timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The time span each sampled frame stands for: from halfway after the previous frame to
    halfway before the next (the first and last frames extend by half their neighbour gap,
    never before 0). Works for any sampling rate, regular or not."""
    t = np.asarray(timestamps, dtype=np.float64)
    n = len(t)
    if n == 0:
        return t.copy(), t.copy()
    if n == 1:
        return t.copy(), t.copy()
    mid = (t[1:] + t[:-1]) / 2
    left = np.concatenate([[max(0.0, t[0] - (t[1] - t[0]) / 2)], mid])
    right = np.concatenate([mid, [t[-1] + (t[-1] - t[-2]) / 2]])
    return left, right


def intervals_to_seconds(
    intervals: np.ndarray, timestamps: np.ndarray, compat: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-index intervals → seconds with the frames' real timestamps.

    Default: from the start frame's cell start to the end frame's cell end (an interval holds
    its end frame). Compat: the start and end frames' own timestamps, which at 1 fps from t=0 is
    the reference's "frame indices written as seconds" (quirk 11)."""
    intervals = np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
    t = np.asarray(timestamps, dtype=np.float64)
    if compat:
        return t[intervals[:, 0]], t[intervals[:, 1]]
    left, right = frame_cells(t)
    return left[intervals[:, 0]], right[intervals[:, 1]]


def sampling_fps(timestamps: np.ndarray) -> float | None:
    """Frames per second of a sampling (median step), None when it cannot be told."""
    t = np.asarray(timestamps, dtype=np.float64)
    if len(t) < 2:
        return None
    step = float(np.median(np.diff(t)))
    return None if step <= 0 or not math.isfinite(step) else 1.0 / step
