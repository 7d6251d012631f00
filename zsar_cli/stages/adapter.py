"""The `adapter` artifact and how the scoring stages use it.

Input: an `adapter` artifact written by `zsar adapt`: one `class` row per class (the prototype,
or GDA's w_k and b_k) and one `support` row per support clip (video_id, path, embedding), with the
method, its parameters, the encoder spec of the support embeddings and the default combination
weight in the metadata. Output: nothing is written here; `classify`, `localize --method clip`
and anomaly scoring (`--source clip`) call these functions.

Combination: logits = text logits + weight · head logits (`AlignedHead`), so weight 0 is
zero-shot exactly. The adapter must come from the model that made the embeddings it scores
(compared as the registry resolves specs), its classes must cover the labels scored, and the
support clips themselves are not scored (matched by video_id, the key every artifact carries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import build_table, read_artifact
from zsar_cli.datasets import normalize_label
from zsar_cli.errors import ArtifactError, ConfigError, InputError
from zsar_cli.stages.adapt_heads import Head

V = TypeVar("V")


@dataclass(frozen=True)
class Adapter:
    """An adapter read back: its head, the encoder spec it was fitted on, its default weight,
    its support clips' ids, and the artifact's cache key and path."""

    head: Head
    model_spec: str
    weight: float
    support_videos: frozenset[str]
    cache_key: str
    source: str

    def describe(self, weight: float) -> dict[str, Any]:
        """What a scoring artifact records about the adapter it used."""
        return {
            "method": self.head.method,
            "source": self.source,
            "cache_key": self.cache_key,
            "weight": weight,
            "classes": list(self.head.classes),
            "support_videos": len(self.support_videos),
        }


def adapter_table(head: Head, video_ids: Sequence[str], paths: Sequence[str | None]) -> pa.Table:
    """The head as `adapter` rows: classes first (in class order), then the support clips."""
    c = len(head.classes)
    n = len(video_ids)
    cols: dict[str, list[Any]] = {
        "role": ["class"] * c + ["support"] * n,
        "label": list(head.classes) + [head.classes[k] for k in head.support_labels.tolist()],
        "video_id": [None] * c + list(video_ids),
        "path": [None] * c + list(paths),
        "vector": [v.tolist() for v in head.class_vectors] + [v.tolist() for v in head.support],
        "bias": head.bias.tolist() + [None] * n,
    }
    return build_table("adapter", cols)


def adapter_metadata(head: Head, model_spec: str, weight: float) -> dict[str, Any]:
    return {
        "method": head.method,
        "classes": list(head.classes),
        "model_spec": model_spec,
        "logit_scale": head.scale,
        "beta": head.beta,
        "weight": weight,
        "embedding_dim": head.dim,
        **head.details,
    }


def read_adapter(path: str) -> Adapter:
    """Read and check an `adapter` artifact (one line naming the file when it is inconsistent)."""
    art = read_artifact(path, "adapter")
    meta = art.meta
    rows = art.table.to_pydict()
    method = meta.extra_json("method")
    classes = meta.extra_json("classes")
    spec = meta.extra_json("model_spec")
    if not isinstance(classes, list) or not isinstance(method, str) or not isinstance(spec, str):
        raise ArtifactError(f"{art.source}: adapter metadata lacks method, classes or model_spec")
    pos = {c: i for i, c in enumerate(classes)}
    roles = rows["role"]
    class_rows = [i for i, r in enumerate(roles) if r == "class"]
    support_rows = [i for i, r in enumerate(roles) if r == "support"]
    if [rows["label"][i] for i in class_rows] != classes or not support_rows:
        raise ArtifactError(f"{art.source}: adapter rows do not match its classes {classes}")
    unknown = {rows["label"][i] for i in support_rows} - set(classes)
    if unknown:
        raise ArtifactError(f"{art.source}: support clips of unknown classes {sorted(unknown)}")
    try:
        vectors = np.asarray([rows["vector"][i] for i in class_rows], dtype=np.float64)
        support = np.asarray([rows["vector"][i] for i in support_rows], dtype=np.float64)
    except ValueError:
        raise ArtifactError(f"{art.source}: adapter vectors have different lengths") from None
    if vectors.ndim != 2 or support.ndim != 2 or vectors.shape[1] != support.shape[1]:
        raise ArtifactError(f"{art.source}: adapter vectors have different lengths")
    head = Head(
        method,
        tuple(classes),
        vectors,
        np.asarray([rows["bias"][i] or 0.0 for i in class_rows], dtype=np.float64),
        support,
        np.asarray([pos[rows["label"][i]] for i in support_rows], dtype=np.int64),
        float(meta.extra_json("logit_scale", 100.0)),
        float(meta.extra_json("beta", 5.5)),
    )
    return Adapter(
        head,
        spec,
        float(meta.extra_json("weight", 1.0)),
        frozenset(str(rows["video_id"][i]) for i in support_rows),
        meta.cache_key,
        art.source,
    )


def resolved_spec(spec: str) -> str:
    """A spec as provenance compares it: builtin:NAME for a built-in model however spelled
    (zsar_cli.backends.canonical_spec), never the path it is installed at."""
    from zsar_cli.backends import canonical_spec

    return canonical_spec(spec)


def check_model(adapter: Adapter, spec: str | None, what: str) -> None:
    """The embeddings scored come from the adapter's model (`spec` None: not recorded, so
    only the embedding width can be checked, later)."""
    if spec and resolved_spec(spec) != resolved_spec(adapter.model_spec):
        raise ConfigError(
            f"{adapter.source}: the adapter was fitted on {adapter.model_spec} embeddings, but "
            f"{what} come from {spec}; fit it again with that model (zsar adapt --model)"
        )


@dataclass(frozen=True)
class AlignedHead:
    """weight · head logits, columns in the order of the labels being scored."""

    adapter: Adapter
    columns: np.ndarray
    weight: float

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        q = np.atleast_2d(np.asarray(queries))
        if q.shape[1] != self.adapter.head.dim:
            raise InputError(
                f"{self.adapter.source}: the adapter has {self.adapter.head.dim}-d embeddings, "
                f"the ones scored are {q.shape[1]}-d: use the adapter's model"
            )
        return self.weight * self.adapter.head.logits(q)[:, self.columns]


def align(adapter: Adapter, labels: Sequence[str], weight: float | None) -> AlignedHead:
    """The head for `labels` (each matched to an adapter class, spelling-insensitively);
    `weight` None: the adapter's default."""
    lookup = {normalize_label(c): i for i, c in enumerate(adapter.head.classes)}
    missing = [lb for lb in labels if normalize_label(lb) not in lookup]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise InputError(
            f"{adapter.source}: the adapter has no class for label(s) {shown} (its classes: "
            f"{', '.join(adapter.head.classes)}); give support clips of every label scored"
        )
    columns = np.asarray([lookup[normalize_label(lb)] for lb in labels], dtype=np.int64)
    return AlignedHead(adapter, columns, adapter.weight if weight is None else float(weight))


def drop_support(videos: Mapping[str, V], adapter: Adapter) -> tuple[dict[str, V], int]:
    """The videos that are not support clips of the adapter, and how many were dropped."""
    kept = {vid: v for vid, v in videos.items() if vid not in adapter.support_videos}
    return kept, len(videos) - len(kept)
