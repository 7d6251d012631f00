"""Ray for the per-video model stages (`query-lvlm`, `select-tokens`) and for `localize`.

Input: a `frames` or `embeddings` artifact (files readable from every node); output: the
stage's own artifact, written by the stage's runner on the driver. Each actor loads the model
once (`VideoActor`) and is handed whole videos as row ranges of the input files; the rows a
video produces come back to the runner in input order, so part names, the output lock, the
up-to-date check and the per-video checkpoints are the local engine's (either engine resumes
the other). `localize` runs its methods in Ray tasks over contiguous blocks of sorted videos.
Split from `ray_engine` (the Ray session, error unwrapping, encode and extract-frames).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from zsar_cli.engines.ray_engine import (
    _default_actors,
    _gpus_per_actor,
    _input_files,
    _ray_run,
    ray_session,
    require_ray,
)
from zsar_cli.errors import ConfigError, ZsarError

# ---------------------------------------------------------------------------------------------
# Per-video model stages (query-lvlm, select-tokens): the runner on the driver, actors for the
# work. The driver reads only the input's video_id column to list the videos; each actor reads
# its video's rows from the files itself (shared paths), so frames never pass through the
# driver; the rows each video produces come back in input order and are checkpointed per video
# by the runner, exactly as with the local engine.

POSITION = "_zsar_position"  # which unit an output row belongs to (dropped on the driver)
FACTS = "_zsar_facts"  # task.facts of the actor's model, as JSON on a table's first row


@dataclass(frozen=True)
class RowRange:
    """Rows [start, stop) of one Parquet file."""

    file: str
    start: int
    stop: int


def video_refs(
    source: str, kind: str | tuple[str, ...]
) -> tuple[Any, str, list[tuple[str | None, list[RowRange]]]]:
    """(meta, upstream key, per video in input order: its id and row ranges) of an input; the
    videos are those (and in the order) `runner.artifact_units` makes units of."""
    import pyarrow.parquet as pq

    from zsar_cli.runner import shard_batches

    files = _input_files(source)
    # Validates every file's kind and gives the local engine's upstream key.
    meta, key, _ = shard_batches(source, kind, None)
    videos: list[tuple[str | None, list[RowRange]]] = []
    for path in files:
        ids = pq.read_table(path, columns=["video_id"]).column("video_id").to_pylist()
        start = 0
        for i in range(1, len(ids) + 1):
            if i < len(ids) and ids[i] == ids[start]:
                continue
            rows = RowRange(path, start, i)
            if videos and videos[-1][0] == ids[start] and start == 0:
                videos[-1][1].append(rows)  # a video continued across a file boundary
            else:
                videos.append((ids[start], [rows]))
            start = i
    return meta, key, videos


def read_rows(ranges: Sequence[RowRange], kind: str | tuple[str, ...]) -> pa.Table:
    """One video's rows, reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    from zsar_cli.artifacts import read_meta

    tables = []
    for rows in ranges:
        read_meta(rows.file, kind, note=False)
        pf = pq.ParquetFile(rows.file)
        first, offset, groups = None, 0, []
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if offset + n > rows.start and offset < rows.stop:
                groups.append(g)
                first = offset if first is None else first
            offset += n
        table = pf.read_row_groups(groups)
        assert first is not None
        tables.append(table.slice(rows.start - first, rows.stop - rows.start))
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


class VideoActor:
    """One Ray actor: loads the task's model once, then does the task on each video it gets."""

    def __init__(self, task: Any, kind: str | tuple[str, ...]) -> None:
        self.task = task
        self.kind = kind
        self.failure: ZsarError | None = None
        self.facts: str | None = None
        try:
            self.model = task.load()
            self.facts = json.dumps(task.facts(self.model))
        except ZsarError as exc:
            # Raised from __init__ it would reach the driver as "actor died" with a traceback
            # for text; raised from the first call it is a task error _ray_run unwraps.
            self.failure = exc

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        if self.failure is not None:
            raise self.failure
        for item in batch.to_pylist():
            ranges = [RowRange(**r) for r in json.loads(item["rows"])]
            out = self.task(self.model, read_rows(ranges, self.kind))
            out = out.append_column(
                POSITION, pa.array([item["position"]] * out.num_rows, pa.int64())
            )
            facts: list[str | None] = [None] * out.num_rows
            if facts and self.facts is not None:
                facts[0], self.facts = self.facts, None
            yield out.append_column(FACTS, pa.array(facts, pa.string()))


def _task_facts(task: Any) -> dict[str, Any]:
    """Runs as one Ray task where no actor ran (every video resumed): the model's facts."""
    return dict(task.facts(task.load()))


class RayExecutor:
    """`zsar_cli.engines.Executor` on Ray: units from `video_refs`, work on `VideoActor`s."""

    def __init__(self, engine: Any, quiet_workers: bool = False) -> None:
        self.engine = engine
        self.quiet_workers = quiet_workers
        self._session: contextlib.ExitStack | None = None
        self._ray: Any = None
        self.kind: str | tuple[str, ...] = ()
        self._facts: dict[str, Any] | None = None

    def __enter__(self) -> RayExecutor:
        require_ray()
        self._session = contextlib.ExitStack()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._session is not None
        self._session.close()

    def ray(self) -> Any:
        """Ray, started (or connected to) on first use: not at all when nothing is to be done."""
        if self._ray is None:
            assert self._session is not None
            session = ray_session(self.engine.address, quiet_workers=self.quiet_workers)
            self._ray = self._session.enter_context(session)
        return self._ray

    def units(self, source: str, kind: str | tuple[str, ...], shard: Any) -> tuple[Any, str, Any]:
        from zsar_cli.runner import Unit

        if shard is not None:
            raise ConfigError("--engine ray parallelises across the cluster itself; drop --shard")
        self.kind = kind
        meta, key, videos = video_refs(source, kind)
        units = (Unit(i, vid, ranges) for i, (vid, ranges) in enumerate(videos))
        return meta, key, units

    def _placed(self, task: Any) -> tuple[Any, dict[str, Any]]:
        """The task on the actors' device, and the resources each actor asks for."""
        ray = self.ray()
        device = getattr(getattr(task, "config", None), "device", "cpu")
        gpus = _gpus_per_actor(ray, device, self.engine.gpus_per_actor) if task.uses_gpu else 0.0
        # Inside an actor Ray exposes only its own GPU(s), so the device is plain "cuda".
        placed = task.on_device("cuda" if gpus else "cpu")
        return placed, {"num_cpus": self.engine.cpus_per_actor, "num_gpus": gpus or None}

    def runner_args(self, task: Any) -> dict[str, Any]:
        def stream(todo: list[Any]) -> Iterator[tuple[Any, pa.Table | None]]:
            if not todo:
                return
            ray = self.ray()
            placed, resources = self._placed(task)
            actors = self.engine.actors or _default_actors(
                ray, resources["num_gpus"] or 0.0, self.engine.cpus_per_actor
            )
            items = [
                {"position": u.position, "rows": json.dumps([r.__dict__ for r in u.data])}
                for u in todo
            ]
            with _ray_run(ray, progress=False):
                dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                    VideoActor,
                    fn_constructor_kwargs={"task": placed, "kind": self.kind},
                    batch_size=1,
                    batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=min(actors, len(items))),
                    **resources,
                )
                yield from self._ordered(
                    todo, dataset.iter_batches(batch_format="pyarrow", batch_size=None)
                )

        return {"stream": stream}

    def _ordered(
        self, todo: list[Any], tables: Iterator[pa.Table]
    ) -> Iterator[tuple[Any, pa.Table | None]]:
        """(unit, rows) in the runner's protocol: each unit's tables, then (unit, None)."""
        pending = iter(todo)
        current = next(pending)
        for table in tables:
            facts = [f for f in table.column(FACTS).to_pylist() if f is not None]
            if facts and self._facts is None:
                self._facts = json.loads(facts[0])
            positions = table.column(POSITION).to_pylist()
            table = table.drop_columns([FACTS, POSITION])
            start = 0
            for end in range(1, len(positions) + 1):
                if end < len(positions) and positions[end] == positions[start]:
                    continue
                while current.position != positions[start]:
                    yield current, None  # done (rows of later units have arrived)
                    current = next(pending, None)
                    if current is None:
                        raise RuntimeError(f"Ray returned rows of unit {positions[start]} late")
                yield current, table.slice(start, end - start)
                start = end
        yield current, None
        for unit in pending:
            yield unit, None

    def facts(self, task: Any) -> dict[str, Any]:
        if self._facts is None:
            ray = self.ray()
            placed, resources = self._placed(task)
            with _ray_run(ray, progress=False):
                remote = ray.remote(_task_facts).options(**resources)
                self._facts = ray.get(remote.remote(placed))
        return dict(self._facts)


# ---------------------------------------------------------------------------------------------
# localize: the videos in Ray tasks, in contiguous blocks of the sorted video ids (ZEAL and the
# CLIP baseline visit videos in sorted order, each on its own, so the blocks' results
# concatenate into the local engine's result).


def _localize_block(method: Any, frames: dict[str, Any], args: tuple[Any, ...]) -> Any:
    return method(frames, *args)


def localize_in_blocks(
    engine: Any, method: Any, frames: Any, args: tuple[Any, ...], blocks: int | None = None
) -> Any:
    """`method(frames, *args)` as Ray tasks over blocks of videos, combined in order."""
    from zsar_cli.stages.localize_output import LocalizeResult, intervals_table, new_interval_rows

    ids = sorted(frames)
    # Quiet workers: localize may write its artifact to stdout.
    with ray_session(engine.address, quiet_workers=True) as ray, _ray_run(ray, progress=False):
        count = blocks or max(1, int(ray.cluster_resources().get("CPU", 1.0)) * 2)
        count = max(1, min(count, len(ids)))
        shared = ray.put(args)  # labels, text embeddings, answers: once into the object store
        task = ray.remote(_localize_block).options(num_cpus=1)
        pending = [
            task.remote(
                method,
                {v: frames[v] for v in ids[i * len(ids) // count : (i + 1) * len(ids) // count]},
                shared,
            )
            for i in range(count)
        ]
        parts = ray.get(pending)
    result = LocalizeResult()
    tables = []
    for part in parts:
        result.videos += part.videos
        result.failed += part.failed
        result.notes.extend(part.notes)
        result.labels_used.update(part.labels_used)
        if part.intervals is not None:
            tables.append(part.intervals)
    nonempty = [t for t in tables if t.num_rows]
    if nonempty:
        result.intervals = pa.concat_tables(nonempty)
    else:
        result.intervals = tables[0] if tables else intervals_table(new_interval_rows())
    return result
