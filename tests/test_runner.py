"""Dataset-scale behaviour of artifact→artifact stages (runner.map_artifact), shown on `encode`:
shards, reading a folder of parts, skip/refuse, checkpoint resume, and pipe chains."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest

import zsar_cli.stages.encode as encode_stage
from tests.conftest import make_clip
from zsar_cli.artifacts import read_artifact
from zsar_cli.errors import CacheMismatchError
from zsar_cli.runner import map_artifact
from zsar_cli.sharding import Shard
from zsar_cli.stages.encode import EncodeConfig
from zsar_cli.stages.extract_frames import ExtractConfig
from zsar_cli.stages.extract_frames import run as extract

ZSAR = [sys.executable, "-m", "zsar_cli"]
WORLD = "builtin:world-clip"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    clips = [make_clip(root / f"v{i}.mp4", duration=1.0, rate="10") for i in range(5)]
    extract(clips, root / "frames.parquet", ExtractConfig(fps=4, size=64))
    for i in range(3):
        extract(clips, root / "parts", ExtractConfig(fps=4, size=64), shard=Shard(i, 3))
    return root


def plain(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata(None)


def test_sharded_encode_union_equals_unsharded(frames, tmp_path):
    cfg = EncodeConfig(model=WORLD, batch_size=4)
    encode_stage.run(frames / "frames.parquet", tmp_path / "all.parquet", cfg)
    for i in range(2):  # 2 shards over a single file: rows filtered by video id
        encode_stage.run(frames / "frames.parquet", tmp_path / "by_id", cfg, shard=Shard(i, 2))
    for i in range(3):  # 3 shards over a folder of 3 parts: each reads its own part
        encode_stage.run(frames / "parts", tmp_path / "by_part", cfg, shard=Shard(i, 3))
    whole = plain(read_artifact(tmp_path / "all.parquet", "embeddings").table)
    assert plain(read_artifact(tmp_path / "by_id", "embeddings").table).equals(whole)
    assert plain(read_artifact(tmp_path / "by_part", "embeddings").table).equals(whole)
    ids = read_artifact(tmp_path / "by_id" / "part-00000-of-00002.parquet").table
    assert sorted(set(ids.column("video_id").to_pylist())) == ["v0", "v1"]


def test_skip_refuse_force(frames, tmp_path):
    out = tmp_path / "e.parquet"
    first = encode_stage.run(frames / "frames.parquet", out, EncodeConfig(model=WORLD))
    again = encode_stage.run(
        frames / "frames.parquet", out, EncodeConfig(model=WORLD, batch_size=7)
    )
    assert again.skipped and again.cache_key == first.cache_key and again.frames == first.frames
    with pytest.raises(CacheMismatchError):
        encode_stage.run(frames / "frames.parquet", out, EncodeConfig(model=WORLD, dtype="float32"))
    forced = encode_stage.run(
        frames / "frames.parquet", out, EncodeConfig(model=WORLD, dtype="float32"), force=True
    )
    assert not forced.skipped


def test_checkpoint_resume_recomputes_only_unfinished_batches(frames, tmp_path):
    source = str(frames / "frames.parquet")
    out = tmp_path / "doubled.parquet"
    calls: list[int] = []

    def transform(table: pa.Table) -> pa.Table:
        calls.append(table.num_rows)
        if len(calls) == 3 and fail[0]:
            raise KeyboardInterrupt  # killed mid-run
        return pa.table(
            {
                "video_id": table.column("video_id"),
                "frame_index": table.column("frame_index"),
                "timestamp": table.column("timestamp"),
                "score": pa.array([2.0 * i for i in range(table.num_rows)]),
            }
        )

    fail = [True]
    kwargs = dict(
        in_kind="frames",
        out_kind="frame_scores",
        config={"x": 1},
        transform=transform,
        batch_size=4,
    )
    with pytest.raises(KeyboardInterrupt):
        map_artifact(source, str(out), **kwargs)
    assert not out.exists()
    fail[0] = False
    calls.clear()
    result = map_artifact(source, str(out), **kwargs)
    total = read_artifact(source).table.num_rows
    assert sum(calls) == total - 8  # the two finished batches of 4 came from the checkpoint
    assert result.rows == total
    assert [p.name for p in tmp_path.iterdir()] == ["doubled.parquet"]


def test_pipe_chain_equals_file_chain(frames, tmp_path):
    """extract-frames -o - | encode - -o - | classify - equals the same chain through files."""
    labels = tmp_path / "labels.txt"
    labels.write_text("a red circle\na blue square\nan empty gray background\n")
    clip = frames / "v0.mp4"
    files = [
        [*ZSAR, "extract-frames", str(clip), "--fps", "4", "-o", str(tmp_path / "f.parquet")],
        [
            *ZSAR,
            "encode",
            str(tmp_path / "f.parquet"),
            "--model",
            WORLD,
            "-o",
            str(tmp_path / "e.parquet"),
        ],
        [*ZSAR, "classify", str(tmp_path / "e.parquet"), "--labels", str(labels), "--json"],
    ]
    for cmd in files[:2]:
        subprocess.run(cmd, check=True, capture_output=True)
    by_file = subprocess.run(files[2], check=True, capture_output=True, text=True).stdout
    chain = (
        f"{' '.join(ZSAR)} extract-frames '{clip}' --fps 4 -o - | "
        f"{' '.join(ZSAR)} encode - --model {WORLD} -o - | "
        f"{' '.join(ZSAR)} classify - --labels '{labels}' --json"
    )
    by_pipe = subprocess.run(
        ["bash", "-o", "pipefail", "-c", chain], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(by_pipe) == json.loads(by_file)


def test_run_stage_turns_a_units_user_error_into_an_error_row(tmp_path):
    """A unit whose work raises a ZsarError becomes one error row and the rest complete; an
    error about the whole run (a model that cannot load) still stops it."""
    from zsar_cli.errors import ModelError, VideoError
    from zsar_cli.runner import Unit, run_stage

    def work(unit: Unit) -> pa.Table:
        if unit.video_id == "bad":
            raise VideoError("bad.mp4: moov atom not found")
        return pa.table(
            {
                "video_id": [unit.video_id],
                "frame_index": pa.array([0], pa.int64()),
                "timestamp": [0.0],
                "embedding": pa.array([[1.0, 0.0]], pa.list_(pa.float16())),
                "error": pa.array([None], pa.string()),
            }
        )

    units = [Unit(i, vid) for i, vid in enumerate(["a", "bad", "c"])]
    out = tmp_path / "emb.parquet"
    summary = run_stage(str(out), kind="embeddings", config={}, upstream=[], units=units, work=work)
    table = read_artifact(out).table
    assert table.column("video_id").to_pylist() == ["a", "bad", "c"]
    assert table.column("error").to_pylist() == [None, "bad.mp4: moov atom not found", None]
    assert (summary.videos, summary.failed) == (3, 1)
    assert summary.errors == [("bad", "bad.mp4: moov atom not found")]

    def no_model(unit: Unit) -> pa.Table:
        raise ModelError("hf:missing: not found")

    with pytest.raises(ModelError):
        run_stage(
            str(tmp_path / "x.parquet"),
            kind="embeddings",
            config={},
            upstream=[],
            units=units,
            work=no_model,
        )
    assert not (tmp_path / "x.parquet").exists()
