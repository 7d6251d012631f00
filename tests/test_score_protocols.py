"""Scoring protocols of issue 15: UCF-Crime split lists (14 and 13 classes), zero-shot class
splits (half of the classes, K600-style novel classes, splits from a file), and anomaly frames
evaluated to each video's frame_count with the abnormal-video ROC-AUC.

Expected values are computed here another way (plain loops over the score matrix, sklearn on
hand-expanded frame arrays), never read back from the code under test."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.cli.app import app
from zsar_cli.datasets import (
    UCF_CRIME_CLASSES,
    AnomalyGT,
    detect_gt_format,
    load_ground_truth,
    read_ucf_crime_split,
)
from zsar_cli.errors import InputError
from zsar_cli.stages.score import ScoreConfig, score_anomaly
from zsar_cli.stages.score_splits import draw_splits

# Lines as the official Anomaly_Test.txt / Anomaly_Train.txt spell them.
UCF_CRIME_TEST = """Abuse/Abuse028_x264.mp4
Abuse/Abuse030_x264.mp4
Arrest/Arrest001_x264.mp4
Arson/Arson007_x264.mp4
RoadAccidents/RoadAccidents002_x264.mp4
Shoplifting/Shoplifting005_x264.mp4
Vandalism/Vandalism007_x264.mp4
Testing_Normal_Videos_Anomaly/Normal_Videos_003_x264.mp4
Testing_Normal_Videos_Anomaly/Normal_Videos_006_x264.mp4
Normal_Videos_event/Normal_Videos_100_x264.mp4
Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4
"""


def _full_predictions(video_ids, labels, scores, true=None):
    """A predictions table ranking every label of every video by score (as classify writes)."""
    cols = {k: [] for k in ("video_id", "label", "score", "rank")}
    for vid, row in zip(video_ids, scores, strict=True):
        for rank, j in enumerate(np.argsort(-row, kind="stable"), 1):
            cols["video_id"].append(vid)
            cols["label"].append(labels[j])
            cols["score"].append(float(row[j]))
            cols["rank"].append(rank)
    if true is not None:
        cols["true_label"] = [true[v] for v in cols["video_id"]]
    return build_table("predictions", cols)


def _score_json(runner, *args):
    result = runner.invoke(app, ["score", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


# ---------------------------------------------------------------------------------------------
# UCF-Crime classification ground truth


def test_ucf_crime_split_list_reads_classes_and_is_detected(tmp_path):
    path = tmp_path / "Anomaly_Test.txt"
    path.write_text(UCF_CRIME_TEST)
    assert detect_gt_format(path) == "ucf_crime_split"
    renamed = tmp_path / "test_videos.txt"  # detected by content, not only by name
    renamed.write_text(UCF_CRIME_TEST)
    assert detect_gt_format(renamed) == "ucf_crime_split"
    gt = read_ucf_crime_split(path)
    assert gt.labels["Abuse028_x264"] == "Abuse"
    assert gt.labels["RoadAccidents002_x264"] == "RoadAccidents"
    normals = [v for v, c in gt.labels.items() if c == "Normal"]
    assert sorted(normals) == [
        "Normal_Videos001_x264",
        "Normal_Videos_003_x264",
        "Normal_Videos_006_x264",
        "Normal_Videos_100_x264",
    ]
    assert gt.classes == [*UCF_CRIME_CLASSES, "Normal"] and len(gt.classes) == 14
    assert load_ground_truth(renamed)[0] == "ucf_crime_split"

    # A renamed file (found by its content) must name the real classes: a typo is refused.
    lines = "Abuse/Abuse001_x264.mp4\nAbuze/Abuse002_x264.mp4\n"
    bad = tmp_path / "train_videos.txt"
    bad.write_text(lines)
    with pytest.raises(InputError, match=r"train_videos.txt:2: folder 'Abuze'"):
        read_ucf_crime_split(bad)
    with pytest.raises(InputError, match=r"folder 'Abuze'"):
        load_ground_truth(bad, "ucf_crime_split")
    # The official name takes any folder as the class (a stand-in laid out like UCF-Crime).
    official = tmp_path / "Anomaly_Train.txt"
    official.write_text(lines + "Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4\n")
    gt = read_ucf_crime_split(official)
    assert gt.labels == {
        "Abuse001_x264": "Abuse",
        "Abuse002_x264": "Abuze",
        "Normal_Videos001_x264": "Normal",
    }
    assert gt.classes == ["Abuse", "Abuze", "Normal"]
    with pytest.raises(InputError, match=r"Anomaly_Train.txt:2: folder 'Abuze'"):
        read_ucf_crime_split(official, any_folder=False)


def test_ucf_crime_14_and_13_class_top1(runner, tmp_path):
    gt_path = tmp_path / "Anomaly_Test.txt"
    gt_path.write_text(UCF_CRIME_TEST)
    labels = [*UCF_CRIME_CLASSES, "Normal"]
    truth = {}
    for line in UCF_CRIME_TEST.split():
        folder, name = line.split("/")
        truth[name.removesuffix(".mp4")] = "Normal" if "Normal" in folder else folder
    vids = list(truth)
    rng = np.random.default_rng(5)
    scores = rng.random((len(vids), len(labels)))
    # Abuse028: Normal first, Abuse second → wrong with 14 classes, right with 13.
    scores[0] = 0.0
    scores[0, labels.index("Normal")], scores[0, labels.index("Abuse")] = 0.9, 0.8
    # Arrest001: right with both.
    scores[2, labels.index("Arrest")] = 2.0
    write_artifact(
        _full_predictions(vids, labels, scores), tmp_path / "p.parquet", "predictions", {}
    )

    true_idx = np.array([labels.index(truth[v]) for v in vids])
    expected14 = np.mean(scores.argmax(axis=1) == true_idx)
    anomalous = true_idx != labels.index("Normal")
    expected13 = np.mean(scores[anomalous, :13].argmax(axis=1) == true_idx[anomalous])
    assert expected13 != expected14

    s14, _ = _score_json(runner, tmp_path / "p.parquet", "--gt", gt_path)
    assert s14["videos"] == 11 and s14["top1"] == pytest.approx(expected14)
    s13, stderr = _score_json(
        runner, tmp_path / "p.parquet", "--gt", gt_path, "--exclude-class", "Normal"
    )
    assert s13["videos"] == 7 and s13["top1"] == pytest.approx(expected13)
    assert s13["excluded_classes"] == {"Normal": 4}
    assert s13["extra_videos"] == 0 and "not in the ground truth" not in stderr
    assert "Normal" not in s13["confusion"]["columns"]  # the argmax never sees it

    result = runner.invoke(
        app, ["score", str(tmp_path / "p.parquet"), "--gt", str(gt_path), "--exclude-class", "X"]
    )
    assert result.exit_code == 1 and "--exclude-class 'X'" in result.output


# ---------------------------------------------------------------------------------------------
# Zero-shot class splits

CLASSES = [f"class {c}" for c in "abcdefghij"]


@pytest.fixture
def split_world(tmp_path):
    """10 classes × 4 videos; every video ranks all 10 labels with random scores."""
    rng = np.random.default_rng(1)
    truth = {f"vid{i:02d}": CLASSES[i % 10] for i in range(40)}
    vids = list(truth)
    scores = rng.random((40, 10))
    for i in range(0, 40, 3):  # some videos right overall, so splits differ in accuracy
        scores[i, CLASSES.index(truth[vids[i]])] += 0.5
    write_artifact(
        _full_predictions(vids, CLASSES, scores), tmp_path / "p.parquet", "predictions", {}
    )
    lines = [f"{v},{truth[v]}" for v in vids]
    (tmp_path / "gt.csv").write_text("video,label\n" + "\n".join(lines) + "\n")
    (tmp_path / "gt_shuffled.csv").write_text(
        "video,label\n" + "\n".join(lines[::-1][1::2] + lines[::-1][0::2]) + "\n"
    )
    return tmp_path, truth, scores


def _hand_split_metrics(truth, scores, split):
    """top-1, top-5 and mean-class accuracy of one split by plain loops."""
    cols = [CLASSES.index(c) for c in split]
    hits1, hits5, per_class = [], [], {}
    for i, (_vid, label) in enumerate(truth.items()):
        if label not in split:
            continue
        ranked = sorted(cols, key=lambda j, i=i: -scores[i, j])
        t = CLASSES.index(label)
        hits1.append(ranked[0] == t)
        hits5.append(t in ranked[:5])
        per_class.setdefault(label, []).append(ranked[0] == t)
    return np.mean(hits1), np.mean(hits5), np.mean([np.mean(v) for v in per_class.values()])


def test_half_class_splits_mean_std_and_determinism(runner, split_world):
    tmp, truth, scores = split_world
    out = tmp / "m.parquet"
    args = [tmp / "p.parquet", "--gt", tmp / "gt.csv", "--class-splits", "half:4", "--seed", 3]
    summary, _ = _score_json(runner, *args, "-o", out)
    cs = summary["class_splits"]
    splits = [s["classes"] for s in cs["splits"]]
    assert len(splits) == 4 and all(len(s) == 5 and set(s) <= set(CLASSES) for s in splits)
    assert len({tuple(s) for s in splits}) > 1
    assert cs["seed"] == 3 and cs["std"].startswith("population")

    hand = np.array([_hand_split_metrics(truth, scores, s) for s in splits])
    for k, name in enumerate(("top1", "top5", "mean_class")):
        assert [s[name] for s in cs["splits"]] == pytest.approx(hand[:, k].tolist())
        assert cs[f"{name}_mean"] == pytest.approx(np.mean(hand[:, k]))
        assert cs[f"{name}_std"] == pytest.approx(np.std(hand[:, k]))
    assert [s["videos"] for s in cs["splits"]] == [20] * 4
    # The unrestricted numbers are still there, and differ (10 classes compete there).
    assert summary["top1"] == pytest.approx(np.mean(scores.argmax(1) == np.arange(40) % 10))

    # Same seed, GT in another order → the same splits; another seed → other splits.
    again, _ = _score_json(runner, *args[:2], tmp / "gt_shuffled.csv", *args[3:])
    assert [s["classes"] for s in again["class_splits"]["splits"]] == splits
    assert again["class_splits"]["top1_mean"] == pytest.approx(cs["top1_mean"])
    other, _ = _score_json(runner, *args[:-1], 4)
    assert [s["classes"] for s in other["class_splits"]["splits"]] != splits
    assert draw_splits(CLASSES[::-1], 5, 4, 3) == splits

    # The metrics artifact holds the per-split values and enough to rebuild the splits.
    rows = read_artifact(out, "metrics").table.to_pylist()
    per_split = {r["label"]: r["value"] for r in rows if r["metric"] == "split_top1"}
    assert per_split == {f"split{i + 1}": pytest.approx(hand[i, 0]) for i in range(4)}
    mean = [r["value"] for r in rows if r["metric"] == "split_top1_mean"]
    std = [r["value"] for r in rows if r["metric"] == "split_top1_std"]
    assert mean == [pytest.approx(np.mean(hand[:, 0]))]
    assert std == [pytest.approx(np.std(hand[:, 0]))]
    rebuilt = [
        sorted(r["label"] for r in rows if r["metric"] == "split_class" and r["value"] == i + 1)
        for i in range(4)
    ]
    assert rebuilt == splits
    meta = read_artifact(out, "metrics").meta
    assert meta.config["class_splits"] == "half:4" and meta.config["seed"] == 3

    table = runner.invoke(app, ["score", *map(str, args)])
    assert "top-1 over 4 class splits of 5" in table.stdout and "±" in table.stdout


def test_novel_class_splits_with_base_list(runner, split_world):
    tmp, truth, scores = split_world
    base = CLASSES[:4]  # the "K400" classes; the 6 others are novel
    (tmp / "base.txt").write_text("\n".join(c.upper() for c in base) + "\n")  # any spelling
    summary, _ = _score_json(
        runner,
        tmp / "p.parquet",
        "--gt",
        tmp / "gt.csv",
        "--class-splits",
        "novel:3x3",
        "--base-classes",
        tmp / "base.txt",
    )
    cs = summary["class_splits"]
    assert cs["pool_classes"] == 6
    splits = [s["classes"] for s in cs["splits"]]
    assert len(splits) == 3 and all(len(s) == 3 and not set(s) & set(base) for s in splits)
    assert splits == draw_splits(CLASSES[4:], 3, 3, 0)
    hand = [_hand_split_metrics(truth, scores, s)[0] for s in splits]
    assert cs["top1_mean"] == pytest.approx(np.mean(hand))
    assert cs["top1_std"] == pytest.approx(np.std(hand))

    missing = runner.invoke(
        app,
        [
            "score",
            str(tmp / "p.parquet"),
            "--gt",
            str(tmp / "gt.csv"),
            "--class-splits",
            "novel:3x3",
        ],
    )
    assert missing.exit_code != 0 and "--base-classes" in missing.output
    too_many = runner.invoke(
        app,
        [
            "score",
            str(tmp / "p.parquet"),
            "--gt",
            str(tmp / "gt.csv"),
            "--class-splits",
            "novel:7x2",
            "--base-classes",
            str(tmp / "base.txt"),
        ],
    )
    assert too_many.exit_code == 1 and "pool has 6" in too_many.output


def test_class_splits_from_file_and_topk_predictions_refused(runner, split_world):
    tmp, truth, scores = split_world
    given = [["class a", "class c", "class j"], ["class b", "class d"]]
    (tmp / "splits.json").write_text(json.dumps(given))
    (tmp / "splits.txt").write_text("Class_A; class c ;class-j\nclass b;class d\n")
    for name in ("splits.json", "splits.txt"):
        summary, _ = _score_json(
            runner, tmp / "p.parquet", "--gt", tmp / "gt.csv", "--class-splits", tmp / name
        )
        cs = summary["class_splits"]
        assert [s["classes"] for s in cs["splits"]] == given and cs["seed"] is None
        hand = [_hand_split_metrics(truth, scores, s)[0] for s in given]
        assert [s["top1"] for s in cs["splits"]] == pytest.approx(hand)

    (tmp / "bad.txt").write_text("class a;class b\nclass a;class zz\n")
    bad = runner.invoke(
        app,
        [
            "score",
            str(tmp / "p.parquet"),
            "--gt",
            str(tmp / "gt.csv"),
            "--class-splits",
            str(tmp / "bad.txt"),
        ],
    )
    assert bad.exit_code == 1 and "bad.txt:2: class 'class zz'" in bad.output

    # Predictions cut to their top 3: a split's ranking cannot be rebuilt from them.
    art = read_artifact(tmp / "p.parquet", "predictions")
    top3 = art.table.filter(np.asarray(art.table.column("rank").to_numpy()) <= 3)
    write_artifact(top3, tmp / "top3.parquet", "predictions", {})
    cut = runner.invoke(
        app,
        [
            "score",
            str(tmp / "top3.parquet"),
            "--gt",
            str(tmp / "gt.csv"),
            "--class-splits",
            "half:2",
        ],
    )
    assert cut.exit_code == 1 and "every label's score" in cut.output


# ---------------------------------------------------------------------------------------------
# Anomaly over every frame


def _frame_scores(rows, frame_count=None):
    keys = ("video_id", "frame_index", "timestamp", "label", "score")
    cols = {k: [r[i] for r in rows] for i, k in enumerate(keys)}
    if frame_count is not None:
        cols["frame_count"] = _int64([frame_count[r[0]] for r in rows])
    return build_table("frame_scores", cols)


def _int64(values):
    return pa.array(values, pa.int64())


def _nearest_expand(sampled, s, n_frames):
    """Frame by frame: the closest sample's score (ties: the earlier), by a plain loop."""
    out = []
    for frame in range(n_frames):
        dist = np.abs(sampled - frame)
        out.append(s[np.flatnonzero(dist == dist.min())[0]])
    return out


@pytest.fixture
def half_scored():
    """Three videos of 120 frames scored on their first half only (every 6th frame up to 54);
    A's anomaly runs 40..99 (0-based), B's 100..110, N has none."""
    rng = np.random.default_rng(2)
    spans = {"A_x264": [(40, 99)], "B_x264": [(100, 110)], "N_x264": []}
    count = {v: 120 for v in spans}
    sampled = np.arange(0, 60, 6)
    rows, samples = [], {}
    for vid in spans:
        s = rng.random(len(sampled))
        samples[vid] = s
        rows += [(vid, int(f), f / 30, None, float(x)) for f, x in zip(sampled, s, strict=True)]
    return spans, count, sampled, samples, rows


def test_anomaly_evaluates_frames_after_the_last_sample(half_scored):
    spans, count, sampled, samples, rows = half_scored
    gt = AnomalyGT(spans, {})

    def hand(n_frames_of, videos):
        labels, scores = [], []
        for vid in videos:
            n = n_frames_of(vid)
            scores += _nearest_expand(sampled, samples[vid], n)
            labels += [any(a <= f <= b for a, b in spans[vid]) for f in range(n)]
        return np.array(labels), np.array(scores)

    full = score_anomaly(_frame_scores(rows, count), gt)
    labels, scores = hand(lambda v: 120, spans)
    assert full.result.n_frames == 360 and full.n_full_length == 3
    assert full.result.roc_auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert full.result.ap == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert not any("frame_count" in w for w in full.warnings)
    # AUC over the abnormal videos only (A and B): N's frames left out.
    ab_labels, ab_scores = hand(lambda v: 120, ["A_x264", "B_x264"])
    assert full.n_abnormal_videos == 2 and full.abnormal.n_frames == 240
    assert full.abnormal.roc_auc == pytest.approx(roc_auc_score(ab_labels, ab_scores), abs=1e-12)
    assert full.abnormal.roc_auc != pytest.approx(full.result.roc_auc)

    # Without frame_count: today's truncation (frames 0..54), with one warning that says so.
    cut = score_anomaly(_frame_scores(rows), gt)
    t_labels, t_scores = hand(lambda v: 55, spans)
    assert cut.result.n_frames == 165 and cut.n_full_length == 0
    assert cut.result.roc_auc == pytest.approx(roc_auc_score(t_labels, t_scores), abs=1e-12)
    assert cut.result.roc_auc != pytest.approx(full.result.roc_auc)
    assert sum("no frame_count" in w for w in cut.warnings) == 1
    # The same counts given from outside (score --frames) give the same numbers.
    given = score_anomaly(_frame_scores(rows), gt, ScoreConfig(), count)
    assert given.result.roc_auc == full.result.roc_auc and given.result.n_frames == 360


def test_cli_anomaly_frames_artifact_gives_the_counts(runner, tmp_path, half_scored):
    spans, count, _sampled, _samples, rows = half_scored
    write_artifact(_frame_scores(rows), tmp_path / "fs.parquet", "frame_scores", {})
    (tmp_path / "ann.txt").write_text(
        "A_x264.mp4  Abuse  41  100  -1  -1\n"
        "B_x264.mp4  Arson  101  111  -1  -1\n"
        "N_x264.mp4  Normal  -1  -1  -1  -1\n"
    )
    frame_rows = [(v, f) for v in spans for f in range(0, 60, 6)]
    frames = build_table(
        "frames",
        {
            "video_id": [v for v, _ in frame_rows],
            "path": [f"{v}.mp4" for v, _ in frame_rows],
            "frame_index": [f for _, f in frame_rows],
            "timestamp": [f / 30 for _, f in frame_rows],
            "segment": [0] * len(frame_rows),
            "image": [b""] * len(frame_rows),
            "error": [None] * len(frame_rows),
            "frame_count": _int64([count[v] for v, _ in frame_rows]),
        },
    )
    write_artifact(frames, tmp_path / "frames.parquet", "frames", {})
    fs, gt = tmp_path / "fs.parquet", tmp_path / "ann.txt"
    plain, stderr = _score_json(runner, fs, "--gt", gt)
    assert plain["frames"] == 165 and "--frames" in stderr
    out = tmp_path / "m.parquet"
    full, stderr = _score_json(
        runner, fs, "--gt", gt, "--frames", tmp_path / "frames.parquet", "-o", out
    )
    lib = score_anomaly(
        _frame_scores(rows, count),
        AnomalyGT({"A_x264": [(40, 99)], "B_x264": [(100, 110)], "N_x264": []}, {}),
    )
    assert full["frames"] == 360 and full["full_length_videos"] == 3 and "--frames" not in stderr
    assert full["roc_auc"] == pytest.approx(lib.result.roc_auc)
    assert full["roc_auc_abnormal"] == pytest.approx(lib.abnormal.roc_auc)
    metrics = read_artifact(out, "metrics")
    values = {r["metric"]: r["value"] for r in metrics.table.to_pylist()}
    assert values["roc_auc_abnormal"] == pytest.approx(lib.abnormal.roc_auc)
    assert read_artifact(tmp_path / "frames.parquet").cache_key in metrics.meta.upstream

    no_count = tmp_path / "old_frames.parquet"
    write_artifact(frames.drop(["frame_count"]), no_count, "frames", {})
    result = runner.invoke(app, ["score", str(fs), "--gt", str(gt), "--frames", str(no_count)])
    assert result.exit_code == 1 and "no frame_count column" in result.output


def test_options_of_another_task_are_refused(runner, tmp_path, split_world):
    tmp, _truth, _scores = split_world
    result = runner.invoke(
        app, ["score", str(tmp / "p.parquet"), "--gt", str(tmp / "gt.csv"), "--frames", "f.pq"]
    )
    assert result.exit_code != 0 and "--frames applies to anomaly scoring" in result.output
