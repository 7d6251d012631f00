"""Stage `adapt`: a training-free few-shot head from a handful of labelled support clips.

Input: support clips with labels — list files (`video,label`), or one `frames`/`embeddings`
artifact whose `label` column is set (extract-frames copies it from a list file). Output: an
`adapter` artifact (zsar_cli.stages.adapter): the head's parameters, the support clips' ids and
embeddings, the encoder spec that embedded them and the default combination weight.

Each support clip is embedded as `classify` embeds a video (frames sampled uniformly, encoded,
mean embedding renormalised); GDA also uses every frame embedding (zsar_cli.stages.adapt_heads).
`classify --adapter`, `localize --method clip --adapter` and anomaly scoring add the head's
logits to the zero-shot text logits and leave the support clips out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsar_cli.artifacts import iter_batches, write_artifact
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.outputs import check_output_path, scoped
from zsar_cli.stages.adapt_config import AdaptConfig as AdaptConfig
from zsar_cli.stages.adapt_heads import Head, fit, normalise_rows
from zsar_cli.stages.adapter import adapter_metadata, adapter_table, resolved_spec
from zsar_cli.stages.classify import (
    ClassifyConfig,
    VideoEmbeddings,
    from_embeddings_artifact,
    from_frames_artifact,
    from_videos,
    is_artifact_input,
)
from zsar_cli.stages.encode import DEFAULT_MODEL, Timings, load_model


@dataclass
class AdaptSummary:
    head: Head
    model: str
    cache_key: str
    videos: int  # support clips used
    per_class: dict[str, int] = field(default_factory=dict)
    skipped_shots: int = 0  # clips beyond --shots
    timings: Timings = field(default_factory=Timings)


def take_shots(items: Sequence[VideoEmbeddings], shots: int | None) -> list[VideoEmbeddings]:
    """The first `shots` clips of each class, in input order (all when None)."""
    seen: dict[str, int] = {}
    kept = []
    for item in items:
        label = str(item.true_label)
        seen[label] = seen.get(label, 0) + 1
        if shots is None or seen[label] <= shots:
            kept.append(item)
    return kept


def _support_stream(
    inputs: Sequence[str], output: str | Path, cfg: AdaptConfig, encoder: Any, timings: Timings
) -> tuple[str, float, str, Iterator[VideoEmbeddings]]:
    """(model spec, logit scale, upstream key, support clips) for videos or an artifact."""
    decode = ClassifyConfig(
        num_frames=cfg.num_frames, size=cfg.size, batch_size=cfg.batch_size, workers=cfg.workers
    )
    spec = resolved_spec(cfg.model or DEFAULT_MODEL)  # builtin:NAME, never its install path
    if not is_artifact_input(inputs):
        from zsar_cli.stages.extract_frames import resolve_inputs

        resolve_inputs(list(inputs))  # missing videos refused, inputs noted: before a model loads
        check_output_path(output)
        encoder = encoder or load_model(spec, cfg.device, cfg.precision, cfg.batch_size)
        upstream, stream = from_videos(inputs, encoder, decode, timings)
        return spec, float(encoder.logit_scale), upstream, stream
    meta, batches = iter_batches(inputs[0], ("embeddings", "frames"))
    check_output_path(output)
    made_with = (meta.extra.get("model_spec") or "").strip('"')
    if meta.kind == "frames":
        encoder = encoder or load_model(spec, cfg.device, cfg.precision, cfg.batch_size)
        stream = from_frames_artifact(meta, batches, encoder, cfg.batch_size, timings)
        return spec, float(encoder.logit_scale), meta.cache_key, stream
    if not made_with and cfg.model is None:
        raise ConfigError(f"{inputs[0]}: the embeddings do not record their model; pass --model")
    if made_with and cfg.model is not None and resolved_spec(cfg.model) != resolved_spec(made_with):
        raise ConfigError(
            f"{inputs[0]}: embeddings were made with {made_with}, not --model {cfg.model}"
        )
    spec = resolved_spec(made_with) if made_with else spec
    scale = meta.extra_json("logit_scale")
    if not isinstance(scale, (int, float)) or scale <= 0:
        # Only the prototypes' scale needs the model; an artifact of `zsar encode` records it.
        encoder = encoder or load_model(spec, cfg.device, cfg.precision, cfg.batch_size)
        scale = encoder.logit_scale
    return spec, float(scale), meta.cache_key, from_embeddings_artifact(meta, batches)


@scoped
def adapt(
    support: Sequence[str | Path],
    output: str | Path,
    config: AdaptConfig,
    encoder: Any | None = None,
    force: bool = False,
) -> AdaptSummary:
    """Fit `config.method` on the labelled support clips and write the `adapter` artifact."""
    cfg = config.validated()
    inputs = [str(s) for s in support]
    if not inputs:
        raise InputError("no support clips given (--support LIST with video,label lines)")
    check_output_path(output)  # before a model is loaded or a video decoded
    timings = Timings()
    spec, scale, upstream, stream = _support_stream(inputs, output, cfg, encoder, timings)
    items = list(stream)
    failed = [i for i in items if i.error is not None or i.embeddings is None]
    if failed:
        raise InputError(
            f"support video {failed[0].video_id}: {failed[0].error or 'no frames'} "
            f"({len(failed)} of {len(items)} support videos failed); fix or drop them"
        )
    unlabelled = [i.video_id for i in items if not i.true_label]
    if unlabelled:
        raise InputError(
            f"support video {unlabelled[0]} has no label ({len(unlabelled)} without); give a "
            "list file of video,label lines"
        )
    chosen = take_shots(items, cfg.shots)
    labels = [str(i.true_label) for i in chosen]
    if len(set(labels)) < 2:
        raise InputError(f"the support holds one class only ({labels[0]!r}); give two or more")
    frames = [np.asarray(i.embeddings, dtype=np.float64) for i in chosen]
    clips = normalise_rows(np.stack([f.mean(axis=0) for f in frames]))
    head = fit(
        cfg.method, labels, clips, frames, scale=scale, beta=cfg.beta, shrinkage=cfg.shrinkage
    )
    table = adapter_table(head, [i.video_id for i in chosen], [i.path for i in chosen])
    key = write_artifact(
        table,
        output,
        "adapter",
        {**cfg.provenance(), "model": spec},
        upstream=[upstream],
        extra_metadata=adapter_metadata(head, spec, cfg.weight),
        force=force,
    )
    per_class = {c: labels.count(c) for c in head.classes}
    return AdaptSummary(head, spec, key, len(chosen), per_class, len(items) - len(chosen), timings)
