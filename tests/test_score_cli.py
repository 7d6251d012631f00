"""`score` stage and `zsar score`: library values, properties (perfect → 1, shuffled → chance),
bad input (counted or one clear line), and the CLI's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.cli.app import app
from zsar_cli.datasets import AnomalyGT, ClassificationGT, LocalizationGT
from zsar_cli.stages.score import (
    ScoreConfig,
    score_anomaly,
    score_classification,
    score_localization,
)

LABELS = ["a red circle", "a blue square", "a green triangle"]


def _predictions(rows, with_true=True):
    cols = {k: [] for k in ("video_id", "label", "score", "rank", "true_label", "error")}
    for vid, ranked, true, error in rows:
        if error:
            for k, v in zip(cols, (vid, None, None, None, true, error), strict=True):
                cols[k].append(v)
            continue
        for r, label in enumerate(ranked):
            for k, v in zip(cols, (vid, label, 1.0 - 0.1 * r, r + 1, true, None), strict=True):
                cols[k].append(v)
    if not with_true:
        cols.pop("true_label")
    return build_table("predictions", cols)


def _intervals(rows):
    keys = ("video_id", "label", "t_start", "t_end", "score")
    return build_table("intervals", {k: [r[i] for r in rows] for i, k in enumerate(keys)})


def _loc_gt(rows, ambiguous=None):
    return LocalizationGT(
        [r[0] for r in rows],
        [r[1] for r in rows],
        np.array([r[2] for r in rows], float),
        np.array([r[3] for r in rows], float),
        sorted({r[1] for r in rows}),
        sorted({r[0] for r in rows}),
        ambiguous or {},
    )


# ---------------------------------------------------------------------------------------------
# Classification


def test_classification_counts_missing_error_unknown_and_extra():
    # GT: v1 red, v2 blue, v3 green, v4 red. v1 right; v2 predicts a label unknown to the GT
    # (wrong, reported); v3 failed upstream (error row: wrong); v4 has no rows (wrong);
    # "stray" is not in the GT (ignored, reported). top-1 = 1/4; top-5: v2's list holds blue
    # at rank 2 → 2/4. Recall: red 1/2, blue 0, green 0 → mean-class 1/6.
    table = _predictions(
        [
            ("v1", ["a red circle", "a blue square"], None, None),
            ("v2", ["a purple star", "a blue square"], None, None),
            ("v3", [], None, "decode failed"),
            ("stray", ["a red circle"], None, None),
        ],
        with_true=False,
    )
    gt = ClassificationGT(
        {
            "v1": "a red circle",
            "v2": "a blue square",
            "v3": "a green triangle",
            "v4": "a red circle",
        },
        list(LABELS),
    )
    rep = score_classification(table, gt)
    assert rep.accuracy.top1 == pytest.approx(0.25)
    assert rep.accuracy.top5 == pytest.approx(0.5)
    assert rep.accuracy.mean_class == pytest.approx(1 / 6)
    assert rep.missing == ["v4"] and rep.errors == ["v3"] and rep.extra_videos == ["stray"]
    assert rep.unknown_labels == {"a purple star": 1}
    assert len(rep.warnings) == 4
    summary = rep.summary()
    assert summary["per_class_recall"] == {
        "a red circle": 0.5, "a blue square": 0.0, "a green triangle": 0.0
    }  # fmt: skip
    # The unknown label gets a confusion column, the failed/missing videos the last one.
    assert summary["confusion"]["columns"][-2:] == ["a purple star", "(no prediction)"]
    assert summary["confusion"]["matrix"][0] == [1, 0, 0, 0, 1]


def test_classification_from_true_label_and_normalised_labels():
    # true_label spelled with underscores still matches the predicted phrase.
    table = _predictions(
        [
            ("v1", ["a red circle"], "a_red_circle", None),
            ("v2", ["a red circle", "a blue square"], "A-Blue-Square", None),
        ]
    )
    rep = score_classification(table)
    assert (rep.accuracy.top1, rep.accuracy.top5) == (0.5, 1.0)


def test_classification_perfect_and_shuffled():
    rng = np.random.default_rng(0)
    classes = [f"class {i}" for i in range(10)]
    truth = rng.integers(0, 10, 1500)
    perfect = _predictions([(f"v{i}", [classes[t]], classes[t], None) for i, t in enumerate(truth)])
    rep = score_classification(perfect)
    assert (rep.accuracy.top1, rep.accuracy.top5, rep.accuracy.mean_class) == (1.0, 1.0, 1.0)
    shuffled = rng.permutation(truth)
    table = _predictions(
        [
            (f"v{i}", [classes[s]], classes[t], None)
            for i, (t, s) in enumerate(zip(truth, shuffled, strict=True))
        ]
    )
    # Chance 1/10, binomial std ≈ 0.008 over 1500 videos: 0.05 is a 6-sigma bound.
    assert abs(score_classification(table).accuracy.top1 - 0.1) < 0.05


# ---------------------------------------------------------------------------------------------
# Localization


def test_localization_perfect_predictions_score_one():
    rng = np.random.default_rng(0)
    gt_rows, preds = [], []
    for v in range(40):
        start = float(rng.uniform(0, 50))
        end = start + float(rng.uniform(1, 20))
        label = LABELS[v % 3]
        gt_rows.append((f"vid{v}", label, start, end))
        preds.append((f"vid{v}", label, start, end, float(rng.random())))
    rep = score_localization(_intervals(preds), _loc_gt(gt_rows), ScoreConfig(preset="anet"))
    np.testing.assert_allclose(rep.result.map, 1.0)
    assert rep.result.average_map == 1.0 and rep.warnings == []


def test_localization_shuffled_labels_near_chance():
    rng = np.random.default_rng(1)
    classes = [f"c{i}" for i in range(10)]
    gt_rows, preds = [], []
    for v in range(400):
        start = float(rng.uniform(0, 50))
        end = start + float(rng.uniform(1, 20))
        gt_rows.append((f"vid{v}", classes[v % 10], start, end))
        preds.append((f"vid{v}", classes[rng.integers(10)], start, end, float(rng.random())))
    rep = score_localization(_intervals(preds), _loc_gt(gt_rows), ScoreConfig())
    # Per class about 1/10 of its predictions hit (precision ≈ 0.1) and recall tops out at
    # ≈ 0.1, so AP ≈ 0.01; a 0.05 bound is far from the 1.0 of correct labels.
    assert rep.result.average_map < 0.05


def test_localization_bad_input_is_counted_not_fatal():
    gt = _loc_gt([("v1", "a red circle", 0, 10), ("v2", "a blue square", 5, 9)])
    table = _intervals(
        [
            ("v1", "a red circle", 0, 10, 0.9),  # hit
            ("v1", "a purple star", 0, 10, 0.8),  # label absent from GT: counted, not scored
            ("v1", "a red circle", 10, 0, 0.7),  # reversed: counted, a false positive
            ("ghost", "a red circle", 0, 10, 0.6),  # video absent from GT: false positive
        ]
    )
    rep = score_localization(table, gt, ScoreConfig(tiou=(0.5,)))
    assert rep.unknown_labels == {"a purple star": 1}
    assert rep.invalid == 1 and rep.extra_videos == ["ghost"] and rep.missing == ["v2"]
    # red: hit, FP, FP → precision [1, 1/2, 1/3], recall 1 from the start → AP 1.
    # blue: GT but no prediction → AP 0. mAP = 1/2.
    assert rep.result.map[0] == pytest.approx(0.5)
    text = " ".join(rep.warnings)
    for needle in ("a purple star", "ghost", "reversed", "no prediction (AP 0)", "no interval"):
        assert needle in text


def test_localization_video_ids_match_activitynet_prefix():
    # ActivityNet JSON keys lack the "v_" of the video files the predictions come from.
    gt = _loc_gt([("abc", "a red circle", 0, 10)])
    rep = score_localization(_intervals([("v_abc", "a red circle", 0, 10, 1.0)]), gt)
    assert rep.result.map.tolist() == [1.0] * 5 and not rep.extra_videos


def test_localization_subset_classes():
    gt = _loc_gt([(f"v{i}", f"c{i}", 0, 10) for i in range(4)])
    table = _intervals([(f"v{i}", f"c{i}", 0, 10, 1.0) for i in range(2)])  # c0, c1 perfect
    rep = score_localization(table, gt, ScoreConfig(subset_classes=2, subset_splits=6, seed=1))
    splits = rep.subset["split_classes"]
    expected = [sum(c in ("c0", "c1") for c in s) / 2 for s in splits]
    assert rep.subset["average_mAP_mean"] == pytest.approx(np.mean(expected))
    assert rep.subset["average_mAP_std"] == pytest.approx(np.std(expected))


# ---------------------------------------------------------------------------------------------
# Anomaly


def _frame_scores(rows):
    keys = ("video_id", "frame_index", "timestamp", "label", "score")
    return build_table("frame_scores", {k: [r[i] for r in rows] for i, k in enumerate(keys)})


def test_anomaly_auc_equals_sklearn_on_expanded_frames():
    rng = np.random.default_rng(0)
    spans = {"A_x264": [(30, 80)], "B_x264": [(0, 9), (150, 170)], "N_x264": []}
    rows, labels, scores = [], [], []
    for vid, sp in spans.items():
        sampled = np.sort(rng.choice(200, size=25, replace=False))
        s = rng.normal(size=25)
        rows += [(vid, int(f), f / 25, None, float(x)) for f, x in zip(sampled, s, strict=True)]
        # Independent expansion: every frame 0..last sample takes the nearest sample's score.
        for frame in range(int(sampled.max()) + 1):
            dist = np.abs(sampled - frame)
            scores.append(s[np.flatnonzero(dist == dist.min())[0]])
            labels.append(any(a <= frame <= b for a, b in sp))
    rep = score_anomaly(_frame_scores(rows), AnomalyGT(spans, {}))
    assert rep.result.n_frames == len(labels)
    assert rep.result.roc_auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert rep.result.ap == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_anomaly_perfect_random_and_labels():
    rng = np.random.default_rng(0)
    spans = {f"v{i}": [(100, 300)] if i % 2 else [] for i in range(20)}
    perfect, noise = [], []
    for vid, sp in spans.items():
        for f in range(500):  # every frame scored: no fill error at span edges
            y = any(a <= f <= b for a, b in sp)
            perfect.append((vid, f, f / 25, "anomaly", float(y)))
            noise.append((vid, f, f / 25, None, float(rng.random())))
    rep = score_anomaly(_frame_scores(perfect), AnomalyGT(spans, {}))
    assert rep.label == "anomaly" and (rep.result.roc_auc, rep.result.ap) == (1.0, 1.0)
    # 10k frames, 20% anomalous: AUC std ≈ 0.007, so 0.05 is far outside noise.
    assert (
        abs(score_anomaly(_frame_scores(noise), AnomalyGT(spans, {})).result.roc_auc - 0.5) < 0.05
    )
    two = _frame_scores([("v1", 0, 0.0, "x", 0.1), ("v1", 0, 0.0, "y", 0.2)])
    with pytest.raises(Exception, match="choose one with --label"):
        score_anomaly(two, AnomalyGT({"v1": []}, {}))


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def files(tmp_path):
    table = _predictions(
        [
            ("v1", ["a red circle", "a blue square"], "a red circle", None),
            ("v2", ["a red circle", "a blue square"], "a blue square", None),
            ("v3", [], "a blue square", "decode failed"),
        ]
    )
    write_artifact(table, tmp_path / "pred.parquet", "predictions", {"model": "x"})
    write_artifact(
        _intervals(
            [
                ("video_test_1", "BaseballPitch", 40, 41, 0.9),
                ("video_test_1", "BaseballPitch", 10, 20, 0.8),
                ("video_test_1", "Diving", 0, 5, 0.5),
            ]
        ),
        tmp_path / "iv.parquet",
        "intervals",
        {},
    )
    thumos = tmp_path / "thumos"
    thumos.mkdir()
    (thumos / "BaseballPitch_test.txt").write_text("video_test_1 10 20\nvideo_test_2 3 4\n")
    (thumos / "Ambiguous_test.txt").write_text("video_test_1 39 45\n")
    return tmp_path


def test_cli_classification_json_and_metrics_artifact(runner, files):
    out = files / "metrics.parquet"
    result = runner.invoke(app, ["score", str(files / "pred.parquet"), "--json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # v1 right; v2 wrong (blue at rank 2); v3 failed upstream → wrong.
    assert summary["top1"] == pytest.approx(1 / 3) and summary["top5"] == pytest.approx(2 / 3)
    assert summary["error_videos"] == 1
    assert "failed upstream" in result.stderr
    art = read_artifact(out, "metrics")
    rows = art.table.to_pylist()
    top1 = [r["value"] for r in rows if r["metric"] == "top1"]
    assert top1 == [pytest.approx(1 / 3)]
    assert any(r["metric"] == "confusion" and r["predicted_label"] for r in rows)
    assert art.meta.upstream == [read_artifact(files / "pred.parquet").cache_key]

    table = runner.invoke(app, ["score", str(files / "pred.parquet")])
    assert table.exit_code == 0 and "top-1" in table.stdout and "0.3333" in table.stdout


def test_cli_localization_thumos_folder(runner, files):
    args = ["score", str(files / "iv.parquet"), "--gt", str(files / "thumos"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # THUMOS defaults 0.3:0.1:0.7. BaseballPitch has 2 instances (video_test_2 has no
    # interval). The FP [40,41] ranks first but overlaps the Ambiguous span, so it is ignored
    # (devkit rule): precision [1], recall [1/2] → AP 1/2 at every threshold.
    assert summary["thresholds"] == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert summary["average_mAP"] == pytest.approx(0.5)
    assert summary["unknown_labels"] == {"Diving": 1} and summary["missing_videos"] == 1
    assert "Diving" in result.stderr
    # Without the Ambiguous rule the FP counts: precision [0, 1/2], recall [0, 1/2] → 1/4.
    result = runner.invoke(app, [*args, "--ambiguous", "ignore", "--tiou", "0.5"])
    assert json.loads(result.stdout)["mAP"] == {"0.5": pytest.approx(0.25)}


def test_cli_activitynet_json_predictions_and_compat(runner, tmp_path):
    gt = {
        "database": {
            "a": {"subset": "validation", "annotations": [{"segment": [0, 10], "label": "Run"}]}
        }
    }
    preds = {
        "results": {
            "a": [
                {"label": "Run", "score": 0.5, "segment": [50, 60]},
                {"label": "Run", "score": 0.5, "segment": [0, 10]},
            ]
        }
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text(json.dumps(preds))
    base = ["score", str(tmp_path / "p.json"), "--gt", str(tmp_path / "gt.json"), "--json"]
    stable = json.loads(runner.invoke(app, base).stdout)
    assert len(stable["thresholds"]) == 10  # ActivityNet preset from the GT format
    assert stable["average_mAP"] == pytest.approx(0.5)  # tie keeps file order: miss first
    compat = json.loads(runner.invoke(app, [*base, "--compat", "anet"]).stdout)
    hit_first = np.argsort(np.array([0.5, 0.5]))[::-1][0] == 1
    assert compat["average_mAP"] == pytest.approx(1.0 if hit_first else 0.5)


def test_cli_anomaly(runner, tmp_path):
    rows = [("Abuse1_x264", f, f / 30, None, float(10 <= f <= 19)) for f in range(0, 40, 2)]
    rows += [("Normal_1_x264", f, f / 30, None, 0.0) for f in range(0, 40, 2)]
    write_artifact(_frame_scores(rows), tmp_path / "fs.parquet", "frame_scores", {})
    (tmp_path / "ann.txt").write_text(
        "Abuse1_x264.mp4  Abuse  11  20  -1  -1\nNormal_1_x264.mp4  Normal  -1  -1  -1  -1\n"
    )
    result = runner.invoke(
        app, ["score", str(tmp_path / "fs.parquet"), "--gt", str(tmp_path / "ann.txt"), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["roc_auc"] == 1.0 and summary["videos"] == 2
    assert summary["anomalous_frames"] == 10  # 1-based 11..20 → frames 10..19


def test_cli_bad_input_one_line(runner, files, tmp_path):
    res = runner.invoke(app, ["score", str(files / "iv.parquet")])
    assert res.exit_code == 1 and "pass --gt" in res.stderr and "Traceback" not in res.output
    bad = tmp_path / "Bad_test.txt"
    bad.write_text("video_test_1 10 20\nvideo_test_1 30 25\n")
    res = runner.invoke(app, ["score", str(files / "iv.parquet"), "--gt", str(bad)])
    assert res.exit_code == 1 and "Bad_test.txt:2: reversed interval" in res.stderr
    res = runner.invoke(app, ["score", str(files / "iv.parquet"), "--gt", str(bad), "--tiou", "2"])
    assert res.exit_code == 2 and "--tiou" in res.stderr
    res = runner.invoke(app, ["score", str(bad)])
    assert res.exit_code == 1 and "error:" in res.stderr
    res = runner.invoke(app, ["score", str(files / "pred.parquet"), "--compat", "zeal"])
    assert res.exit_code == 2 and "--compat" in res.stderr and "'anet'" in res.stderr
    res = runner.invoke(
        app, ["score", str(files / "iv.parquet"), "--gt", str(files / "pred.parquet")]
    )
    assert res.exit_code == 1 and "cannot score localization" in res.stderr


def test_ground_truth_with_no_video_in_common_is_refused(runner, files, tmp_path):
    """Issue 16.4: no overlap at all used to print 0.0 scores with exit 0."""
    other = tmp_path / "other.csv"
    other.write_text("video,label\nzz1.mp4,a red circle\nzz2.mp4,a blue square\n")
    res = runner.invoke(app, ["score", str(files / "pred.parquet"), "--gt", str(other)])
    assert res.exit_code == 1, res.output
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and f"--gt {other}" in line
    assert "'v1'" in line and "zz1" in line
    thumos = tmp_path / "thumos_other"
    thumos.mkdir()
    (thumos / "Diving_test.txt").write_text("video_test_9 1 2\n")
    res = runner.invoke(app, ["score", str(files / "iv.parquet"), "--gt", str(thumos)])
    assert res.exit_code == 1 and "no video in common" in res.stderr
    assert "video_test_1" in res.stderr and "video_test_9" in res.stderr
    # partial overlap still scores, with the counts in a warning
    res = runner.invoke(app, ["score", str(files / "iv.parquet"), "--gt", str(files / "thumos")])
    assert res.exit_code == 0, res.output
