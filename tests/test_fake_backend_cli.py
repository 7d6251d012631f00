"""`query-lvlm`, `encode` and `classify` end to end through the CLI with the `fake:` backend.

The fake (tests/fakes.py, registered in conftest) has no model, so these tests take milliseconds
and every number is recomputed here from the fake's documented formulas. They run in-process
(typer's CliRunner): a `python -m zsar_cli` subprocess would not know the `fake:` scheme.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from tests import fakes
from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.cli.app import app
from zsar_cli.images import encode_image
from zsar_cli.synthetic import random_object, render_frame

LABELS = ("a red circle", "a blue square", "a green triangle")
FRAME_COLUMNS = ("video_id", "path", "label", "frame_index", "timestamp", "segment")
FRAME_COLUMNS += ("width", "height", "image", "error")


@pytest.fixture
def frames(tmp_path):
    """Three videos × four PNG frames (lossless, so the test sees the pixels the fake sees) in two
    segments, each frame with its own background brightness; returns (path, {video: [rgb]})."""
    rng = np.random.default_rng(5)
    cols: dict[str, list] = {k: [] for k in FRAME_COLUMNS}
    pixels: dict[str, list[np.ndarray]] = {}
    for v in range(3):
        vid = f"vid{v}"
        pixels[vid] = []
        for f in range(4):
            objects = [random_object(rng, 96, 64)] if f % 2 else []
            rgb = render_frame(96, 64, objects, background=40 + 50 * v + 10 * f, rng=rng)
            pixels[vid].append(rgb)
            row = (vid, f"/w/{vid}.mp4", LABELS[v], f, f / 2, f // 2, 96, 64)
            values = (*row, encode_image(rgb, "png"), None)
            for key, value in zip(FRAME_COLUMNS, values, strict=True):
                cols[key].append(value)
    path = tmp_path / "frames.parquet"
    table = build_table("frames", cols)
    write_artifact(table, path, "frames", {"seed": 5}, extra_metadata={"image_encoding": "png"})
    return path, pixels


@pytest.fixture
def labels_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return path


def prompt_offset(text: str) -> float:
    """The fake's offset of a text, written out again: SHA-256's first 8 hex digits / 16⁸."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


def mean_brightness(images: list[np.ndarray]) -> float:
    return float(np.mean([im.astype(np.float64).mean() for im in images]) / 255)


def expected_p_yes(images: list[np.ndarray], prompt: str) -> float:
    """sigmoid(8 · (mean brightness − prompt offset)), as tests/fakes.py documents it."""
    return 1 / (1 + math.exp(-8.0 * (mean_brightness(images) - prompt_offset(prompt))))


def invoke(runner, *args: object) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def query(runner, frames_path, out, *options: object) -> list[dict]:
    """`zsar query-lvlm FRAMES -o OUT --model fake:lvlm OPTIONS...` → the answers rows."""
    invoke(runner, "query-lvlm", frames_path, "-o", out, "--model", "fake:lvlm", *options)
    return read_artifact(out, "answers").table.to_pylist()


def classify(runner, frames_path, labels_file, out, *options: object) -> dict[str, list[dict]]:
    """`zsar classify FRAMES --labels L --model fake:clip -o OUT OPTIONS...` → rows by video,
    best label first."""
    model = ("--model", "fake:clip")
    invoke(runner, "classify", frames_path, "--labels", labels_file, *model, "-o", out, *options)
    by_video: dict[str, list[dict]] = {}
    for row in sorted(read_artifact(out, "predictions").table.to_pylist(), key=lambda r: r["rank"]):
        by_video.setdefault(row["video_id"], []).append(row)
    return by_video


def test_query_lvlm_frame_level_p_yes_is_the_fakes_formula(tmp_path, runner, frames):
    path, pixels = frames
    out = tmp_path / "answers.parquet"
    question = "Is there any object in this frame?"
    query(runner, path, out, "--question", question)
    table = read_artifact(out, "answers")
    assert table.meta.extra_json("model_spec") == "fake:lvlm"
    rows = table.table.to_pylist()
    assert len(rows) == 12
    for row in rows:
        image = pixels[row["video_id"]][row["frame_index"]]
        assert row["p_yes"] == pytest.approx(expected_p_yes([image], question), abs=1e-12)
        assert row["yes_mass"] + row["no_mass"] == pytest.approx(0.9)
        assert row["question"] == question and row["error"] is None


def test_query_lvlm_clip_level_with_labels_asks_each_segment(tmp_path, runner, frames, labels_file):
    path, pixels = frames
    out = tmp_path / "answers.parquet"
    rows = query(
        runner,
        path,
        out,
        "--labels",
        labels_file,
        "--question",
        "Is there {label} here?",
        "--level",
        "clip",
    )
    assert len(rows) == 3 * 2 * len(LABELS)  # videos × segments × labels
    for row in rows:
        segment = pixels[row["video_id"]][2 * row["segment"] : 2 * row["segment"] + 2]
        want = expected_p_yes(segment, f"Is there {row['label']} here?")
        assert row["p_yes"] == pytest.approx(want, abs=1e-12)


def test_query_lvlm_choice_and_generate(tmp_path, runner, frames, labels_file):
    path, pixels = frames
    out = tmp_path / "choice.parquet"
    rows = query(runner, path, out, "--mode", "choice", "--labels", labels_file)
    first = [r for r in rows if r["video_id"] == "vid1" and r["frame_index"] == 2]
    # --option-order circular (default): one ask per rotation, rows in the labels' order
    assert [r["ordering"] for r in first] == [0] * 3 + [1] * 3 + [2] * 3
    assert [r["answer"] for r in first] == ["A", "B", "C", "C", "A", "B", "B", "C", "A"]
    offsets = np.array([prompt_offset(o) for o in LABELS])
    logits = -8.0 * np.abs(mean_brightness([pixels["vid1"][2]]) - offsets)
    want = np.exp(logits) / np.exp(logits).sum()
    # The fake scores options by content, not position: every rotation maps back to the same.
    np.testing.assert_allclose([r["p_yes"] for r in first], np.tile(want, 3), atol=1e-12)

    out = tmp_path / "generate.parquet"
    rows = query(
        runner, path, out, "--mode", "generate", "--question", "What happens?", "--level", "clip"
    )
    clip = mean_brightness(pixels["vid0"][:2])
    assert rows[0]["answer"] == f"brightness {clip:.3f} of 2 images"


def test_encode_stores_the_fakes_embeddings_and_patch_tokens(tmp_path, runner, frames):
    path, pixels = frames
    out = tmp_path / "embeddings.parquet"
    invoke(
        runner,
        "encode",
        path,
        "-o",
        out,
        "--model",
        "fake:clip",
        "--dtype",
        "float32",
        "--patch-tokens",
    )
    artifact = read_artifact(out, "embeddings")
    assert artifact.meta.extra_json("model_spec") == "fake:clip"
    assert artifact.meta.extra_json("patch_grid") == [2, 2]
    for row in artifact.table.to_pylist():
        image = pixels[row["video_id"]][row["frame_index"]]
        np.testing.assert_array_equal(
            np.asarray(row["embedding"], np.float32), fakes.unit_vector(fakes.image_key(image))
        )
        top_left = image[:32, :48]
        np.testing.assert_array_equal(
            np.asarray(row["patch_tokens"][: fakes.DIM], np.float32),
            fakes.unit_vector(fakes.image_key(top_left)),
        )


@pytest.mark.parametrize("templates", ["none", "video"])
def test_classify_ranks_by_softmax_over_the_fakes_embeddings(
    tmp_path, runner, frames, labels_file, templates
):
    path, pixels = frames
    ranked = classify(runner, path, labels_file, tmp_path / "p.parquet", "--templates", templates)
    from zsar_cli.prompts import VIDEO_TEMPLATES

    wrap = ["{}"] if templates == "none" else list(VIDEO_TEMPLATES)
    weights = []
    for label in LABELS:
        mean = np.mean([fakes.unit_vector(t.format(label).encode()) for t in wrap], axis=0)
        weights.append(mean / np.linalg.norm(mean))
    for vid, images in pixels.items():
        frame_mean = np.mean([fakes.unit_vector(fakes.image_key(im)) for im in images], axis=0)
        video = frame_mean / np.linalg.norm(frame_mean)
        logits = 20.0 * np.array(weights) @ video
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        got = ranked[vid]
        assert [r["label"] for r in got] == [LABELS[i] for i in np.argsort(-probs, kind="stable")]
        np.testing.assert_allclose([r["score"] for r in got], np.sort(probs)[::-1], atol=1e-5)


def test_classify_lvlm_reranks_the_shortlist_by_the_fakes_choice(
    tmp_path, runner, frames, labels_file
):
    path, pixels = frames
    out = tmp_path / "p.parquet"
    ranked = classify(runner, path, labels_file, out, "--lvlm", "fake:lvlm", "--shortlist", 3)
    for vid, images in pixels.items():
        brightness = mean_brightness(images)
        distance = [abs(brightness - prompt_offset(r["label"])) for r in ranked[vid]]
        assert distance == sorted(distance)  # the closest option offset has the highest probability


def test_select_tokens_refuses_a_backend_without_hooks_in_one_line(tmp_path, runner, frames):
    path, _ = frames
    result = runner.invoke(
        app,
        [
            "select-tokens",
            str(path),
            "-o",
            str(tmp_path / "t.parquet"),
            "--model",
            "fake:lvlm",
            "--question",
            "Is there any object?",
        ],
    )
    assert result.exit_code == 1
    assert "fake:lvlm: this LVLM backend has no token-selection hooks (lacks " in result.output
    assert "build_inputs" in result.output
