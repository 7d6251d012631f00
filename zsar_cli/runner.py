"""Running an artifact → artifact stage at dataset scale: shards, skip/refuse, checkpoints, pipes.

Input: an artifact (file, folder of parts, or `-`). Output: an artifact (file, shard part in a
folder, or `-`). A stage supplies only its pure `transform(table) -> table`; this module gives
every such stage the same behaviour:

- `--shard I/N`: only the rows of the shard's videos (a contiguous block of video ids, in input
  order); when the input is a folder of exactly N parts, part I is read directly;
- an output complete with the same cache key is skipped, one with other settings refused unless
  `--force` (sharding.plan_output);
- each input batch's result is checkpointed, so a killed run resumes at the first unfinished
  batch; the final artifact is assembled atomically, then the checkpoints are removed;
- `-` streams batch by batch with no checkpoint (there is nothing to resume into).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from zsar_cli.artifacts import (
    STDIO,
    ArtifactMeta,
    ArtifactWriter,
    iter_batches,
    iter_video_groups,
    read_artifact,
)
from zsar_cli.sharding import PART_RE, Checkpoint, Shard, plan_output, shard_output


def _own_part(source: str, shard: Shard) -> Path | None:
    folder = Path(source)
    if source == STDIO or not folder.is_dir():
        return None
    parts = sorted(p for p in folder.iterdir() if PART_RE.match(p.name))
    if len(parts) == shard.count and parts[shard.index].name == shard.part_name():
        return parts[shard.index]
    return None


def _folder_key(source: str, meta: ArtifactMeta) -> str:
    """A folder of parts stands for all its parts' data: combine their cache keys."""
    folder = Path(source)
    if source == STDIO or not folder.is_dir():
        return meta.cache_key
    from zsar_cli.artifacts import read_meta

    h = hashlib.sha256()
    for part in sorted(p for p in folder.iterdir() if p.suffix == ".parquet"):
        h.update(read_meta(part).cache_key.encode())
    return "parts:" + h.hexdigest()[:32]


def shard_batches(
    source: str,
    kind: str | tuple[str, ...],
    shard: Shard | None,
    batch_size: int = 1024,
    columns: list[str] | None = None,
) -> tuple[ArtifactMeta, str, Iterator[pa.RecordBatch]]:
    """(meta, upstream key, batches) of an input, restricted to a shard's videos."""
    if shard is not None:
        own = _own_part(source, shard)
        if own is not None:
            meta, batches = iter_batches(own, kind, batch_size, columns)
            return meta, meta.cache_key, batches
    meta, batches = iter_batches(source, kind, batch_size, columns)
    key = _folder_key(source, meta)
    if shard is None:
        return meta, key, batches
    if source == STDIO:
        from zsar_cli.errors import ConfigError

        raise ConfigError("--shard needs a file or folder input, not - (stdin)")
    ids = read_artifact(source, kind, columns=["video_id"]).table.column("video_id").to_pylist()
    owned = pa.array(shard.select(list(dict.fromkeys(ids))), pa.string())

    def filtered() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            mask = pc.is_in(batch.column("video_id"), value_set=owned)
            kept = batch.filter(mask)
            if kept.num_rows:
                yield kept

    return meta, f"{key}|shard:{shard}", filtered()


@dataclass
class MapResult:
    output: str
    cache_key: str
    skipped: bool
    input_meta: ArtifactMeta
    rows: int


def map_artifact(
    source: str,
    output: str,
    *,
    in_kind: str | tuple[str, ...],
    out_kind: str,
    config: Any,
    transform: Callable[[pa.Table], pa.Table],
    extra_metadata: dict[str, Any] | Callable[[ArtifactMeta], dict[str, Any]] | None = None,
    shard: Shard | None = None,
    force: bool = False,
    batch_size: int = 256,
    per_video: bool = False,
    upstream_extra: tuple[str, ...] = (),
) -> MapResult:
    """Run `transform` over an input artifact's batches (or whole videos) into an output artifact.

    `extra_metadata` may be a function of the input's metadata (e.g. to carry the image encoding
    or the model spec forward). `upstream_extra` adds cache keys of side inputs (text embeddings,
    descriptions) so that changing them also changes the output's key.
    """
    meta, key, batches = shard_batches(source, in_kind, shard, batch_size)
    upstream = [key, *upstream_extra]
    target = shard_output(str(output), shard)
    plan = plan_output(target, out_kind, config, upstream, force)
    if plan.up_to_date:
        return MapResult(target, plan.cache_key, True, meta, -1)
    # Evaluated only when there is work to do: it may need a loaded model.
    extra = extra_metadata(meta) if callable(extra_metadata) else (extra_metadata or {})
    units: Iterator[pa.Table] = (
        iter_video_groups(batches) if per_video else (pa.Table.from_batches([b]) for b in batches)
    )
    rows = 0
    if target == STDIO:
        with ArtifactWriter(target, out_kind, config, upstream, extra) as writer:
            for table in units:
                out = transform(table)
                rows += out.num_rows
                writer.write(out)
        return MapResult(target, writer.cache_key, False, meta, rows)

    checkpoint = Checkpoint(target, out_kind, config, upstream, extra)
    count = 0
    for position, table in enumerate(units):
        count = position + 1
        if checkpoint.done(position):
            continue  # finished by an earlier, interrupted run
        out = transform(table)
        with checkpoint.writer(position) as part:
            part.write(out)
    with ArtifactWriter(target, out_kind, config, upstream, extra) as writer:
        for table in checkpoint.tables(range(count)):
            rows += table.num_rows
            writer.write(table)
    checkpoint.remove()
    return MapResult(target, writer.cache_key, False, meta, rows)


def finished_counts(output: str, kind: str) -> tuple[int, int, int]:
    """(videos, videos with an error row, rows) of a finished per-video artifact: the summary a
    stage reports when it skips an output that is already up to date."""
    done = read_artifact(output, kind, columns=["video_id", "error"]).table
    ids = done.column("video_id").to_pylist()
    errs = done.column("error").to_pylist()
    bad = {v for v, e in zip(ids, errs, strict=True) if e is not None}
    return len(set(ids)), len(bad), done.num_rows
