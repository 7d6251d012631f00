"""`zsar synth --layout`: world stand-ins laid out like UCF101, HMDB51, Kinetics, UCF-Crime,
THUMOS14 and Charades-STA, read back with zsar's own readers.

Expected values come from the world manifest (what was rendered), never from the layout's own
files: each video's label and instances must survive the move into the dataset's layout."""

from __future__ import annotations

import csv
import json

import pytest

from zsar_cli.artifacts import build_table, write_artifact
from zsar_cli.cli.app import app
from zsar_cli.datasets import detect_gt_format, load_ground_truth, read_ucf101_split
from zsar_cli.errors import ConfigError
from zsar_cli.labels import label_text
from zsar_cli.stages.extract_inputs import resolve_inputs
from zsar_cli.synthetic import (
    LABELS,
    LAYOUTS,
    SynthConfig,
    camel_case,
    generate_layout,
    layout_config,
    plan_layout,
)

TINY = {
    "width": 160,
    "height": 120,
    "fps": 10,
    "trimmed_duration": (0.2, 0.4),
    "untrimmed_duration": (3.0, 4.0),
    "instance_duration": (0.5, 1.0),
    "min_gap": 0.3,
    "anomaly_duration": (2.0, 2.0),
    "anomaly_interval_duration": (0.4, 0.6),
    "same_label_prob": 0.6,
}


def _layout(tmp_path, name, **counts):
    spec = LAYOUTS[name]  # the dataset's codec and container, as the CLI picks them
    config = SynthConfig(
        **{"trimmed": 0, "untrimmed": 0, "anomaly": 0, **counts, **TINY},
        codec=spec.codec,
        container=spec.container,
    )
    out = tmp_path / name
    plan, world = generate_layout(out, config, name)
    # Only the dataset's files plus labels.txt: no work folder, no world.json left behind.
    assert not list(out.glob(".world*")) and not (out / "world.json").exists()
    labels = (out / "labels.txt").read_text().splitlines()
    assert labels == list(plan.classes)
    return out, plan, world, labels


def _stems(folder):
    """Video ids as extract-frames names the videos of a folder."""
    return {v.video_id: v.path for v in resolve_inputs([folder])}


def test_class_names_turn_back_into_world_labels():
    for label in LABELS:
        assert label_text(camel_case(label)) == label
        assert label_text(label.replace(" ", "_")) == label
        assert label_text(label) == label
    assert label_text("ARedCircle") == "a red circle"


def test_ucf101_layout_three_splits(tmp_path):
    out, plan, world, labels = _layout(tmp_path, "ucf101", trimmed=36)
    assert world.config.codec == "mpeg4" and world.config.container == "avi"
    assert sorted(label_text(c) for c in labels) == sorted(LABELS)
    lists = out / "ucfTrainTestlist"
    assert detect_gt_format(lists) == "ucf101"
    videos = _stems(out / "UCF-101")
    assert len(videos) == 36 and all(p.suffix == ".avi" for p in videos.values())
    truth = {}
    for world_id, rel in plan.videos.items():
        stem = rel.rsplit("/", 1)[-1].removesuffix(".avi")
        truth[stem] = camel_case(world.video(world_id).label)
        assert rel.startswith(f"UCF-101/{truth[stem]}/v_{truth[stem]}_g")
    assert set(truth) == set(videos)
    tests = []
    for split in (1, 2, 3):
        fmt, gt = load_ground_truth(lists, split=split)
        assert fmt == "ucf101" and gt.classes == labels
        assert all(truth[v] == c for v, c in gt.labels.items())
        assert sorted(set(gt.labels.values())) == sorted(labels)  # every class tested
        train = read_ucf101_split(lists / f"trainlist{split:02d}.txt")  # checks class indices
        assert all(truth[v] == c for v, c in train.labels.items())
        assert set(train.labels) | set(gt.labels) == set(videos)
        assert not set(train.labels) & set(gt.labels)
        tests.append(set(gt.labels))
    assert not (tests[0] & tests[1] or tests[1] & tests[2] or tests[0] & tests[2])


def test_hmdb51_layout(tmp_path):
    out, plan, world, labels = _layout(tmp_path, "hmdb51", trimmed=24)
    assert labels == [label.replace(" ", "_") for label in LABELS]
    splits = out / "testTrainMulti_7030_splits"
    assert detect_gt_format(splits) == "hmdb51"
    videos = _stems(out / "hmdb51")
    truth = {
        rel.rsplit("/", 1)[-1].removesuffix(".avi"): world.video(wid).label.replace(" ", "_")
        for wid, rel in plan.videos.items()
    }
    assert set(truth) == set(videos) and len(videos) == 24
    tested = []
    for split in (1, 2, 3):
        fmt, gt = load_ground_truth(splits, split=split)
        assert fmt == "hmdb51" and sorted(gt.classes) == sorted(labels)
        assert gt.labels == {v: truth[v] for v in gt.labels}
        assert sorted(set(gt.labels.values())) == sorted(labels)
        tested.append(set(gt.labels))
    assert tested[0] != tested[1]  # two clips per class: the splits test different ones


def test_kinetics_layout(tmp_path):
    out, plan, world, labels = _layout(tmp_path, "kinetics", trimmed=12)
    assert labels == sorted(LABELS)
    with open(out / "kinetics600" / "validate.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["label", "youtube_id", "time_start", "time_end", "split"]
    videos = _stems(out / "kinetics600" / "val")
    by_stem = {
        f"{r['youtube_id']}_{int(r['time_start']):06d}_{int(r['time_end']):06d}": r for r in rows
    }
    assert set(by_stem) == set(videos) and len(rows) == 12
    for wid, rel in plan.videos.items():
        stem = rel.rsplit("/", 1)[-1].removesuffix(".mp4")
        row = by_stem[stem]
        assert row["label"] == world.video(wid).label and row["split"] == "val"
        assert videos[stem].parent.name == row["label"]  # folder = label, spaces kept
        assert len(row["youtube_id"]) == 11
    assert {r["label"] for r in rows} == set(labels)
    k400 = (out / "kinetics400_labels.txt").read_text().splitlines()
    assert k400 == sorted(LABELS)[:6]


def test_ucf_crime_layout_classification_and_anomaly(tmp_path, runner):
    out, plan, world, labels = _layout(tmp_path, "ucf-crime", anomaly=16)
    assert labels[-1] == "Normal" and sorted(label_text(c) for c in labels[:-1]) == sorted(LABELS)
    videos = _stems(out)
    assert set(videos) == {
        rel.rsplit("/", 1)[-1].removesuffix(".mp4") for rel in plan.videos.values()
    }
    truth = {}
    for wid, rel in plan.videos.items():
        v = world.video(wid)
        truth[rel.rsplit("/", 1)[-1].removesuffix(".mp4")] = v
        assert rel.startswith(
            ("Testing_Normal_Videos_Anomaly/", "Training_Normal_Videos_Anomaly/")
            if v.is_normal
            else f"Anomaly-Videos/{camel_case(v.label)}/"
        )

    def cls(v):
        return "Normal" if v.is_normal else camel_case(v.label)

    fmt, test = load_ground_truth(out / "Anomaly_Test.txt")
    assert fmt == "ucf_crime_split" and test.classes == labels
    fmt, train = load_ground_truth(out / "Anomaly_Train.txt")
    assert fmt == "ucf_crime_split"
    assert set(test.labels) | set(train.labels) == set(videos)
    assert not set(test.labels) & set(train.labels)
    for gt in (test, train):
        assert gt.labels == {vid: cls(truth[vid]) for vid in gt.labels}
    assert "Normal" in test.labels.values() and "Normal" in train.labels.values()

    temporal = out / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"
    fmt, anomaly = load_ground_truth(temporal)
    assert fmt == "ucf_crime" and set(anomaly.spans) == set(test.labels)
    for vid, spans in anomaly.spans.items():
        v = truth[vid]
        assert spans == [(i.start_frame, i.end_frame - 1) for i in v.instances]
        assert anomaly.classes[vid] == cls(v)

    # zsar score reads the split list: every test video right but one → top-1 (n-1)/n.
    vids = sorted(test.labels)
    cols = {k: [] for k in ("video_id", "label", "score", "rank")}
    for n, vid in enumerate(vids):
        order = [test.labels[vid], *(c for c in labels if c != test.labels[vid])]
        if n == 0:
            order[0], order[1] = order[1], order[0]
        for rank, label in enumerate(order, 1):
            cols["video_id"].append(vid)
            cols["label"].append(label)
            cols["score"].append(float(len(order) - rank))
            cols["rank"].append(rank)
    preds = tmp_path / "p.parquet"
    write_artifact(build_table("predictions", cols), preds, "predictions", {})
    result = runner.invoke(
        app, ["score", str(preds), "--gt", str(out / "Anomaly_Test.txt"), "--json"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["videos"] == len(vids)
    assert metrics["top1"] == pytest.approx((len(vids) - 1) / len(vids))


def test_thumos14_layout(tmp_path):
    out, plan, world, labels = _layout(tmp_path, "thumos14", untrimmed=6)
    folder = out / "TH14_Temporal_annotations_test" / "annotation"
    assert (folder / "Ambiguous_test.txt").read_text() == ""
    assert detect_gt_format(folder) == "thumos14"
    fmt, gt = load_ground_truth(folder)
    assert fmt == "thumos14" and sorted(gt.classes) == sorted(labels)
    videos = _stems(out / "test")
    assert set(gt.videos) == set(videos) and len(videos) == 6
    assert all(v.startswith("video_test_") and len(v) == 18 for v in videos)
    expected = sorted(
        (rel.rsplit("/", 1)[-1].removesuffix(".mp4"), camel_case(i.label), i.start, i.end)
        for wid, rel in plan.videos.items()
        for i in world.video(wid).instances
    )
    got = sorted(zip(gt.video_id, gt.label, gt.t_start.tolist(), gt.t_end.tolist(), strict=True))
    assert got == expected


def test_charades_sta_layout_merges_repeated_labels(tmp_path):
    out, plan, world, labels = _layout(tmp_path, "charades-sta", untrimmed=6)
    assert labels == list(LABELS)
    path = out / "charades_sta_test.txt"
    fmt, gt = load_ground_truth(path)
    assert fmt == "charades_sta"
    videos = _stems(out / "Charades_v1_480")
    assert set(gt.videos) == set(videos) and all(len(v) == 5 for v in videos)
    expected, repeated = [], 0
    for wid, rel in plan.videos.items():
        cid = rel.rsplit("/", 1)[-1].removesuffix(".mp4")
        seen = set()
        for inst in sorted(world.video(wid).instances, key=lambda i: i.start_frame):
            if inst.label in seen:
                repeated += 1
                continue
            seen.add(inst.label)
            expected.append((cid, round(inst.start, 1), round(inst.end, 1), inst.label))
    got = [(m.video_id, m.start, m.end, m.sentence) for m in gt.moments]
    assert sorted(got) == sorted(expected)
    assert repeated > 0  # the world repeats labels within a video; one line each remains
    assert all(
        len(line.split("##")[0].split()[1].split(".")[1]) == 1
        for line in path.read_text().splitlines()
    )


def test_layout_config_keeps_only_the_datasets_kind():
    config = SynthConfig(trimmed=5, untrimmed=3, anomaly=2, **TINY)
    assert layout_config(config, "ucf-crime").trimmed == 0
    assert layout_config(config, "ucf-crime").anomaly == 2
    assert layout_config(config, "thumos14").untrimmed == 3
    with pytest.raises(ConfigError, match="--layout ucf101: needs --trimmed > 0"):
        layout_config(SynthConfig(trimmed=0, **TINY), "ucf101")
    with pytest.raises(ConfigError, match="--layout 'ucf-101': unknown"):
        layout_config(config, "ucf-101")


def test_plan_layout_is_pure_and_seeded(tmp_path):
    from zsar_cli.synthetic import WorldManifest, plan_world

    config = SynthConfig(trimmed=12, seed=3, **TINY)
    world = WorldManifest(tmp_path, config, plan_world(config, tmp_path))
    a, b = plan_layout(world, "kinetics"), plan_layout(world, "kinetics")
    assert a == b and not list(tmp_path.iterdir())
    other = SynthConfig(trimmed=12, seed=4, **TINY)
    c = plan_layout(WorldManifest(tmp_path, other, plan_world(other, tmp_path)), "kinetics")
    assert set(a.videos.values()) != set(c.videos.values())


def test_synth_cli_layout_summary_force_and_codec(runner, tmp_path):
    out = tmp_path / "ucf"
    args = ["synth", str(out), "--layout", "ucf101", "--size", "160x120",
            "--fps", "10", "--trimmed-duration", "0.2"]  # fmt: skip
    result = runner.invoke(app, [*args, "--trimmed", "13"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "wrote a ucf101 stand-in: 13 videos, 12 classes" in result.stderr
    assert "mpeg4 avi" in result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["UCF-101", "descriptions.json", "labels.txt", "ucfTrainTestlist"]
    # the descriptions stand in for describe: one per class, under the dataset's spelling
    records = json.loads((out / "descriptions.json").read_text())
    assert [r["label"] for r in records] == (out / "labels.txt").read_text().split()
    assert records[0]["start_question"].endswith("?")
    again = runner.invoke(app, args, terminal_width=200)
    assert again.exit_code == 1 and "--force" in again.stderr
    result = runner.invoke(app, [*args, "--force", "--codec", "libx264", "--trimmed", "12"])
    assert result.exit_code == 0, result.output
    assert "libx264 avi" in result.stderr
    assert len(_stems(out / "UCF-101")) == 12  # the earlier stand-in's 13th clip is gone
    bad = runner.invoke(app, ["synth", str(tmp_path / "x"), "--layout", "imagenet"])
    assert bad.exit_code == 1 and "--layout 'imagenet': unknown" in bad.stderr
