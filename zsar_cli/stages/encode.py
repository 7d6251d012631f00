"""Stages `encode` and `encode-text`: CLIP embeddings of frames and of label prompts.

`encode`: input a `frames` artifact, output an `embeddings` artifact — one L2-normalised image
embedding per frame (float16 by default), the frame keys and the video's `frame_count` (when the
frames carry it) copied, optionally the frame's patch tokens projected into the
joint space (`patch_tokens`, flattened rows×cols×D, grid in the metadata). Upstream error rows are
carried forward with a null embedding; a frame whose image cannot be decoded becomes an error row.

`encode-text`: input a labels file (+ templates / descriptions), output a `text_embeddings`
artifact — one row per prompt (label, text, kind, embedding).

The frames artifact is streamed in record batches, so images from many videos share each model
batch and memory stays bounded however long the input is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import (
    ArtifactMeta,
    build_table,
    write_artifact,
)
from zsar_cli.backends import revision_key
from zsar_cli.images import decode_image, image_encoding
from zsar_cli.labels import (
    Description,
    Prompt,
    build_prompts,
    load_descriptions,
    read_labels,
)
from zsar_cli.outputs import check_output_path, note_input, scoped
from zsar_cli.runner import Unit, artifact_units, run_stage
from zsar_cli.sharding import Shard

# Re-exported: the configs live in a light module so the CLI can import them cheaply.
from zsar_cli.stages.encode_config import DEFAULT_MODEL as DEFAULT_MODEL
from zsar_cli.stages.encode_config import EncodeConfig as EncodeConfig
from zsar_cli.stages.encode_config import PromptConfig as PromptConfig
from zsar_cli.stages.encode_config import TextEncodeConfig as TextEncodeConfig

if TYPE_CHECKING:
    from zsar_cli.backends.base import Encoder

DTYPES: dict[str, pa.DataType] = {"float16": pa.float16(), "float32": pa.float32()}
KEY_COLUMNS: tuple[str, ...] = ("video_id", "path", "label", "frame_index", "timestamp", "segment")


def load_model(model: str, device: str, precision: str, batch_size: int) -> Encoder:
    """The encoder of a spec, through the backend registry (loaded once per process)."""
    from zsar_cli.backends import load_encoder

    return load_encoder(model, device=device, precision=precision, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
# Image side


@dataclass
class Timings:
    """Seconds spent per step, summed over a run (for status lines and bench/encode.py)."""

    decode: float = 0.0
    preprocess: float = 0.0
    image_encode: float = 0.0
    text_encode: float = 0.0
    read_write: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def list_column(rows: Sequence[np.ndarray | None], value_type: pa.DataType) -> pa.Array:
    """A list<value_type> array from per-row vectors, null where a row has none."""
    valid = [r for r in rows if r is not None]
    flat = np.concatenate([np.ravel(r) for r in valid]) if valid else np.zeros(0, dtype=np.float32)
    lengths = np.array([0 if r is None else np.size(r) for r in rows], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    mask = np.array([r is None for r in rows], dtype=bool)
    values = pa.array(flat.astype(np.float32)).cast(value_type)
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(mask))


def embed_images(
    encoder: Any, images: Sequence[np.ndarray], patch_tokens: bool, timings: Timings
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings (and optionally patch tokens) of RGB frames, timing preprocess and forward."""
    t0 = time.perf_counter()
    pixels = encoder.preprocess_images(images)
    t1 = time.perf_counter()
    if patch_tokens:
        emb, tokens = encoder.encode_pixels_with_patches(pixels)
    else:
        emb, tokens = encoder.encode_pixels(pixels), None
    timings.preprocess += t1 - t0
    timings.image_encode += time.perf_counter() - t1
    return emb, tokens


def encode_frames_table(
    frames: pa.Table,
    encoder: Any,
    encoding: str,
    config: EncodeConfig,
    timings: Timings | None = None,
) -> pa.Table:
    """One `embeddings` table from a slice of a `frames` artifact (any number of videos)."""
    timings = timings if timings is not None else Timings()
    cols = frames.to_pydict()
    n = frames.num_rows
    errors: list[str | None] = list(cols.get("error") or [None] * n)
    images: list[np.ndarray] = []
    positions: list[int] = []
    t0 = time.perf_counter()
    for i in range(n):
        if errors[i] is not None:
            continue
        data = cols["image"][i]
        if data is None:
            errors[i] = "frame has no image"
            continue
        try:
            rgb = decode_image(data, encoding, cols["width"][i], cols["height"][i])
        except Exception as exc:  # PIL raises several types for corrupt bytes
            errors[i] = f"cannot decode frame image ({type(exc).__name__}: {exc})"
            continue
        images.append(rgb)
        positions.append(i)
    timings.decode += time.perf_counter() - t0
    embeddings: list[np.ndarray | None] = [None] * n
    tokens: list[np.ndarray | None] = [None] * n
    if images:
        emb, tok = embed_images(encoder, images, config.patch_tokens, timings)
        for j, i in enumerate(positions):
            embeddings[i] = emb[j]
            if tok is not None:
                tokens[i] = tok[j]
    value_type = DTYPES[config.dtype]
    columns: dict[str, Any] = {name: cols.get(name, [None] * n) for name in KEY_COLUMNS}
    columns["embedding"] = list_column(embeddings, value_type)
    extra = [pa.field("embedding", pa.list_(value_type))]
    if config.patch_tokens:
        columns["patch_tokens"] = list_column(tokens, value_type)
        extra.append(pa.field("patch_tokens", pa.list_(value_type)))
    columns["error"] = errors
    if "frame_count" in cols:  # frames artifacts made before it existed lack it
        columns["frame_count"] = cols["frame_count"]
    return build_table("embeddings", columns, extra_fields=extra)


def encoder_metadata(encoder: Any, config: EncodeConfig) -> dict[str, Any]:
    meta: dict[str, Any] = dict(encoder.describe())
    meta["embedding_dtype"] = config.dtype
    if config.patch_tokens:
        meta["patch_grid"] = list(encoder.patch_grid)
        meta["patch_dim"] = encoder.dim
    return meta


@dataclass
class EncodeSummary:
    videos: int
    failed: int
    frames: int
    cache_key: str
    timings: Timings
    skipped: bool = False  # the output was already complete with these settings


@scoped
def run(
    frames: str | Path,
    output: str | Path,
    config: EncodeConfig,
    encoder: Any | None = None,
    on_batch: Callable[[int], None] | None = None,
    shard: Shard | None = None,
    force: bool = False,
) -> EncodeSummary:
    """Stream a `frames` artifact through the encoder into an `embeddings` artifact.

    Sharded, cache-aware and checkpointed per input batch (zsar_cli.runner.run_stage).
    """
    cfg = config.validated()
    timings = Timings()
    loaded: list[Any] = [encoder] if encoder is not None else []

    def model() -> Any:
        if not loaded:
            loaded.append(load_model(cfg.model, cfg.device, cfg.precision, cfg.batch_size))
            if cfg.patch_tokens and getattr(loaded[0], "patch_grid", None) is None:
                from zsar_cli.errors import ModelError

                raise ModelError(f"--patch-tokens: {cfg.model} has no patch grid (needs a ViT)")
        return loaded[0]

    meta, key, units = artifact_units(
        str(frames), "frames", shard, per_video=False, batch_size=max(cfg.batch_size, 64)
    )
    encoding = image_encoding(meta.extra)

    def work(unit: Unit) -> pa.Table:
        out = encode_frames_table(unit.data, model(), encoding, cfg, timings)
        if on_batch is not None:
            on_batch(out.num_rows)
        return out

    summary = run_stage(
        str(output),
        kind="embeddings",
        config=cfg.provenance(),
        # the weights, not only their name: a model updated under the same spec is refused
        upstream=[key, *revision_key(cfg.model)],
        units=units,
        work=work,
        extra_metadata=lambda: encoder_metadata(model(), cfg),
        shard=shard,
        force=force,
    )
    return EncodeSummary(
        summary.videos,
        summary.failed,
        summary.rows,
        summary.cache_key,
        timings,
        skipped=summary.skipped,
    )


# ---------------------------------------------------------------------------------------------
# Text side


def prompts_for(labels: Sequence[str], prompts: PromptConfig) -> list[Prompt]:
    cfg = prompts.validated()
    descriptions: dict[str, Description] | None = None
    if cfg.descriptions is not None:
        descriptions = load_descriptions(cfg.descriptions)
    return build_prompts(
        labels,
        cfg.templates,
        descriptions,
        cfg.random_descriptors,
        cfg.seed,
        descriptions_source=f"--descriptions {cfg.descriptions}",
    )


def encode_prompts(encoder: Any, prompts: Sequence[Prompt]) -> np.ndarray:
    return encoder.encode_texts([p.text for p in prompts])


def text_table(prompts: Sequence[Prompt], embeddings: np.ndarray) -> pa.Table:
    return build_table(
        "text_embeddings",
        {
            "label": [p.label for p in prompts],
            "text": [p.text for p in prompts],
            "kind": [p.kind for p in prompts],
            "embedding": list_column(list(embeddings), pa.float32()),
        },
    )


def label_source_key(labels: Iterable[str], config: PromptConfig) -> str:
    """Stand-in for an upstream cache key: the labels and any descriptions file's identity."""
    import hashlib

    h = hashlib.sha256("\n".join(labels).encode())
    if config.descriptions is not None:
        h.update(Path(config.descriptions).read_bytes())
    if config.templates not in ("none", "video"):
        h.update(Path(config.templates).read_bytes())
    return "labels:" + h.hexdigest()[:32]


@dataclass
class TextEncodeSummary:
    labels: int
    prompts: int
    cache_key: str


@scoped
def run_text(
    labels_file: str | Path,
    output: str | Path,
    config: TextEncodeConfig,
    encoder: Any | None = None,
    force: bool = False,
) -> TextEncodeSummary:
    """Labels (+ templates/descriptions) → `text_embeddings` artifact. A query file (lines with
    `##`: Charades-STA or VIDEO##SENTENCE) gives its distinct sentences as the labels, for
    `localize --method grounding`."""
    labels = read_label_source(labels_file)
    prompts = prompts_for(labels, config.prompts)
    for side_input in (config.prompts.descriptions, config.prompts.templates):
        if side_input is not None and side_input not in ("none", "video"):
            note_input(side_input)
    check_output_path(output)  # before a model is loaded
    if encoder is None:
        encoder = load_model(config.model, config.device, config.precision, config.batch_size)
    embeddings = encode_prompts(encoder, prompts)
    key = write_artifact(
        text_table(prompts, embeddings),
        output,
        "text_embeddings",
        config.provenance(),
        upstream=[label_source_key(labels, config.prompts), *revision_key(config.model)],
        extra_metadata={**encoder.describe(), "labels": labels},
        force=force,
    )
    return TextEncodeSummary(len(labels), len(prompts), key)


def read_label_source(path: str | Path) -> list[str]:
    """A labels file, or the distinct sentences of a query file (a line holding `##`)."""
    from zsar_cli.datasets.grounding import SEPARATOR, query_sentences

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return read_labels(path)  # its own one-line error
    if any(SEPARATOR in line for line in text.splitlines() if not line.lstrip().startswith("#")):
        return query_sentences(path)
    return read_labels(path)


def embeddings_meta_model(meta: ArtifactMeta) -> str | None:
    """The model spec an `embeddings` artifact was made with (None if it does not say)."""
    spec = meta.extra.get("model_spec")
    return spec.strip('"') if spec else None
