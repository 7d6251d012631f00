"""CLI tests of `zsar adapt` and `classify --adapter` on real world videos with the shipped world
CLIP: labels renamed to nonsense words, one support clip per class, the support listed among the
videos classified (and left out), scored by `zsar score`; refusals in one line."""

from __future__ import annotations

import json

import pytest

from zsar_cli import synthetic
from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app

NONSENSE = {"a red circle": "a blicket", "a green square": "a dax", "a blue triangle": "a wug"}


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args], terminal_width=200)


@pytest.fixture(scope="module")
def nonsense_world(tmp_path_factory):
    """Two clips of each of three labels, renamed; support = the first clip of each."""
    out = tmp_path_factory.mktemp("adapt-world")
    world = synthetic.generate_world(
        out / "world",
        synthetic.SynthConfig(
            trimmed=24,
            untrimmed=0,
            anomaly=0,
            seed=41,
            width=160,
            height=120,
            fps=10,
            trimmed_duration=(2.0, 2.0),
        ),
    )
    rows = [(v.path, NONSENSE[v.label]) for v in world.videos if v.label in NONSENSE]
    support = [rows[i] for i in range(len(rows)) if rows[i][1] not in {r[1] for r in rows[:i]}]
    (out / "labels.txt").write_text("\n".join(NONSENSE.values()) + "\n")
    (out / "support.csv").write_text("".join(f"{p},{label}\n" for p, label in support))
    (out / "all.csv").write_text("".join(f"{p},{label}\n" for p, label in rows))
    return out


@pytest.fixture(scope="module")
def fitted(nonsense_world):
    """`zsar adapt` on the support list (GDA, two frames per clip): its result and output."""
    from typer.testing import CliRunner

    adapter = nonsense_world / "adapter.parquet"
    # fmt: off
    result = invoke(CliRunner(), "adapt", "--support", nonsense_world / "support.csv",
                    "-o", adapter, "-m", "builtin:world-clip", "--num-frames", 2, "--device", "cpu")
    # fmt: on
    return result, adapter


def test_adapt_then_classify_leaves_the_support_out(runner, nonsense_world, fitted):
    out = nonsense_world
    result, adapter = fitted
    assert result.exit_code == 0, result.output
    assert "gda: 3 classes, 3 support clips (1 per class), builtin:world-clip" in result.output
    info = invoke(runner, "info", adapter, "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["kind"] == "adapter"

    pred = out / "pred.parquet"
    # the model is the adapter's when --model is not given
    # fmt: off
    result = invoke(runner, "classify", out / "all.csv", "-l", out / "labels.txt",
                    "--adapter", adapter, "--num-frames", 2, "--device", "cpu", "-o", pred)
    # fmt: on
    assert result.exit_code == 0, result.output
    assert "3/3 videos classified (3 support videos of --adapter left out)" in result.output
    scored = invoke(runner, "score", pred, "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["top1"] == 1.0
    meta = read_artifact(pred, "predictions").meta
    assert meta.config["adapter_weight"] == 1.0 and meta.config["model"] == "builtin:world-clip"


def test_refusals_are_one_line(runner, nonsense_world, fitted, tmp_path):
    out = nonsense_world
    adapter = fitted[1]
    cases = [
        (
            [
                "classify",
                out / "all.csv",
                "-l",
                out / "labels.txt",
                "--adapter",
                adapter,
                "-m",
                "fake:clip",
            ],
            "the adapter was fitted on builtin:world-clip embeddings, but the videos scored come "
            "from fake:clip",
        ),
        (
            ["classify", out / "all.csv", "-l", out / "labels.txt", "--adapter-weight", 2],
            "--adapter-weight needs --adapter ADAPTER",
        ),
        (
            ["classify", out / "all.csv", "-l", out / "labels.txt", "--adapter", out / "all.csv"],
            "all.csv",
        ),
        (
            ["adapt", "-s", out / "all.csv", "-o", out / "all.csv", "-m", "builtin:world-clip"],
            "is an input of this run",
        ),
        (
            ["localize", "--embeddings", "e.parquet", "--text", "t.parquet", "--adapter", adapter],
            "--adapter scores CLIP frame embeddings: use it with --method clip",
        ),
    ]
    for args, message in cases:
        result = invoke(runner, *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    result = invoke(runner, "classify", out / "all.csv", "-l", out / "labels.txt", "--adapter",
                    adapter, "--lvlm", "builtin:world-lvlm")  # fmt: skip
    assert result.exit_code == 2 and "cannot be combined with --lvlm" in result.output
    unlabelled = tmp_path / "unlabelled.txt"
    unlabelled.write_text(str(next((out / "world" / "trimmed").glob("*.mp4"))) + "\n")
    result = invoke(runner, "adapt", "-s", unlabelled, "-o", tmp_path / "a.parquet", "-n", 1,
                    "-m", "builtin:world-clip")  # fmt: skip
    assert result.exit_code == 1 and "has no label" in result.output, result.output
