"""Provenance of artifacts: canonical config JSON, cache keys, the metadata every artifact
carries (`zsar.kind`, `zsar.config`, `zsar.upstream`, `zsar.cache_key`, ...), `ArtifactMeta` read
back from it, and typed table building. Re-exported by `zsar_cli.artifacts`.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from zsar_cli import __version__
from zsar_cli.artifact_specs import get_spec
from zsar_cli.errors import ArtifactError

META_PREFIX = "zsar."


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
        try:
            raw = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
        except UnicodeDecodeError:  # a damaged footer (found by tests/test_fuzz.py)
            raise ArtifactError(f"{source}: corrupt zsar metadata (not UTF-8)") from None
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
