"""Sharding, resume, cache-key refusal, checkpoints and kill -9 safety (issue 8)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

import zsar_cli.stages.extract_frames as stage
from tests.conftest import make_clip
from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app
from zsar_cli.errors import CacheMismatchError, ConfigError, InputError
from zsar_cli.sharding import Shard, merge_parts, parse_shard
from zsar_cli.stages.extract_frames import ExtractConfig, run

ZSAR = [sys.executable, "-m", "zsar_cli"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return [make_clip(root / f"v{i}.mp4", duration=1.0 + 0.25 * i, rate="20") for i in range(5)]


def rows(table):
    return table.replace_schema_metadata(None)


def test_shard_blocks_partition_the_input():
    items = list(range(11))
    parts = [Shard(i, 4).select(items) for i in range(4)]
    assert [x for part in parts for x in part] == items
    assert [len(p) for p in parts] == [2, 3, 3, 3]
    assert Shard(2, 4).part_name() == "part-00002-of-00004.parquet"


def test_parse_shard():
    assert parse_shard("3/64") == Shard(3, 64)
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert parse_shard("auto", env) == Shard(5, 8)
    env1 = {"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert parse_shard("auto", env1) == Shard(5, 8)
    for bad in ("3", "4/4", "a/b"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    with pytest.raises(ConfigError, match="SLURM_ARRAY_TASK_ID"):
        parse_shard("auto", {})


def test_parse_shard_auto_with_zsar_shards_reruns_single_tasks():
    """`sbatch --array=5` alone has a task count of 1: ZSAR_SHARDS names the real count."""
    rerun = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "1"}
    assert parse_shard("auto", rerun) == Shard(0, 1)  # without it: the whole input, wrong part
    assert parse_shard("auto", {**rerun, "ZSAR_SHARDS": "8"}) == Shard(5, 8)
    with pytest.raises(ConfigError, match="not a shard of ZSAR_SHARDS=4"):
        parse_shard("auto", {**rerun, "ZSAR_SHARDS": "4"})
    with pytest.raises(ConfigError, match="ZSAR_SHARDS='x'"):
        parse_shard("auto", {**rerun, "ZSAR_SHARDS": "x"})


def test_sharded_union_equals_unsharded(clips, tmp_path):
    config = ExtractConfig(fps=4, size=32)
    run(clips, tmp_path / "all.parquet", config)
    for i in range(3):
        run(clips, tmp_path / "parts", config, shard=Shard(i, 3))
    whole = read_artifact(tmp_path / "all.parquet", "frames").table
    folder = read_artifact(tmp_path / "parts", "frames").table
    assert rows(folder).equals(rows(whole))
    assert merge_parts(tmp_path / "parts", str(tmp_path / "merged.parquet")) == (3, whole.num_rows)
    merged = read_artifact(tmp_path / "merged.parquet", "frames").table
    assert rows(merged).equals(rows(whole))
    (tmp_path / "parts" / "part-00001-of-00003.parquet").unlink()
    with pytest.raises(InputError, match="1 of 3 parts missing"):
        merge_parts(tmp_path / "parts", str(tmp_path / "m2.parquet"))
    with pytest.raises(InputError, match="1 of 3 parts missing"):
        read_artifact(tmp_path / "parts", "frames")  # an unfinished job array is not a dataset


def test_rerun_skips_and_mismatch_is_refused(clips, tmp_path, runner):
    out = tmp_path / "f.parquet"
    first = run(clips[:2], out, ExtractConfig(num_frames=3))
    mtime = out.stat().st_mtime_ns
    again = run(clips[:2], out, ExtractConfig(num_frames=3, workers=2))
    assert again.skipped and again.cache_key == first.cache_key and again.frames == 6
    assert out.stat().st_mtime_ns == mtime
    with pytest.raises(CacheMismatchError, match="exists with other settings"):
        run(clips[:2], out, ExtractConfig(num_frames=4))
    redo = run(clips[:2], out, ExtractConfig(num_frames=4), force=True)
    assert not redo.skipped and redo.frames == 8
    res = runner.invoke(app, ["extract-frames", str(clips[0]), "-o", str(out), "-n", "2"])
    assert res.exit_code == 1 and "--force" in res.output


def rerun_counting_decodes(monkeypatch, clips, out, config):
    """Run again, noting which videos are decoded (the others came from the checkpoint)."""
    decoded = []
    real = stage.decode_frames

    def counting(video, cfg, *report):
        decoded.append(video.video_id)
        return real(video, cfg, *report)

    monkeypatch.setattr(stage, "decode_frames", counting)
    return decoded, run(clips, out, config)


def test_checkpoint_resumes_finished_videos(clips, tmp_path, monkeypatch):
    out = tmp_path / "f.parquet"
    config = ExtractConfig(fps=4)
    reference = run(clips, tmp_path / "ref.parquet", config)
    seen = []

    def stop_after_two(result):
        seen.append(result.video.video_id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(clips, out, config, on_video=stop_after_two)
    assert not out.exists()
    ckpt = [p for p in tmp_path.iterdir() if p.name.startswith(".f.parquet.ckpt-")]
    # The two finished videos, saved as one batch before the exception went on.
    assert len(ckpt) == 1
    assert [f.name for f in ckpt[0].glob("*.parquet")] == ["00000000-00000001.parquet"]

    decoded, summary = rerun_counting_decodes(monkeypatch, clips, out, config)
    assert decoded == ["v2", "v3", "v4"]  # the first two came from the checkpoint
    assert summary.frames == reference.frames
    assert rows(read_artifact(out).table).equals(
        rows(read_artifact(tmp_path / "ref.parquet").table)
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_batched_checkpoints_resume_after_a_kill(clips, tmp_path, monkeypatch):
    """extract-frames writes one checkpoint file per CHECKPOINT_EVERY_S of finished videos: a
    process killed (no clean-up at all) after the first batch resumes from that batch and
    redoes only the videos finished after it."""
    import multiprocessing

    import zsar_cli.sharding as sharding

    out = tmp_path / "f.parquet"
    config = ExtractConfig(fps=4)
    reference = run(clips, tmp_path / "ref.parquet", config)

    def killed_run() -> None:
        # A clock that moves one second per finished video, checkpoints every 2.5 s: videos
        # v0-v3 are written as one file when v3 ends, v4 is held when the process dies.
        now = [0.0]
        sharding.time = type("Clock", (), {"monotonic": staticmethod(lambda: now[0])})
        stage.CHECKPOINT_EVERY_S = 2.5

        def tick(result):
            now[0] += 1.0
            if result.video.video_id == "v4":
                os._exit(9)  # as a SIGKILL: no finally, no flush

        run(clips, out, config, on_video=tick)

    child = multiprocessing.get_context("fork").Process(target=killed_run)
    child.start()
    child.join(60)
    assert child.exitcode == 9 and not out.exists()
    (folder,) = tmp_path.glob(".f.parquet.ckpt-*")
    assert sorted(p.name for p in folder.glob("*.parquet")) == ["00000000-00000003.parquet"]

    decoded, summary = rerun_counting_decodes(monkeypatch, clips, out, config)
    assert decoded == ["v4"]  # v0-v3 came from the one batch file
    assert summary.frames == reference.frames
    assert rows(read_artifact(out).table).equals(
        rows(read_artifact(tmp_path / "ref.parquet").table)
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_run_within_one_checkpoint_interval_writes_no_checkpoint(clips, tmp_path, monkeypatch):
    """Five short clips finish well within CHECKPOINT_EVERY_S: their rows go from memory to the
    output, with no checkpoint file written and read back; the same rows as per-video files."""
    import zsar_cli.sharding as sharding

    opened = []
    real = sharding.Checkpoint.writer
    monkeypatch.setattr(
        sharding.Checkpoint, "writer", lambda self, *a: opened.append(a) or real(self, *a)
    )
    batched = run(clips, tmp_path / "a.parquet", ExtractConfig(num_frames=3))
    assert opened == []
    monkeypatch.setattr(stage, "CHECKPOINT_EVERY_S", 0.0)  # a file per video, read back
    per_video = run(clips, tmp_path / "b.parquet", ExtractConfig(num_frames=3))
    assert opened == [(p,) for p in range(5)]
    assert batched.frames == per_video.frames == 15
    assert rows(read_artifact(tmp_path / "a.parquet").table).equals(
        rows(read_artifact(tmp_path / "b.parquet").table)
    )


def test_checkpoint_batch_files_name_their_units(tmp_path):
    """Consecutive finished units share a file named by their range; a gap in positions (units
    resumed from an earlier run) starts a new file; a unit larger than the batch cap streams
    into its own file; every unit reads back once, in position order."""
    from pathlib import Path

    import pyarrow as pa

    from zsar_cli.sharding import Checkpoint, CheckpointBatch

    def rows_of(position: int, n: int = 2) -> pa.Table:
        video = stage.VideoInput(Path(f"v{position}.mp4"), f"v{position}")
        return pa.concat_tables([stage.error_row(video, f"row {i}") for i in range(n)])

    now = [0.0]
    checkpoint = Checkpoint(str(tmp_path / "o.parquet"), "frames", {"k": 1}, [])
    batch = CheckpointBatch(checkpoint, every_s=10.0, max_bytes=4096, clock=lambda: now[0])
    for position in (0, 1, 2, 5, 6):  # 3 and 4: done by an earlier run
        batch.write(position, rows_of(position))
        batch.finish(position)
    written = [p.name for p in checkpoint.folder.glob("*.parquet")]
    assert written == ["00000000-00000002.parquet"]  # written at the gap; 5-6 still held
    batch.finish(7)  # a unit without rows still counts as done
    batch.write(8, rows_of(8, 20))
    batch.write(8, rows_of(8, 20))  # past max_bytes: the rest of v8 streams to its own file
    batch.finish(8)
    now[0] = 10.0
    batch.write(9, rows_of(9))
    batch.finish(9)  # 10 s since the last file: written with what it holds
    names = sorted(p.name for p in checkpoint.folder.glob("*.parquet"))
    assert names == [
        "00000000-00000002.parquet",
        "00000005-00000007.parquet",
        "00000008.parquet",
        "00000009.parquet",
    ]
    again = Checkpoint(str(tmp_path / "o.parquet"), "frames", {"k": 1}, [])
    assert [p for p in range(11) if again.done(p)] == [0, 1, 2, 5, 6, 7, 8, 9]
    ids = [v for t in again.tables(range(11)) for v in t.column("video_id").to_pylist()]
    assert ids == [f"v{p}" for p in (0, 0, 1, 1, 2, 2, 5, 5, 6, 6, *[8] * 40, 9, 9)]


def test_kill_at_random_points_then_rerun_is_identical(clips, tmp_path):
    ref = tmp_path / "ref.parquet"
    args = ["extract-frames", *map(str, clips), "--fps", "5", "--size", "48"]
    subprocess.run([*ZSAR, *args, "-o", str(ref)], check=True, capture_output=True)
    expected = rows(read_artifact(ref, "frames").table)
    start = time.perf_counter()
    subprocess.run(
        [*ZSAR, *args, "-o", str(tmp_path / "timing.parquet")], check=True, capture_output=True
    )
    full = time.perf_counter() - start
    rng = random.Random(8)
    for trial in range(10):
        work = tmp_path / f"t{trial}"
        work.mkdir()
        out = work / "f.parquet"
        proc = subprocess.Popen(
            [*ZSAR, *args, "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.05, full))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        subprocess.run([*ZSAR, *args, "-o", str(out)], check=True, capture_output=True)
        assert rows(read_artifact(out, "frames").table).equals(expected), trial
        assert sorted(p.name for p in work.iterdir()) == ["f.parquet"], trial


def test_cli_shard_and_merge(clips, tmp_path, runner):
    for i in range(2):
        res = runner.invoke(
            app,
            [
                "extract-frames",
                *map(str, clips),
                "-n",
                "2",
                "--shard",
                f"{i}/2",
                "-o",
                str(tmp_path / "parts"),
            ],
        )
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["merge", str(tmp_path / "parts"), "-o", str(tmp_path / "m.parquet")])
    assert res.exit_code == 0, res.output
    assert read_artifact(tmp_path / "m.parquet", "frames").table.num_rows == 10
    res = runner.invoke(
        app, ["extract-frames", str(clips[0]), "--shard", "0/2", "-o", str(tmp_path / "x.parquet")]
    )
    assert res.exit_code == 1 and "must be a folder" in res.output


def test_merge_parts_with_an_empty_part_lacking_optional_columns(tmp_path):
    """Found under Slurm: a localize shard whose videos had no proposal wrote an intervals part
    without the optional frame_start/frame_end columns, and merging it after a part that has
    them failed ("batch for intervals lacks columns")."""
    import pyarrow as pa

    from zsar_cli.artifacts import write_artifact
    from zsar_cli.stages.localize_output import intervals_table, new_interval_rows

    rows = new_interval_rows()
    for name, value in (("video_id", "v0"), ("label", "a"), ("t_start", 0.0), ("t_end", 1.0)):
        rows[name].append(value)
    rows["score"].append(0.5)
    rows["frame_start"].append(0)
    rows["frame_end"].append(1)
    full = intervals_table(rows)
    empty = full.slice(0, 0).drop_columns(["frame_start", "frame_end"])
    parts = tmp_path / "parts"
    for i, table in enumerate([full, empty, full]):
        write_artifact(table, parts / Shard(i, 3).part_name(), "intervals", {}, [f"k{i}"])
    assert merge_parts(parts, str(tmp_path / "m.parquet")) == (3, 2)
    merged = read_artifact(tmp_path / "m.parquet", "intervals").table
    assert merged.column_names == full.column_names
    assert merged.column("frame_end").to_pylist() == [1, 1]
    assert isinstance(merged, pa.Table)
