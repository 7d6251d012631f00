"""`zsar synth`: options → the same world as the library, clear one-line errors, summaries."""

from __future__ import annotations

import json

import pytest

from zsar_cli.cli.app import app
from zsar_cli.synthetic import LABELS, SynthConfig, generate_world, load_world

SHORT = [
    "--trimmed-duration", "0.4-0.8",
    "--untrimmed-duration", "3-4",
    "--instance-duration", "0.5-1",
    "--min-gap", "0.3",
    "--anomaly-duration", "2",
    "--anomaly-interval-duration", "0.4-0.6",
]  # fmt: skip

SHORT_CONFIG = {
    "trimmed_duration": (0.4, 0.8),
    "untrimmed_duration": (3.0, 4.0),
    "instance_duration": (0.5, 1.0),
    "min_gap": 0.3,
    "anomaly_duration": (2.0, 2.0),
    "anomaly_interval_duration": (0.4, 0.6),
}

GT_FILES = [
    "labels.txt",
    "descriptions.json",
    "trimmed/list.csv",
    "untrimmed/list.csv",
    "untrimmed/activitynet.json",
    "untrimmed/thumos/a_green_square_test.txt",
    "anomaly/list.csv",
    "anomaly/temporal_annotation.txt",
]


def invoke(runner, *args):
    return runner.invoke(app, ["synth", *map(str, args)], terminal_width=200)


def test_synth_writes_the_same_world_as_the_library(runner, tmp_path):
    out = tmp_path / "cli"
    result = invoke(
        runner, out, "--trimmed", 2, "--untrimmed", 1, "--anomaly", 2, "--seed", 13, *SHORT
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 trimmed, 1 untrimmed, 2 anomaly videos" in result.stderr
    assert "320x240, 25 fps, libx264 mp4, seed 13" in result.stderr
    assert result.stdout == ""  # data only when asked

    config = SynthConfig(trimmed=2, untrimmed=1, anomaly=2, seed=13, **SHORT_CONFIG)
    lib = generate_world(tmp_path / "lib", config)
    for name in GT_FILES:
        assert (out / name).read_bytes() == (lib.outdir / name).read_bytes(), name
    world = load_world(out)
    assert world.config == config
    assert [v.video_id for v in world.videos] == [v.video_id for v in lib.videos]
    assert all(v.path.is_file() and v.path.stat().st_size > 0 for v in world.videos)


def test_synth_demo_invocation_and_json(runner, tmp_path):
    # The Makefile's demo line, with short clips.
    out = tmp_path / "demo"
    result = invoke(
        runner, out, "--trimmed", 12, "--untrimmed", 0, "--anomaly", 0, "--seed", 7,
        "--trimmed-duration", "0.2", "--size", "160x120", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["format"] == "zsar-world" and len(manifest["videos"]) == 12
    assert sorted(v["label"] for v in manifest["videos"]) == sorted(LABELS)
    rows = (out / "trimmed" / "list.csv").read_text().splitlines()
    assert rows[0] == "video,label" and len(rows) == 13
    assert not (out / "untrimmed").exists() and not (out / "anomaly").exists()
    assert (out / "labels.txt").read_text().splitlines() == list(LABELS)


def test_synth_codec_size_and_fps_options(runner, tmp_path):
    result = invoke(
        runner, tmp_path / "w", "--trimmed", 1, "--untrimmed", 0, "--anomaly", 0,
        "--trimmed-duration", "0.3", "--codec", "mpeg4", "--size", "200x150", "--fps", 10,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (video,) = load_world(tmp_path / "w").videos
    assert video.path.name == "trimmed_0000.avi"
    assert (video.width, video.height, video.fps, video.num_frames) == (200, 150, 10, 3)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--size", "100x100"], "--size 100x100"),
        (["--size", "1920x1080"], "--size 1920x1080"),
        (["--size", "wide"], "--size 'wide'"),
        (["--fps", "5"], "--fps 5"),
        (["--fps", "120"], "--fps 120"),
        (["--trimmed", "-3"], "--trimmed"),
        (["--anomaly", "-1"], "--anomaly"),
        (["--codec", "h265"], "--codec 'h265'"),
        (["--codec", "vp9", "--container", "avi"], "--container avi"),
        (["--background", "80-x"], "--background '80-x'"),
        (["--instances", "1.5-2"], "--instances"),
        (["--anomaly-intervals", "0-2"], "--anomaly-intervals"),
    ],
)
def test_synth_bad_options_give_one_clear_line(runner, tmp_path, args, needle):
    result = invoke(runner, tmp_path / "w", *args)
    assert result.exit_code in (1, 2), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "w").exists()


def test_synth_refuses_a_foreign_non_empty_folder_unless_forced(runner, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = [out, "--trimmed", 1, "--untrimmed", 0, "--anomaly", 0, "--trimmed-duration", "0.2"]
    result = invoke(runner, *args)
    assert result.exit_code == 1
    assert "not empty" in result.stderr and "--force" in result.stderr
    result = invoke(runner, *args, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine"
    # A world folder can be regenerated without --force.
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.output
