"""Datasets at scale: shards for job arrays, cache-aware outputs, per-video checkpoints, merging.

- `--shard I/N` (or `auto`, from SLURM_ARRAY_TASK_ID/COUNT or ZSAR_SHARDS) gives a stage a
  deterministic, contiguous 1/N of its videos and a part file `OUT/part-0000I-of-0000N.parquet`;
  concatenating the parts in order gives exactly the unsharded run's rows.
- An output that already exists with the cache key this run would write is complete: it is
  skipped. One made with other settings is refused unless `--force`.
- Within a run, finished videos are checkpointed (one small artifact per video in a hidden folder
  beside the output), so a killed long run resumes instead of restarting; the final artifact is
  assembled from the checkpoints with an atomic rename and the checkpoints are then removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
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
    """Finished videos of one run, one small artifact per video, beside the output.

    The folder name carries the run's cache key, so a checkpoint is only ever resumed by a run
    with identical settings and inputs.
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

    def _file(self, position: int) -> Path:
        return self.folder / f"{position:08d}.parquet"

    def done(self, position: int) -> bool:
        return self._file(position).exists()

    def writer(self, position: int) -> ArtifactWriter:
        """A streaming writer for one video's rows; the file counts as done once it is closed."""
        make_folder(self.folder, self._file(position))
        return ArtifactWriter(
            self._file(position),
            self.kind,
            self.config,
            self.upstream,
            self.extra_metadata,
            internal=True,
        )

    def load(self, position: int) -> pa.Table:
        return read_artifact(self._file(position), self.kind).table

    def tables(self, positions: Sequence[int]) -> Iterator[pa.Table]:
        """The finished rows in position order, streamed batch by batch (flat memory however
        long a single video is)."""
        for position in positions:
            _, batches = iter_batches(self._file(position), self.kind, batch_size=256)
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
