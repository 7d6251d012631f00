"""Metrics: hand-worked golden values, parity with independent loop implementations, sklearn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score

from zsar_cli.metrics import (
    accuracy_metrics,
    expand_frame_scores,
    frame_metrics,
    interpolated_ap,
    parse_tiou,
    segment_tiou,
    span_labels,
    subset_class_map,
    temporal_ap,
)


def _ap(preds, gts, n_classes, thresholds, compat=False, ambiguous=None):
    """preds: (video, class, start, end, score); gts: (video, class, start, end)."""
    p = np.array(preds, float).reshape(-1, 5)
    g = np.array(gts, float).reshape(-1, 4)
    return temporal_ap(
        p[:, 0].astype(int), p[:, 1].astype(int), p[:, 2], p[:, 3], p[:, 4],
        g[:, 0].astype(int), g[:, 1].astype(int), g[:, 2], g[:, 3],
        n_classes, thresholds, compat=compat, ambiguous=ambiguous,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Golden temporal AP


def test_interpolated_ap_hand_worked():
    # precision [1, 1/2, 2/3], recall [1/2, 1/2, 1]: made monotone from the right the precision
    # is [1, 2/3, 2/3]; recall steps 0→1/2 at precision 1 and 1/2→1 at 2/3: 1/2 + 1/3 = 5/6.
    assert interpolated_ap(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(
        5 / 6
    )
    assert interpolated_ap(np.array([]), np.array([])) == 0.0


def test_duplicate_detection_and_threshold_dependence():
    # One video, one class, GT g1=[0,10], g2=[20,30]. Ranked predictions:
    #   p1 [0,10]  0.9: tIoU(g1)=1                       → TP
    #   p2 [1,10]  0.8: tIoU(g1)=0.9 but g1 taken, g2: 0 → FP (duplicate detection)
    #   p3 [20,25] 0.7: tIoU(g2)=5/10=0.5                → TP at t≤0.5, FP above
    # t=0.5: precision [1,1/2,2/3], recall [1/2,1/2,1] → AP 5/6 (as above).
    # t=0.7: precision [1,1/2,1/3], recall [1/2,1/2,1/2] → AP 1/2.
    preds = [(0, 0, 0, 10, 0.9), (0, 0, 1, 10, 0.8), (0, 0, 20, 25, 0.7)]
    gts = [(0, 0, 0, 10), (0, 0, 20, 30)]
    for compat in (False, True):
        res = _ap(preds, gts, 1, (0.5, 0.7), compat=compat)
        np.testing.assert_allclose(res.ap[:, 0], [5 / 6, 1 / 2])
        np.testing.assert_allclose(res.map, [5 / 6, 1 / 2])
        assert res.average_map == pytest.approx((5 / 6 + 1 / 2) / 2)
        np.testing.assert_array_equal(res.tp[0], [True, False, True])


def test_tied_scores_stable_vs_activitynet_order():
    # GT [0,10]. Two predictions tied at 0.5, input order: pB [50,60] (miss), pA [0,10] (hit).
    # Stable order keeps pB first: precision [0, 1/2], recall [0, 1] → AP 1/2.
    # Hit first would give precision [1, 1/2], recall [1, 1] → AP 1.
    preds = [(0, 0, 50, 60, 0.5), (0, 0, 0, 10, 0.5)]
    gts = [(0, 0, 0, 10)]
    assert _ap(preds, gts, 1, (0.5,)).ap[0, 0] == pytest.approx(0.5)
    # --compat anet ranks by numpy's argsort(score)[::-1], whatever order that gives here.
    hit_first = np.argsort(np.array([0.5, 0.5]))[::-1][0] == 1
    expected = 1.0 if hit_first else 0.5
    assert _ap(preds, gts, 1, (0.5,), compat=True).ap[0, 0] == pytest.approx(expected)


def test_zero_predictions_for_a_class_and_class_absent_from_gt():
    # Class 0: one GT, one perfect prediction → AP 1. Class 1: one GT, no prediction → AP 0.
    # Class 2: predictions but no GT → no AP (NaN), not part of the mean: mAP = (1 + 0) / 2.
    preds = [(0, 0, 0, 5, 0.9), (1, 2, 0, 5, 0.8)]
    gts = [(0, 0, 0, 5), (1, 1, 3, 9)]
    res = _ap(preds, gts, 3, (0.3, 0.7))
    np.testing.assert_allclose(res.ap[:, :2], [[1, 0], [1, 0]])
    assert np.isnan(res.ap[:, 2]).all()
    np.testing.assert_allclose(res.map, [0.5, 0.5])
    np.testing.assert_array_equal(res.npos, [1, 1, 0])


def test_prediction_in_video_without_gt_is_false_positive():
    # p1 in video 1 (no GT there) ranks first: precision [0, 1/2], recall [0, 1] → AP 1/2.
    preds = [(1, 0, 0, 5, 0.9), (0, 0, 0, 5, 0.8)]
    assert _ap(preds, [(0, 0, 0, 5)], 1, (0.5,)).ap[0, 0] == pytest.approx(0.5)


def test_zero_length_segments():
    # Identical zero-length prediction and GT: a hit in both modes (ActivityNet's 0/0 = NaN
    # never fails its `tiou < t` test; by default we define the tIoU of identical spans as 1).
    same = _ap([(0, 0, 4, 4, 0.9)], [(0, 0, 4, 4)], 1, (0.5, 0.95))
    assert same.ap[:, 0].tolist() == [1.0, 1.0]
    assert _ap([(0, 0, 4, 4, 0.9)], [(0, 0, 4, 4)], 1, (0.5,), compat=True).ap[0, 0] == 1.0
    # Different zero-length spans: 0 by default; ActivityNet's arithmetic still calls it a hit.
    assert _ap([(0, 0, 7, 7, 0.9)], [(0, 0, 4, 4)], 1, (0.5,)).ap[0, 0] == 0.0
    assert _ap([(0, 0, 7, 7, 0.9)], [(0, 0, 4, 4)], 1, (0.5,), compat=True).ap[0, 0] == 1.0


def test_invalid_intervals_never_match_but_count_as_false_positives():
    # Reversed [10,0] ranks first and is a FP; then the hit: precision [0,1/2], recall [0,1].
    res = _ap([(0, 0, 10, 0, 0.9), (0, 0, 0, 10, 0.8)], [(0, 0, 0, 10)], 1, (0.5,))
    assert res.ap[0, 0] == pytest.approx(0.5)


def test_nan_score_ranks_first():
    # The NaN-scored miss ranks before the 0.9 hit (as in ActivityNet): AP 1/2 in both modes.
    preds = [(0, 0, 0, 10, 0.9), (0, 0, 50, 60, np.nan)]
    for compat in (False, True):
        assert _ap(preds, [(0, 0, 0, 10)], 1, (0.5,), compat).ap[0, 0] == pytest.approx(0.5)


def test_highest_tiou_ground_truth_is_taken():
    # p1 [0,10] overlaps g1 [0,12] (tIoU 10/12) and g2 [2,10] (tIoU 8/10): it takes g1 (higher).
    # p2 [2,10] then takes g2 (tIoU 1). Both TP → AP 1. Taking g2 first would leave p2 with
    # g1 at tIoU 8/12 = 0.67 < 0.7 → AP 1/2 at 0.7.
    preds = [(0, 0, 0, 10, 0.9), (0, 0, 2, 10, 0.8)]
    gts = [(0, 0, 2, 10), (0, 0, 0, 12)]
    assert _ap(preds, gts, 1, (0.7,)).ap[0, 0] == pytest.approx(1.0)


def test_ambiguous_spans_exclude_overlapping_false_positives():
    # The FP [40,50] overlaps an ambiguous span: ignored, so only the hit counts → AP 1.
    preds = [(0, 0, 40, 50, 0.9), (0, 0, 0, 10, 0.8)]
    amb = (np.array([0]), np.array([45.0]), np.array([60.0]))
    assert _ap(preds, [(0, 0, 0, 10)], 1, (0.5,), ambiguous=amb).ap[0, 0] == 1.0
    assert _ap(preds, [(0, 0, 0, 10)], 1, (0.5,)).ap[0, 0] == pytest.approx(0.5)


def test_segment_tiou_values():
    assert segment_tiou(np.array(0.0), np.array(10.0), np.array(5.0), np.array(15.0)) == (
        pytest.approx(5 / 15)
    )
    assert segment_tiou(np.array(0.0), np.array(1.0), np.array(2.0), np.array(3.0)) == 0.0


def test_parse_tiou():
    assert parse_tiou("0.3:0.1:0.7") == (0.3, 0.4, 0.5, 0.6, 0.7)
    assert len(parse_tiou("0.5:0.05:0.95")) == 10
    assert parse_tiou("0.5, 0.75") == (0.5, 0.75)
    for bad in ("0:0.1:0.5", "x", "0.5:0:1", "1.5"):
        with pytest.raises(ValueError):
            parse_tiou(bad)


# ---------------------------------------------------------------------------------------------
# Parity with straightforward loop implementations


def _naive_ap(pv, pc, ps, pe, sc, gv, gc, gs, ge, n_classes, thresholds):
    """Textbook version: per class, predictions by descending score, each takes the free GT of
    its video with the highest tIoU ≥ t; VOC interpolation written as loops."""
    out = np.full((len(thresholds), n_classes), np.nan)
    for c in range(n_classes):
        gidx = [j for j in range(len(gc)) if gc[j] == c]
        if not gidx:
            continue
        pidx = sorted((i for i in range(len(pc)) if pc[i] == c), key=lambda i: -sc[i])
        for ti, t in enumerate(thresholds):
            used, hits = set(), []
            for i in pidx:
                best, best_iou = None, -1.0
                for j in gidx:
                    if gv[j] != pv[i] or j in used:
                        continue
                    inter = max(0.0, min(pe[i], ge[j]) - max(ps[i], gs[j]))
                    iou = inter / ((pe[i] - ps[i]) + (ge[j] - gs[j]) - inter)
                    if iou >= t and iou > best_iou:
                        best, best_iou = j, iou
                if best is not None:
                    used.add(best)
                hits.append(best is not None)
            if not hits:
                out[ti, c] = 0.0
                continue
            tp = fp = 0
            prec, rec = [], []
            for h in hits:
                tp, fp = tp + h, fp + (not h)
                prec.append(tp / (tp + fp))
                rec.append(tp / len(gidx))
            mp, mr = [0.0, *prec, 0.0], [0.0, *rec, 1.0]
            for k in range(len(mp) - 2, -1, -1):
                mp[k] = max(mp[k], mp[k + 1])
            out[ti, c] = sum(
                (mr[k] - mr[k - 1]) * mp[k] for k in range(1, len(mr)) if mr[k] != mr[k - 1]
            )
    return out


def _random_case(rng, integer=False):
    n_videos, n_classes = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    n_gt, n_pred = int(rng.integers(0, 15)), int(rng.integers(0, 40))
    gv, gc = rng.integers(0, n_videos, n_gt), rng.integers(0, n_classes, n_gt)
    pv, pc = rng.integers(0, n_videos, n_pred), rng.integers(0, n_classes, n_pred)
    if integer:  # many ties in scores and tIoU, zero-length spans
        gs = rng.integers(0, 10, n_gt).astype(float)
        ge = gs + rng.integers(0, 5, n_gt)
        ps = rng.integers(0, 10, n_pred).astype(float)
        pe = ps + rng.integers(0, 5, n_pred)
        sc = rng.integers(0, 4, n_pred).astype(float)
        return pv, pc, ps, pe, sc, gv, gc, gs, ge, n_classes
    gs = rng.uniform(0, 50, n_gt)
    ge = gs + rng.uniform(0.5, 20, n_gt)
    ps = rng.uniform(0, 50, n_pred)
    pe = ps + rng.uniform(0.5, 20, n_pred)
    for i in range(n_pred):  # half the predictions near a GT instance, so matches happen
        if n_gt and rng.random() < 0.5:
            j = rng.integers(n_gt)
            pv[i], pc[i] = gv[j], gc[j]
            ps[i] = max(gs[j] + rng.normal(0, 1), 0.0)
            pe[i] = max(ge[j] + rng.normal(0, 1), ps[i] + 0.1)
    return pv, pc, ps, pe, rng.random(n_pred), gv, gc, gs, ge, n_classes


def test_parity_with_naive_loop_on_random_inputs():
    rng = np.random.default_rng(0)
    thresholds = (0.1, 0.3, 0.5, 0.7, 0.9)
    for _ in range(150):
        case = _random_case(rng)
        expected = _naive_ap(*case, thresholds)
        for compat in (False, True):  # distinct scores: both orders agree
            got = temporal_ap(*case, thresholds, compat=compat).ap
            np.testing.assert_allclose(got, expected, atol=1e-12)


def _activitynet_loop(pv, pc, ps, pe, sc, gv, gc, gs, ge, n_classes, thresholds):
    """The documented behaviour of ActivityNet's eval_detection.py, as plain loops: per class
    `argsort(score)[::-1]`, per prediction its video's GT by `argsort(tiou)[::-1]`, stop at the
    first tIoU < t, skip taken GT (NaN tIoU never fails the test)."""
    out = np.full((len(thresholds), n_classes), np.nan)
    for c in range(n_classes):
        gi = np.flatnonzero(gc == c)
        if not gi.size:
            continue
        pi = np.flatnonzero(pc == c)
        pi = pi[np.argsort(sc[pi])[::-1]]
        taken = np.zeros((len(thresholds), len(gi)), bool)
        tp = np.zeros((len(thresholds), len(pi)))
        for k, i in enumerate(pi):
            local = np.flatnonzero(gv[gi] == pv[i])
            g = gi[local]
            inter = np.clip(np.minimum(pe[i], ge[g]) - np.maximum(ps[i], gs[g]), 0, None)
            with np.errstate(all="ignore"):
                tiou = inter / ((pe[i] - ps[i]) + (ge[g] - gs[g]) - inter)
            for ti, t in enumerate(thresholds):
                for j in tiou.argsort()[::-1]:
                    if tiou[j] < t:
                        break
                    if not taken[ti, local[j]]:
                        taken[ti, local[j]] = True
                        tp[ti, k] = 1
                        break
        for ti in range(len(thresholds)):
            if not len(pi):
                out[ti, c] = 0.0
                continue
            tc, fc = np.cumsum(tp[ti]), np.cumsum(1 - tp[ti])
            out[ti, c] = interpolated_ap(tc / (tc + fc), tc / len(gi))
    return out


def test_compat_anet_matches_reference_order_with_ties_and_nan():
    rng = np.random.default_rng(1)
    thresholds = (0.1, 0.3, 0.5, 0.7, 0.95)
    differs = 0
    for _ in range(150):
        case = list(_random_case(rng, integer=True))
        if len(case[4]) and rng.random() < 0.3:
            case[4][rng.integers(len(case[4]))] = np.nan
        expected = _activitynet_loop(*case, thresholds)
        np.testing.assert_allclose(
            temporal_ap(*case, thresholds, compat=True).ap, expected, atol=1e-12
        )
        differs += not np.allclose(
            np.nan_to_num(temporal_ap(*case, thresholds).ap, nan=-1),
            np.nan_to_num(expected, nan=-1),
        )
    assert differs > 0  # ties make the stable default genuinely different from the reference


def test_subset_class_map_is_seeded_mean_of_chosen_classes():
    ap = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    has_gt = np.array([True, True, True, False])
    per_split, splits = subset_class_map(ap, has_gt, 2, 5, seed=3)
    assert per_split.shape == (5, 2)
    for row, s in zip(per_split, splits, strict=True):
        assert 3 not in s and len(set(s)) == 2
        np.testing.assert_allclose(row, ap[:, s].mean(axis=1))
    again, _ = subset_class_map(ap, has_gt, 2, 5, seed=3)
    np.testing.assert_array_equal(per_split, again)
    with pytest.raises(ValueError):
        subset_class_map(ap, has_gt, 4, 1, 0)


# ---------------------------------------------------------------------------------------------
# Accuracy family


def test_accuracy_hand_worked_confusion():
    # 3 classes, 6 videos. true: [0,0,0,1,2,2]; ranked predictions (best first, -1 none):
    #   v0 [0,1] ✓  v1 [0,2] ✓  v2 [1,0] ✗ (top-2 ✓)  v3 [1,0] ✓  v4 none ✗  v5 [0,2] ✗ (top-2 ✓)
    # top-1 = 3/6; top-5 = 5/6 (all but v4); recall: c0 2/3, c1 1/1, c2 0/2 → mean-class 5/9.
    true = np.array([0, 0, 0, 1, 2, 2])
    ranked = np.array([[0, 1], [0, 2], [1, 0], [1, 0], [-1, -1], [0, 2]])
    res = accuracy_metrics(true, ranked, 3)
    assert res.top1 == pytest.approx(0.5)
    assert res.top5 == pytest.approx(5 / 6)
    assert res.mean_class == pytest.approx(5 / 9)
    np.testing.assert_allclose(res.per_class_recall, [2 / 3, 1.0, 0.0])
    # Rows: true class; columns: predicted class, last = no prediction.
    np.testing.assert_array_equal(res.confusion, [[2, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 1]])
    with warnings.catch_warnings():  # sklearn notes that -1 is not a true class; it is meant
        warnings.simplefilter("ignore", UserWarning)
        assert res.mean_class == pytest.approx(balanced_accuracy_score(true, ranked[:, 0]))


def test_accuracy_perfect_and_shuffled():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 10, 2000)
    perfect = accuracy_metrics(true, true[:, None], 10)
    assert (perfect.top1, perfect.top5, perfect.mean_class) == (1.0, 1.0, 1.0)
    shuffled = accuracy_metrics(true, rng.permutation(true)[:, None], 10)
    # Chance is 1/10; binomial std sqrt(0.09/2000) ≈ 0.0067, so 0.04 is a 6-sigma bound.
    assert abs(shuffled.top1 - 0.1) < 0.04
    assert abs(shuffled.mean_class - 0.1) < 0.04


# ---------------------------------------------------------------------------------------------
# Frame level


def test_expand_frame_scores_golden():
    # Scored frames 2 (score 1) and 6 (score 3), 9 frames.
    # nearest: frames 0-4 → 1 (frame 4 is equidistant: the earlier sample wins), 5-8 → 3.
    # previous: frames 0-1 take the first sample, 2-5 → 1, 6-8 → 3.
    fi, sc = np.array([6, 2]), np.array([3.0, 1.0])
    assert expand_frame_scores(fi, sc, 9, "nearest").tolist() == [1, 1, 1, 1, 1, 3, 3, 3, 3]
    assert expand_frame_scores(fi, sc, 9, "previous").tolist() == [1, 1, 1, 1, 1, 1, 3, 3, 3]
    # Duplicate frame indices are averaged.
    assert expand_frame_scores(np.array([0, 0]), np.array([1.0, 3.0]), 2).tolist() == [2, 2]


def test_span_labels():
    assert span_labels([(1, 2), (5, 9)], 7).tolist() == [0, 1, 1, 0, 0, 1, 1]


def test_frame_metrics_equal_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    labels = rng.random(5000) < 0.3
    scores = rng.normal(size=5000) + labels
    res = frame_metrics(labels, scores)
    assert res.roc_auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert res.ap == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert np.isnan(frame_metrics(np.zeros(4, bool), np.arange(4.0)).roc_auc)
