"""Datasets at scale: shards for job arrays, cache-aware outputs, per-video checkpoints, merging.

- `--shard I/N` (or `auto`, from SLURM_ARRAY_TASK_ID/COUNT or ZSAR_SHARDS) gives a stage a
  deterministic, contiguous 1/N of its videos and a part file `OUT/part-0000I-of-0000N.parquet`;
  concatenating the parts in order gives exactly the unsharded run's rows.
- An output that already exists with the cache key this run would write is complete: it is
  skipped. One made with other settings is refused unless `--force`.
- Within a run, finished videos are checkpointed (small artifacts in a hidden folder beside the
  output: one per video, or one per few seconds of videos, `CheckpointBatch`), so a killed long
  run resumes instead of restarting; the final artifact is assembled from the checkpoints with
  an atomic rename and the checkpoints are then removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from zsar_cli.artifacts import (
    PART_RE,
    STDIO,
    ArtifactWriter,
    _part_files,
    clean_stale_temps,
    compute_cache_key,
    iter_batches,
    read_artifact,
    read_meta,
)
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.outputs import OutputPlan, make_folder, note_input, plan_output, scoped

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index}/{self.count}: need 0 <= I < N")

    def select(self, items: Sequence[T]) -> list[T]:
        """A contiguous block, so parts concatenate back into the input order."""
        n = len(items)
        return list(items[self.index * n // self.count : (self.index + 1) * n // self.count])

    def part_name(self) -> str:
        return f"part-{self.index:05d}-of-{self.count:05d}.parquet"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(value: str | None, env: dict[str, str] | None = None) -> Shard | None:
    """`I/N` (0-based) or `auto` (Slurm array variables).

    `auto` is shard SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT, unless
    ZSAR_SHARDS=N is set: then it is shard SLURM_ARRAY_TASK_ID of N. That is what resubmitting
    some tasks of an array needs (`sbatch --array=1,5` alone has a task count of 2), so
    examples/slurm/submit.sh always sets it."""
    if value is None:
        return None
    env = dict(os.environ) if env is None else env
    if value == "auto":
        try:
            task = int(env["SLURM_ARRAY_TASK_ID"])
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        except (KeyError, ValueError):
            raise ConfigError(
                "--shard auto needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT "
                "(run inside an sbatch --array job, or pass --shard I/N)"
            ) from None
        total = env.get("ZSAR_SHARDS", "").strip()
        if not total:
            return Shard(task - first, count)
        if not total.isdigit():
            raise ConfigError(f"ZSAR_SHARDS={total!r}: expected the number of shards N")
        if task >= int(total):
            raise ConfigError(
                f"--shard auto: array task {task} is not a shard of ZSAR_SHARDS={total} "
                f"(tasks 0-{int(total) - 1})"
            )
        return Shard(task, int(total))
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not m:
        raise ConfigError(f"--shard {value!r}: expected I/N (e.g. 3/64) or auto")
    return Shard(int(m.group(1)), int(m.group(2)))


def shard_output(output: str, shard: Shard | None) -> str:
    """With a shard, OUTPUT is a folder and the part file goes inside it."""
    if shard is None or output == STDIO:
        if shard is not None:
            raise ConfigError("--shard writes part files into a folder; -o - cannot be sharded")
        return output
    folder = Path(output)
    if folder.suffix == ".parquet":
        raise ConfigError(f"--shard: -o {output} must be a folder for the part files")
    make_folder(folder, folder)
    return str(folder / shard.part_name())


def shard_video_ids(ids: Sequence[str], shard: Shard | None) -> set[str] | None:
    """The video ids (first-appearance order) a shard owns, or None for all."""
    if shard is None:
        return None
    unique = list(dict.fromkeys(ids))
    return set(shard.select(unique))


# ---------------------------------------------------------------------------------------------
# Cache-aware outputs


# The plan itself lives with the writer's policy (zsar_cli.outputs).


# ---------------------------------------------------------------------------------------------
# Per-video checkpoints


class Checkpoint:
    """Finished videos of one run, as small artifacts in a hidden folder beside the output.

    A file `POS.parquet` holds one unit's rows; `FIRST-LAST.parquet` those of the consecutive
    units FIRST..LAST (a batch written at once, `CheckpointBatch`). A file counts once it is
    renamed into place, so it marks exactly its units done. The folder name carries the run's
    cache key, so a checkpoint is only ever resumed by a run with identical settings and inputs.
    """

    def __init__(
        self,
        output: str,
        kind: str,
        config: Any,
        upstream: Sequence[str],
        extra_metadata: dict[str, Any] | None = None,
    ) -> None:
        target = Path(output)
        self.kind = kind
        self.config = config
        self.upstream = list(upstream)
        self.extra_metadata = extra_metadata
        key = compute_cache_key(kind, config, upstream)
        self.prefix = f".{target.name}.ckpt-"
        self.folder = target.parent / f"{self.prefix}{key[:16]}"
        self._files: dict[int, tuple[int, Path]] | None = None  # first → (last, file)
        self._covered: set[int] = set()

    def _file(self, position: int, last: int | None = None) -> Path:
        if last is None or last == position:
            return self.folder / f"{position:08d}.parquet"
        return self.folder / f"{position:08d}-{last:08d}.parquet"

    def _listing(self) -> dict[int, tuple[int, Path]]:
        """The finished files, read once (one listing instead of a stat per unit)."""
        if self._files is None:
            self._files = {}
            names = os.listdir(self.folder) if self.folder.is_dir() else []
            for name in names:
                m = _CKPT_RE.fullmatch(name)
                if m:
                    first = int(m.group(1))
                    last = int(m.group(2)) if m.group(2) else first
                    self._note(first, last, self.folder / name)
        return self._files

    def _note(self, first: int, last: int, path: Path) -> None:
        assert self._files is not None
        self._files[first] = (last, path)
        self._covered.update(range(first, last + 1))

    def done(self, position: int) -> bool:
        self._listing()
        return position in self._covered

    def writer(self, position: int, last: int | None = None) -> ArtifactWriter:
        """A streaming writer for one unit's rows (or units position..last); the file counts as
        done once it is closed."""
        self._listing()
        path = self._file(position, last)
        make_folder(self.folder, path)
        checkpoint = self

        class _Writer(ArtifactWriter):
            def close(self) -> None:
                super().close()
                checkpoint._note(position, position if last is None else last, path)

        return _Writer(
            path, self.kind, self.config, self.upstream, self.extra_metadata, internal=True
        )

    def tables(self, positions: Sequence[int]) -> Iterator[pa.Table]:
        """The finished rows in position order, streamed batch by batch (flat memory however
        long a single video is)."""
        files = self._listing()
        for position in positions:
            if position not in files:
                continue  # inside a batch file already read (or never checkpointed)
            _, batches = iter_batches(files[position][1], self.kind, batch_size=256)
            for batch in batches:
                yield pa.Table.from_batches([batch])

    def discard_if_empty(self) -> None:
        """After a failed run: a checkpoint folder with no finished unit has nothing to resume,
        and is not left behind (rmdir refuses a folder that holds one)."""
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def remove(self) -> None:
        """Called once the output is final: its checkpoints, of any settings, are obsolete."""
        if not self.folder.parent.is_dir():
            return
        for entry in self.folder.parent.iterdir():
            if entry.name.startswith(self.prefix) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


_CKPT_RE = re.compile(r"(\d{8})(?:-(\d{8}))?\.parquet")

# A unit whose rows pass this many bytes streams into its own checkpoint file instead of being
# held in memory for a batch (a long video sampled at a rate: flat memory). One Parquet row group
# (artifact_writer.ROW_GROUP_BYTES): what a writer holds anyway. At 32 MiB, 20 short clips at
# `--image-format raw` (37 MB) went through a checkpoint file and back before the output.
BATCH_MAX_BYTES = 64 * 1024 * 1024


class CheckpointBatch:
    """Finished units' rows held in memory and written as one checkpoint file once `every_s`
    seconds have passed since the last file (0: a file per unit, as every stage but
    extract-frames does).

    Why (issue #17): a file per video costs a Parquet writer, its footer, a rename and a read
    back, ~5 ms a video, a fifth of decoding a 7-s 320x240 clip; 3,783 UCF101 clips made 3,783
    files. A kill loses at most the last `every_s` seconds of finished units (they are
    redone); an exception (Ctrl-C, an error) writes them first (`stop`). Units held together
    are consecutive in position, so a batch file names its range.
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        every_s: float = 0.0,
        max_bytes: int = BATCH_MAX_BYTES,
        clock: Any = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.every_s = every_s
        self.max_bytes = max_bytes
        self._clock = clock or time.monotonic
        self._since = self._clock()
        self._held: list[tuple[int, list[pa.Table]]] = []  # finished, not yet written
        self._held_bytes = 0
        self._position: int | None = None  # the unit now producing rows
        self._rows: list[pa.Table] = []
        self._bytes = 0
        self._stream: ArtifactWriter | None = None  # the current unit's own file, once large
        self._wrote = False  # a file has been written (or is being streamed)

    def write(self, position: int, table: pa.Table) -> None:
        """A table of the unit at `position` (one unit at a time, in order)."""
        if self._position != position:
            self._position, self._rows, self._bytes = position, [], 0
        if self._stream is not None:
            self._stream.write(table)
            return
        self._rows.append(table)
        self._bytes += table.nbytes
        if self.every_s > 0 and self._bytes + self._held_bytes <= self.max_bytes:
            return
        # Too large to hold (or no batching): the unit streams into its own file.
        self.flush()
        self._wrote = True
        self._stream = self.checkpoint.writer(position)
        for held in self._rows:
            self._stream.write(held)
        self._rows = []

    def finish(self, position: int) -> None:
        """The unit at `position` is complete (with or without rows)."""
        if self._position != position:
            self._position, self._rows, self._bytes = position, [], 0
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        else:
            if self._held and self._held[-1][0] != position - 1:
                self.flush()  # a batch file covers consecutive positions only
            self._held.append((position, self._rows))
            self._held_bytes += self._bytes
        self._position, self._rows, self._bytes = None, [], 0
        if (
            self.every_s <= 0
            or self._clock() - self._since >= self.every_s
            or self._held_bytes > self.max_bytes
        ):
            self.flush()

    def flush(self) -> None:
        """Write the finished units held, as one file."""
        if self._held:
            first, last = self._held[0][0], self._held[-1][0]
            self._wrote = True
            with self.checkpoint.writer(first, last) as writer:
                for _, rows in self._held:
                    for table in rows:
                        writer.write(table)
            self._held, self._held_bytes = [], 0
        self._since = self._clock()

    def take(self) -> list[pa.Table] | None:
        """The rows of every unit, in order, when none has been written to a file yet (and
        then none will be); else None."""
        if self._wrote or self._stream is not None:
            return None
        tables = [table for _, rows in self._held for table in rows]
        self._held, self._held_bytes = [], 0
        return tables

    def stop(self) -> None:
        """After an exception: keep the finished units (written as a batch), drop the
        unfinished one's rows."""
        if self._stream is not None:
            self._stream.abort()
            self._stream = None
        self._position, self._rows = None, []
        # Best effort (a full disk): the exception being handled is the one to show.
        with contextlib.suppress(Exception):
            self.flush()


# ---------------------------------------------------------------------------------------------
# Merging parts


def part_files(folder: Path) -> list[Path]:
    """The part files of a sharded output, checked complete (every I of N present)."""
    parts = _part_files(folder)
    if not all(PART_RE.match(p.name) for p in parts):
        raise InputError(f"{folder}: not a sharded output (files other than part-I-of-N)")
    return parts


@scoped
def merge_parts(
    folder: str | os.PathLike[str], output: str, force: bool = False
) -> tuple[int, int]:
    """Concatenate a sharded output's parts, in shard order, into one artifact."""
    note_input(folder, parts=True)
    parts = part_files(Path(folder))
    first = read_meta(parts[0])
    upstream = []
    rows = 0
    writer = ArtifactWriter(
        output, first.kind, first.config, [], {k: v for k, v in first.extra.items()}, force=force
    )
    with writer:
        for part in parts:
            art = read_artifact(part, first.kind)
            if art.meta.config != first.config:
                raise InputError(f"{part}: made with other settings than {parts[0].name}")
            upstream.append(art.cache_key)
            # A part with no rows may lack the optional columns of the others (an intervals
            # part of videos without proposals has no frame_start): it adds nothing anyway.
            if art.table.num_rows:
                writer.write(art.table)
            rows += art.table.num_rows
    return len(parts), rows


def response_cache(
    output: str, shard: Shard | None, kind: str, config: Any, upstream: Sequence[str]
) -> str | None:
    """Where a served model keeps the responses of this run: inside the run's checkpoint
    folder, whose name carries the artifact's cache key (other settings, other folder), so a
    rerun after a crash resends nothing, and the responses go when the output is complete."""
    if output == "-":
        return None
    target = shard_output(output, shard)
    return str(Checkpoint(target, kind, config, upstream).folder / "responses")


__all__ = [
    "Checkpoint",
    "CheckpointBatch",
    "OutputPlan",
    "Shard",
    "clean_stale_temps",
    "merge_parts",
    "parse_shard",
    "part_files",
    "plan_output",
    "response_cache",
    "shard_output",
    "shard_video_ids",
]
