"""Artifact layer: one spec per artifact kind, provenance metadata, atomic writes, validated reads.

Input: Parquet files, folders of part files, or `-` (an Arrow IPC stream on stdin).
Output: Parquet files written through a temp file + rename, or `-` (an Arrow IPC stream on stdout).

Nobody else calls `pq.write_table`: every artifact carries in its schema metadata
`zsar.kind`, `zsar.schema_version`, `zsar.version`, the stage config (`zsar.config`), the upstream
artifacts' cache keys (`zsar.upstream`) and `zsar.cache_key`, a hash of all of that, so a cached
output is never silently reused with other settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from zsar_cli import __version__
from zsar_cli.errors import ArtifactError, CacheMismatchError, InputError, ZsarError
from zsar_cli.outputs import check_output_path, note_input, output_lock, temp_path

STDIO = "-"
META_PREFIX = "zsar."
# Row groups are flushed once this many bytes are buffered (DESIGN §3: ~64-128 MiB), which also
# bounds the memory a writer holds however long the input is.
ROW_GROUP_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ArtifactSpec:
    """Contract of one artifact kind: its canonical columns and which of them must be present."""

    kind: str
    schema_version: int
    fields: tuple[pa.Field, ...]
    required: tuple[str, ...]
    description: str = ""

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.fields))

    def field(self, name: str) -> pa.Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


# Columns every per-frame artifact shares, so later stages can join on keys instead of row order.
FRAME_KEYS: tuple[pa.Field, ...] = (
    _f("video_id", pa.string(), False),
    _f("path", pa.string()),
    _f("label", pa.string()),
    _f("frame_index", pa.int64()),
    _f("timestamp", pa.float64()),
    _f("segment", pa.int32()),
)

SPECS: dict[str, ArtifactSpec] = {}


def _register(spec: ArtifactSpec) -> None:
    SPECS[spec.kind] = spec


_register(
    ArtifactSpec(
        "frames",
        1,
        (
            *FRAME_KEYS,
            _f("width", pa.int32()),
            _f("height", pa.int32()),
            _f("image", pa.binary()),
            _f("error", pa.string()),
        ),
        ("video_id", "path", "frame_index", "timestamp", "segment", "image", "error"),
        "one row per sampled frame (image bytes: see zsar.image_encoding)",
    )
)
_register(
    ArtifactSpec(
        "embeddings",
        1,
        (*FRAME_KEYS, _f("embedding", pa.list_(pa.float16())), _f("error", pa.string())),
        ("video_id", "frame_index", "timestamp", "embedding", "error"),
        "one L2-normalised image embedding per frame (optional patch_tokens)",
    )
)
_register(
    ArtifactSpec(
        "text_embeddings",
        1,
        (
            _f("label", pa.string(), False),
            _f("text", pa.string()),
            _f("kind", pa.string()),
            _f("embedding", pa.list_(pa.float32())),
        ),
        ("label", "text", "kind", "embedding"),
        "one embedding per prompt (name/template/descriptor/start/end/description)",
    )
)
_register(
    ArtifactSpec(
        "descriptions",
        1,
        (
            _f("label", pa.string(), False),
            _f("description", pa.string()),
            _f("descriptors", pa.list_(pa.string())),
            _f("start_question", pa.string()),
            _f("end_question", pa.string()),
        ),
        ("label", "description", "descriptors", "start_question", "end_question"),
        "one row per label: description, attribute keywords, start/end yes-no questions",
    )
)
_register(
    ArtifactSpec(
        "tokens",
        1,
        (
            _f("video_id", pa.string(), False),
            _f("segment", pa.int32()),
            _f("frame_index", pa.int64()),
            _f("token_index", pa.int32()),
            _f("score", pa.float32()),
            _f("embedding", pa.list_(pa.float16())),
            _f("error", pa.string()),
        ),
        ("video_id", "segment", "frame_index", "token_index", "score", "embedding"),
        "one row per kept visual token, with its LVLM-input embedding",
    )
)
_register(
    ArtifactSpec(
        "answers",
        1,
        (
            _f("video_id", pa.string(), False),
            _f("frame_index", pa.int64()),
            _f("timestamp", pa.float64()),
            _f("label", pa.string()),
            _f("query_kind", pa.string()),
            _f("question", pa.string()),
            _f("p_yes", pa.float64()),
            _f("yes_mass", pa.float64()),
            _f("no_mass", pa.float64()),
            _f("answer", pa.string()),
            _f("error", pa.string()),
        ),
        ("video_id", "frame_index", "label", "query_kind", "p_yes"),
        "one row per (video, frame or clip, query): p_yes read from next-token logits",
    )
)
_register(
    ArtifactSpec(
        "predictions",
        1,
        (
            _f("video_id", pa.string(), False),
            _f("label", pa.string()),
            _f("score", pa.float64()),
            _f("rank", pa.int32()),
            _f("true_label", pa.string()),
            _f("error", pa.string()),
        ),
        ("video_id", "label", "score", "rank"),
        "one row per (video, label): class score and rank (1 = best)",
    )
)
_register(
    ArtifactSpec(
        "intervals",
        1,
        (
            _f("video_id", pa.string(), False),
            _f("label", pa.string()),
            _f("t_start", pa.float64()),
            _f("t_end", pa.float64()),
            _f("score", pa.float64()),
        ),
        ("video_id", "label", "t_start", "t_end", "score"),
        "one row per temporal proposal (seconds)",
    )
)
_register(
    ArtifactSpec(
        "frame_scores",
        1,
        (
            _f("video_id", pa.string(), False),
            _f("frame_index", pa.int64()),
            _f("timestamp", pa.float64()),
            _f("label", pa.string()),
            _f("score", pa.float64()),
        ),
        ("video_id", "frame_index", "timestamp", "score"),
        "one row per (video, frame[, label]) score, e.g. anomaly",
    )
)
_register(
    ArtifactSpec(
        "metrics",
        1,
        (
            _f("task", pa.string(), False),
            _f("metric", pa.string(), False),
            _f("threshold", pa.float64()),
            _f("label", pa.string()),
            _f("value", pa.float64()),
        ),
        ("task", "metric", "value"),
        "one row per metric value",
    )
)


def get_spec(kind: str) -> ArtifactSpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise ArtifactError(f"unknown artifact kind {kind!r} (known: {', '.join(SPECS)})") from None


# ---------------------------------------------------------------------------------------------
# Provenance


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN is not valid JSON
        return None
    return value


def config_json(config: Any) -> str:
    """Canonical JSON of a stage config (dataclass or mapping), stable across runs."""
    return json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"), default=str)


def compute_cache_key(kind: str, config: Any, upstream: Sequence[str] = ()) -> str:
    """Hash of everything that determines an artifact's content except the input data itself.

    The upstream artifacts' own cache keys stand for the data (they are content-addressed by
    their settings all the way up to the source videos' paths), so a change anywhere upstream
    changes every downstream key.
    """
    spec = get_spec(kind)
    payload = json.dumps(
        {
            "kind": kind,
            "schema_version": spec.schema_version,
            "version": __version__,
            "config": json.loads(config_json(config)),
            "upstream": list(upstream),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def provenance_metadata(
    kind: str,
    config: Any,
    upstream: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[bytes, bytes]:
    spec = get_spec(kind)
    meta: dict[str, str] = {
        "zsar.kind": kind,
        "zsar.schema_version": str(spec.schema_version),
        "zsar.version": __version__,
        "zsar.config": config_json(config),
        "zsar.upstream": json.dumps(list(upstream)),
        "zsar.cache_key": compute_cache_key(kind, config, upstream),
    }
    for key, value in (extra or {}).items():
        name = key if key.startswith(META_PREFIX) else META_PREFIX + key
        meta[name] = value if isinstance(value, str) else json.dumps(_jsonable(value))
    return {k.encode(): v.encode() for k, v in meta.items()}


@dataclass
class ArtifactMeta:
    """Provenance read back from an artifact."""

    kind: str
    schema_version: int
    version: str
    config: dict[str, Any]
    upstream: list[str]
    cache_key: str
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_schema(cls, schema: pa.Schema, source: str) -> ArtifactMeta:
        raw = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
        if "zsar.kind" not in raw:
            raise ArtifactError(f"{source}: not a zsar artifact (no zsar.kind in its metadata)")
        known = {"zsar.kind", "zsar.schema_version", "zsar.version", "zsar.config"}
        known |= {"zsar.upstream", "zsar.cache_key"}
        try:
            return cls(
                kind=raw["zsar.kind"],
                schema_version=int(raw.get("zsar.schema_version", "1")),
                version=raw.get("zsar.version", "?"),
                config=json.loads(raw.get("zsar.config", "{}")),
                upstream=json.loads(raw.get("zsar.upstream", "[]")),
                cache_key=raw.get("zsar.cache_key", ""),
                extra={
                    k[len(META_PREFIX) :]: v
                    for k, v in raw.items()
                    if k.startswith(META_PREFIX) and k not in known
                },
            )
        except (ValueError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{source}: corrupt zsar metadata ({exc})") from None

    def extra_json(self, key: str, default: Any = None) -> Any:
        if key not in self.extra:
            return default
        try:
            return json.loads(self.extra[key])
        except json.JSONDecodeError:
            return self.extra[key]


# ---------------------------------------------------------------------------------------------
# Tables


def build_table(
    kind: str, columns: Mapping[str, Any], extra_fields: Sequence[pa.Field] = ()
) -> pa.Table:
    """Build a table of `kind` from column data, typed by the spec (unknown columns inferred)."""
    spec = get_spec(kind)
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    extra = {f.name: f for f in extra_fields}
    for name, data in columns.items():
        target = extra.get(name) or spec.field(name)
        if isinstance(data, (pa.Array, pa.ChunkedArray)):
            arr = (
                data.cast(target.type) if target is not None and data.type != target.type else data
            )
        else:
            arr = pa.array(data, type=target.type if target is not None else None)
        arrays.append(arr)
        fields.append(pa.field(name, arr.type, nullable=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def empty_table(kind: str) -> pa.Table:
    return get_spec(kind).schema.empty_table()


# ---------------------------------------------------------------------------------------------
# Writing


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]+$")


def clean_stale_temps(target: Path) -> int:
    """Remove temp files of `target` left by killed runs (their writer process is gone)."""
    removed = 0
    if not target.parent.is_dir():
        return 0
    for entry in target.parent.iterdir():
        m = _TMP_RE.match(entry.name)
        if m and m.group("name") == target.name and not _pid_alive(int(m.group("pid"))):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


class ArtifactWriter:
    """Streaming, atomic writer of one artifact.

    Batches are buffered up to ROW_GROUP_BYTES and flushed as row groups, so memory stays bounded
    however long the input is. The file appears under its final name only on `close()`; an
    exception (or a kill) leaves no partial file under that name. `-` writes an Arrow IPC stream
    to stdout instead (Parquet needs a seekable file: its footer is at the end).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        kind: str,
        config: Any,
        upstream: Sequence[str] = (),
        extra_metadata: Mapping[str, Any] | None = None,
        row_group_bytes: int = ROW_GROUP_BYTES,
        force: bool = False,
        internal: bool = False,
    ) -> None:
        self.path = str(path)
        # `internal`: a checkpoint file in the run's own hidden folder, already covered by the
        # lock and the policy of the output it belongs to.
        self.force = force
        self.internal = internal
        self._lock: contextlib.ExitStack | None = None
        self.kind = kind
        self.spec = get_spec(kind)
        self.metadata = provenance_metadata(kind, config, upstream, extra_metadata)
        self.cache_key = self.metadata[b"zsar.cache_key"].decode()
        self.row_group_bytes = row_group_bytes
        self.rows_written = 0
        self._schema: pa.Schema | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer: Any = None
        self._sink: Any = None
        self._tmp: Path | None = None
        self._closed = False

    # -- public API
    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if self._schema is None:
            self._open(table.schema)
        assert self._schema is not None
        table = self._conform(table)
        self._buffer.append(table)
        self._buffered += table.nbytes
        if self._buffered >= self.row_group_bytes:
            self._flush()

    def close(self) -> None:
        if self._closed:
            return
        if self._schema is None:
            self._open(self.spec.schema)
        try:
            self._flush()
            self._writer.close()
            if self._tmp is not None:
                self._sink.close() if self._sink is not None else None
                os.replace(self._tmp, self.path)
                self._tmp = None
            else:
                with contextlib.suppress(BrokenPipeError):
                    sys.stdout.buffer.flush()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._release()

    def abort(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- internals
    def _open(self, schema: pa.Schema) -> None:
        schema = schema.with_metadata(self.metadata)
        self._schema = schema
        if self.path == STDIO:
            self._writer = ipc.new_stream(sys.stdout.buffer, schema)
            return
        target = Path(self.path)
        if not self.internal:
            check_output_path(target)
        if target.is_dir():
            raise InputError(f"{target}: is a folder; give a file name for the output")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not self.internal:
            self._lock = contextlib.ExitStack()
            self._lock.enter_context(output_lock(target))
            try:
                self._check_existing(target)
            except BaseException:
                self._release()
                raise
        clean_stale_temps(target)
        self._tmp = temp_path(target)
        self._writer = pq.ParquetWriter(str(self._tmp), schema, compression="zstd")

    def _check_existing(self, target: Path) -> None:
        """An existing output is replaced only by the same settings, or with --force."""
        if self.force or not target.exists():
            return
        try:
            existing = read_meta(target, note=False)
        except ZsarError:
            raise CacheMismatchError(
                f"{target}: exists but is not a readable zsar artifact; use --force to overwrite"
            ) from None
        if existing.kind != self.kind or existing.cache_key != self.cache_key:
            raise CacheMismatchError(
                f"{target}: exists with other settings (a {existing.kind} artifact, cache key "
                f"{existing.cache_key[:12]}; this run {self.cache_key[:12]}); use --force to "
                "overwrite or choose another output"
            )

    def _conform(self, table: pa.Table) -> pa.Table:
        assert self._schema is not None
        names = self._schema.names
        if table.schema.names != names:
            missing = [n for n in names if n not in table.schema.names]
            if missing:
                raise ArtifactError(f"internal: batch for {self.kind} lacks columns {missing}")
            table = table.select(names)
        plain = self._schema.remove_metadata()
        if not table.schema.remove_metadata().equals(plain):
            table = table.cast(plain)
        return table.replace_schema_metadata(self._schema.metadata)

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self.path == STDIO:
            for batch in table.to_batches():
                self._writer.write_batch(batch)
        else:
            self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows_written += table.num_rows


def write_artifact(
    table: pa.Table,
    path: str | os.PathLike[str],
    kind: str,
    config: Any,
    upstream: Sequence[str] = (),
    extra_metadata: Mapping[str, Any] | None = None,
    force: bool = False,
) -> str:
    """Write a whole table as one artifact; returns its cache key."""
    with ArtifactWriter(path, kind, config, upstream, extra_metadata, force=force) as writer:
        writer.write(table)
    return writer.cache_key


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
        raise ArtifactError(f"{path}: not a readable Parquet artifact ({exc})") from None
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
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ArtifactError(f"{f}: not a readable Parquet artifact ({exc})") from None
        m = _validate(pf.schema_arrow, str(f), kinds)
        if meta is not None and (m.kind, m.config) != (meta.kind, meta.config):
            raise ArtifactError(f"{f}: part made with other settings than {files[0].name}")
        meta = meta or m
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        tables.append(pf.read(columns=cols))
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
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ArtifactError(f"{f}: not a readable Parquet artifact ({exc})") from None
        metas.append(_validate(pf.schema_arrow, str(f), kinds))
        handles.append(pf)

    def gen_files() -> Iterator[pa.RecordBatch]:
        for pf in handles:
            cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
            yield from pf.iter_batches(batch_size=batch_size, columns=cols)

    return metas[0], gen_files()


def iter_video_groups(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
    """Regroup a stream of batches sorted by video_id into one table per video."""
    pending: list[pa.Table] = []
    current: str | None = None
    for batch in batches:
        table = pa.Table.from_batches([batch])
        ids = table.column("video_id").to_pylist()
        start = 0
        for i in range(1, len(ids) + 1):
            if i == len(ids) or ids[i] != ids[start]:
                chunk = table.slice(start, i - start)
                if current is not None and ids[start] != current:
                    yield pa.concat_tables(pending)
                    pending = []
                current = ids[start]
                pending.append(chunk)
                start = i
    if pending:
        yield pa.concat_tables(pending)


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
