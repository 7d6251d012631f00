"""Stage `classify`: zero-shot CLIP classification of whole videos.

Input: videos (files, folders, list files — label column = ground truth), or a `frames` or
`embeddings` artifact; a labels file (+ templates / descriptions). Output: a `predictions`
artifact — one row per (video, label) with its probability and rank (1 = best), `true_label`
where known, and one row with `error` set per video that failed.

Everything runs in process: frames are sampled and decoded (`extract_frames.decode_frames`),
encoded in batches that span videos, pooled per video and scored against the label prompts;
nothing is written in between (nor decoded or encoded, given an `embeddings` artifact).

Pooling: `mean-embedding` averages a video's frame embeddings and renormalises (CLIP's usual
video embedding), then softmax(logit_scale · cosine); `mean-prob` averages the per-frame
softmax probabilities instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import (
    STDIO,
    ArtifactMeta,
    ArtifactWriter,
    build_table,
    iter_batches,
    iter_video_groups,
)
from zsar_cli.backends import canonical_spec, check_recorded_model, revision_key
from zsar_cli.errors import ConfigError, InputError, ZsarError
from zsar_cli.images import decode_image, image_encoding
from zsar_cli.labels import Prompt, label_weights, read_labels
from zsar_cli.outputs import check_output_path, scoped
from zsar_cli.stages.adapter import align, check_model, read_adapter

# Re-exported: the config lives in a light module so the CLI can import it cheaply.
from zsar_cli.stages.classify_config import POOLINGS as POOLINGS
from zsar_cli.stages.classify_config import ClassifyConfig as ClassifyConfig
from zsar_cli.stages.encode import (
    DEFAULT_MODEL,
    Timings,
    embed_images,
    encode_prompts,
    label_source_key,
    load_model,
    prompts_for,
)

ARTIFACT_SUFFIXES = frozenset({".parquet", ".arrow", ".ipc"})


@dataclass
class VideoResult:
    """One video's ranking (all labels, best first) or its error."""

    video_id: str
    path: str | None
    true_label: str | None
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    frames: int = 0
    error: str | None = None

    def top(self, k: int) -> list[tuple[int, str, float]]:
        return [(i + 1, self.labels[i], self.scores[i]) for i in range(min(k, len(self.labels)))]

    def as_json(self, k: int) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "path": self.path,
            "true_label": self.true_label,
            "frames": self.frames,
            "error": self.error,
            "predictions": [{"rank": r, "label": label, "score": s} for r, label, s in self.top(k)],
        }


# ---------------------------------------------------------------------------------------------
# Pure scoring


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def video_probabilities(
    frame_embeddings: np.ndarray,
    weights: np.ndarray,
    logit_scale: float,
    pooling: str,
    head: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """(L,) label probabilities of one video from its (F, D) frame embeddings; `head` (an
    adapter's weighted logits, zsar_cli.stages.adapter) is added to the text logits."""
    frames = np.asarray(frame_embeddings, dtype=np.float32)

    def plus_head(text: np.ndarray, x: np.ndarray) -> np.ndarray:
        # In the text logits' dtype, so weight 0 adds exact zeros (zero-shot, bit for bit).
        return text if head is None else text + head(x).reshape(text.shape).astype(text.dtype)

    if pooling == "mean-embedding":
        mean = frames.mean(axis=0)
        video = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return softmax(plus_head(logit_scale * (weights @ video), video))
    if pooling == "mean-prob":
        return softmax(plus_head(logit_scale * (frames @ weights.T), frames)).mean(axis=0)
    raise ConfigError(f"--pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")


def rank(labels: Sequence[str], probabilities: np.ndarray) -> tuple[list[str], list[float]]:
    # Stable sort: equal probabilities keep label-file order, so ties rank reproducibly.
    order = np.argsort(-probabilities, kind="stable")
    return [labels[i] for i in order], [float(probabilities[i]) for i in order]


def predictions_table(results: Sequence[VideoResult]) -> pa.Table:
    cols: dict[str, list[Any]] = {
        k: [] for k in ("video_id", "label", "score", "rank", "true_label", "error")
    }
    for res in results:
        rows: list[tuple[str | None, float | None, int | None]]
        if res.error is not None:
            rows = [(None, None, None)]
        else:
            rows = [
                (lab, s, i + 1)
                for i, (lab, s) in enumerate(zip(res.labels, res.scores, strict=True))
            ]
        for label, score, position in rows:
            cols["video_id"].append(res.video_id)
            cols["label"].append(label)
            cols["score"].append(score)
            cols["rank"].append(position)
            cols["true_label"].append(res.true_label)
            cols["error"].append(res.error)
    return build_table("predictions", cols)


# ---------------------------------------------------------------------------------------------
# Label side


@dataclass
class LabelSet:
    labels: list[str]
    weights: np.ndarray
    prompts: int
    source_key: str


def build_label_set(
    labels: Sequence[str],
    prompt_list: Sequence[Prompt],
    encoder: Any,
    source_key: str,
    timings: Timings,
) -> LabelSet:
    t0 = time.perf_counter()
    emb = encode_prompts(encoder, prompt_list)
    timings.text_encode += time.perf_counter() - t0
    weights = label_weights(
        labels, [p.label for p in prompt_list], [p.kind for p in prompt_list], emb
    )
    return LabelSet(list(labels), weights, len(prompt_list), source_key)


# ---------------------------------------------------------------------------------------------
# Inputs → per-video frame embeddings


@dataclass
class VideoEmbeddings:
    video_id: str
    path: str | None
    true_label: str | None
    embeddings: np.ndarray | None = None
    error: str | None = None


def is_artifact_input(inputs: Sequence[str]) -> bool:
    """One input that is `-`, a Parquet/Arrow file, or a folder of Parquet part files."""
    if len(inputs) != 1:
        return False
    path = Path(inputs[0])
    if inputs[0] == STDIO or path.suffix.lower() in ARTIFACT_SUFFIXES:
        return True
    return (
        path.is_dir()
        and any(path.glob("*.parquet"))
        and not any(
            p.suffix.lower() in {".mp4", ".avi", ".mkv", ".mov", ".webm"} for p in path.iterdir()
        )
    )


def _embedding_matrix(column: pa.ChunkedArray) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for value in column.to_pylist():
        out.append(None if value is None else np.asarray(value, dtype=np.float32))
    return out


def from_embeddings_artifact(
    meta: ArtifactMeta, batches: Iterator[pa.RecordBatch]
) -> Iterator[VideoEmbeddings]:
    """Videos' frame embeddings straight from an `embeddings` artifact (no model forward)."""
    for table in iter_video_groups(batches):
        cols = table.to_pydict()
        item = VideoEmbeddings(
            cols["video_id"][0], (cols.get("path") or [None])[0], (cols.get("label") or [None])[0]
        )
        embs = [e for e in _embedding_matrix(table.column("embedding")) if e is not None]
        if embs:
            item.embeddings = np.stack(embs)
        else:
            errs = [e for e in cols.get("error", []) if e is not None]
            item.error = errs[0] if errs else "no frame embeddings"
        yield item


def _encode_pending(
    pending: list[tuple[VideoEmbeddings, list[np.ndarray]]], encoder: Any, timings: Timings
) -> Iterator[VideoEmbeddings]:
    images = [im for _, frames in pending for im in frames]
    emb = embed_images(encoder, images, False, timings)[0] if images else None
    start = 0
    for item, frames in pending:
        if frames and emb is not None:
            item.embeddings = emb[start : start + len(frames)]
            start += len(frames)
        yield item


def _batched(
    items: Iterator[tuple[VideoEmbeddings, list[np.ndarray]]],
    encoder: Any,
    batch_size: int,
    timings: Timings,
) -> Iterator[VideoEmbeddings]:
    """Encode frames of consecutive videos together, a model batch spanning video borders."""
    pending: list[tuple[VideoEmbeddings, list[np.ndarray]]] = []
    count = 0
    for item, frames in items:
        pending.append((item, frames))
        count += len(frames)
        if count >= batch_size:
            yield from _encode_pending(pending, encoder, timings)
            pending, count = [], 0
    if pending:
        yield from _encode_pending(pending, encoder, timings)


def from_frames_artifact(
    meta: ArtifactMeta,
    batches: Iterator[pa.RecordBatch],
    encoder: Any,
    batch_size: int,
    timings: Timings,
) -> Iterator[VideoEmbeddings]:
    """Decode a `frames` artifact's images video by video and encode them in batches."""
    encoding = image_encoding(meta.extra)

    def decoded() -> Iterator[tuple[VideoEmbeddings, list[np.ndarray]]]:
        for table in iter_video_groups(batches):
            cols = table.to_pydict()
            item = VideoEmbeddings(
                cols["video_id"][0],
                (cols.get("path") or [None])[0],
                (cols.get("label") or [None])[0],
            )
            t0 = time.perf_counter()
            frames, error = [], None
            for data, w, h, err in zip(
                cols["image"], cols["width"], cols["height"], cols["error"], strict=True
            ):
                if err is not None or data is None:
                    error = error or err or "frame has no image"
                    continue
                try:
                    frames.append(decode_image(data, encoding, w, h))
                except Exception as exc:  # PIL raises several types for corrupt bytes
                    error = error or f"cannot decode frame image ({type(exc).__name__}: {exc})"
            timings.decode += time.perf_counter() - t0
            # A video with some good frames is classified from those; only a video with none
            # becomes an error row.
            if not frames:
                item.error = error or "no frames"
            yield item, frames

    return _batched(decoded(), encoder, batch_size, timings)


def from_videos(
    inputs: Sequence[str],
    encoder: Any,
    config: ClassifyConfig,
    timings: Timings,
) -> tuple[str, Iterator[VideoEmbeddings]]:
    """Decode each video's frames (a few videos at once in threads) and encode them in batches."""
    from zsar_cli.stages.extract_frames import (
        ExtractConfig,
        decode_frames,
        inputs_fingerprint,
        resolve_inputs,
    )

    videos = resolve_inputs(list(inputs), config.root)
    if not videos:
        raise InputError(f"{' '.join(map(str, inputs))}: no videos found")
    extract = ExtractConfig(num_frames=config.num_frames, size=config.size).validated()

    def decode_one(video: Any) -> tuple[VideoEmbeddings, list[np.ndarray], float]:
        t0 = time.perf_counter()
        item = VideoEmbeddings(video.video_id, str(video.path), video.label)
        frames: list[np.ndarray] = []
        try:
            frames = [f.rgb for f in decode_frames(video, extract)]
        except ZsarError as exc:
            item.error = str(exc)
        except Exception as exc:  # a crash on one video must not end the batch
            item.error = f"{type(exc).__name__}: {exc}"
        return item, frames, time.perf_counter() - t0

    def decoded() -> Iterator[tuple[VideoEmbeddings, list[np.ndarray]]]:
        # Decoding (ffmpeg subprocesses) overlaps with encoding; a bounded window of futures
        # keeps memory flat for thousands of videos.
        window = max(2, 2 * config.workers)
        with ThreadPoolExecutor(config.workers, thread_name_prefix="zsar-classify") as pool:
            futures: list[Future[tuple[VideoEmbeddings, list[np.ndarray], float]]] = []
            it = iter(videos)
            for video in it:
                futures.append(pool.submit(decode_one, video))
                if len(futures) >= window:
                    break
            while futures:
                item, frames, seconds = futures.pop(0).result()
                nxt = next(it, None)
                if nxt is not None:
                    futures.append(pool.submit(decode_one, nxt))
                timings.decode += seconds
                yield item, frames

    return inputs_fingerprint(videos), _batched(decoded(), encoder, config.batch_size, timings)


# ---------------------------------------------------------------------------------------------
# Run


@dataclass
class ClassifySummary:
    results: list[VideoResult]
    videos: int
    failed: int
    cache_key: str | None
    timings: Timings
    labels: list[str]
    prompts: int
    model: str
    excluded: int = 0  # support videos of --adapter, not scored

    @property
    def accuracy(self) -> float | None:
        """Top-1 over videos with a known true label (failed videos count as misses)."""
        known = [r for r in self.results if r.true_label is not None]
        if not known:
            return None
        hits = sum(1 for r in known if r.error is None and r.labels[0] == r.true_label)
        return hits / len(known)


@scoped
def classify(
    inputs: Sequence[str],
    labels_file: str | Path,
    config: ClassifyConfig,
    output: str | Path | None = None,
    encoder: Any | None = None,
    on_video: Callable[[VideoResult], None] | None = None,
    force: bool = False,
) -> ClassifySummary:
    """Rank `labels_file`'s labels for every input video; optionally write `predictions`.

    `config.model` None: the model that made an embeddings input, else the adapter's, else
    DEFAULT_MODEL; a model given explicitly must be the one that made an embeddings input
    (compared resolved), and so must the adapter's (zsar_cli.stages.adapter)."""
    cfg = config.validated()
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise InputError("no inputs given (videos, folders, list files or an artifact)")
    timings = Timings()
    # Labels, templates and descriptions are checked before any model is loaded.
    labels = read_labels(labels_file)
    prompt_list = prompts_for(labels, cfg.prompts)
    source_key = label_source_key(labels, cfg.prompts)
    meta: ArtifactMeta | None = None
    if output is not None:
        check_output_path(output)  # before a model is loaded or a video decoded
    adapter = read_adapter(cfg.adapter) if cfg.adapter is not None else None
    # Compared and recorded as provenance spells it: builtin:NAME, never its install path.
    spec = canonical_spec(
        config.model or (adapter.model_spec if adapter is not None else DEFAULT_MODEL)
    )
    if is_artifact_input(inputs):
        meta, batches = iter_batches(inputs[0], ("embeddings", "frames"))
        made_with = (meta.extra.get("model_spec") or "").strip('"')
        if output is not None:
            check_output_path(output)
        if meta.kind == "embeddings" and made_with:
            made_with = check_recorded_model(
                made_with, meta.extra.get("model_sha256"), str(inputs[0])
            )
            if config.model is not None and canonical_spec(config.model) != made_with:
                raise ConfigError(
                    f"{inputs[0]}: embeddings were made with {made_with}, not --model "
                    f"{config.model}; text and image embeddings must come from one model"
                )
            # An embeddings artifact says which model made it; the text side must match it.
            spec = made_with
    if adapter is not None:
        check_model(adapter, spec, "the videos scored")
    if encoder is None:
        encoder = load_model(spec, cfg.device, cfg.precision, cfg.batch_size)
    label_set = build_label_set(labels, prompt_list, encoder, source_key, timings)
    head = None if adapter is None else align(adapter, label_set.labels, cfg.adapter_weight)
    if head is not None:  # the weight used, recorded in the provenance
        cfg = replace(cfg, adapter_weight=head.weight)

    stream: Iterator[VideoEmbeddings]
    if meta is None:
        upstream, stream = from_videos(inputs, encoder, cfg, timings)
    elif meta.kind == "frames":
        upstream = meta.cache_key
        stream = from_frames_artifact(meta, batches, encoder, cfg.batch_size, timings)
    else:
        upstream = meta.cache_key
        stream = from_embeddings_artifact(meta, batches)

    results: list[VideoResult] = []
    writer = None
    adapter_keys = [head.adapter.cache_key] if head else []
    if output is not None:
        writer = ArtifactWriter(
            output,
            "predictions",
            {**cfg.provenance(), "model": spec},
            # revision_key: the CLIP weights themselves, not only their spec
            upstream=[upstream, label_set.source_key, *revision_key(spec), *adapter_keys],
            extra_metadata={**encoder.describe(), "labels": label_set.labels}
            | ({"adapter": head.adapter.describe(head.weight)} if head else {}),
            force=force,
        )
    excluded = 0
    try:
        for item in stream:
            if adapter is not None and item.video_id in adapter.support_videos:
                excluded += 1
                continue
            res = VideoResult(item.video_id, item.path, item.true_label)
            if item.error is not None or item.embeddings is None:
                res.error = item.error or "no frames"
            else:
                res.frames = len(item.embeddings)
                probs = video_probabilities(
                    item.embeddings, label_set.weights, encoder.logit_scale, cfg.pooling, head
                )
                res.labels, res.scores = rank(label_set.labels, probs)
            results.append(res)
            if writer is not None:
                writer.write(predictions_table([res]))
            if on_video is not None:
                on_video(res)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    failed = sum(1 for r in results if r.error is not None)
    return ClassifySummary(
        results,
        len(results),
        failed,
        writer.cache_key if writer is not None else None,
        timings,
        label_set.labels,
        label_set.prompts,
        encoder.spec,
        excluded,
    )
