"""Artifact layer: one spec per artifact kind, provenance metadata, atomic writes, validated reads.

Input: Parquet files, folders of part files, or `-` (an Arrow IPC stream on stdin).
Output: Parquet files written through a temp file + rename, or `-` (an Arrow IPC stream on stdout).

Nobody else calls `pq.write_table`: every artifact carries in its schema metadata
`zsar.kind`, `zsar.schema_version`, `zsar.version`, the stage config (`zsar.config`), the upstream
artifacts' cache keys (`zsar.upstream`) and `zsar.cache_key`, a hash of all of that, so a cached
output is never silently reused with other settings.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from zsar_cli.artifact_specs import FRAME_KEYS as FRAME_KEYS
from zsar_cli.artifact_specs import SPECS as SPECS
from zsar_cli.artifact_specs import ArtifactSpec as ArtifactSpec
from zsar_cli.artifact_specs import get_spec as get_spec
from zsar_cli.artifact_writer import ROW_GROUP_BYTES as ROW_GROUP_BYTES
from zsar_cli.artifact_writer import STDIO as STDIO
from zsar_cli.artifact_writer import ArtifactWriter as ArtifactWriter
from zsar_cli.artifact_writer import clean_stale_temps as clean_stale_temps
from zsar_cli.artifact_writer import write_artifact as write_artifact
from zsar_cli.errors import ArtifactError, InputError, ZsarError
from zsar_cli.outputs import (
    note_input,
)
from zsar_cli.provenance import META_PREFIX as META_PREFIX
from zsar_cli.provenance import ArtifactMeta as ArtifactMeta
from zsar_cli.provenance import build_table as build_table
from zsar_cli.provenance import compute_cache_key as compute_cache_key
from zsar_cli.provenance import config_json as config_json
from zsar_cli.provenance import empty_table as empty_table
from zsar_cli.provenance import iter_video_groups as iter_video_groups
from zsar_cli.provenance import provenance_metadata as provenance_metadata

# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class Artifact:
    """A validated artifact: its table and provenance."""

    table: pa.Table
    meta: ArtifactMeta
    source: str

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def cache_key(self) -> str:
        return self.meta.cache_key


PART_RE = re.compile(r"^part-(\d{5})-of-(\d{5})\.parquet$")


def _part_files(folder: Path) -> list[Path]:
    """A folder's .parquet files in name order; shard parts (part-I-of-N) must all be there, so
    a dataset read while a job array is unfinished fails instead of silently missing videos."""
    parts = sorted(
        p for p in folder.iterdir() if p.suffix == ".parquet" and not p.name.startswith(".")
    )
    if not parts:
        raise InputError(f"{folder}: folder holds no .parquet part files")
    matches = [PART_RE.match(p.name) for p in parts]
    if all(matches):
        counts = {int(m.group(2)) for m in matches if m}
        have = {int(m.group(1)) for m in matches if m}
        if len(counts) > 1:
            raise InputError(f"{folder}: parts of different shard counts {sorted(counts)}")
        count = counts.pop()
        missing = [i for i in range(count) if i not in have]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise InputError(f"{folder}: {len(missing)} of {count} parts missing (shards {shown})")
    return parts


def _check_rows(
    source: str | os.PathLike[str], rows: int, pf: pq.ParquetFile, columns: list[str] | None
) -> None:
    """As many rows read as the footer says: a damaged page header (which page checksums do
    not cover) made pyarrow read a column as empty, without an error (tests/test_fuzz.py)."""
    if columns != [] and rows != pf.metadata.num_rows:
        raise ArtifactError(
            f"{source}: corrupt Parquet data (read {rows} of {pf.metadata.num_rows} rows)"
        )


def _unreadable(source: str | os.PathLike[str], exc: BaseException) -> ZsarError:
    """The error for a Parquet file that would not open: refused access is not corruption."""
    if isinstance(exc, PermissionError):
        return InputError(f"{source}: cannot read it: permission denied")
    return ArtifactError(f"{source}: not a readable Parquet artifact ({exc})")


def _validate(schema: pa.Schema, source: str, kinds: Sequence[str]) -> ArtifactMeta:
    meta = ArtifactMeta.from_schema(schema, source)
    if kinds and meta.kind not in kinds:
        wanted = " or ".join(repr(k) for k in kinds)
        raise ArtifactError(f"{source}: expected a {wanted} artifact, found {meta.kind!r}")
    spec = SPECS.get(meta.kind)
    if spec is None:
        raise ArtifactError(f"{source}: unknown artifact kind {meta.kind!r}")
    if meta.schema_version > spec.schema_version:
        raise ArtifactError(
            f"{source}: {meta.kind} schema version {meta.schema_version} is newer than this zsar "
            f"understands ({spec.schema_version}); upgrade zsar"
        )
    missing = [c for c in spec.required if c not in schema.names]
    if missing:
        raise ArtifactError(f"{source}: {meta.kind} artifact lacks column(s) {', '.join(missing)}")
    return meta


def _kinds(kind: str | Sequence[str] | None) -> tuple[str, ...]:
    if kind is None:
        return ()
    return (kind,) if isinstance(kind, str) else tuple(kind)


def read_meta(
    path: str | os.PathLike[str], kind: str | Sequence[str] | None = None, note: bool = True
) -> ArtifactMeta:
    """Read and validate only the provenance of a Parquet artifact (or a folder of parts).

    `note=False` when reading an output's own provenance (is it up to date?), not an input."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if note:
        note_input(p, parts=p.is_dir())
    if p.is_dir():
        p = _part_files(p)[0]
    try:
        schema = pq.read_schema(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable(path, exc) from None
    return _validate(schema, str(path), _kinds(kind))


def read_artifact(
    path: str | os.PathLike[str],
    kind: str | Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    note: bool = True,
) -> Artifact:
    """Read and validate an artifact: a Parquet file, a folder of part files, or `-` (stdin).

    `note=False` when the file read is the run's own output (a summary of a finished one)."""
    kinds = _kinds(kind)
    source = str(path)
    if source == STDIO:
        try:
            reader = ipc.open_stream(sys.stdin.buffer)
            table = reader.read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise ArtifactError(
                f"stdin: not an Arrow IPC stream of a zsar artifact ({exc})"
            ) from None
        stdin_meta = _validate(table.schema, "stdin", kinds)
        if columns is not None:
            table = table.select([c for c in columns if c in table.schema.names])
        return Artifact(table, stdin_meta, "stdin")
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if note:
        note_input(p, parts=p.is_dir())
    files = _part_files(p) if p.is_dir() else [p]
    tables: list[pa.Table] = []
    meta: ArtifactMeta | None = None
    for f in files:
        try:
            pf = pq.ParquetFile(f, page_checksum_verification=True)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(f, exc) from None
        m = _validate(pf.schema_arrow, str(f), kinds)
        if meta is not None and (m.kind, m.config) != (meta.kind, meta.config):
            raise ArtifactError(f"{f}: part made with other settings than {files[0].name}")
        meta = meta or m
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        try:
            tables.append(pf.read(columns=cols))
        except (pa.ArrowException, OSError) as exc:  # a corrupt data page (e.g. ZSTD) or column
            raise ArtifactError(f"{f}: corrupt Parquet data ({exc})") from None
        _check_rows(f, tables[-1].num_rows, pf, cols)
    assert meta is not None
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    return Artifact(table, meta, source)


def iter_batches(
    path: str | os.PathLike[str],
    kind: str | Sequence[str] | None = None,
    batch_size: int = 1024,
    columns: Sequence[str] | None = None,
    note: bool = True,
) -> tuple[ArtifactMeta, Iterator[pa.RecordBatch]]:
    """Stream an artifact batch by batch (bounded memory for long inputs)."""
    kinds = _kinds(kind)
    source = str(path)
    if source == STDIO:
        try:
            reader = ipc.open_stream(sys.stdin.buffer)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ArtifactError(
                f"stdin: not an Arrow IPC stream of a zsar artifact ({exc})"
            ) from None
        meta = _validate(reader.schema, "stdin", kinds)

        def gen_stream() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                yield (
                    batch
                    if columns is None
                    else batch.select([c for c in columns if c in batch.schema.names])
                )

        return meta, gen_stream()
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if note:
        note_input(p, parts=p.is_dir())
    files = _part_files(p) if p.is_dir() else [p]
    metas = []
    handles = []
    for f in files:
        try:
            pf = pq.ParquetFile(f, page_checksum_verification=True)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(f, exc) from None
        metas.append(_validate(pf.schema_arrow, str(f), kinds))
        handles.append(pf)

    def gen_files() -> Iterator[pa.RecordBatch]:
        for f, pf in zip(files, handles, strict=True):
            cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
            rows = 0
            try:
                for batch in pf.iter_batches(batch_size=batch_size, columns=cols):
                    rows += batch.num_rows
                    yield batch
            except (pa.ArrowException, OSError) as exc:  # a corrupt data page, found late
                raise ArtifactError(f"{f}: corrupt Parquet data ({exc})") from None
            _check_rows(f, rows, pf, cols)

    return metas[0], gen_files()


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summary of an artifact for `zsar info`: kind, rows, provenance."""
    art = read_artifact(path)
    return {
        "source": art.source,
        "kind": art.kind,
        "rows": art.table.num_rows,
        "columns": art.table.schema.names,
        "schema_version": art.meta.schema_version,
        "version": art.meta.version,
        "cache_key": art.meta.cache_key,
        "upstream": art.meta.upstream,
        "config": art.meta.config,
        "extra": art.meta.extra,
    }
