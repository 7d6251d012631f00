"""`report` stage and `zsar report`: figures per task and one self-contained HTML page."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from zsar_cli.artifacts import build_table, write_artifact
from zsar_cli.cli.app import app
from zsar_cli.stages.report import ReportConfig, run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _inlined_images(page: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    ]


def _check_page(result) -> str:
    page = result.html.read_text()
    images = _inlined_images(page)
    # Every figure file is inlined byte for byte, and nothing is referenced from outside.
    assert images == [(result.outdir / f.name).read_bytes() for f in result.figures]
    assert all(img.startswith(PNG_MAGIC) for img in images)
    assert not re.search(r"src=['\"](?!data:)", page)
    return page


@pytest.fixture
def predictions(tmp_path):
    labels = ["a red circle", "a blue square", "a green triangle"]
    cols = {k: [] for k in ("video_id", "label", "score", "rank", "true_label")}
    for v in range(9):
        true = labels[v % 3]
        ranked = [true, *[x for x in labels if x != true]] if v % 4 else labels[::-1]
        for r, label in enumerate(ranked):
            for k, val in zip(cols, (f"v{v}", label, 1 - 0.2 * r, r + 1, true), strict=True):
                cols[k].append(val)
    path = tmp_path / "pred.parquet"
    write_artifact(build_table("predictions", cols), path, "predictions", {})
    return path


def test_classification_report(predictions, tmp_path):
    result = run(predictions, None, tmp_path / "out")
    assert [f.name for f in result.figures] == ["confusion.png", "pr_curves.png"]
    page = _check_page(result)
    # Videos 0, 4, 8 get the reversed list (green first): only v8 (green) is still right.
    assert "top-1" in page and result.report.accuracy.top1 == pytest.approx(7 / 9)


def test_localization_report_timelines(tmp_path):
    gt = {"database": {}}
    rows = []
    for v in range(5):
        gt["database"][f"vid{v}"] = {
            "subset": "validation",
            "duration": 60,
            "annotations": [{"segment": [10 + v, 20 + v], "label": "Run"}],
        }
        rows += [(f"vid{v}", "Run", 10 + v, 21 + v, 0.9), (f"vid{v}", "Run", 40, 45, 0.3)]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    keys = ("video_id", "label", "t_start", "t_end", "score")
    table = build_table("intervals", {k: [r[i] for r in rows] for i, k in enumerate(keys)})
    write_artifact(table, tmp_path / "iv.parquet", "intervals", {})
    result = run(
        tmp_path / "iv.parquet", tmp_path / "gt.json", tmp_path / "out", ReportConfig(max_videos=3)
    )
    names = [f.name for f in result.figures]
    assert names[:2] == ["map_by_tiou.png", "pr_curves.png"]
    assert names[2:] == [f"timelines/vid{v}.png" for v in range(3)]
    _check_page(result)


def test_anomaly_report_and_cli(runner, tmp_path):
    rows = []
    for vid in ("Abuse1_x264", "Normal1_x264"):
        for f in range(0, 300, 3):
            score = float(vid.startswith("Abuse") and 100 <= f <= 200) + 0.1 * np.sin(f)
            rows.append((vid, f, f / 30, None, score))
    keys = ("video_id", "frame_index", "timestamp", "label", "score")
    table = build_table("frame_scores", {k: [r[i] for r in rows] for i, k in enumerate(keys)})
    write_artifact(table, tmp_path / "fs.parquet", "frame_scores", {})
    (tmp_path / "ann.txt").write_text(
        "Abuse1_x264.mp4 Abuse 101 201 -1 -1\nNormal1_x264.mp4 Normal -1 -1 -1 -1\n"
    )
    out = tmp_path / "out"
    args = [
        "report",
        str(tmp_path / "fs.parquet"),
        "--gt",
        str(tmp_path / "ann.txt"),
        "-o",
        str(out),
    ]
    res = runner.invoke(app, [*args, "--video", "Abuse1_x264"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.rglob("*.png")) == ["Abuse1_x264.png", "roc_pr.png"]
    page = (out / "report.html").read_text()
    assert len(_inlined_images(page)) == 2 and "frame ROC-AUC" in page

    res = runner.invoke(app, [*args, "--video", "nope"])
    assert res.exit_code == 1 and "--video" in res.stderr and "Traceback" not in res.output
    (tmp_path / "file").write_text("")
    res = runner.invoke(app, [*args[:-1], str(tmp_path / "file")])
    assert res.exit_code == 1 and "not a folder" in res.stderr
