"""The artifact kinds: one `ArtifactSpec` per kind, with its canonical columns and the ones that
must be present. Re-exported by `zsar_cli.artifacts`, which writes and reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from zsar_cli.errors import ArtifactError


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
            # Seconds the container claims, and how much of it the file holds (less when the
            # file is cut short); per video, on each of its rows.
            _f("duration", pa.float64()),
            _f("decoded_duration", pa.float64()),
            # The seconds of the video a list row asked for (null: the whole video); absolute
            # times of the video, as the timestamps are.
            _f("span_start", pa.float64()),
            _f("span_end", pa.float64()),
            # The whole video's frame count (the container's, else duration x rate) and
            # average rate, from the decoder's stream info: what expands sampled scores to
            # every frame (UCF-Crime frame-level ROC-AUC).
            _f("frame_count", pa.int64()),
            _f("fps", pa.float64()),
        ),
        ("video_id", "path", "frame_index", "timestamp", "segment", "image", "error"),
        "one row per sampled frame (image bytes: see zsar.image_encoding; decoder: zsar.decoder)",
    )
)
_register(
    ArtifactSpec(
        "embeddings",
        1,
        (
            *FRAME_KEYS,
            _f("embedding", pa.list_(pa.float16())),
            _f("error", pa.string()),
            # Copied from the frames artifact when it has it (older ones do not).
            _f("frame_count", pa.int64()),
        ),
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
            # What describe's quality guards did (absent in older or hand-made files): status
            # ok / regenerated / repaired / given, model answers used, notes on each rejection
            # and repair.
            _f("status", pa.string()),
            _f("attempts", pa.int32()),
            _f("notes", pa.list_(pa.string())),
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
            # The video's frame count, from the embeddings when they carry it: scores expand
            # to every frame 0..frame_count-1.
            _f("frame_count", pa.int64()),
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

_register(
    ArtifactSpec(
        "adapter",
        1,
        (
            _f("role", pa.string(), False),
            _f("label", pa.string(), False),
            _f("video_id", pa.string()),
            _f("path", pa.string()),
            _f("vector", pa.list_(pa.float64())),
            _f("bias", pa.float64()),
        ),
        ("role", "label", "video_id", "vector", "bias"),
        "a training-free head (zsar adapt): one `class` row per class (prototype or GDA weights "
        "and bias) and one `support` row per support clip (its embedding)",
    )
)


def get_spec(kind: str) -> ArtifactSpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise ArtifactError(f"unknown artifact kind {kind!r} (known: {', '.join(SPECS)})") from None
