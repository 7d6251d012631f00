"""CLI tests of `zsar encode` and `zsar encode-text`."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_encode import (
    TINY_ARCH,
    _decoded,
    _rows_cosine,
    direct_open_clip,
    make_tiny_clip,
    world_frames,
    write_frames,
)
from zsar_cli import synthetic
from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip-cli"))


@pytest.fixture
def frames_file(tmp_path):
    frames = [f for _, f in world_frames(11, labels=synthetic.LABELS[:5])]
    return write_frames(
        tmp_path / "frames.parquet",
        {"a": frames[:3], "b": frames[3:]},
        errors={"broken": "ffprobe: invalid data"},
    )


def test_encode_writes_embeddings_matching_open_clip(runner, tmp_path, tiny_clip, frames_file):
    out = tmp_path / "emb.parquet"
    spec = f"openclip:{TINY_ARCH}@{tiny_clip}"
    result = runner.invoke(
        app,
        [
            "encode",
            str(frames_file),
            "-o",
            str(out),
            "--model",
            spec,
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--batch-size",
            "2",
        ],
    )
    # One upstream video failed: a warning and exit 0, since the others succeeded.
    assert result.exit_code == 0, result.output
    assert "1 of 3 videos failed" in result.output
    table = read_artifact(out, "embeddings").table.to_pydict()
    assert table["video_id"] == ["a"] * 3 + ["b"] * 2 + ["broken"]
    assert table["error"][-1] == "ffprobe: invalid data" and table["embedding"][-1] is None
    got = np.array(table["embedding"][:5], dtype=np.float32)
    assert _rows_cosine(got, direct_open_clip(tiny_clip, _decoded(frames_file))).min() >= 0.9999


def test_encode_strict_exits_1_on_error_rows(runner, tmp_path, tiny_clip, frames_file):
    spec = f"openclip:{TINY_ARCH}@{tiny_clip}"
    result = runner.invoke(
        app,
        [
            "encode",
            str(frames_file),
            "-o",
            str(tmp_path / "e.parquet"),
            "-m",
            spec,
            "--device",
            "cpu",
            "--strict",
        ],
    )
    assert result.exit_code == 1
    assert (tmp_path / "e.parquet").exists()  # error rows are data, written all the same


def test_encode_bad_inputs_are_one_line_errors(runner, tmp_path, tiny_clip, frames_file):
    spec = f"openclip:{TINY_ARCH}@{tiny_clip}"
    out = str(tmp_path / "x.parquet")
    cases = [
        (["encode", str(tmp_path / "missing.parquet"), "-o", out, "-m", spec], "no such file"),
        (
            ["encode", str(frames_file), "-o", out, "-m", "openclip:Nope/x"],
            "unknown open_clip architecture 'Nope'; known: RN50",
        ),
        (
            ["encode", str(frames_file), "-o", out, "-m", "clip:ViT-B-32"],
            "unknown encoder scheme 'clip'",
        ),
        (
            ["encode", str(frames_file), "-o", out, "-m", f"openclip:{TINY_ARCH}@/no/file.pt"],
            "no such file",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    # A bad choice is a usage error that lists the choices.
    result = runner.invoke(app, ["encode", str(frames_file), "-o", out, "--dtype", "int8"])
    assert result.exit_code == 2 and "'int8' is not one of 'float16', 'float32'" in result.output
    emb = tmp_path / "emb.parquet"
    runner.invoke(app, ["encode", str(frames_file), "-o", str(emb), "-m", spec, "--device", "cpu"])
    result = runner.invoke(app, ["encode", str(emb), "-o", out, "-m", spec])
    assert result.exit_code == 1
    assert "expected a 'frames' artifact, found 'embeddings'" in result.output


def test_encode_text_cli(runner, tmp_path, tiny_clip):
    labels = tmp_path / "labels.txt"
    labels.write_text("a red circle\na green square\n")
    out = tmp_path / "text.parquet"
    spec = f"openclip:{TINY_ARCH}@{tiny_clip}"
    result = runner.invoke(
        app,
        [
            "encode-text",
            "--labels",
            str(labels),
            "-o",
            str(out),
            "-m",
            spec,
            "--device",
            "cpu",
            "--templates",
            "none",
            "--random-descriptors",
            "3",
            "--seed",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "6 prompts for 2 labels" in result.output
    rows = read_artifact(out, "text_embeddings").table.to_pydict()
    assert rows["label"] == ["a red circle"] * 3 + ["a green square"] * 3
    assert all(t.startswith("a red circle, which has ") for t in rows["text"][:3])
    assert set(rows["kind"]) == {"random"}
    dup = tmp_path / "dup.txt"
    dup.write_text("x\ny\nx\n")
    result = runner.invoke(app, ["encode-text", "-l", str(dup), "-o", str(out), "-m", spec])
    assert result.exit_code == 1 and "dup.txt:3: duplicate label 'x'" in result.output
