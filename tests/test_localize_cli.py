"""CLI tests of `zsar localize` on hand-built artifacts: ZEAL (default, compat, ground-truth
labels, ActivityNet JSON), the CLIP-only baseline, anomaly scoring from CLIP and from LVLM
answers, and bad input (no frames, labels missing from answers, all-equal scores, 2 fps, wrong
artifact kinds)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.cli.app import app

T = 20
EYE = np.eye(4)
LABELS = ["a red circle", "a blue square", "a green triangle"]  # → e1, e2, e3; background e0


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args])


def _frames(act_frames, strength=0.3):
    """T frames; the given frames have cosine `strength` with label 0 (e1), the rest are e0."""
    emb = np.tile(EYE[0], (T, 1))
    emb[act_frames] = strength * EYE[1] + math.sqrt(1 - strength**2) * EYE[0]
    return emb


def write_embeddings(path, videos, step=1.0):
    """videos: {video_id: T×D array or None (an upstream error row)}. Decoded frame numbers are
    25·i (a 25 fps source sampled at 1 fps)."""
    cols = {k: [] for k in ("video_id", "frame_index", "timestamp", "embedding", "error")}
    for vid, emb in videos.items():
        if emb is None:
            for key, value in zip(cols, (vid, None, None, None, "cannot decode"), strict=True):
                cols[key].append(value)
            continue
        for i, row in enumerate(emb):
            cols["video_id"].append(vid)
            cols["frame_index"].append(25 * i)
            cols["timestamp"].append(i * step)
            cols["embedding"].append(row.astype(np.float16).tolist())
            cols["error"].append(None)
    write_artifact(
        build_table("embeddings", cols),
        path,
        "embeddings",
        {"test": "emb"},
        extra_metadata={"logit_scale": 100.0},
    )
    return path


def write_text(path, labels=LABELS, kind="description", extra=()):
    rows = [(lb, EYE[i + 1]) for i, lb in enumerate(labels)] + list(extra)
    cols = {
        "label": [lb for lb, _ in rows],
        "text": [f"about {lb}" for lb, _ in rows],
        "kind": [kind] * len(rows),
        "embedding": [v.astype(np.float32).tolist() for _, v in rows],
    }
    write_artifact(build_table("text_embeddings", cols), path, "text_embeddings", {"t": 1})
    return path


def hand_curves():
    """Start peaks at 3 (0.9) and 12 (0.8), end peaks at 8 (0.9) and 17 (0.85), elsewhere
    0.1 + 0.001·i: tests/test_localize.py works the expected intervals out by hand."""
    i = np.arange(T)
    start, end = 0.1 + 0.001 * i, 0.1 + 0.001 * i
    start[[3, 12]] = [0.9, 0.8]
    end[[8, 17]] = [0.9, 0.85]
    return start, end


def write_answers(path, curves, kind_rows=("start", "end")):
    """curves: {(video, label): (start, end)} or {(video, label, 'anomaly'): p}."""
    cols = {
        k: []
        for k in (
            "video_id",
            "frame_index",
            "timestamp",
            "label",
            "query_kind",
            "question",
            "p_yes",
            "error",
        )
    }
    for key, values in curves.items():
        vid, label = key[0], key[1]
        pairs = (
            [("anomaly", values)] if len(key) == 3 else list(zip(kind_rows, values, strict=True))
        )
        for kind, series in pairs:
            for i, p in enumerate(series):
                cols["video_id"].append(vid)
                cols["frame_index"].append(25 * i)
                cols["timestamp"].append(float(i))
                cols["label"].append(label)
                cols["query_kind"].append(kind)
                cols["question"].append(f"{kind}?")
                cols["p_yes"].append(float(p))
                cols["error"].append(None)
    write_artifact(build_table("answers", cols), path, "answers", {"test": "answers"})
    return path


@pytest.fixture
def world(tmp_path):
    """v1 shows label 0 on frames 3..8 and 12..17; v2 failed upstream (no frames)."""
    act = list(range(3, 9)) + list(range(12, 18))
    emb = write_embeddings(tmp_path / "emb.parquet", {"v1": _frames(act), "v2": None})
    text = write_text(tmp_path / "text.parquet")
    start, end = hand_curves()
    low = np.full(T, 0.02)  # the LVLM says the other labels are absent: mean < 0.1
    curves = {
        ("v1", LABELS[0]): (start, end),
        ("v1", LABELS[1]): (low, low),
        ("v1", LABELS[2]): (low, low),
    }
    answers = write_answers(tmp_path / "answers.parquet", curves)
    return tmp_path, emb, text, answers


W = math.exp(-0.16 / 1.3)
# Worked out in tests/test_localize.py::test_zeal_chain_hand_worked (frames 3..8, 12..17, 3..17)
EXPECTED = [(2.5, 8.5, 0.46), (11.5, 17.5, 0.443125), (2.5, 17.5, 0.400375 * W * W)]


def test_zeal_writes_intervals(runner, world):
    tmp, emb, text, answers = world
    out = tmp / "intervals.parquet"
    result = invoke(
        runner, "localize", "--embeddings", emb, "--text", text, "--answers", answers, "-o", out
    )
    assert result.exit_code == 0, result.output
    assert "v2: no frames" in result.output  # the failed video is reported, the rest completes
    art = read_artifact(out, "intervals")
    rows = art.table.to_pylist()
    assert [r["label"] for r in rows] == [LABELS[0]] * 3  # other labels gated (mean p_yes)
    for row, (t0, t1, score) in zip(rows, EXPECTED, strict=True):
        assert (row["t_start"], row["t_end"]) == (t0, t1)
        # actionness 0.3 passes through float16 storage: 3 decimals
        assert row["score"] == pytest.approx(score, abs=1e-3)
    assert (rows[0]["frame_start"], rows[0]["frame_end"]) == (75, 200)  # decoded frame numbers
    assert art.meta.config["method"] == "zeal" and art.meta.config["top_k"] == 3
    assert len(art.meta.upstream) == 3


def test_zeal_compat_and_activitynet_json(runner, world):
    tmp, emb, text, answers = world
    out = tmp / "results.json"
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        emb,
        "--text",
        text,
        "--answers",
        answers,
        "--compat",
        "zeal",
        "--format",
        "activitynet",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    segments = sorted(tuple(p["segment"]) for p in data["results"]["v1"])
    # compat writes the start/end frames' timestamps (frame indices as seconds at 1 fps)
    assert segments == [(3.0, 8.0), (3.0, 17.0), (12.0, 17.0)]
    starts = [p["segment"][0] for p in data["results"]["v1"]]
    assert starts == sorted(starts)  # quirk 11: ordered by start after merge


def test_zeal_gt_labels(runner, world):
    tmp, emb, text, answers = world
    gt = tmp / "gt.json"
    gt.write_text(
        json.dumps(
            {
                "database": {
                    "v1": {
                        "subset": "test",
                        "duration": 20.0,
                        "annotations": [
                            {
                                "segment": [3, 9],
                                "label": "A_Red_Circle",
                            },  # normalised label matching
                            {"segment": [12, 18], "label": "a blue square"},
                        ],
                    },
                    "v2": {"subset": "test", "duration": 20.0, "annotations": []},
                }
            }
        )
    )
    out = tmp / "i.parquet"
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        emb,
        "--text",
        text,
        "--answers",
        answers,
        "--gt-labels",
        gt,
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    rows = read_artifact(out, "intervals").table.to_pylist()
    assert {r["label"] for r in rows} == {LABELS[0]}
    # with ground-truth labels the mean-p_yes gate is off, so the all-0.02 label is explained
    assert "all-equal" in result.output and "a blue square" in result.output
    assert read_artifact(out, "intervals").meta.config["use_gt_labels"] is True


def test_labels_missing_from_answers(runner, world):
    tmp, emb, text, _ = world
    start, end = hand_curves()
    answers = write_answers(
        tmp / "a2.parquet", {("v1", LABELS[0]): (start, end)}, kind_rows=("start", "end")
    )
    gt = tmp / "gt.json"
    gt.write_text(
        json.dumps({"database": {"v1": {"annotations": [{"segment": [1, 2], "label": LABELS[1]}]}}})
    )
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        emb,
        "--text",
        text,
        "--answers",
        answers,
        "--gt-labels",
        gt,
        "-o",
        tmp / "i.parquet",
    )
    assert result.exit_code == 1  # every video failed (v2 no frames, v1 label unanswered)
    assert "'a blue square' has no start answers" in result.output
    # answers whose labels are all unknown to --text: one clear error
    other = write_answers(tmp / "a3.parquet", {("v1", "a purple star"): (start, end)})
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        emb,
        "--text",
        text,
        "--answers",
        other,
        "-o",
        tmp / "i3.parquet",
    )
    assert result.exit_code == 1 and "has a text embedding" in result.output


def test_all_equal_scores_and_two_fps(runner, tmp_path):
    act = list(range(3, 9))
    emb = write_embeddings(tmp_path / "emb.parquet", {"v1": _frames(act)}, step=0.5)
    text = write_text(tmp_path / "text.parquet")
    flat = np.full(T, 0.4)
    answers = write_answers(tmp_path / "a.parquet", {("v1", LABELS[0]): (flat, flat)})
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        emb,
        "--text",
        text,
        "--answers",
        answers,
        "-o",
        tmp_path / "i.parquet",
    )
    assert result.exit_code == 0, result.output
    assert "all-equal start/end p_yes" in result.output
    assert "sampled at 2 fps" in result.output and "2.5 s" in result.output
    assert read_artifact(tmp_path / "i.parquet", "intervals").table.num_rows == 0
    # at 2 fps the hand curves still work: frames 3..8 → seconds with half-cells (1.25, 4.25)
    start, end = hand_curves()
    answers = write_answers(tmp_path / "b.parquet", {("v1", LABELS[0]): (start, end)})
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        emb,
        "--text",
        text,
        "--answers",
        answers,
        "-o",
        tmp_path / "j.parquet",
    )
    rows = read_artifact(tmp_path / "j.parquet", "intervals").table.to_pylist()
    assert (rows[0]["t_start"], rows[0]["t_end"]) == (1.25, 4.25)


def test_bad_inputs(runner, world):
    tmp, emb, text, answers = world
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        answers,
        "--text",
        text,
        "--answers",
        answers,
        "-o",
        tmp / "x.parquet",
    )
    assert result.exit_code == 1 and "expected a 'embeddings' artifact" in result.output
    result = invoke(runner, "localize", "--embeddings", emb, "--text", text)
    assert result.exit_code == 1 and "needs --answers" in result.output
    result = invoke(runner, "localize", "--method", "nope", "--embeddings", emb)
    assert (
        result.exit_code == 2 and "'nope' is not one of 'zeal', 'clip', 'anomaly'" in result.output
    )
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        emb,
        "--text",
        text,
        "--answers",
        answers,
        "--top-p",
        "0",
    )
    assert result.exit_code == 1 and "--top-p" in result.output
    assert "Traceback" not in result.output
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        emb,
        "--text",
        text,
        "--answers",
        answers,
        "--boundaries",
        "edges",
    )
    assert result.exit_code == 2 and "'edges' is not one of 'answers', 'presence'" in result.output
    only_failed = write_embeddings(tmp / "e2.parquet", {"v9": None})
    result = invoke(
        runner,
        "localize",
        "--embeddings",
        only_failed,
        "--text",
        text,
        "--answers",
        answers,
        "-o",
        tmp / "x.parquet",
    )
    assert result.exit_code == 1 and "v9: no frames" in result.output


def test_clip_baseline_cli(runner, tmp_path):
    act = list(range(10, 20))
    emb = write_embeddings(
        tmp_path / "emb.parquet",
        {"v1": np.concatenate([_frames(act, strength=0.9), np.tile(EYE[0], (20, 1))])},
    )
    text = write_text(tmp_path / "text.parquet", kind="name")
    out = tmp_path / "i.parquet"
    result = invoke(
        runner,
        "localize",
        "--method",
        "clip",
        "--embeddings",
        emb,
        "--text",
        text,
        "--window",
        1,
        "--max-gap",
        1,
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    rows = read_artifact(out, "intervals").table.to_pylist()
    assert [(r["label"], r["t_start"], r["t_end"]) for r in rows] == [(LABELS[0], 9.5, 19.5)]
    assert rows[0]["score"] > 0.99


def test_anomaly_clip_and_lvlm(runner, tmp_path):
    act = list(range(5, 11))
    emb = write_embeddings(tmp_path / "emb.parquet", {"v1": _frames(act, strength=0.9)})
    text = write_text(
        tmp_path / "text.parquet", kind="name", extra=[("an empty gray background", EYE[0])]
    )
    out, spans = tmp_path / "fs.parquet", tmp_path / "spans.parquet"
    result = invoke(
        runner,
        "localize",
        "--method",
        "anomaly",
        "--embeddings",
        emb,
        "--text",
        text,
        "--normal",
        "an empty gray background",
        "--smooth",
        1,
        "-o",
        out,
        "--intervals",
        spans,
    )
    assert result.exit_code == 0, result.output
    table = read_artifact(out, "frame_scores").table
    scores = np.array(table.column("score").to_pylist())
    assert (scores[act] > 0.99).all() and (np.delete(scores, act) < 0.01).all()
    rows = read_artifact(spans, "intervals").table.to_pylist()
    assert [(r["t_start"], r["t_end"]) for r in rows] == [(4.5, 10.5)]
    # no normal prompt among the labels: a clear message
    result = invoke(
        runner,
        "localize",
        "--method",
        "anomaly",
        "--embeddings",
        emb,
        "--text",
        text,
        "-o",
        tmp_path / "fs2.parquet",
    )
    assert result.exit_code == 1 and "pass --normal LABEL" in result.output
    # LVLM source: p_yes of the anomaly question, smoothed by a 3-frame moving average
    p = np.zeros(T)
    p[[5, 6, 7]] = 0.9
    answers = write_answers(tmp_path / "a.parquet", {("v1", "anomaly", "anomaly"): p})
    result = invoke(
        runner,
        "localize",
        "--method",
        "anomaly",
        "--source",
        "lvlm",
        "--answers",
        answers,
        "--smooth",
        3,
        "--threshold",
        0.5,
        "-o",
        tmp_path / "fs_lvlm.parquet",
    )
    assert result.exit_code == 0, result.output
    got = (
        read_artifact(tmp_path / "fs_lvlm.parquet", "frame_scores")
        .table.column("score")
        .to_pylist()
    )
    # frames 4..8 get (0,0,.9)/3=.3, (.9+.9)/3=.6, .9, .6, .3
    assert got[3:10] == pytest.approx([0, 0.3, 0.6, 0.9, 0.6, 0.3, 0])


def test_sharded_localize_union_equals_unsharded_and_reruns_skip(runner, tmp_path):
    videos = {f"v{i}": _frames(list(range(3 + i, 9 + i)), strength=0.9) for i in range(5)}
    emb = write_embeddings(tmp_path / "emb.parquet", videos)
    text = write_text(tmp_path / "text.parquet", kind="name")
    base = ["localize", "--method", "clip", "--embeddings", emb, "--text", text, "--window", 3]
    assert invoke(runner, *base, "-o", tmp_path / "all.parquet").exit_code == 0
    for i in range(2):
        res = invoke(runner, *base, "--shard", f"{i}/2", "-o", tmp_path / "parts")
        assert res.exit_code == 0, res.output
    whole = read_artifact(tmp_path / "all.parquet", "intervals").table
    parts = read_artifact(tmp_path / "parts", "intervals").table
    assert parts.replace_schema_metadata(None).equals(whole.replace_schema_metadata(None))
    assert whole.num_rows >= 5
    again = invoke(runner, *base, "-o", tmp_path / "all.parquet")
    assert again.exit_code == 0 and "up to date" in again.output
    other = invoke(runner, *base[:-1], 5, "-o", tmp_path / "all.parquet")
    assert other.exit_code == 1 and "--force" in other.output
