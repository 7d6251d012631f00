"""Free-text moment grounding (issue 15 item 7): Charades-STA reading, the CLIP window search,
R@k / mIoU scoring against hand computations, and the whole chain on world videos
(encode-text on the query file → localize --method grounding → score)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from zsar_cli.artifacts import build_table, read_artifact
from zsar_cli.cli.app import app
from zsar_cli.datasets import (
    detect_gt_format,
    load_ground_truth,
    read_charades_sta,
    read_queries,
)
from zsar_cli.errors import InputError
from zsar_cli.stages.localize_config import LocalizeConfig
from zsar_cli.stages.localize_grounding import ground, queries_of, window_scores
from zsar_cli.stages.score_grounding import score_grounding, temporal_iou

CHARADES = """\
AO8RW 0.0 6.9##a person is putting a book on a shelf.
AO8RW 5.2 12.1##person begins to play on a phone.
Y6R7T 20.8 30.0##a person is eating   a sandwich.
"""


def test_charades_sta_reader_detection_and_errors(tmp_path):
    path = tmp_path / "charades_sta_test.txt"
    path.write_text(CHARADES)
    assert detect_gt_format(path) == "charades_sta"
    gt = read_charades_sta(path)
    assert [(m.video_id, m.start, m.end) for m in gt.moments] == [
        ("AO8RW", 0.0, 6.9),
        ("AO8RW", 5.2, 12.1),
        ("Y6R7T", 20.8, 30.0),
    ]
    assert gt.moments[2].sentence == "a person is eating a sandwich."  # whitespace collapsed
    assert gt.videos == ["AO8RW", "Y6R7T"]
    assert load_ground_truth(path)[0] == "charades_sta"
    bad = tmp_path / "bad.txt"
    bad.write_text("AO8RW 0.0 6.9##ok\nAO8RW 7.0 x##broken\n")
    with pytest.raises(InputError, match=r"bad.txt:2: end 'x' is not a number"):
        read_charades_sta(bad)
    bad.write_text("AO8RW 9.0 6.9##reversed\n")
    with pytest.raises(InputError, match=r"bad.txt:1: reversed interval"):
        read_charades_sta(bad)


def test_query_files_of_three_shapes(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("someone opens a door\nAO8RW##a person sits\nY6R7T 1 2##a person sits\n")
    q = read_queries(path)
    assert [(x.video_id, x.sentence) for x in q] == [
        (None, "someone opens a door"),
        ("AO8RW", "a person sits"),
        ("Y6R7T", "a person sits"),
    ]
    asked, unknown = queries_of([*q, type(q[0])("ZZZ", "x")], ["AO8RW", "Y6R7T"])
    assert asked == {
        "AO8RW": ["someone opens a door", "a person sits"],
        "Y6R7T": ["someone opens a door", "a person sits"],
    }
    assert unknown == ["ZZZ"]


def test_window_scores_equal_a_loop_over_every_window():
    rng = np.random.default_rng(0)
    sim = rng.normal(size=13)
    starts, ends, scores = window_scores(sim, 2, 10)
    got = {(int(s), int(e)): float(v) for s, e, v in zip(starts, ends, scores, strict=True)}
    want = {}
    for s, e in itertools.combinations_with_replacement(range(13), 2):
        if 2 <= e - s + 1 <= 10:
            inside = sim[s : e + 1]
            outside = np.concatenate([sim[:s], sim[e + 1 :]])
            want[(s, e)] = inside.mean() - outside.mean()
    assert got.keys() == want.keys()
    assert max(abs(got[k] - want[k]) for k in want) < 1e-12


def test_ground_finds_a_planted_moment_and_nms_keeps_distinct_ones():
    sim = np.full(60, 0.1)
    sim[20:31] = 0.9  # frames 20..30
    sim[45:50] = 0.6
    cfg = LocalizeConfig(method="grounding", smooth=1, moments=3, nms_iou=0.5)
    spans, scores = ground(sim, cfg)
    assert spans[0].tolist() == [20, 30]
    assert len(spans) == 3 and (np.diff(scores) <= 0).all()
    for a, b in itertools.combinations(spans.tolist(), 2):
        inter = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
        union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter
        assert inter / union <= 0.5


def _intervals(rows):
    names = ["video_id", "label", "t_start", "t_end", "score"]
    cols = {k: [r[i] for r in rows] for i, k in enumerate(names)}
    return build_table("intervals", cols)


def test_recall_and_miou_against_hand_computation(tmp_path):
    path = tmp_path / "charades_sta_test.txt"
    path.write_text(CHARADES)
    gt = read_charades_sta(path)
    s1, s2, s3 = (m.sentence for m in gt.moments)
    table = _intervals(
        [
            ("AO8RW", s1, 0.0, 6.0, 0.9),  # IoU 6/6.9
            ("AO8RW", s1, 10.0, 12.0, 0.5),
            ("AO8RW", s2, 0.0, 5.0, 0.8),  # top-1 misses (IoU 0)
            ("AO8RW", s2, 6.0, 12.1, 0.7),  # second hits: IoU 6.1/6.9
            ("Y6R7T.mp4", s3, 25.0, 35.0, 0.2),  # IoU 5/14.2; id matched by stem
            ("OTHER", "x", 0.0, 1.0, 0.1),
        ]
    )
    rep = score_grounding(table, gt)
    ious = np.array([6 / 6.9, 0.0, 5 / 14.2])
    for t in (0.3, 0.5, 0.7):
        assert rep.recall[(1, t)] == pytest.approx(float((ious >= t).mean()))
    top5 = np.array([6 / 6.9, 6.1 / 6.9, 5 / 14.2])
    for t in (0.3, 0.5, 0.7):
        assert rep.recall[(5, t)] == pytest.approx(float((top5 >= t).mean()))
    assert rep.miou == pytest.approx(ious.mean())
    assert rep.extra_queries == 1 and rep.missing == 0
    # a moment without any prediction is a miss, reported
    rep = score_grounding(table.slice(0, 2), gt)
    assert rep.missing == 2 and rep.miou == pytest.approx(6 / 6.9 / 3)
    assert temporal_iou(np.array([0.0]), np.array([0.0]), 1.0, 1.0)[0] == 0.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Untrimmed world videos embedded at 2 fps by the world CLIP, and Charades-STA moments
    written from their exact ground truth (the sentence: the instance's label)."""
    from typer.testing import CliRunner

    runner = CliRunner()
    root = tmp_path_factory.mktemp("ground")
    args = ["synth", str(root), "--trimmed", "0", "--untrimmed", "4", "--anomaly", "0"]
    args += ["--untrimmed-duration", "20-30", "--size", "160x120", "--fps", "10", "--seed", "5"]
    args += ["--instance-duration", "4-10", "--same-label-prob", "0"]
    assert runner.invoke(app, args).exit_code == 0
    db = json.loads((root / "untrimmed" / "activitynet.json").read_text())["database"]
    lines = []
    for vid, entry in db.items():
        seen = set()
        for ann in entry["annotations"]:
            if ann["label"] in seen:  # one moment per (video, sentence), as in Charades-STA
                continue
            seen.add(ann["label"])
            start, end = ann["segment"]
            lines.append(f"{vid} {start:.1f} {end:.1f}##{ann['label']}")
    gt = root / "charades_sta_test.txt"
    gt.write_text("\n".join(lines) + "\n")
    frames, emb, text = root / "frames.parquet", root / "emb.parquet", root / "text.parquet"
    for cmd in (
        ["extract-frames", str(root / "untrimmed" / "list.csv"), "-o", str(frames), "--fps", "2"],
        ["encode", str(frames), "-o", str(emb), "-m", "builtin:world-clip", "--device", "cpu"],
        ["encode-text", "-l", str(gt), "-o", str(text), "-m", "builtin:world-clip",
         "--templates", "none", "--device", "cpu"],
    ):  # fmt: skip
        result = runner.invoke(app, cmd)
        assert result.exit_code == 0, result.output
    durations = {vid: entry["duration"] for vid, entry in db.items()}
    return root, gt, emb, text, durations


def test_world_chain_grounds_the_annotated_moments(world, runner):
    root, gt, emb, text, durations = world
    sentences = read_artifact(text, "text_embeddings").table.column("label").to_pylist()
    assert sorted(set(sentences)) == sorted({m.sentence for m in read_charades_sta(gt).moments})
    out = root / "moments.parquet"
    args = ["localize", "--method", "grounding", "--embeddings", str(emb), "--text", str(text)]
    args += ["--queries", str(gt), "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    moments = read_artifact(out, "intervals")
    assert moments.meta.config["method"] == "grounding" and moments.meta.config["moments"] == 5
    per_query = moments.table.group_by(["video_id", "label"]).aggregate([("score", "count")])
    assert set(per_query.column("score_count").to_pylist()) <= {1, 2, 3, 4, 5}
    scored = runner.invoke(app, ["score", str(out), "--gt", str(gt), "--json"])
    assert scored.exit_code == 0, scored.output
    summary = json.loads(scored.stdout)
    assert summary["task"] == "grounding" and summary["missing_moments"] == 0
    # the world CLIP sees the named object: most moments are found; better than the whole video
    assert summary["recall"]["R@1,IoU=0.3"] >= 0.75, summary
    whole = _intervals(
        [
            (m.video_id, m.sentence, 0.0, durations[m.video_id], 1.0)
            for m in read_charades_sta(gt).moments
        ]
    )
    baseline = score_grounding(whole, read_charades_sta(gt))
    assert summary["miou"] > baseline.miou + 0.2
    shown = runner.invoke(app, ["report", str(out), "--gt", str(gt), "-o", str(root / "report")])
    assert shown.exit_code == 0, shown.output
    assert (root / "report" / "grounding_recall.png").stat().st_size > 1000
    # the queries file is part of the cache key; another method refuses --queries
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "up to date" in again.output
    clip = ["localize", "--method", "clip", "--embeddings", str(emb), "--text", str(text)]
    bad = runner.invoke(app, [*clip, "--queries", str(gt), "-o", str(root / "x.parquet")])
    assert bad.exit_code != 0 and "--queries applies to --method grounding" in bad.output


def test_grounding_fields_leave_other_methods_keys_alone():
    assert "moments" not in LocalizeConfig().provenance()
    assert LocalizeConfig(method="grounding").provenance()["nms_iou"] == 0.5
