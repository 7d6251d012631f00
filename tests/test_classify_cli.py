"""CLI tests of `zsar classify`, including the world test: the shipped world CLIP classifies 48
freshly generated world videos (a seed, frame size and frame rate never used in training)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_encode import TINY_ARCH, make_tiny_clip
from zsar_cli import synthetic
from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip-classify-cli"), seed=4)


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("small-world")
    synthetic.generate_world(
        out,
        synthetic.SynthConfig(
            trimmed=3,
            untrimmed=0,
            anomaly=0,
            seed=8,
            width=160,
            height=120,
            fps=10,
            trimmed_duration=(2.0, 2.0),
        ),
    )
    (out / "labels.txt").write_text("\n".join(synthetic.LABELS) + "\n")
    return out


def test_classify_prints_a_table_per_video(runner, tiny_clip, small_world):
    result = runner.invoke(
        app,
        [
            "classify",
            str(small_world / "trimmed" / "list.csv"),
            "--labels",
            str(small_world / "labels.txt"),
            "--model",
            f"openclip:{TINY_ARCH}@{tiny_clip}",
            "--device",
            "cpu",
            "--top-k",
            "3",
            "--num-frames",
            "4",
        ],
        terminal_width=120,
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("probability") == 3
    assert "3/3 videos classified" in result.output
    assert "trimmed_0000" in result.output


def test_classify_json_and_predictions_artifact(runner, tmp_path, tiny_clip, small_world):
    out = tmp_path / "pred.parquet"
    args = [
        "classify",
        str(small_world / "trimmed" / "list.csv"),
        "-l",
        str(small_world / "labels.txt"),
        "-m",
        f"openclip:{TINY_ARCH}@{tiny_clip}",
        "--device",
        "cpu",
        "--num-frames",
        "4",
        "--top-k",
        "2",
        "--json",
        "--pooling",
        "mean-prob",
        "--templates",
        "video",
        "-o",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["labels"] == list(synthetic.LABELS)
    videos = payload["videos"]
    assert len(videos) == 3 and all(len(v["predictions"]) == 2 for v in videos)
    table = read_artifact(out, "predictions").table.to_pydict()
    # The artifact keeps every label; --top-k only limits what is shown.
    assert len(table["video_id"]) == 3 * len(synthetic.LABELS)
    for video in videos:
        rows = [i for i, v in enumerate(table["video_id"]) if v == video["video_id"]]
        top = [(table["label"][i], table["score"][i]) for i in rows if table["rank"][i] <= 2]
        assert top == [(p["label"], pytest.approx(p["score"])) for p in video["predictions"]]
        assert sum(table["score"][i] for i in rows) == pytest.approx(1.0, abs=1e-5)
        assert {table["true_label"][i] for i in rows} == {video["true_label"]}
    assert read_artifact(out).meta.config["pooling"] == "mean-prob"


def test_classify_bad_inputs(runner, tmp_path, tiny_clip, small_world):
    spec = f"openclip:{TINY_ARCH}@{tiny_clip}"
    videos = str(small_world / "trimmed" / "list.csv")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# none\n")
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n")
    text = tmp_path / "text.parquet"
    labels = str(small_world / "labels.txt")
    runner.invoke(app, ["encode-text", "-l", labels, "-o", str(text), "-m", spec])
    cases = [
        (["classify", videos, "-l", str(empty), "-m", spec], 1, "holds no labels"),
        (["classify", videos, "-l", str(dup), "-m", spec], 1, "dup.txt:3: duplicate label 'a'"),
        (["classify", videos, "-l", labels, "-m", "nope:x"], 1, "unknown encoder scheme 'nope'"),
        (
            ["classify", videos, "-l", labels, "-m", "openclip:ViT-Q-99/x"],
            1,
            "unknown open_clip architecture 'ViT-Q-99'; known: RN50, RN101, ViT-B-32",
        ),
        (
            ["classify", str(text), "-l", labels, "-m", spec],
            1,
            "expected a 'embeddings' or 'frames' artifact, found 'text_embeddings'",
        ),
        (
            ["classify", videos, "-l", labels, "-m", spec, "--pooling", "max"],
            2,
            "'max' is not one of 'mean-embedding', 'mean-prob'",
        ),
        (
            ["classify", videos, "-l", labels, "-m", spec, "--json", "-o", "-"],
            2,
            "--json and -o - both write to stdout",
        ),
        (["classify", str(tmp_path / "none.mp4"), "-l", labels, "-m", spec], 1, "none.mp4"),
    ]
    for args, code, message in cases:
        result = runner.invoke(app, args, terminal_width=200)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_world_clip_classifies_fresh_world_videos(runner, tmp_path):
    """≥ 95% top-1 on 48 new trimmed videos: new seed, 256×192 at 15 fps, backgrounds 95-165."""
    world = tmp_path / "world"
    synthetic.generate_world(
        world,
        synthetic.SynthConfig(
            trimmed=48,
            untrimmed=0,
            anomaly=0,
            seed=20251,
            width=256,
            height=192,
            fps=15,
            trimmed_duration=(2.0, 3.0),
            background=(95, 165),
            noise_sigma=8.0,
        ),
    )
    (world / "labels.txt").write_text("\n".join(synthetic.LABELS) + "\n")
    out = tmp_path / "pred.parquet"
    result = runner.invoke(
        app,
        [
            "classify",
            str(world / "trimmed" / "list.csv"),
            "--labels",
            str(world / "labels.txt"),
            "--model",
            "builtin:world-clip",
            "--device",
            "cpu",
            "--json",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    videos = json.loads(result.stdout)["videos"]
    assert len(videos) == 48 and all(v["error"] is None for v in videos)
    assert {v["true_label"] for v in videos} <= set(synthetic.LABELS)
    hits = [v["predictions"][0]["label"] == v["true_label"] for v in videos]
    assert np.mean(hits) >= 0.95, [v for v, h in zip(videos, hits, strict=True) if not h]
    table = read_artifact(out, "predictions").table.to_pydict()
    top1 = {
        v: lab
        for v, lab, r in zip(table["video_id"], table["label"], table["rank"], strict=True)
        if r == 1
    }
    assert [top1[v["video_id"]] for v in videos] == [v["predictions"][0]["label"] for v in videos]
