"""Annotation readers: each format's real layout, its quirks, and malformed lines (file:line)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zsar_cli.artifacts import build_table, write_artifact
from zsar_cli.datasets import (
    detect_gt_format,
    load_ground_truth,
    normalize_label,
    read_activitynet,
    read_activitynet_predictions,
    read_hmdb51,
    read_label_list,
    read_thumos14,
    read_ucf101_split,
    read_ucf_crime,
    video_key,
)
from zsar_cli.errors import InputError


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_normalize_label_and_video_key():
    assert normalize_label("HandStandPushups") == normalize_label("HandstandPushups")
    assert normalize_label("a_red_circle") == normalize_label("A Red-Circle")
    assert normalize_label("ApplyEyeMakeup") == normalize_label("apply eye makeup")
    assert normalize_label("a red circle") != normalize_label("a red square")
    assert video_key("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi") == "v_ApplyEyeMakeup_g01_c01"
    assert video_key("video_test_0000004") == "video_test_0000004"
    assert video_key("clip.v2") == "clip.v2"  # not a video extension: kept


@pytest.fixture
def ucf101(tmp_path):
    root = tmp_path / "ucfTrainTestlist"
    _write(root / "classInd.txt", "1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    _write(
        root / "testlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
        "HandstandPushups/v_HandStandPushups_g01_c01.avi\n"
        "YoYo/v_YoYo_g07_c03.avi\n",
    )
    return root


def test_ucf101_testlist_and_handstand_quirk(ucf101):
    gt = read_ucf101_split(ucf101 / "testlist01.txt")
    assert gt.labels == {
        "v_ApplyEyeMakeup_g01_c01": "ApplyEyeMakeup",
        "v_HandStandPushups_g01_c01": "HandstandPushups",
        "v_YoYo_g07_c03": "YoYo",
    }
    assert gt.classes == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    # A folder is read through its testlist (split 1 by default) and detected as UCF101.
    fmt, folder_gt = load_ground_truth(ucf101)
    assert fmt == "ucf101" and folder_gt.labels == gt.labels
    with pytest.raises(InputError, match="testlist02"):
        load_ground_truth(ucf101, split=2)


def test_ucf101_trainlist_index_checked_and_unknown_class(ucf101):
    _write(ucf101 / "trainlist01.txt", "YoYo/v_YoYo_g01_c01.avi 3\nYoYo/v_YoYo_g01_c02.avi 1\n")
    with pytest.raises(InputError, match=r"trainlist01.txt:2: class index 1 does not match"):
        read_ucf101_split(ucf101 / "trainlist01.txt")
    _write(ucf101 / "testlist03.txt", "YoYo/a.avi\nSkiing/b.avi\n")
    with pytest.raises(InputError, match=r"testlist03.txt:2: class 'Skiing' is not in classInd"):
        read_ucf101_split(ucf101 / "testlist03.txt")
    _write(ucf101 / "testlist02.txt", "no_folder.avi\n")
    with pytest.raises(InputError, match=r"testlist02.txt:1: .*no class folder"):
        read_ucf101_split(ucf101 / "testlist02.txt")


def test_hmdb51_split_files(tmp_path):
    _write(tmp_path / "brush_hair_test_split1.txt", "a.avi 1\nb.avi 2\nc.avi 0\n")
    _write(tmp_path / "sword_exercise_test_split1.txt", "d.avi 2 \n")
    _write(tmp_path / "sword_exercise_test_split2.txt", "a.avi 2\n")
    gt = read_hmdb51(tmp_path, split=1)
    assert gt.labels == {"b": "brush_hair", "d": "sword_exercise"}
    assert detect_gt_format(tmp_path) == "hmdb51"
    assert read_hmdb51(tmp_path / "sword_exercise_test_split2.txt").labels == {
        "a": "sword_exercise"
    }
    _write(tmp_path / "bad" / "run_test_split1.txt", "a.avi 1\nb.avi 3\n")
    with pytest.raises(InputError, match=r"run_test_split1.txt:2: expected 'VIDEO.avi 0\|1\|2'"):
        read_hmdb51(tmp_path / "bad")


def test_thumos14_folder_with_ambiguous(tmp_path):
    _write(tmp_path / "BaseballPitch_test.txt", "video_test_0000004 82.7 85.2\nvideo_test_1 1 2\n")
    _write(tmp_path / "a_red_circle_test.txt", "video_test_0000004 10.0 12.5\n")
    _write(tmp_path / "Ambiguous_test.txt", "video_test_0000004 30 31\n")
    gt = read_thumos14(tmp_path)
    assert gt.classes == ["BaseballPitch", "a_red_circle"]
    assert gt.video_id == ["video_test_0000004", "video_test_1", "video_test_0000004"]
    np.testing.assert_allclose(gt.t_start, [82.7, 1, 10.0])
    np.testing.assert_allclose(gt.t_end, [85.2, 2, 12.5])
    assert gt.ambiguous == {"video_test_0000004": [(30.0, 31.0)]}
    assert detect_gt_format(tmp_path) == "thumos14"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("vid 1 2 3\n", r":1: expected 'VIDEO START END'"),
        ("vid 1 x\n", r":1: end 'x' is not a number"),
        ("vid 5 2\n", r":1: reversed interval"),
        ("vid -1 2\n", r":1: negative start time"),
        ("vid 1 2\nvid nan 3\n", r":2: start 'nan' is not finite"),
    ],
)
def test_thumos14_malformed_lines(tmp_path, text, reason):
    path = _write(tmp_path / "Diving_test.txt", text)
    with pytest.raises(InputError, match=r"Diving_test.txt" + reason):
        read_thumos14(path)


def test_activitynet_ground_truth_and_predictions(tmp_path):
    db = {
        "database": {
            "abc": {
                "subset": "validation",
                "duration": 60.0,
                "annotations": [{"segment": [1, 5], "label": "Surfing"}],
            },
            "def": {"subset": "training", "duration": 20, "annotations": []},
        }
    }
    path = _write(tmp_path / "gt.json", json.dumps(db))
    gt = read_activitynet(path)
    assert gt.videos == ["abc", "def"] and gt.classes == ["Surfing"]
    assert gt.durations == {"abc": 60.0, "def": 20.0}
    assert read_activitynet(path, subset="validation").videos == ["abc"]
    assert detect_gt_format(path) == "activitynet"

    db["database"]["abc"]["annotations"].append({"segment": [9, 3], "label": "Surfing"})
    _write(path, json.dumps(db))
    with pytest.raises(InputError, match=r"annotations\[1\]: reversed segment"):
        read_activitynet(path)
    _write(path, '{"database": {')
    with pytest.raises(InputError, match=r"gt.json:1: invalid JSON"):
        read_activitynet(path)

    preds = {"results": {"abc": [{"label": "Surfing", "score": 0.5, "segment": [5, 1]}]}}
    cols = read_activitynet_predictions(_write(tmp_path / "p.json", json.dumps(preds)))
    # Reversed predicted segments are kept (scored as invalid, never dropped silently).
    assert cols == {
        "video_id": ["abc"], "label": ["Surfing"], "t_start": [5.0], "t_end": [1.0], "score": [0.5]
    }  # fmt: skip
    bad = {"results": {"abc": [{"label": "Surfing", "segment": [0, 1]}]}}
    with pytest.raises(InputError, match=r"results\['abc'\]\[0\]: missing or non-numeric 'score'"):
        read_activitynet_predictions(_write(tmp_path / "p.json", json.dumps(bad)))


def test_ucf_crime_lines(tmp_path):
    path = _write(
        tmp_path / "Temporal_Anomaly_Annotation.txt",
        "Abuse028_x264.mp4  Abuse  165  240  -1  -1\n"
        "Arrest039_x264.mp4  Arrest  7215  10335  12000  12100\n"
        "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1\n",
    )
    gt = read_ucf_crime(path)
    # 1-based inclusive → 0-based inclusive decoded frame numbers.
    assert gt.spans == {
        "Abuse028_x264": [(164, 239)],
        "Arrest039_x264": [(7214, 10334), (11999, 12099)],
        "Normal_Videos_003_x264": [],
    }
    assert gt.classes["Abuse028_x264"] == "Abuse"
    assert detect_gt_format(path) == "ucf_crime"
    for line, reason in [
        ("A.mp4 Abuse 10 5 -1 -1", "reversed interval"),
        ("A.mp4 Abuse 0 5 -1 -1", "1-based"),
        ("A.mp4 Abuse 1 x -1 -1", "frame number 'x' is not an integer"),
        ("A.mp4 Abuse 1 2", "expected 'VIDEO CLASS S1 E1 S2 E2'"),
    ]:
        _write(path, "B.mp4 Normal -1 -1 -1 -1\n" + line + "\n")
        with pytest.raises(InputError, match=rf"Temporal_Anomaly_Annotation.txt:2: .*{reason}"):
            read_ucf_crime(path)


def test_label_list_and_artifact_labels(tmp_path):
    path = _write(
        tmp_path / "list.csv", 'video,label\nclips/a.mp4,a red circle\nb.mp4,"a blue square"\n'
    )
    gt = read_label_list(path)
    assert gt.labels == {"a": "a red circle", "b": "a blue square"}
    assert detect_gt_format(path) == "list"
    _write(path, "video,label\na.mp4\n")
    with pytest.raises(InputError, match=r"list.csv:2: expected 'video,label'"):
        read_label_list(path)

    table = build_table(
        "predictions",
        {
            "video_id": ["a", "a", "b"],
            "label": ["x", "y", "x"],
            "score": [0.9, 0.1, 0.7],
            "rank": [1, 2, 1],
            "true_label": ["x", "x", "y"],
        },
    )
    write_artifact(table, tmp_path / "p.parquet", "predictions", {})
    fmt, art_gt = load_ground_truth(tmp_path / "p.parquet")
    assert fmt == "artifact" and art_gt.labels == {"a": "x", "b": "y"}


def test_detection_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        detect_gt_format(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="pass --gt-format"):
        detect_gt_format(_write(tmp_path / "odd.txt", "one two\n"))
    with pytest.raises(InputError, match=r"classInd\.txt names classes only"):
        detect_gt_format(_write(tmp_path / "classInd.txt", "1 A\n"))
    with pytest.raises(InputError, match="unknown"):
        load_ground_truth(tmp_path / "odd.txt", fmt="youtube8m")
