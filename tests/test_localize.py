"""Library tests of `zsar_cli.stages.localize_zeal` / `localize_scores`: each ZEAL step on small
hand-made score arrays (expected values worked out in the comments), the `--compat zeal` quirks
of ZEAL_NOTES.md items 1-11 one by one, parity of compat mode with an independent loop-by-loop
transcription of the reference's behaviour, the CLIP-only baseline and anomaly scoring."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from zsar_cli.stages.localize_scores import (
    clip_anomaly_scores,
    clip_baseline,
    moving_average,
    pseudo_labels,
    runs_above,
    threshold_intervals,
)
from zsar_cli.stages.localize_zeal import (
    ZealCompatCrash,
    action_boundaries,
    filter_labels,
    frame_cells,
    interval_scores,
    intervals_to_seconds,
    merge_intervals,
    minmax_scale,
    pair_boundaries,
    presence_boundaries,
    sampling_fps,
    soft_nms,
    thin_candidates,
    top_p_candidates,
    zeal_localize,
)

# ---------------------------------------------------------------------------------------------
# Step 1: min-max into [eps, 1-eps]


def test_minmax_scale_maps_into_eps_range():
    # (x - 0.2) / 0.8 → [0, 0.5, 1] → ·0.9 + 0.05
    assert np.allclose(minmax_scale(np.array([0.2, 0.6, 1.0]), 0.05), [0.05, 0.5, 0.95])


def test_minmax_constant_column_default_is_middle_compat_is_nan():
    assert np.array_equal(minmax_scale(np.full(4, 0.3), 0.05), np.full(4, 0.5))
    assert np.isnan(minmax_scale(np.full(4, 0.3), 0.05, compat=True)).all()  # quirk 2


# ---------------------------------------------------------------------------------------------
# Step 2: top-p candidates and thinning


def test_top_p_candidates_kth_largest_and_ties():
    scores = np.array([0.1, 0.9, 0.3, 0.8, 0.2, 0.7, 0.6, 0.5, 0.4, 0.0])
    # k = int(0.35·10) = 3; 3rd largest = 0.7 → frames 1, 3, 5
    assert top_p_candidates(scores, 0.35).tolist() == [1, 3, 5]
    # a tie with the k-th score adds frames (quirk 3): 0.7 twice → 4 candidates
    scores[9] = 0.7
    assert top_p_candidates(scores, 0.35).tolist() == [1, 3, 5, 9]
    # p so small that int(p·T) = 0: the default grows p until one frame qualifies (the argmax)
    assert top_p_candidates(scores, 0.05).tolist() == [1]


def test_thin_candidates_keeps_exact_gap():
    scores = np.zeros(30)
    scores[[10, 12, 15, 20]] = [0.9, 0.8, 0.7, 0.6]
    # visit 10 (keep), 12 (2 from 10: drop), 15 (exactly 5 from 10: keep), 20 (5 from 15: keep)
    for compat in (False, True):
        kept = thin_candidates(np.array([10, 12, 15, 20]), scores, 5, compat)
        assert kept.tolist() == [10, 15, 20]


def test_thin_candidates_tie_order_default_vs_compat():
    # frames 0 and 3 tie; they are closer than the gap, so only one survives.
    scores = np.array([1.0, 0.0, 0.0, 1.0])
    assert thin_candidates(np.array([0, 3]), scores, 5).tolist() == [0]  # stable: earlier
    # quirk 4: np.argsort(...)[::-1] visits the later tied frame first
    assert thin_candidates(np.array([0, 3]), scores, 5, compat=True).tolist() == [3]


def test_action_boundaries_compat_quirks():
    s = np.array([0.05, 0.95, 0.5])
    e = np.array([0.5, 0.05, 0.95])
    # quirk 3: int(0.2·3) = 0 → (0, T-1) regardless of the scores
    starts, ends = action_boundaries(s, e, 0.2, 5, compat=True)
    assert (starts.tolist(), ends.tolist()) == ([0], [2])
    starts, ends = action_boundaries(s, e, 0.2, 5)  # default: the argmax of each
    assert (starts.tolist(), ends.tolist()) == ([1], [2])
    # quirk 2: a NaN column (constant input) → ([0], [0])
    starts, ends = action_boundaries(np.full(3, np.nan), e, 0.35, 5, compat=True)
    assert (starts.tolist(), ends.tolist()) == ([0], [0])


# ---------------------------------------------------------------------------------------------
# Step 3: pairing


def test_pairing_stops_after_first_end_beyond_next_start():
    # T = 30, max length 0.95·30 = 28.5 frames
    # start 2: end 8 (8 ≤ next start 10: go on), end 12 (taken; 12 > 10 → stop)
    # start 10: end 8 is earlier; 12 taken; 25 taken (25 > next start 20 → stop)
    # start 20 (last): every later end within 28.5: 25, 29
    pairs = pair_boundaries(np.array([2, 10, 20]), np.array([8, 12, 25, 29]), 0.95, 30)
    assert pairs.tolist() == [[2, 8], [2, 12], [10, 12], [10, 25], [20, 25], [20, 29]]


def test_pairing_length_bound():
    # start 0 → end 29 is 29 > 28.5 frames: refused (and 29 > next start 3 stops the scan);
    # start 3 → 26 frames: taken
    pairs = pair_boundaries(np.array([0, 3]), np.array([29]), 0.95, 30)
    assert pairs.tolist() == [[3, 29]]


def test_pairing_fallback_only_in_compat():
    # quirk 6: no start precedes an end → (starts[0], ends[0]) even though end < start
    starts, ends = np.array([10, 20]), np.array([5])
    assert pair_boundaries(starts, ends, 0.95, 30, compat=True).tolist() == [[10, 5]]
    assert pair_boundaries(starts, ends, 0.95, 30).shape == (0, 2)


# ---------------------------------------------------------------------------------------------
# Step 4: interval score


def test_interval_score_formula_includes_end_frame():
    start_norm = np.array([0.05, 0.95, 0.5, 0.05, 0.05])
    end_norm = np.array([0.05, 0.05, 0.5, 0.95, 0.05])
    act = np.array([0.0, 0.2, 0.4, 0.6, 0.0])
    # (1, 3): 0.1·(0.95 + 0.95) + 0.9·mean(0.2, 0.4, 0.6) = 0.19 + 0.36 = 0.55
    for compat in (False, True):
        got = interval_scores(np.array([[1, 3]]), start_norm, end_norm, act, 0.1, compat)
        assert got == pytest.approx([0.55])
    # quirk 7/6: an empty span (end < start) has a NaN mean in compat
    got = interval_scores(np.array([[3, 1]]), start_norm, end_norm, act, 0.1, compat=True)
    assert np.isnan(got[0])


# ---------------------------------------------------------------------------------------------
# Step 5: soft-NMS and merge


def test_soft_nms_resorts_by_default_but_not_in_compat():
    intervals = np.array([[0, 9], [0, 8], [20, 29]])
    scores = np.array([0.9, 0.8, 0.5])
    # keep (0,9); (0,8) has inclusive IoU 9/10 → ×exp(-0.81/1.3) → 0.8·0.53634 = 0.42907
    decayed = 0.8 * math.exp(-0.81 / 1.3)
    kept, kept_scores = soft_nms(intervals, scores, 1.3, 0.1)
    # default: next is the highest *decayed* score: (20,29) 0.5 before (0,8) 0.429
    assert kept.tolist() == [[0, 9], [20, 29], [0, 8]]
    assert kept_scores == pytest.approx([0.9, 0.5, decayed])
    # quirk 8: compat keeps the initial order
    kept, kept_scores = soft_nms(intervals, scores, 1.3, 0.1, compat=True)
    assert kept.tolist() == [[0, 9], [0, 8], [20, 29]]
    assert kept_scores == pytest.approx([0.9, decayed, 0.5])


def test_soft_nms_drop_and_dropped_items_decay_nobody():
    # A (0,9) 0.9 keeps; B (0,9) 0.2 → IoU 1 → 0.2·exp(-1/1.3) = 0.0927 < 0.1: dropped;
    # C (5,14) 0.15 → IoU with A = 5/15 → 0.15·exp(-(1/9)/1.3) = 0.1377 — B does not decay it
    intervals = np.array([[0, 9], [0, 9], [5, 14]])
    scores = np.array([0.9, 0.2, 0.15])
    for compat in (False, True):
        kept, kept_scores = soft_nms(intervals, scores, 1.3, 0.1, compat)
        assert kept.tolist() == [[0, 9], [5, 14]]
        assert kept_scores == pytest.approx([0.9, 0.15 * math.exp(-(1 / 9) / 1.3)])


def test_merge_inclusive_vs_exclusive_iou():
    intervals = np.array([[0, 9], [0, 10], [30, 39]])
    scores = np.array([0.8, 0.6, 0.5])
    # inclusive: 10 frames / 11 frames = 0.909 > 0.9 → one (0,10) with mean 0.7
    merged, merged_scores = merge_intervals(intervals, scores, 0.9, 0.0)
    assert merged.tolist() == [[0, 10], [30, 39]]
    assert merged_scores == pytest.approx([0.7, 0.5])
    # quirk 9: exclusive lengths 9/10 = 0.9, not > 0.9 → nothing merges
    merged, merged_scores = merge_intervals(intervals, scores, 0.9, 0.0, compat=True)
    assert merged.tolist() == [[0, 9], [0, 10], [30, 39]]


def test_merge_group_mean_vs_running_pairwise_mean():
    intervals = np.array([[0, 99], [0, 100], [0, 101]])
    scores = np.array([0.9, 0.6, 0.3])
    # all three merge into (0,101): default mean (0.9+0.6+0.3)/3 = 0.6;
    # compat running mean ((0.9+0.6)/2 + 0.3)/2 = 0.525
    merged, merged_scores = merge_intervals(intervals, scores, 0.9, 0.0)
    assert merged.tolist() == [[0, 101]] and merged_scores == pytest.approx([0.6])
    merged, merged_scores = merge_intervals(intervals, scores, 0.9, 0.0, compat=True)
    assert merged.tolist() == [[0, 101]] and merged_scores == pytest.approx([0.525])


def test_merge_filter_removing_everything():
    intervals, scores = np.array([[0, 5], [10, 15]]), np.array([0.3, 0.2])
    merged, merged_scores = merge_intervals(intervals, scores, 0.9, 0.75)
    assert merged.shape == (0, 2) and merged_scores.size == 0
    with pytest.raises(ZealCompatCrash):  # quirk 10
        merge_intervals(intervals, scores, 0.9, 0.75, compat=True)


# ---------------------------------------------------------------------------------------------
# The whole chain on one hand-made (video, label)


def _hand_video():
    """T = 20 frames at 1 fps. start p_yes peaks at 3 (0.9) and 12 (0.8), end p_yes at 8 (0.9)
    and 17 (0.85); elsewhere 0.1 + 0.001·i (distinct, so no ties). CLIP actionness 0.3 on frames
    3..8 and 12..17, 0 elsewhere."""
    i = np.arange(20)
    start = 0.1 + 0.001 * i
    end = 0.1 + 0.001 * i
    start[[3, 12]] = [0.9, 0.8]
    end[[8, 17]] = [0.9, 0.85]
    act = np.zeros(20)
    act[3:9] = 0.3
    act[12:18] = 0.3
    return start, end, act


def test_zeal_chain_hand_worked():
    start, end, act = _hand_video()
    # k = int(0.35·20) = 7. start top-7: 3, 12, 19, 18, 17, 16, 15 → thinned (gap 5): 3, 12, 19
    # end top-7: 8, 17, 19, 18, 16, 15, 14 → thinned: 8, 17
    # pairs: start 3 → 8, 17 (17 > next start 12: stop); start 12 → 17; start 19 → none
    # normalised (min 0.1, max 0.9): s(3) = 0.95, s(12) = 0.875·0.9+0.05 = 0.8375,
    #   e(8) = 0.95, e(17) = 0.9375·0.9+0.05 = 0.89375
    # scores: (3,8)  = 0.1·1.9      + 0.9·0.3                  = 0.46
    #         (12,17)= 0.1·1.73125  + 0.9·0.3                  = 0.443125
    #         (3,17) = 0.1·1.84375  + 0.9·(12·0.3/15 = 0.24)   = 0.400375
    # soft-NMS: keep (3,8); (3,17) overlaps 6/15 frames → ×exp(-0.16/1.3); keep (12,17);
    #   (3,17) overlaps it 6/15 too → ×exp(-0.16/1.3) again; 0.400375·0.88419² = 0.31301
    w = math.exp(-0.16 / 1.3)
    spans, scores = zeal_localize(start, end, act)
    assert spans.tolist() == [[3, 8], [12, 17], [3, 17]]
    assert scores == pytest.approx([0.46, 0.443125, 0.400375 * w * w])
    # compat: same intervals, output ordered by start (merge ran; quirk 11)
    spans_c, scores_c = zeal_localize(start, end, act, compat=True)
    assert sorted(map(tuple, spans_c.tolist())) == [(3, 8), (3, 17), (12, 17)]
    assert spans_c[:, 0].tolist() == sorted(spans_c[:, 0].tolist())
    assert sorted(scores_c) == pytest.approx(sorted(scores))
    # seconds at 1 fps from t=0: default spans whole frame cells, compat the frame timestamps
    t = np.arange(20.0)
    lo, hi = intervals_to_seconds(spans, t)
    assert lo.tolist() == [2.5, 11.5, 2.5] and hi.tolist() == [8.5, 17.5, 17.5]
    lo, hi = intervals_to_seconds(spans, t, compat=True)
    assert lo.tolist() == [3, 12, 3] and hi.tolist() == [8, 17, 17]


def test_zeal_gates():
    start, end, act = _hand_video()
    notes: list[str] = []
    # quirk 1: T ≤ 2 gives nothing in compat; the default pairs two frames
    two = zeal_localize(np.array([0.9, 0.1]), np.array([0.1, 0.9]), np.array([0.5, 0.5]))
    assert two[0].tolist() == [[0, 1]]
    # (0,1): 0.1·(0.95+0.95) + 0.9·0.5 = 0.64
    assert two[1] == pytest.approx([0.64])
    compat_two = zeal_localize(
        np.array([0.9, 0.1]), np.array([0.1, 0.9]), np.array([0.5, 0.5]), compat=True
    )
    assert compat_two[0].shape == (0, 2)
    # all zero → nothing (both modes)
    for compat in (False, True):
        assert zeal_localize(np.zeros(20), np.zeros(20), act, compat=compat)[0].shape == (0, 2)
    # mean p_yes < 0.1 → label judged absent, unless the gate is off (ground-truth labels)
    low_start, low_end = start / 10, end / 10
    assert zeal_localize(low_start, low_end, act, notes=notes)[0].shape == (0, 2)
    assert "mean p_yes" in notes[-1]
    assert len(zeal_localize(low_start, low_end, act, min_mean_score=None)[0]) == 3
    # empty input: no crash
    assert zeal_localize(np.zeros(0), np.zeros(0), np.zeros(0))[0].shape == (0, 2)


def test_zeal_constant_columns():
    _, end, act = _hand_video()
    notes: list[str] = []
    flat = np.full(20, 0.5)
    # both constant: the default has no boundary information → nothing, with a note
    assert zeal_localize(flat, flat, act, notes=notes)[0].shape == (0, 2)
    assert "all-equal" in notes[-1]
    # quirk 2: compat emits a single (0, 0) interval with a NaN score
    spans, scores = zeal_localize(flat, end, act, compat=True)
    assert spans.tolist() == [[0, 0]] and np.isnan(scores[0])
    # one constant column in the default: it sits at 0.5 and the other column still works
    spans, scores = zeal_localize(flat, end, act)
    assert len(spans) > 0 and np.isfinite(scores).all()


def test_zeal_compat_fallback_nan_and_crash():
    # quirk 6: start peak at 15 and end peak at 5 with k = 1 → fallback (15, 5), NaN score
    start, end = np.full(20, 0.3), np.full(20, 0.3)
    start[15], end[5] = 0.9, 0.9
    act = np.full(20, 0.2)
    spans, scores = zeal_localize(start, end, act, top_p=0.05, compat=True)
    assert spans.tolist() == [[15, 5]] and np.isnan(scores[0])
    assert zeal_localize(start, end, act, top_p=0.05)[0].shape == (0, 2)
    # quirk 10: a merge score filter that removes everything crashes ZEAL (here 0.75, the
    # reference function's own default); the default returns nothing
    s, e, a = _hand_video()
    with pytest.raises(ZealCompatCrash):
        zeal_localize(s, e, a, score_threshold=0.75, compat=True)
    assert zeal_localize(s, e, a, score_threshold=0.75)[0].shape == (0, 2)


# ---------------------------------------------------------------------------------------------
# Compat parity with an independent transcription of the reference's behaviour


def _reference_stage5(
    scores,
    act,
    *,
    eps=0.05,
    p=0.35,
    gap=5,
    max_len=0.95,
    lam=0.1,
    sigma=1.3,
    drop=0.1,
    merge_thr=0.9,
    score_thr=0.0,
    use_gt=False,
):
    """ZEAL stage 5 as ZEAL_NOTES.md describes it, written loop by loop (scores: T×2)."""
    t = scores.shape[0]
    if t <= 2 or scores.sum() == 0 or (not use_gt and scores.mean() < 0.1):
        return [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = (scores - scores.min(axis=0)) / (scores.max(axis=0) - scores.min(axis=0))
    norm = norm * (1 - 2 * eps) + eps
    s_col, e_col = norm[:, 0], norm[:, 1]
    if np.isnan(s_col).any() or np.isnan(e_col).any():
        starts, ends = [0], [0]
    elif int(p * t) < 1:
        starts, ends = [0], [t - 1]
    else:
        picked = []
        for col in (s_col, e_col):
            kth = np.sort(col)[::-1][: int(p * t)][-1]
            cand = np.where(col >= kth)[0]
            kept = []
            for c in cand[np.argsort(col[cand])[::-1]]:
                if not kept or all(abs(c - k) >= gap for k in kept):
                    kept.append(c)
            picked.append(sorted(kept))
        starts, ends = picked
    pairs = []
    for i, st in enumerate(starts):
        stopped = False
        for en in ends:
            if not stopped and st < en and en - st <= max_len * t:
                pairs.append((st, en))
            if i < len(starts) - 1 and not stopped and en > starts[i + 1]:
                stopped = True
    if not pairs:
        pairs = [(starts[0], ends[0])]
    pairs = np.array(pairs)
    sc = []
    for st, en in pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sc.append(lam * (s_col[st] + e_col[en]) + (1 - lam) * np.mean(act[st : en + 1]))
    sc = np.array(sc)
    order = np.argsort(sc)[::-1]
    pairs, sc = pairs[order], sc[order]
    keep = []
    for i in range(len(sc)):
        if sc[i] < drop:
            continue
        keep.append(i)
        for j in range(i + 1, len(sc)):
            inter = max(0, min(pairs[i, 1], pairs[j, 1]) - max(pairs[i, 0], pairs[j, 0]) + 1)
            union = (pairs[i, 1] - pairs[i, 0] + 1) + (pairs[j, 1] - pairs[j, 0] + 1) - inter
            sc[j] *= np.exp(-((inter / union) ** 2) / sigma)
    pairs, sc = pairs[keep], sc[keep]
    if len(pairs) <= 1:
        return pairs.tolist(), sc.tolist()
    order = np.argsort(pairs[:, 0])
    pairs, sc = pairs[order], sc[order]
    out, out_sc = [list(pairs[0])], [sc[0]]
    for (st, en), s in zip(pairs[1:], sc[1:], strict=True):
        ps, pe = out[-1]
        inter = max(0, min(pe, en) - max(ps, st))
        union = (en - st) + (pe - ps) - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.float64(inter) / union
        if iou > merge_thr:
            out[-1] = [min(ps, st), max(pe, en)]
            out_sc[-1] = (out_sc[-1] + s) / 2
        else:
            out.append([st, en])
            out_sc.append(s)
    kept = [(iv, s) for iv, s in zip(out, out_sc, strict=True) if s >= score_thr]
    if not kept:
        raise RuntimeError("crash")
    return [list(map(int, iv)) for iv, _ in kept], [s for _, s in kept]


def _random_case(rng, ties: bool):
    t = int(rng.integers(3, 60))
    scores = rng.random((t, 2)) * rng.choice([0.3, 1.0])
    if ties:  # rounding makes ties, constant columns and zero columns likely on short videos
        scores = np.round(scores, 1)
    act = rng.normal(0.25, 0.1, t)
    return scores, act


@pytest.mark.parametrize(("ties", "score_thr"), [(False, 0.0), (True, 0.0), (True, 0.45)])
def test_compat_matches_reference_transcription(ties, score_thr):
    # 300 random videos each: with ties (rounded scores) about 1 in 25 hits the NaN paths;
    # a 0.45 merge filter makes the crash path (quirk 10) common too.
    rng = np.random.default_rng(7 + ties)
    crashes = 0
    for _ in range(300):
        scores, act = _random_case(rng, ties)
        kwargs = {"score_threshold": score_thr, "compat": True}
        try:
            want = _reference_stage5(scores, act, score_thr=score_thr)
        except RuntimeError:
            crashes += 1
            with pytest.raises(ZealCompatCrash):
                zeal_localize(scores[:, 0], scores[:, 1], act, **kwargs)
            continue
        spans, got = zeal_localize(scores[:, 0], scores[:, 1], act, **kwargs)
        assert spans.tolist() == want[0]
        assert np.array_equal(got, np.array(want[1], dtype=float), equal_nan=True)
    assert (crashes > 0) == (score_thr > 0)


def test_default_vs_compat_on_generic_inputs():
    """Where the two modes differ on generic inputs (distinct scores, T ≥ 3).

    Steps 1-7 (normalisation, candidates, pairing, scores) agree exactly: with distinct scores
    the sort order is the same and no degenerate case arises. They part at soft-NMS (re-sorting
    after decay) and merge (IoU convention, group mean), and in output order, so the final sets
    differ on a fraction of videos; both never produce NaN here.
    """
    rng = np.random.default_rng(11)
    same_sets = differ = 0
    for _ in range(300):
        scores, act = _random_case(rng, ties=False)
        s_p, e_p = scores[:, 0], scores[:, 1]
        s_d, e_d = minmax_scale(s_p, 0.05), minmax_scale(e_p, 0.05)
        assert np.array_equal(s_d, minmax_scale(s_p, 0.05, compat=True))
        b_d = action_boundaries(s_d, e_d, 0.35, 5)
        b_c = action_boundaries(s_d, e_d, 0.35, 5, compat=True)
        assert all(np.array_equal(x, y) for x, y in zip(b_d, b_c, strict=True))
        pairs = pair_boundaries(*b_d, 0.95, len(s_p))
        if len(pairs):
            assert np.array_equal(pairs, pair_boundaries(*b_c, 0.95, len(s_p), compat=True))
            assert np.allclose(
                interval_scores(pairs, s_d, e_d, act, 0.1),
                interval_scores(pairs, s_d, e_d, act, 0.1, compat=True),
            )
        try:
            d = zeal_localize(s_p, e_p, act)
            c = zeal_localize(s_p, e_p, act, compat=True)
        except ZealCompatCrash:
            differ += 1
            continue
        assert np.isfinite(d[1]).all()
        if sorted(map(tuple, d[0].tolist())) == sorted(map(tuple, c[0].tolist())):
            same_sets += 1
        else:
            differ += 1
    assert same_sets > 0 and differ > 0  # both outcomes occur: the modes are not the same


def test_presence_boundaries():
    # presence = mean(start, end) = [0, 1, 1, 0.5]
    # start(t) = p(t)·(1 - p(t-1)): [0, 1·1, 1·0, 0.5·0] ; end(t) = p(t)·(1 - p(t+1)):
    # [0·0, 1·0, 1·0.5, 0.5·1] (outside the video counts as absent)
    start, end = presence_boundaries(np.array([0, 1, 1, 0.5]), np.array([0, 1, 1, 0.5]))
    assert start.tolist() == [0, 1, 0, 0] and end.tolist() == [0, 0, 0.5, 0.5]
    # a presence curve on frames 5..12 of 30: ZEAL on the derived boundaries finds 5..12
    presence = np.full(30, 0.05)
    presence[5:13] = 0.95
    act = np.where(presence > 0.5, 0.4, 0.1)
    spans, _ = zeal_localize(*presence_boundaries(presence, presence), act, min_mean_score=None)
    assert spans[0].tolist() == [5, 12]


# ---------------------------------------------------------------------------------------------
# Class filtering, time conversion


def test_filter_labels_uses_eight_uniform_frames():
    # linspace(0, 9, 8).astype(int) = [0, 1, 2, 3, 5, 6, 7, 9]: frames 4 and 8 are never seen
    emb = np.zeros((10, 3))
    emb[:, 0] = 1.0  # every frame looks like label "a"...
    emb[[4, 8]] = [0.0, 0.0, 50.0]  # ...except two unseen frames that would make "c" win
    labels = ["a", "b", "c"]
    text = np.eye(3)
    assert filter_labels(emb, text, labels, top_k=1) == ["a"]
    assert filter_labels(emb, text, labels, top_k=1, num_frames=10) == ["c"]  # all frames
    assert filter_labels(emb, text, labels, top_k=3)[0] == "a"


def test_seconds_at_two_fps():
    t = np.arange(12) * 0.5  # 2 fps
    assert sampling_fps(t) == pytest.approx(2.0)
    # frames 2..5: cells [0.75, 2.75]; compat uses the timestamps [1.0, 2.5]
    assert [x[0] for x in intervals_to_seconds(np.array([[2, 5]]), t)] == [0.75, 2.75]
    assert [x[0] for x in intervals_to_seconds(np.array([[2, 5]]), t, compat=True)] == [1.0, 2.5]
    left, right = frame_cells(np.array([0.0, 1.0, 3.0]))  # irregular sampling
    assert left.tolist() == [0.0, 0.5, 2.0] and right.tolist() == [0.5, 2.0, 4.0]


def test_zeal_at_two_fps_works_in_frames():
    # the same score curves sampled at 2 fps: steps are in frames, seconds from timestamps
    start, end, act = _hand_video()
    spans, _ = zeal_localize(start, end, act)
    lo, hi = intervals_to_seconds(spans, np.arange(20) * 0.5)
    assert (lo[0], hi[0]) == (1.25, 4.25)  # frames 3..8 at 0.5 s steps, with half-cells


# ---------------------------------------------------------------------------------------------
# CLIP-only baseline and anomaly scoring


def test_moving_average_and_runs():
    assert moving_average(np.array([0, 0, 3, 0, 0.0]), 3).tolist() == [0, 1, 1, 1, 0]
    # edges are padded with their own value, not zeros: [5,5,0], [5,0,0], [0,0,0]
    assert moving_average(np.array([5.0, 0, 0]), 3) == pytest.approx([10 / 3, 5 / 3, 0])
    assert moving_average(np.array([1.0, 2.0]), 1).tolist() == [1.0, 2.0]
    mask = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert runs_above(mask).tolist() == [[1, 2], [5, 5], [7, 9]]
    assert runs_above(mask, min_frames=2).tolist() == [[1, 2], [7, 9]]
    assert runs_above(mask, max_gap=2).tolist() == [[1, 2], [5, 9]]
    assert runs_above(np.zeros(4, dtype=bool)).shape == (0, 2)


def _baseline_video():
    """40 frames: background e0, frames 10..19 show label A (e0 + 2·e1, normalised)."""
    eye = np.eye(4)
    emb = np.tile(eye[0], (40, 1))
    emb[10:20] = (eye[0] + 2 * eye[1]) / math.sqrt(5)
    text = np.stack([eye[1], eye[2]])  # labels A, B
    return emb, text


def test_clip_baseline_finds_the_action():
    emb, text = _baseline_video()
    assert pseudo_labels(emb, text, ["A", "B"], 1, 100.0) == ["A"]
    spans, scores = clip_baseline(emb, text, 0, window=1, max_gap=1, logit_scale=100.0)
    assert spans.tolist() == [[10, 19]]
    # segment mean = (e0 + 2e1)/√5: cos to A = 2/√5, to B = 0 → softmax at scale 100
    a = 100 * 2 / math.sqrt(5)
    assert scores == pytest.approx([math.exp(a) / (math.exp(a) + 1.0)])
    # T3AL's default window (20) smears the 10-frame action over its neighbours
    wide, _ = clip_baseline(emb, text, 0, window=20, max_gap=20)
    assert wide[0, 0] < 10 and wide[0, 1] > 19


def test_clip_baseline_degenerate():
    notes: list[str] = []
    emb = np.tile(np.eye(3)[0], (10, 1))  # every frame equal: background only
    spans, _ = clip_baseline(emb, np.eye(3), 1, notes=notes)
    assert spans.shape == (0, 2) and "all-equal" in notes[0]
    assert clip_baseline(emb[:1], np.eye(3), 1)[0].shape == (0, 2)


def test_clip_anomaly_scores_softmax_over_anomaly_and_normal():
    eye = np.eye(3)
    frames = np.stack([eye[0], eye[2]])  # frame 0 looks anomalous (label 0), frame 1 normal
    got = clip_anomaly_scores(frames, eye[:2], eye[2:], logit_scale=10.0)
    # frame 0: logits [10, 0, 0] → P(anomaly) = (e^10 + 1) / (e^10 + 2)
    # frame 1: logits [0, 0, 10] → 2 / (2 + e^10)
    e10 = math.exp(10)
    assert got == pytest.approx([(e10 + 1) / (e10 + 2), 2 / (2 + e10)])


def test_threshold_intervals():
    scores = np.array([0.1, 0.6, 0.7, 0.2, 0.9, 0.9])
    spans, means = threshold_intervals(scores, 0.5)
    assert spans.tolist() == [[1, 2], [4, 5]] and means == pytest.approx([0.65, 0.9])
