"""`classify --lvlm`: CLIP ranks every label, the LVLM re-ranks CLIP's shortlist (choice mode),
from linearly sampled frames or from Self-ReS tokens of dense segments.

Input: videos, list files or a frames artifact (+ a labels file). Output: the same ranked
predictions as `classify` (a `predictions` artifact when asked), the shortlist reordered by
the LVLM's option probabilities.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import ArtifactWriter, iter_batches, iter_video_groups
from zsar_cli.backends import model_record
from zsar_cli.backends.lvlm_base import Clip, cap_frames, set_video_input
from zsar_cli.errors import ConfigError, InputError, ModelError, ZsarError
from zsar_cli.outputs import scoped
from zsar_cli.prompts import format_choice_prompt
from zsar_cli.stages.in_context import (
    Example,
    check_backend,
    check_labels,
    choice_turns,
    examples_key,
    load_examples,
)
from zsar_cli.stages.option_order import (
    ask_in_orders,
    label_probabilities,
    option_orders,
    rank_options,
)
from zsar_cli.stages.select_tokens import FrameItem, SelectionError, select_video_tokens
from zsar_cli.stages.self_res import answer_choice, kept_from_selection
from zsar_cli.stages.self_res_video import resolve_video_input
from zsar_cli.stages.token_scores import check_family, uncapped_frames

if TYPE_CHECKING:
    from zsar_cli.backends.lvlm_base import LVLM


def _video_frames_from_table(video: pa.Table, encoding: str) -> list[FrameItem]:
    from zsar_cli.stages.select_tokens import decode_video_frames

    frames, _ = decode_video_frames(video, encoding)
    return frames


def lvlm_rerank(
    lvlm: LVLM,
    frames: Sequence[FrameItem],
    video_id: str,
    shortlist: Sequence[str],
    config: Any,
    device: str,
    examples: Sequence[Example] = (),
) -> np.ndarray:
    """Probabilities of the `shortlist` labels (in its order) from linear frames (after the
    in-context `examples` whose label is on the shortlist) or from Self-ReS tokens, asked in
    the orderings of `config.option_order` and averaged per label."""
    options = list(shortlist)
    orderings = option_orders(len(options), config.option_order, config.option_seed, video_id)
    ask: Callable[[list[str]], np.ndarray]
    if not config.self_res:
        images: list[np.ndarray] = [f.image for f in frames]
        if all(f.timestamp is not None for f in frames):
            # With their real times: a native video input tells the model when each was shown.
            images = Clip(images, [float(f.timestamp or 0.0) for f in frames])
        images = cap_frames(images, config.frames)

        def ask(shown: list[str]) -> np.ndarray:
            # The examples' answer letters follow the options as shown in this ask.
            turns = choice_turns(examples, config.question, shown)
            context = (
                check_backend(lvlm).in_context(turns) if examples else contextlib.nullcontext()
            )
            with uncapped_frames(lvlm), context:
                return np.asarray(lvlm.choice(images, config.question, shown))

    else:
        hooks = check_family(lvlm)  # checked before the first video; this only narrows the type
        # The selection prompt lists the options, so the kept tokens would depend on their
        # order: they are selected once, with the options in the canonical (CLIP) order, and
        # only the final pass is asked per ordering. One selection per video whatever the
        # order, and `select-tokens --shortlist-from` makes the same tokens for every order.
        prompt = format_choice_prompt(config.question, options)
        selection = config.selection(device)
        sel = select_video_tokens(hooks, video_id, frames, prompt, selection)
        kept = kept_from_selection(sel)

        def ask(shown: list[str]) -> np.ndarray:
            return answer_choice(hooks, kept, sel.width, sel.height, config.question, shown)

    return label_probabilities(ask_in_orders(ask, options, orderings))


@scoped
def classify_with_lvlm(
    inputs: Sequence[str],
    labels_file: str | Path,
    config: Any,
    lvlm_config: Any,
    output: str | Path | None = None,
    encoder: Any | None = None,
    lvlm: Any | None = None,
    on_video: Callable[[Any], None] | None = None,
    force: bool = False,
) -> Any:
    """CLIP ranks all labels; the LVLM re-ranks CLIP's top `shortlist` (choice mode).

    Predictions: the shortlisted labels first, ordered by LVLM probability (score = that
    probability), then the other labels in CLIP order with score 0.
    """
    from zsar_cli.stages import classify as clf
    from zsar_cli.stages.extract_frames import ExtractConfig, decode_frames, resolve_inputs

    lcfg = lvlm_config.validated()
    inputs = [str(i) for i in inputs]
    clip_summary = clf.classify(inputs, labels_file, config, output=None, encoder=encoder)
    if lvlm is None:
        from zsar_cli.backends import load_lvlm

        lvlm = load_lvlm(
            lcfg.model,
            device=config.device,
            dtype=lcfg.dtype,
            trust_remote_code=lcfg.trust_remote_code,
            max_pixels=lcfg.max_pixels,
            max_frames=None,
        )
    # Self-ReS selects among (and answers from) the native video tokens of the families whose
    # tokens split into per-frame / per-temporal-patch units, else per-frame image tokens.
    if lcfg.self_res:
        check_family(lvlm)
        video_input = resolve_video_input(lvlm, lcfg.video_input)
    else:
        video_input = set_video_input(lvlm, lcfg.video_input)
    examples: list[Example] = []
    if lcfg.examples_file is not None:
        from zsar_cli.labels import read_labels

        check_backend(lvlm)
        examples = load_examples(lcfg.examples_file, "choice", lcfg.frames)
        check_labels(examples, read_labels(labels_file), f"--labels {labels_file}")
    example_ids = {ex.video_id for ex in examples}
    # Frames for the LVLM, per video: decoded again (Self-ReS needs dense segments, CLIP used a
    # few uniform frames) or read from the frames artifact given as input.
    frames_of: dict[str, list[FrameItem]] = {}
    upstream: list[str] = []
    if clf.is_artifact_input(inputs):
        from zsar_cli.images import image_encoding

        meta, batches = iter_batches(inputs[0], ("frames", "embeddings"))
        if meta.kind != "frames":
            raise InputError(f"{inputs[0]}: --lvlm needs the frames (videos or a frames artifact)")
        upstream.append(meta.cache_key)
        encoding = image_encoding(meta.extra)
        for video in iter_video_groups(batches):
            frames_of[video.column("video_id")[0].as_py()] = _video_frames_from_table(
                video, encoding
            )
        source: Callable[[str], list[FrameItem]] = lambda vid: frames_of.get(vid, [])  # noqa: E731
    else:
        extract = (
            ExtractConfig(segments=lcfg.segments, frames_per_segment=lcfg.frames_per_segment)
            if lcfg.self_res
            else ExtractConfig(num_frames=lcfg.frames)
        ).validated()
        videos = {v.video_id: v for v in resolve_inputs(inputs, config.root)}

        def source(vid: str) -> list[FrameItem]:
            return [
                FrameItem(f.frame_index, f.timestamp, f.segment, f.rgb)
                for f in decode_frames(videos[vid], extract)
            ]

    results = []
    for res in clip_summary.results:
        if res.video_id in example_ids:  # an in-context example is never scored
            clip_summary.excluded += 1
            continue
        if res.error is None:
            shortlist = res.labels[: lcfg.shortlist]
            try:
                frames = source(res.video_id)
                if not frames:
                    raise SelectionError(f"{res.video_id}: no frames for the LVLM")
                probs = lvlm_rerank(
                    lvlm, frames, res.video_id, shortlist, lcfg, config.device, examples
                )
                order = rank_options(probs)  # ties keep CLIP's order
                res.labels = [shortlist[i] for i in order] + res.labels[lcfg.shortlist :]
                res.scores = [float(probs[i]) for i in order] + [0.0] * (
                    len(res.scores) - len(shortlist)
                )
            except ZsarError as exc:  # a video that cannot be decoded or selected: error row
                if isinstance(exc, (ModelError, ConfigError)):
                    raise
                res.error = str(exc)
                res.labels, res.scores = [], []
        results.append(res)
        if on_video is not None:
            on_video(res)
    clip_summary.results = results
    clip_summary.videos = len(results)
    clip_summary.failed = sum(1 for r in results if r.error is not None)
    if output is not None:
        from zsar_cli.labels import read_labels

        key = clf.label_source_key(read_labels(labels_file), config.prompts)
        with ArtifactWriter(
            output,
            "predictions",
            # With --self-res the mode in effect is recorded: "auto" selected per-frame images
            # before Self-ReS served native video, so the same word must not reuse those runs.
            {
                "clip": config.provenance(),
                "lvlm": {
                    **lcfg.provenance(),
                    **({"video_input": video_input} if lcfg.self_res else {}),
                },
            },
            upstream=[*upstream, key, *([examples_key(examples)] if examples else [])],
            extra_metadata={
                "model_spec": clip_summary.model,
                "lvlm_spec": lvlm.spec,
                "lvlm_revision": model_record(lvlm.spec)["model_revision"],
                "video_input": video_input,
            },
            force=force,
        ) as writer:
            writer.write(clf.predictions_table(results))
        clip_summary.cache_key = writer.cache_key
    return clip_summary
