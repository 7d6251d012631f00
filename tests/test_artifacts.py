"""The artifact layer: provenance, cache keys, atomic writes, validated reads, IPC streams."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsar_cli import artifacts
from zsar_cli.artifacts import (
    ArtifactWriter,
    build_table,
    compute_cache_key,
    iter_batches,
    iter_video_groups,
    read_artifact,
    read_meta,
    write_artifact,
)
from zsar_cli.errors import ArtifactError, InputError


@dataclass(frozen=True)
class DemoConfig:
    threshold: float = 0.5
    name: str = "x"


def intervals(n: int = 3) -> pa.Table:
    return build_table(
        "intervals",
        {
            "video_id": [f"v{i // 2}" for i in range(n)],
            "label": ["a"] * n,
            "t_start": [float(i) for i in range(n)],
            "t_end": [float(i) + 1 for i in range(n)],
            "score": [0.5] * n,
        },
    )


def test_provenance_round_trip(tmp_path):
    out = tmp_path / "i.parquet"
    key = write_artifact(
        intervals(), out, "intervals", DemoConfig(), upstream=["abc"], extra_metadata={"model": "m"}
    )
    art = read_artifact(out, "intervals")
    assert art.kind == "intervals" and art.cache_key == key
    assert art.meta.config == {"threshold": 0.5, "name": "x"}
    assert art.meta.upstream == ["abc"]
    assert art.meta.extra["model"] == "m"
    assert art.table.num_rows == 3
    raw = pq.read_schema(out).metadata
    for field in (
        b"zsar.kind",
        b"zsar.schema_version",
        b"zsar.version",
        b"zsar.config",
        b"zsar.upstream",
        b"zsar.cache_key",
    ):
        assert field in raw


def test_cache_key_depends_on_config_and_upstream():
    base = compute_cache_key("intervals", DemoConfig(), ["u"])
    assert base == compute_cache_key("intervals", DemoConfig(), ["u"])
    assert base != compute_cache_key("intervals", DemoConfig(threshold=0.6), ["u"])
    assert base != compute_cache_key("intervals", DemoConfig(), ["v"])
    assert base != compute_cache_key("frame_scores", DemoConfig(), ["u"])


def test_wrong_kind_missing_column_newer_version(tmp_path):
    out = tmp_path / "i.parquet"
    write_artifact(intervals(), out, "intervals", {})
    with pytest.raises(
        ArtifactError, match=r"i.parquet: expected a 'frames' artifact, found 'intervals'"
    ):
        read_artifact(out, "frames")
    # Drop a required column but keep the metadata.
    table = pq.read_table(out)
    pq.write_table(
        table.drop(["score"]).replace_schema_metadata(table.schema.metadata), tmp_path / "m.parquet"
    )
    with pytest.raises(ArtifactError, match="lacks column"):
        read_artifact(tmp_path / "m.parquet", "intervals")
    meta = dict(table.schema.metadata)
    meta[b"zsar.schema_version"] = b"99"
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "n.parquet")
    with pytest.raises(ArtifactError, match="newer than this zsar"):
        read_meta(tmp_path / "n.parquet", "intervals")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "plain.parquet")
    with pytest.raises(ArtifactError, match="not a zsar artifact"):
        read_artifact(tmp_path / "plain.parquet")
    (tmp_path / "junk.parquet").write_text("hello")
    with pytest.raises(ArtifactError, match="not a readable Parquet"):
        read_artifact(tmp_path / "junk.parquet")
    with pytest.raises(InputError, match="no such file"):
        read_artifact(tmp_path / "absent.parquet")


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "i.parquet"
    with pytest.raises(RuntimeError), ArtifactWriter(out, "intervals", {}) as writer:
        writer.write(intervals())
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_from_dead_process_is_cleaned(tmp_path):
    out = tmp_path / "i.parquet"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stale = tmp_path / f".i.parquet.tmp-{dead}-deadbeef"
    stale.write_bytes(b"partial")
    write_artifact(intervals(), out, "intervals", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.parquet"]


def test_streaming_writer_flushes_row_groups(tmp_path):
    out = tmp_path / "i.parquet"
    with ArtifactWriter(out, "intervals", {}, row_group_bytes=1) as writer:
        for _ in range(5):
            writer.write(intervals(4))
    assert pq.ParquetFile(out).num_row_groups == 5
    meta, batches = iter_batches(out, "intervals", batch_size=3)
    assert meta.kind == "intervals"
    assert sum(b.num_rows for b in batches) == 20


def test_empty_artifact_has_canonical_schema(tmp_path):
    out = tmp_path / "e.parquet"
    with ArtifactWriter(out, "frames", {}):
        pass
    art = read_artifact(out, "frames")
    assert art.table.num_rows == 0
    assert "image" in art.table.schema.names


def test_folder_of_parts_reads_as_one(tmp_path):
    (tmp_path / "parts").mkdir()
    write_artifact(
        intervals(2), tmp_path / "parts" / "part-00000-of-00002.parquet", "intervals", {}
    )
    write_artifact(
        intervals(3), tmp_path / "parts" / "part-00001-of-00002.parquet", "intervals", {}
    )
    assert read_artifact(tmp_path / "parts", "intervals").table.num_rows == 5


def test_ipc_stream_round_trip(tmp_path, monkeypatch):
    buf = io.BytesIO()

    class Std:
        buffer = buf

    monkeypatch.setattr(sys, "stdout", Std)
    write_artifact(intervals(), "-", "intervals", DemoConfig())
    buf.seek(0)

    class In:
        buffer = buf

    monkeypatch.setattr(sys, "stdin", In)
    art = read_artifact("-", "intervals")
    assert art.table.num_rows == 3 and art.meta.config["threshold"] == 0.5


def test_iter_video_groups_regroups_across_batches():
    table = intervals(7)  # v0 v0 v1 v1 v2 v2 v3
    groups = list(iter_video_groups(table.to_batches(max_chunksize=3)))
    assert [g.column("video_id")[0].as_py() for g in groups] == ["v0", "v1", "v2", "v3"]
    assert [g.num_rows for g in groups] == [2, 2, 2, 1]


def test_unknown_kind():
    with pytest.raises(ArtifactError, match="unknown artifact kind"):
        artifacts.get_spec("nope")
