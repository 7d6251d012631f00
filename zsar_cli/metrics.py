"""Metrics over numpy arrays: accuracy family, temporal AP@tIoU, frame-level ROC-AUC/AP.

Input: integer-coded labels, interval arrays and score arrays (the `score` stage builds them from
`predictions`, `intervals` and `frame_scores` artifacts plus ground truth).
Output: plain numbers and arrays; no I/O here.

scikit-learn computes what it already implements (confusion matrix, ROC-AUC, average precision,
PR/ROC curves). The interpolated (VOC-2011) temporal AP with greedy highest-tIoU matching is
hand-written: sklearn's `average_precision_score` is not interpolated and knows no tIoU matching,
so it does not reproduce published localization numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THUMOS_TIOU: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
ANET_TIOU: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.5, 0.95, 10))

# ---------------------------------------------------------------------------------------------
# Classification


@dataclass
class AccuracyResult:
    """Top-k accuracies, mean-class accuracy, per-class recall and the confusion matrix.

    `confusion` has one row per class and one column per class plus a last column for videos
    with no prediction (error rows, missing videos): they count as wrong everywhere.
    """

    top1: float
    top5: float
    mean_class: float
    per_class_recall: np.ndarray
    support: np.ndarray
    confusion: np.ndarray
    n: int


def accuracy_metrics(
    true_idx: np.ndarray, ranked_idx: np.ndarray, n_classes: int
) -> AccuracyResult:
    """`true_idx` (N,) class of each video; `ranked_idx` (N, K) predicted classes best first,
    -1 where a video has no (or fewer than K) predictions.

    Mean-class accuracy averages recall over the classes that have at least one video, as
    sklearn's balanced accuracy does.
    """
    from sklearn.metrics import confusion_matrix

    true_idx = np.asarray(true_idx, dtype=np.int64)
    ranked_idx = np.asarray(ranked_idx, dtype=np.int64).reshape(len(true_idx), -1)
    n = len(true_idx)
    if n == 0:
        empty = np.zeros(n_classes)
        return AccuracyResult(
            0.0, 0.0, 0.0, empty, empty.astype(int), np.zeros((n_classes, n_classes + 1), int), 0
        )
    top1_pred = ranked_idx[:, 0] if ranked_idx.shape[1] else np.full(n, -1)
    hits = ranked_idx == true_idx[:, None]
    top1 = float(np.mean(top1_pred == true_idx))
    top5 = float(np.mean(hits[:, :5].any(axis=1)))
    none = n_classes  # the "no prediction" column
    cm = confusion_matrix(
        true_idx, np.where(top1_pred < 0, none, top1_pred), labels=np.arange(n_classes + 1)
    )[:n_classes]
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, np.diag(cm[:, :n_classes]) / np.maximum(support, 1), np.nan)
    present = support > 0
    mean_class = float(np.mean(recall[present])) if present.any() else 0.0
    return AccuracyResult(top1, top5, mean_class, recall, support, cm, n)


# ---------------------------------------------------------------------------------------------
# Temporal localization


def parse_tiou(text: str) -> tuple[float, ...]:
    """`0.3,0.5,0.7` or `start:step:stop` (stop included) → thresholds in (0, 1]."""
    text = text.strip()
    try:
        if ":" in text:
            start, step, stop = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError("step must be > 0")
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, 10) for i in range(max(count, 0))]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ValueError(f"expected a comma list or start:step:stop ({exc})") from None
    if not values:
        raise ValueError("no thresholds")
    if any(not 0 < v <= 1 for v in values):
        raise ValueError("thresholds must lie in (0, 1]")
    return tuple(values)


def segment_tiou(
    pred_start: np.ndarray,
    pred_end: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    compat: bool = False,
) -> np.ndarray:
    """Elementwise temporal IoU (broadcasting).

    Two zero-length segments have 0/0 IoU. By default that is 1 when they are identical and 0
    otherwise; with `compat` it stays NaN, which ActivityNet's matching treats as a hit at every
    threshold (its `tiou < t` test never fires on NaN), identical or not.
    """
    inter = np.clip(np.minimum(pred_end, gt_end) - np.maximum(pred_start, gt_start), 0, None)
    union = (pred_end - pred_start) + (gt_end - gt_start) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        tiou = inter / union
    if not compat:
        same = (pred_start == gt_start) & (pred_end == gt_end)
        tiou = np.where(union == 0, np.where(same, 1.0, 0.0), tiou)
    return tiou


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-2011 interpolated AP: precision made monotone from the right, integrated over recall
    at the points where recall changes (sentinels: precision 0 at both ends, recall 0 and 1)."""
    mprec = np.concatenate(([0.0], precision, [0.0]))
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


@dataclass
class DetectionResult:
    """AP per (threshold, class); classes without ground truth have `npos == 0` and NaN AP."""

    thresholds: np.ndarray
    ap: np.ndarray
    npos: np.ndarray
    tp: np.ndarray = field(repr=False)  # (T, P) bool: prediction matched at threshold
    ignored: np.ndarray = field(repr=False)  # (T, P) bool: neither TP nor FP (ambiguous)
    order: np.ndarray = field(repr=False)  # prediction indices by (class, rank)
    pred_class: np.ndarray = field(repr=False)

    @property
    def has_gt(self) -> np.ndarray:
        return self.npos > 0

    @property
    def map(self) -> np.ndarray:
        """mAP per threshold over the classes that have ground truth."""
        if not self.has_gt.any():
            return np.zeros(len(self.thresholds))
        return self.ap[:, self.has_gt].mean(axis=1)

    @property
    def average_map(self) -> float:
        return float(self.map.mean()) if len(self.thresholds) else 0.0

    def pr_curve(self, class_idx: int, t_idx: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Precision and recall after each ranked prediction of one class (for plots)."""
        sel = self.order[self.pred_class[self.order] == class_idx]
        keep = ~self.ignored[t_idx, sel]
        tp = self.tp[t_idx, sel][keep].astype(float)
        tp_c = np.cumsum(tp)
        fp_c = np.cumsum(1.0 - tp)
        npos = max(int(self.npos[class_idx]), 1)
        return tp_c / np.maximum(tp_c + fp_c, 1), tp_c / npos


def _rank_order(
    score: np.ndarray, pred_class: np.ndarray, n_classes: int, compat: bool
) -> np.ndarray:
    """Prediction indices sorted by (class, rank), rank 0 = best.

    Default: descending score, NaN first (as the reference code ends up ranking them), ties in
    input order (stable). `compat`: numpy's `argsort(score)[::-1]` per class, exactly what
    ActivityNet's eval_detection.py does (its tie order depends on numpy's sort implementation).
    """
    n = len(score)
    if not compat:
        nan = np.isnan(score)
        filled = np.where(nan, 0.0, score)
        return np.lexsort((np.arange(n), -filled, (~nan).astype(np.int8), pred_class))
    parts = []
    for c in range(n_classes):
        idx = np.flatnonzero(pred_class == c)
        if idx.size:
            parts.append(idx[np.argsort(score[idx])[::-1]])
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _cross_pairs(
    left_key: np.ndarray, right_key: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (left, right) index pairs with equal keys, vectorised.

    Returns (left index, right index, right's position within its key group in input order).
    """
    right_order = np.argsort(right_key, kind="stable")
    sorted_keys = right_key[right_order]
    lo = np.searchsorted(sorted_keys, left_key, "left")
    hi = np.searchsorted(sorted_keys, left_key, "right")
    counts = hi - lo
    total = int(counts.sum())
    left = np.repeat(np.arange(len(left_key)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    right = right_order[np.repeat(lo, counts) + offsets]
    return left, right, offsets


def temporal_ap(
    pred_video: np.ndarray,
    pred_class: np.ndarray,
    pred_start: np.ndarray,
    pred_end: np.ndarray,
    pred_score: np.ndarray,
    gt_video: np.ndarray,
    gt_class: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    n_classes: int,
    thresholds: tuple[float, ...] | np.ndarray,
    compat: bool = False,
    ambiguous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> DetectionResult:
    """Per-class interpolated AP at each tIoU threshold (ActivityNet detection protocol).

    Videos and classes are integer codes shared by both sides. Per class, predictions are ranked
    by score; each takes the unmatched ground truth of its video with the highest tIoU ≥ t, or
    is a false positive. Predictions with invalid spans (non-finite, reversed, negative start)
    never match but stay in the ranking as false positives (default mode; `compat` applies
    ActivityNet's arithmetic to them unchanged). `ambiguous` = (video, start, end) spans:
    a false positive overlapping one is ignored (THUMOS14 devkit).

    The greedy matching is sequential per (class, video) group but independent across groups,
    so it runs as rounds over all groups at once: in each round, every group's best-ranked
    prediction that still has a free ground truth above the threshold takes its preferred one.
    Predictions ranked before it had no candidate and can never get one later (ground truth
    only gets taken), so the rounds reproduce the sequential result exactly; the number of
    rounds is the largest number of matches in one group.
    """
    thresholds = np.asarray(thresholds, dtype=float)
    pred_video = np.asarray(pred_video, np.int64)
    pred_class = np.asarray(pred_class, np.int64)
    pred_start = np.asarray(pred_start, float)
    pred_end = np.asarray(pred_end, float)
    pred_score = np.asarray(pred_score, float)
    gt_video = np.asarray(gt_video, np.int64)
    gt_class = np.asarray(gt_class, np.int64)
    gt_start = np.asarray(gt_start, float)
    gt_end = np.asarray(gt_end, float)
    n_pred, n_thr = len(pred_score), len(thresholds)
    n_videos = int(max(pred_video.max(initial=-1), gt_video.max(initial=-1))) + 1

    npos = np.bincount(gt_class, minlength=n_classes)[:n_classes]
    order = _rank_order(pred_score, pred_class, n_classes, compat)
    rank = np.empty(n_pred, np.int64)
    rank[order] = np.arange(n_pred)

    # Candidate (prediction, ground truth) pairs: same class and video.
    pred_key = pred_class * n_videos + pred_video
    gt_key = gt_class * n_videos + gt_video
    pp, pg, gpos = _cross_pairs(pred_key, gt_key)
    tiou = segment_tiou(pred_start[pp], pred_end[pp], gt_start[pg], gt_end[pg], compat)
    if compat:
        tiou = np.where(np.isnan(tiou), np.inf, tiou)  # NaN: first in line, passes every test
    else:
        bad = ~(np.isfinite(pred_start) & np.isfinite(pred_end))
        bad |= (pred_end < pred_start) | (pred_start < 0)
        tiou = np.where(bad[pp], -1.0, tiou)
    keep = tiou >= (thresholds.min() if n_thr else np.inf)
    pp, pg, gpos, tiou = pp[keep], pg[keep], gpos[keep], tiou[keep]

    # Preference of a prediction among its ground truths: highest tIoU first; ties by file
    # order (default) or by numpy's reversed argsort, as the reference does (compat).
    tie_key = -gpos if compat else gpos
    pref_sorted = np.lexsort((tie_key, -tiou, pp))
    if compat:
        _compat_ties(
            pref_sorted, pp, pg, tiou, gt_key, pred_key, pred_start, pred_end, gt_start, gt_end
        )
    pref = np.empty(len(pp), np.int64)
    pref[pref_sorted] = np.arange(len(pp))
    pair_order = np.lexsort((pref, rank[pp], pred_key[pp]))
    pp, pg, tiou = pp[pair_order], pg[pair_order], tiou[pair_order]
    group = pred_key[pp]

    tp = np.zeros((n_thr, n_pred), bool)
    for ti, t in enumerate(thresholds):
        cand = np.flatnonzero(tiou >= t)
        taken_gt = np.zeros(len(gt_key), bool)
        matched = np.zeros(n_pred, bool)
        while cand.size:
            g = group[cand]
            first = np.empty(cand.size, bool)
            first[0] = True
            first[1:] = g[1:] != g[:-1]
            sel = cand[first]
            matched[pp[sel]] = True
            taken_gt[pg[sel]] = True
            cand = cand[~(taken_gt[pg[cand]] | matched[pp[cand]])]
        tp[ti] = matched

    ignored = np.zeros((n_thr, n_pred), bool)
    if ambiguous is not None and len(ambiguous[0]):
        amb_video, amb_start, amb_end = (np.asarray(a) for a in ambiguous)
        ap_, ag, _ = _cross_pairs(pred_video, np.asarray(amb_video, np.int64))
        overlap = (
            np.minimum(pred_end[ap_], amb_end[ag]) - np.maximum(pred_start[ap_], amb_start[ag])
        ) > 0
        touches = np.zeros(n_pred, bool)
        touches[ap_[overlap]] = True
        ignored = touches[None, :] & ~tp

    ap = np.full((n_thr, n_classes), np.nan)
    sorted_class = pred_class[order]
    bounds = np.searchsorted(sorted_class, np.arange(n_classes + 1))
    for c in range(n_classes):
        if npos[c] == 0:
            continue
        sel = order[bounds[c] : bounds[c + 1]]
        for ti in range(n_thr):
            row_tp = tp[ti, sel]
            if ignored[ti, sel].any():
                row_tp = row_tp[~ignored[ti, sel]]
            if row_tp.size == 0:
                ap[ti, c] = 0.0
                continue
            tp_c = np.cumsum(row_tp, dtype=float)
            fp_c = np.cumsum(~row_tp, dtype=float)
            ap[ti, c] = interpolated_ap(tp_c / (tp_c + fp_c), tp_c / npos[c])
    return DetectionResult(thresholds, ap, npos, tp, ignored, order, pred_class)


def _compat_ties(
    pref_sorted: np.ndarray,
    pp: np.ndarray,
    pg: np.ndarray,
    tiou: np.ndarray,
    gt_key: np.ndarray,
    pred_key: np.ndarray,
    pred_start: np.ndarray,
    pred_end: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
) -> None:
    """Where a prediction has tied tIoUs, reorder its pairs as `np.argsort(tiou)[::-1]` over its
    video's whole ground truth would (numpy's tie order is implementation-defined, so the only
    exact way is to call it). Ties are rare with real-valued spans, so the loop is short."""
    s_pp, s_t = pp[pref_sorted], tiou[pref_sorted]
    dup = (s_pp[1:] == s_pp[:-1]) & (s_t[1:] == s_t[:-1])
    if not dup.any():
        return
    gt_order = np.argsort(gt_key, kind="stable")
    sorted_gt_keys = gt_key[gt_order]
    for p in np.unique(s_pp[1:][dup]):
        lo, hi = np.searchsorted(s_pp, [p, p + 1])
        key = pred_key[p]
        members = gt_order[
            np.searchsorted(sorted_gt_keys, key) : np.searchsorted(sorted_gt_keys, key, "right")
        ]
        full = segment_tiou(pred_start[p], pred_end[p], gt_start[members], gt_end[members], True)
        position = np.empty(len(members), np.int64)
        position[np.argsort(full)[::-1]] = np.arange(len(members))
        where = dict(zip(members.tolist(), position.tolist(), strict=True))
        block = pref_sorted[lo:hi]
        pref_sorted[lo:hi] = block[np.argsort([where[int(g)] for g in pg[block]], kind="stable")]


def subset_class_map(
    ap: np.ndarray, has_gt: np.ndarray, k: int, n_splits: int, seed: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """mAP over K random classes per split (zero-shot protocol: unseen-class subsets).

    Returns (per-split mAP per threshold, shape (n_splits, T), the class indices of each split).
    Splits are drawn with numpy's default_rng(seed), so a seed fixes them.
    """
    pool = np.flatnonzero(has_gt)
    if not 1 <= k <= len(pool):
        raise ValueError(f"--subset-classes {k}: need 1..{len(pool)} (classes with ground truth)")
    rng = np.random.default_rng(seed)
    splits = [np.sort(rng.choice(pool, size=k, replace=False)) for _ in range(n_splits)]
    per_split = (
        np.stack([ap[:, s].mean(axis=1) for s in splits]) if splits else np.zeros((0, ap.shape[0]))
    )
    return per_split, splits


# ---------------------------------------------------------------------------------------------
# Anomaly (frame level)

FILL_MODES = ("nearest", "previous")


def expand_frame_scores(
    frame_index: np.ndarray, score: np.ndarray, n_frames: int, fill: str = "nearest"
) -> np.ndarray:
    """Scores of sampled frames → one score per decoded frame 0..n_frames-1.

    `nearest`: each frame takes the score of the closest scored frame (ties: the earlier one),
    right for samples taken at segment midpoints. `previous`: each frame holds the last scored
    frame at or before it (frames before the first sample take the first), right for causal
    or clip-start scores. Duplicate frame indices are averaged.
    """
    if fill not in FILL_MODES:
        raise ValueError(f"fill must be one of {FILL_MODES}")
    frame_index = np.asarray(frame_index, np.int64)
    score = np.asarray(score, float)
    uniq, inverse = np.unique(frame_index, return_inverse=True)
    if len(uniq) != len(frame_index):
        score = np.bincount(inverse, weights=score) / np.bincount(inverse)
    else:
        score = score[np.argsort(frame_index)]
    frames = np.arange(n_frames)
    right = np.searchsorted(uniq, frames, "right")  # scored frames at or before each frame
    prev = np.clip(right - 1, 0, len(uniq) - 1)
    if fill == "previous":
        return score[prev]
    nxt = np.clip(right, 0, len(uniq) - 1)
    d_prev = np.where(right > 0, frames - uniq[prev], np.inf)
    d_next = np.where(right < len(uniq), uniq[nxt] - frames, np.inf)
    return score[np.where(d_next < d_prev, nxt, prev)]


def span_labels(spans: list[tuple[int, int]], n_frames: int) -> np.ndarray:
    """Boolean per frame from 0-based inclusive spans (clipped to the frame range)."""
    labels = np.zeros(n_frames, bool)
    for start, end in spans:
        labels[max(start, 0) : min(end, n_frames - 1) + 1] = True
    return labels


@dataclass
class FrameResult:
    roc_auc: float
    ap: float
    n_frames: int
    n_positive: int


def frame_metrics(labels: np.ndarray, scores: np.ndarray) -> FrameResult:
    """Frame-level ROC-AUC and AP (sklearn) over all frames of all videos concatenated.

    NaN when one class is absent (AUC is undefined then, and a number would mislead).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, float)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        return FrameResult(float("nan"), float("nan"), len(labels), n_pos)
    nan = np.isnan(scores)
    if nan.any():  # an unscorable frame ranks lowest (sklearn rejects NaN and inf)
        low = scores[~nan].min() - 1.0 if (~nan).any() else 0.0
        scores = np.where(nan, low, scores)
    return FrameResult(
        float(roc_auc_score(labels, scores)),
        float(average_precision_score(labels, scores)),
        len(labels),
        n_pos,
    )
