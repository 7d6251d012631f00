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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from zsar_cli.artifacts import (
    STDIO,
    ArtifactMeta,
    ArtifactWriter,
    compute_cache_key,
    iter_batches,
    iter_video_groups,
    read_artifact,
)
from zsar_cli.errors import CacheMismatchError, ConfigError, ModelError, ZsarError
from zsar_cli.outputs import claim_output
from zsar_cli.sharding import PART_RE, Checkpoint, CheckpointBatch, Shard, shard_output


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
class Unit:
    """One piece of a stage's work: a video (or an input batch) at a fixed position.

    Positions number the units in input order; they name the checkpoint files, so a resumed
    run must enumerate the same units in the same order (it does: same inputs, same key).
    """

    position: int
    video_id: str | None
    data: Any = None


@dataclass
class RunSummary:
    """What a stage run produced, counted from the rows written (resumed units included)."""

    output: str
    cache_key: str
    videos: int = 0
    failed: int = 0
    rows: int = 0
    resumed: int = 0
    error_rows: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (video_id, first error)
    skipped: bool = False  # the output was already complete with these settings
    excluded: int = 0  # input videos left out on purpose (in-context examples are not scored)

    @property
    def resumed_videos(self) -> int:
        return self.resumed

    def count(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if "video_id" not in table.column_names or "error" not in table.column_names:
            return
        for vid, err in zip(
            table.column("video_id").to_pylist(), table.column("error").to_pylist(), strict=True
        ):
            if vid not in self._seen:
                self._seen.add(vid)
                self.videos += 1
            if err is not None:
                self.error_rows += 1
            if err is not None and vid not in self._bad:
                self._bad.add(vid)
                self.failed += 1
                self.errors.append((vid, err))

    def __post_init__(self) -> None:
        self._seen: set[str] = set()
        self._bad: set[str] = set()


# What `on_unit` sees of a finished unit's rows (enough to report it, never its payload).
_SEEN_COLUMNS = ["video_id", "error"]


def _default_error_rows(kind: str) -> Callable[[Unit, str], pa.Table] | None:
    """One row naming the unit's video and the error, every other column null — for every
    kind whose rows carry an `error` column."""
    from zsar_cli.artifacts import get_spec

    spec = get_spec(kind)
    if spec.field("error") is None or spec.field("video_id") is None:
        return None

    def rows(unit: Unit, message: str) -> pa.Table:
        columns = {f.name: pa.nulls(1, f.type) for f in spec.fields}
        columns["video_id"] = pa.array([unit.video_id or ""], pa.string())
        columns["error"] = pa.array([message], pa.string())
        return pa.table(columns)

    return rows


def _seen(table: pa.Table) -> pa.Table:
    return table.select([c for c in _SEEN_COLUMNS if c in table.column_names])


Work = Callable[[Unit], "pa.Table | Iterable[pa.Table]"]
# A stage that produces several units at once (concurrent decoding) streams (unit, rows) pairs,
# each unit's tables consecutively and in order, then (unit, None) once the unit is complete.
Stream = Callable[[list[Unit]], Iterator[tuple[Unit, "pa.Table | None"]]]


def _tables(result: pa.Table | Iterable[pa.Table]) -> Iterator[pa.Table]:
    if isinstance(result, pa.Table):
        yield result
    else:
        yield from result


def run_stage(
    output: str,
    *,
    kind: str,
    config: Any,
    upstream: Sequence[str],
    units: Iterable[Unit],
    work: Work | None = None,
    stream: Stream | None = None,
    error_rows: Callable[[Unit, str], pa.Table] | None = None,
    extra_metadata: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    shard: Shard | None = None,
    force: bool = False,
    on_unit: Callable[[Unit, pa.Table], None] | None = None,
    checkpoint_every_s: float = 0.0,
) -> RunSummary:
    """The one per-unit loop of every dataset-level stage.

    The stage supplies its units and what to do with one (`work`, or `stream` for many at
    once); the runner owns the rest: the shard's part name, the output lock, up to date /
    refused / `force`, per-unit checkpoints and resume, error rows for a unit whose work raised
    a user-facing error (`error_rows`), the final atomic assembly, and the counts.
    `checkpoint_every_s` > 0 batches the checkpoints of units finished within that many
    seconds into one file (`zsar_cli.sharding.CheckpointBatch`): for units much cheaper than a
    file (short clips).
    """
    if (work is None) == (stream is None):
        raise TypeError("run_stage: give exactly one of work= or stream=")
    target = shard_output(str(output), shard)
    with claim_output(target, kind, config, upstream, force) as plan:
        if plan.up_to_date:
            summary = RunSummary(target, plan.cache_key, skipped=True)
            _, batches = iter_batches(target, kind, batch_size=4096, note=False)
            for batch in batches:
                summary.count(pa.Table.from_batches([batch]))
            return summary
        return _run(
            target, kind, config, upstream, units, work, stream, error_rows, extra_metadata,
            on_unit, checkpoint_every_s,
        )  # fmt: skip


def _run(
    target: str,
    kind: str,
    config: Any,
    upstream: Sequence[str],
    units: Iterable[Unit],
    work: Work | None,
    stream: Stream | None,
    error_rows: Callable[[Unit, str], pa.Table] | None,
    extra_metadata: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None,
    on_unit: Callable[[Unit, pa.Table], None] | None,
    checkpoint_every_s: float,
) -> RunSummary:
    extra_cache: list[Mapping[str, Any]] = []

    def extra() -> Mapping[str, Any]:
        # Evaluated only when needed: it may need a loaded model.
        if not extra_cache:
            value = extra_metadata() if callable(extra_metadata) else (extra_metadata or {})
            extra_cache.append(value)
        return extra_cache[0]

    rows_for_error = error_rows or _default_error_rows(kind)

    def guarded(unit: Unit) -> Iterator[pa.Table]:
        assert work is not None
        try:
            produced = list(_tables(work(unit)))
        except (ModelError, ConfigError, CacheMismatchError):
            raise  # about the whole run, not this unit
        except ZsarError as exc:  # this unit's own problem: an error row, the rest completes
            if rows_for_error is None:
                raise
            produced = [rows_for_error(unit, str(exc))]
        yield from produced

    def produce(todo: Iterable[Unit]) -> Iterator[tuple[Unit, pa.Table | None]]:
        if stream is not None:
            yield from stream(list(todo))
            return
        for unit in todo:
            for table in guarded(unit):
                yield unit, table
            yield unit, None

    if target == STDIO:  # a pipe: nothing to resume into, rows go straight out
        summary = RunSummary(target, compute_cache_key(kind, config, upstream))
        with ArtifactWriter(target, kind, config, upstream, extra()) as writer:
            for _unit, table in _finishing(produce(units), on_unit):
                if table is not None:
                    summary.count(table)
                    writer.write(table)
        return summary

    checkpoint = Checkpoint(target, kind, config, upstream)
    listed: list[Unit] = []
    resumed = 0

    def todo() -> Iterator[Unit]:
        nonlocal resumed
        for unit in units:
            listed.append(unit)
            if checkpoint.done(unit.position):
                resumed += 1  # finished by an earlier, interrupted run
            else:
                yield unit

    # Each unit's rows go to a checkpoint (its own file, or a batch of units every
    # `checkpoint_every_s`), which counts as done once the unit has ended and the file is closed.
    batch = CheckpointBatch(checkpoint, checkpoint_every_s)
    current: list[tuple[Unit, list[pa.Table]]] = []

    def finish() -> None:
        unit, seen = current.pop()
        batch.finish(unit.position)
        if on_unit is not None:
            on_unit(unit, pa.concat_tables(seen))

    try:
        for unit, table in produce(todo()):
            if current and current[0][0].position != unit.position:
                finish()
            if not current:
                current.append((unit, []))
            if table is None:  # the unit is complete
                finish()
                continue
            batch.write(unit.position, table)
            current[0][1].append(_seen(table))
        if current:
            finish()
        # A run that ended before its first checkpoint file writes its output straight from
        # memory (a checkpoint now would be read back at once).
        direct = batch.take() if resumed == 0 else None
        if direct is None:
            batch.flush()
    except BaseException:
        batch.stop()
        checkpoint.discard_if_empty()
        raise
    for unit in listed if direct is None else []:  # a unit without rows still counts as done
        if not checkpoint.done(unit.position):
            with checkpoint.writer(unit.position):
                pass
    summary = RunSummary(target, compute_cache_key(kind, config, upstream), resumed=resumed)
    finished = checkpoint.tables([u.position for u in listed]) if direct is None else direct
    with ArtifactWriter(target, kind, config, upstream, extra(), force=True) as writer:
        for table in finished:
            summary.count(table)
            writer.write(table)
    checkpoint.remove()
    summary.cache_key = writer.cache_key
    return summary


def _finishing(
    pairs: Iterator[tuple[Unit, pa.Table | None]],
    on_unit: Callable[[Unit, pa.Table], None] | None,
) -> Iterator[tuple[Unit, pa.Table | None]]:
    """Pass the pairs through, calling `on_unit` with each unit's rows once it is complete."""
    rows: list[pa.Table] = []
    for unit, table in pairs:
        if table is None:
            if on_unit is not None:
                on_unit(unit, pa.concat_tables(rows) if rows else pa.table({}))
            rows = []
        else:
            rows.append(_seen(table))
        yield unit, table


def run_table_stage(
    output: str,
    *,
    kind: str,
    config: Any,
    upstream: Sequence[str],
    table: Callable[[], pa.Table],
    extra_metadata: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    shard: Shard | None = None,
    force: bool = False,
) -> RunSummary:
    """`run_stage` for a stage that computes all its videos at once and cheaply (localize,
    anomaly scoring): `table()` is called only when there is work (not when the output is up
    to date), and its rows, grouped by video in order, become the per-video units."""
    computed: list[pa.Table] = []

    def result() -> pa.Table:
        if not computed:
            computed.append(table())
        return computed[0]

    def units() -> Iterator[Unit]:
        for position, rows in enumerate(iter_video_groups(result().to_batches())):
            yield Unit(position, rows.column("video_id")[0].as_py(), rows)

    return run_stage(
        output,
        kind=kind,
        config=config,
        upstream=upstream,
        units=units(),
        work=lambda unit: unit.data,
        extra_metadata=extra_metadata,
        shard=shard,
        force=force,
    )


def input_key(source: str) -> str:
    """The cache key an input stands for (a folder of parts: all its parts' keys combined)."""
    from zsar_cli.artifacts import read_meta

    return _folder_key(source, read_meta(source))


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
    """`run_stage` for a stage that is a pure `transform(table) -> table` over an input
    artifact's batches (or whole videos). `extra_metadata` may be a function of the input's
    metadata; `upstream_extra` adds cache keys of side inputs (text embeddings, descriptions)."""
    meta, key, units = artifact_units(source, in_kind, shard, per_video, batch_size)
    summary = run_stage(
        output,
        kind=out_kind,
        config=config,
        upstream=[key, *upstream_extra],
        units=units,
        work=lambda unit: transform(unit.data),
        extra_metadata=(lambda: extra_metadata(meta))
        if callable(extra_metadata)
        else extra_metadata,
        shard=shard,
        force=force,
    )
    rows = -1 if summary.skipped else summary.rows
    return MapResult(summary.output, summary.cache_key, summary.skipped, meta, rows)


def artifact_units(
    source: str,
    kind: str | tuple[str, ...],
    shard: Shard | None,
    per_video: bool = True,
    batch_size: int = 256,
) -> tuple[ArtifactMeta, str, Iterator[Unit]]:
    """(meta, upstream key, units) of an input artifact: one unit per video (or per batch),
    restricted to a shard's videos."""
    meta, key, batches = shard_batches(source, kind, shard, batch_size)
    tables: Iterator[pa.Table] = (
        iter_video_groups(batches) if per_video else (pa.Table.from_batches([b]) for b in batches)
    )

    def units() -> Iterator[Unit]:
        for position, table in enumerate(tables):
            vid = table.column("video_id")[0].as_py() if table.num_rows else None
            yield Unit(position, vid, table)

    return meta, key, units()


def finished_counts(output: str, kind: str) -> tuple[int, int, int]:
    """(videos, videos with an error row, rows) of a finished per-video artifact: the summary a
    stage reports when it skips an output that is already up to date."""
    done = read_artifact(output, kind, columns=["video_id", "error"], note=False).table
    ids = done.column("video_id").to_pylist()
    errs = done.column("error").to_pylist()
    bad = {v for v, e in zip(ids, errs, strict=True) if e is not None}
    return len(set(ids)), len(bad), done.num_rows
