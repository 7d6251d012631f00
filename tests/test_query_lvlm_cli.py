"""`zsar query-lvlm` through the CLI: answers artifact, ROC-AUC via `zsar score`, bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.cli.app import app
from zsar_cli.images import encode_image
from zsar_cli.synthetic import LABELS, random_object, render_frame

MODEL = "builtin:world-lvlm"


def fresh_frames(path, n_videos=12, seed=77):
    """World frames at 320×240, one frame per video, fresh seed; odd videos show one object."""
    rng = np.random.default_rng(seed)
    cols = {
        k: []
        for k in (
            "video_id",
            "path",
            "label",
            "frame_index",
            "timestamp",
            "segment",
            "width",
            "height",
            "image",
            "error",
        )
    }
    truth = {}
    for v in range(n_videos):
        objects = [random_object(rng, 320, 240)] if v % 2 else []
        rgb = render_frame(
            320,
            240,
            objects,
            background=int(rng.integers(90, 171)),
            noise_sigma=float(rng.uniform(0, 12)),
            rng=rng,
        )
        vid = f"vid{v:02d}"
        truth[vid] = objects[0].label if objects else None
        for key, value in (
            ("video_id", vid),
            ("path", f"/w/{vid}.mp4"),
            ("label", truth[vid]),
            ("frame_index", 0),
            ("timestamp", 0.0),
            ("segment", -1),
            ("width", 320),
            ("height", 240),
            ("image", encode_image(rgb, "jpeg")),
            ("error", None),
        ):
            cols[key].append(value)
    write_artifact(
        build_table("frames", cols),
        path,
        "frames",
        {"seed": seed},
        extra_metadata={"image_encoding": "jpeg"},
    )
    return path, truth


@pytest.fixture
def labels_file(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("\n".join(LABELS) + "\n")
    return p


def test_query_lvlm_cli_anomaly_auc_via_score(tmp_path, runner):
    """Anomaly question on fresh frames → answers → frame_scores → `zsar score` ROC-AUC."""
    frames, truth = fresh_frames(tmp_path / "frames.parquet", n_videos=24)
    out = tmp_path / "answers.parquet"
    result = runner.invoke(
        app,
        [
            "query-lvlm",
            str(frames),
            "-o",
            str(out),
            "--question",
            "Is there any object in this frame?",
            "--model",
            MODEL,
            "--device",
            "cpu",
            "--batch-size",
            "24",
        ],
    )
    assert result.exit_code == 0, result.output
    table = read_artifact(out, "answers").table
    assert table.num_rows == 24
    rows = table.to_pylist()
    assert {r["query_kind"] for r in rows} == {"anomaly"}
    y = np.array([truth[r["video_id"]] is not None for r in rows])
    p = np.array([r["p_yes"] for r in rows])
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(y, p)
    scores = build_table(
        "frame_scores",
        {
            "video_id": [r["video_id"] for r in rows],
            "frame_index": [0] * len(rows),
            "timestamp": [0.0] * len(rows),
            "label": [None] * len(rows),
            "score": p.tolist(),
        },
    )
    fs = tmp_path / "fs.parquet"
    write_artifact(scores, fs, "frame_scores", {"from": "answers"})
    gt = tmp_path / "gt.txt"
    gt.write_text(
        "".join(
            f"{vid}.mp4  " + ("Anomaly  1  1  -1  -1\n" if label else "Normal  -1  -1  -1  -1\n")
            for vid, label in truth.items()
        )
    )
    res = runner.invoke(app, ["score", str(fs), "--gt", str(gt), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{") :])
    assert report["task"] == "anomaly" and report["frames"] == len(rows)
    assert report["roc_auc"] == pytest.approx(auc, abs=1e-9)
    assert report["roc_auc"] >= 0.95


def test_query_lvlm_cli_labels(tmp_path, runner, labels_file):
    frames, _ = fresh_frames(tmp_path / "frames.parquet", n_videos=2)
    out = tmp_path / "answers.parquet"
    result = runner.invoke(
        app,
        [
            "query-lvlm",
            str(frames),
            "-o",
            str(out),
            "--labels",
            str(labels_file),
            "--question",
            "Is there {label} in this frame?",
            "--model",
            MODEL,
            "--device",
            "cpu",
            "--batch-size",
            "24",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = read_artifact(out, "answers").table.to_pylist()
    assert len(rows) == 2 * 12
    assert [r["label"] for r in rows[:12]] == list(LABELS)
    assert all(r["question"] == f"Is there {r['label']} in this frame?" for r in rows)
    assert all(0.0 <= r["p_yes"] <= 1.0 for r in rows)


def test_error_rows_and_exit_codes(tmp_path, runner, labels_file):
    frames, _ = fresh_frames(tmp_path / "frames.parquet", n_videos=2)
    table = read_artifact(frames, "frames").table
    bad = pa.table(
        {name: pa.array([None], type=table.schema.field(name).type) for name in table.schema.names}
    )
    bad = bad.set_column(0, "video_id", pa.array(["broken"]))
    bad = bad.set_column(
        bad.schema.get_field_index("error"), "error", pa.array(["ffmpeg: invalid data found"])
    )
    both = pa.concat_tables([table, bad.cast(table.schema)])
    mixed = tmp_path / "mixed.parquet"
    write_artifact(both, mixed, "frames", {"x": 1}, extra_metadata={"image_encoding": "jpeg"})
    out = tmp_path / "a.parquet"
    args = [
        "query-lvlm",
        str(mixed),
        "-o",
        str(out),
        "--question",
        "Is there any object in this frame?",
        "--model",
        MODEL,
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 of 3 videos failed" in result.output
    rows = read_artifact(out, "answers").table.to_pylist()
    broken = [r for r in rows if r["video_id"] == "broken"]
    assert len(broken) == 1 and broken[0]["error"] == "ffmpeg: invalid data found"
    assert all(r["p_yes"] is not None for r in rows if r["video_id"] != "broken")
    result = runner.invoke(app, [*args, "--strict"])
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--question", "Is there an object?"], 1, "has no {label} but --labels was given"),
        (["--question", "Is there {label}?", "--max-frames", "0"], 1, "--max-frames must be >= 1"),
        # A bad choice is a usage error that lists the choices.
        (["--mode", "sideways", "--question", "Is there {label}?"], 2, "'sideways' is not one of"),
        (["--question", "Is there {label}?", "--level", "scene"], 2, "'frame', 'clip'"),
    ],
)
def test_bad_options_are_one_line(tmp_path, runner, labels_file, extra, code, message):
    frames, _ = fresh_frames(tmp_path / "frames.parquet", n_videos=1)
    result = runner.invoke(
        app,
        [
            "query-lvlm",
            str(frames),
            "-o",
            str(tmp_path / "a.parquet"),
            "--labels",
            str(labels_file),
            "--model",
            MODEL,
            *extra,
        ],
    )
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_model_folder_without_processor(tmp_path, runner):
    frames, _ = fresh_frames(tmp_path / "frames.parquet", n_videos=1)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "idefics3"}))
    result = runner.invoke(
        app,
        [
            "query-lvlm",
            str(frames),
            "-o",
            str(tmp_path / "a.parquet"),
            "--question",
            "Is there any object?",
            "--model",
            f"hf:{folder}",
        ],
    )
    assert result.exit_code == 1
    assert "has no processor" in result.output


def test_wrong_input_kind(tmp_path, runner):
    answers = tmp_path / "labels.parquet"
    write_artifact(
        build_table(
            "descriptions",
            {
                "label": ["a"],
                "description": ["d"],
                "descriptors": [["x"]],
                "start_question": ["s"],
                "end_question": ["e"],
            },
        ),
        answers,
        "descriptions",
        {},
    )
    result = runner.invoke(
        app,
        [
            "query-lvlm",
            str(answers),
            "-o",
            str(tmp_path / "a.parquet"),
            "--question",
            "Is there any object?",
            "--model",
            MODEL,
        ],
    )
    assert result.exit_code == 1
    assert "expected a 'frames' artifact" in result.output
