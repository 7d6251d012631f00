"""CLI tests of `zsar extract-frames`: bad input, exit codes, pipes, kill safety, real clips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clips import make_audio
from tests.conftest import make_clip
from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app

ZSAR = [sys.executable, "-m", "zsar_cli"]


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4", duration=2.0)


def test_extract_writes_frames(runner, clip, tmp_path):
    out = tmp_path / "f.parquet"
    result = invoke(runner, "extract-frames", clip, "-o", out, "--num-frames", 4, "--size", 64)
    assert result.exit_code == 0, result.output
    table = read_artifact(out, "frames").table
    assert table.num_rows == 4 and set(table.column("height").to_pylist()) == {64}


def test_progress_bars_keep_force_and_shard(runner, clip, tmp_path, monkeypatch):
    """With a terminal watching (bars on), --force and --shard still reach the stage."""
    monkeypatch.setattr("zsar_cli.cli.extract_frames.show_progress", lambda: True)
    out = tmp_path / "f.parquet"
    assert invoke(runner, "extract-frames", clip, "-o", out, "--num-frames", 2).exit_code == 0
    other = invoke(runner, "extract-frames", clip, "-o", out, "--num-frames", 3)
    assert other.exit_code == 1 and "--force" in other.output
    forced = invoke(runner, "extract-frames", clip, "-o", out, "--num-frames", 3, "--force")
    assert forced.exit_code == 0, forced.output
    assert read_artifact(out, "frames").table.num_rows == 3
    parts = tmp_path / "parts"
    sharded = invoke(runner, "extract-frames", clip, "-o", parts, "--shard", "0/1")
    assert sharded.exit_code == 0, sharded.output
    assert [p.name for p in parts.glob("*.parquet")] == ["part-00000-of-00001.parquet"]


@pytest.mark.parametrize(
    "name", ["-x.mp4", "with space.mp4", 'quote\'d "name".mp4', "nön-ascii_ß_视频.mp4"]
)
def test_awkward_file_names(runner, tmp_path, name):
    path = make_clip(tmp_path / name, duration=1.0)
    out = tmp_path / "f.parquet"
    result = invoke(runner, "extract-frames", "--num-frames", 2, "-o", out, "--", path)
    assert result.exit_code == 0, result.output
    table = read_artifact(out, "frames").table
    assert table.column("video_id").to_pylist() == [Path(name).stem] * 2
    assert table.column("error").null_count == 2


def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 50)
    good = make_clip(tmp_path / "whole.mp4", duration=3.0)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    audio = make_audio(tmp_path / "audio.m4a", duration=1.0)
    return {
        "missing": (tmp_path / "missing.mp4", "no such file"),
        "empty": (empty, "empty file"),
        "text": (text, "not a readable video"),
        "truncated": (truncated, "truncated"),
        "audio": (audio, "no video stream"),
    }


def test_each_bad_input_is_one_clear_line(runner, tmp_path):
    for key, (path, reason) in bad_inputs(tmp_path).items():
        out = tmp_path / f"{key}.parquet"
        result = invoke(runner, "extract-frames", path, "-o", out)
        assert result.exit_code == 1, (key, result.output)
        assert "Traceback" not in result.output
        if key == "truncated":
            # A truncated mp4 loses its index: ffmpeg reports it unreadable or decodes nothing.
            assert "truncated" in result.output or "not a readable video" in result.output
        else:
            assert reason in result.output, (key, result.output)
        assert path.stem in result.output
        table = read_artifact(out, "frames").table
        assert table.num_rows == 1 and table.column("error")[0].as_py()


def test_batch_exit_codes(runner, tmp_path, clip):
    missing = tmp_path / "nope.mp4"
    out = tmp_path / "f.parquet"
    partial = invoke(runner, "extract-frames", clip, missing, "-o", out, "-n", 2)
    assert partial.exit_code == 0 and "1 of 2 videos failed" in partial.output
    strict = invoke(runner, "extract-frames", clip, missing, "-o", out, "-n", 2, "--strict")
    assert strict.exit_code == 1
    none = invoke(runner, "extract-frames", missing, "-o", tmp_path / "none.parquet")
    assert none.exit_code == 1 and "1 of 1 videos failed" in none.output


def test_usage_errors(runner, tmp_path, clip):
    out = tmp_path / "f.parquet"
    both = invoke(runner, "extract-frames", clip, "-o", out, "--fps", 1, "--num-frames", 3)
    assert not out.exists()
    assert both.exit_code == 1 and "one sampling mode" in both.output
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    res = invoke(runner, "extract-frames", empty_dir, "-o", out)
    assert res.exit_code == 1 and "folder holds no video files" in res.output
    not_a_dir = tmp_path / "file.txt"
    res = invoke(runner, "extract-frames", not_a_dir, "-o", out)
    assert res.exit_code == 1 and "no such list file" in res.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder(runner, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        res = invoke(runner, "extract-frames", locked, "-o", tmp_path / "f.parquet")
        assert res.exit_code == 1 and "not readable" in res.output
    finally:
        locked.chmod(0o755)


def test_debug_env_shows_traceback(tmp_path, clip):
    env = {**os.environ, "ZSAR_DEBUG": "1"}
    res = subprocess.run(
        [
            *ZSAR,
            "extract-frames",
            str(clip),
            "-o",
            str(tmp_path / "f.parquet"),
            "--fps",
            "1",
            "-n",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_pipe_chain_equals_file(tmp_path, clip):
    """`zsar extract-frames a.mp4 -o - | zsar info -` reads the Arrow IPC stream."""
    producer = subprocess.Popen(
        [*ZSAR, "extract-frames", str(clip), "-o", "-", "-n", "3"], stdout=subprocess.PIPE
    )
    consumer = subprocess.run(
        [*ZSAR, "info", "-", "--json"], stdin=producer.stdout, capture_output=True, text=True
    )
    producer.wait()
    assert producer.returncode == 0 and consumer.returncode == 0, consumer.stderr
    summary = json.loads(consumer.stdout)
    assert summary["kind"] == "frames" and summary["rows"] == 3


def test_kill_leaves_no_partial_file_and_rerun_completes(tmp_path):
    long = make_clip(tmp_path / "long.mp4", duration=30.0, rate="25", size="320x240")
    out = tmp_path / "f.parquet"
    cmd = [*ZSAR, "extract-frames", str(long), "-o", str(out), "--all", "--image-format", "png"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 30
    while time.time() < deadline and not any(
        p.name.startswith(".f.parquet") for p in tmp_path.iterdir()
    ):
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    subprocess.run([*cmd[:7], "--fps", "2"], check=True, capture_output=True)
    assert read_artifact(out, "frames").table.num_rows == 60
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_help_and_version_do_not_import_heavy_modules():
    code = (
        "import sys; from zsar_cli.cli.app import app; "
        "heavy = [m for m in ('torch', 'open_clip', 'transformers', 'pyarrow', 'numpy', "
        "'sklearn', 'matplotlib') if m in sys.modules]; print(','.join(heavy))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""
    start = time.perf_counter()
    version = subprocess.run([*ZSAR, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("zsar ")
    assert time.perf_counter() - start < 3.0  # generous for a loaded CI box; ~0.15 s idle


def test_real_clips_all_extract(realvideos, tmp_path):
    out = tmp_path / "real.parquet"
    from zsar_cli.stages.extract_frames import ExtractConfig, run

    summary = run([realvideos], out, ExtractConfig(num_frames=3, size=64, workers=2))
    assert summary.failed == 0, summary.errors
    table = read_artifact(out, "frames").table
    per_video = table.group_by("video_id").aggregate([("frame_index", "count")])
    assert per_video.num_rows == summary.videos >= 40
    assert set(per_video.column("frame_index_count").to_pylist()) == {3}


def test_folder_list_with_labels(runner, tmp_path):
    make_clip(tmp_path / "a.mp4", duration=1.0)
    make_clip(tmp_path / "b.mp4", duration=1.0)
    listing = tmp_path / "list.csv"
    listing.write_text("video,label\na.mp4,walking\nb.mp4,running\n")
    out = tmp_path / "f.parquet"
    res = invoke(runner, "extract-frames", listing, "-o", out, "-n", 2, "--workers", 2)
    assert res.exit_code == 0, res.output
    table = read_artifact(out, "frames").table
    assert table.column("label").to_pylist() == ["walking"] * 2 + ["running"] * 2
