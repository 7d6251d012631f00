"""Answering from Self-ReS tokens: the final pass, `query-lvlm --tokens`, `classify --lvlm`.

Input: a `tokens` artifact (`zsar select-tokens`) — or kept tokens in memory — plus the questions
of `query-lvlm` (yes/no or choice mode); for `classify --lvlm`, videos or a `frames` artifact.
Output: an `answers` artifact (one clip-level row per video × query, or per option in choice
mode); for classify, a `predictions` artifact whose top labels are ranked by the LVLM.

The final pass builds `inputs_embeds` from the kept tokens: the processor lays out the prompt for
as many frames as have kept tokens (same chat template, same per-frame wrapper tokens such as
Idefics3's `<fake_token_around_image><global-img>`), the frames' visual slots are filled with the
kept token embeddings, and the slots of dropped tokens are removed from the sequence. Positions:
for 1-D RoPE families (Idefics3/SmolVLM with a Llama text model, LLaVA-OneVision with Qwen2) the
shortened sequence is numbered 0..L'-1, i.e. the model sees a shorter clip, never gaps it was not
trained on; with every token kept the sequence, the positions and hence p_yes equal the plain
frame path exactly. Multimodal 3-D RoPE families (Qwen2-VL, Qwen2.5-VL) keep each kept token's
(t, h, w) position computed on the whole sequence, and the text after the frames its own, so the
final pass is position-consistent with the plain one. Qwen3-VL positions are gathered the same
way, and its DeepStack features (added to the visual tokens' hidden states in early decoder
layers) are stored with each kept token and re-fed at the kept tokens' new sequence positions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import build_table
from zsar_cli.backends import canonical_spec, check_recorded_model, model_record, revision_key
from zsar_cli.backends.lvlm_base import Clip, EmbeddedInputs, set_video_input
from zsar_cli.errors import ConfigError, InputError, ModelError
from zsar_cli.outputs import scoped
from zsar_cli.prompts import format_choice_prompt
from zsar_cli.runner import RunSummary, Unit, artifact_units, run_stage
from zsar_cli.sharding import Shard
from zsar_cli.stages.option_order import ask_in_orders, choice_rows
from zsar_cli.stages.select_tokens import SelectionError
from zsar_cli.stages.self_res_video import frames_per_unit, is_native, tail_features
from zsar_cli.stages.shortlist import ChoiceOptions, NoOptions, choice_options
from zsar_cli.stages.token_scores import (
    DEEPSTACK_EMBEDS,
    DEEPSTACK_MASK,
    check_family,
    uncapped_frames,
)

# Re-exported: kept tokens are read back by tokens_artifact.
from zsar_cli.stages.tokens_artifact import KeptFrame as KeptFrame
from zsar_cli.stages.tokens_artifact import kept_from_rows as kept_from_rows
from zsar_cli.stages.tokens_artifact import kept_from_selection as kept_from_selection

if TYPE_CHECKING:
    from zsar_cli.backends.lvlm_base import SelectionHooks

SEGMENT_FIELD = pa.field("segment", pa.int32())
# Choice mode: which ordering of the options a row was asked in (--option-order).
ORDERING_FIELD = pa.field("ordering", pa.int32())


# ---------------------------------------------------------------------------------------------
# The final pass


def final_inputs(
    lvlm: SelectionHooks, kept: Sequence[KeptFrame], width: int, height: int, prompt: str
) -> EmbeddedInputs:
    """`EmbeddedInputs` of [prefix ⊕ kept tokens (per-frame wrappers kept) ⊕ prompt]. In native
    video mode the kept units are laid out as one clip with their frames' real times."""
    import torch

    if not kept:
        raise SelectionError("no kept tokens to answer from")
    # The processor only lays out the sequence here; the stand-in pixels never reach the model.
    stand_in = np.zeros((height, width, 3), np.uint8)
    with uncapped_frames(lvlm):
        inputs = lvlm.build_inputs([_layout(lvlm, kept, stand_in)], [prompt])
    ids = inputs.input_ids[0]
    image_mask = inputs.image_token_mask[0]
    slots = image_mask.nonzero().flatten()
    tail = tail_features(lvlm)  # LLaVA-OneVision's newline after a clip: kept, never selected
    tail_slots = 0 if tail is None else int(tail.shape[0])
    per_frame = (int(slots.numel()) - tail_slots) // len(kept)
    hidden = int(lvlm.model.get_input_embeddings().weight.shape[1])
    with torch.inference_mode():
        embeds = lvlm.model.get_input_embeddings()(ids.unsqueeze(0))[0].clone()
        keep = ~image_mask.clone()
        if tail is not None:
            embeds[slots[-tail_slots:]] = tail.to(embeds.device, embeds.dtype)
            keep[slots[-tail_slots:]] = True
        for f, frame in enumerate(kept):
            if len(frame.token_index) and int(frame.token_index.max()) >= per_frame:
                raise ModelError(
                    f"{lvlm.spec}: token index {int(frame.token_index.max())} but the model makes "
                    f"{per_frame} tokens of a {width}×{height} frame; were the tokens selected "
                    "with another model?"
                )
            if frame.embeddings.shape[-1] != hidden:
                raise ModelError(
                    f"{lvlm.spec}: token embeddings have {frame.embeddings.shape[-1]} dimensions, "
                    f"the model's inputs {hidden}; select tokens with the same model"
                )
            where = slots[f * per_frame + torch.as_tensor(frame.token_index)]
            embeds[where] = frame.embeddings.to(embeds.device, embeds.dtype)
            keep[where] = True
        extra = _deepstack_inputs(lvlm, kept, image_mask[keep])
        sequence = embeds[keep].unsqueeze(0)
        length = sequence.shape[1]
        attention = torch.ones((1, length), dtype=inputs.attention_mask.dtype, device=ids.device)
        if inputs.position_ids is not None and inputs.position_ids.dim() == 3:
            # Multimodal RoPE: each kept token keeps the (t, h, w) position it has in the whole
            # sequence, and the text after the frames keeps its own; gaps mark dropped tokens.
            positions = inputs.position_ids[:, :1, keep]
        else:
            positions = torch.arange(length, device=ids.device).unsqueeze(0)
    return EmbeddedInputs(
        inputs_embeds=sequence,
        attention_mask=attention,
        position_ids=positions if inputs.position_ids is not None else None,
        image_token_mask=image_mask[keep].unsqueeze(0),
        extra=extra,
    )


def _layout(lvlm: SelectionHooks, kept: Sequence[KeptFrame], stand_in: np.ndarray) -> Any:
    """One stand-in per kept frame; native video: one per frame of each kept unit, as a clip
    with those frames' recorded times."""
    if not is_native(lvlm):
        return [stand_in] * len(kept)
    k = frames_per_unit(lvlm)
    times = [t for frame in kept for t in (frame.times or ())]
    if any(frame.times is None or len(frame.times) != k for frame in kept):
        raise ModelError(
            f"{lvlm.spec}: the kept tokens do not record the times of {k}-frame units, which "
            "native video input needs; select them with --video-input native on this model"
        )
    return Clip([stand_in] * len(times), times, kept[0].video_frames)


def deepstack_layers(lvlm: SelectionHooks) -> int:
    """How many early decoder layers receive visual features besides the input embeddings
    (Qwen3-VL's DeepStack); 0 for every other family."""
    vision = getattr(getattr(getattr(lvlm, "model", None), "config", None), "vision_config", None)
    return len(getattr(vision, "deepstack_visual_indexes", None) or ())


def _deepstack_inputs(lvlm: SelectionHooks, kept: Sequence[KeptFrame], visual: Any) -> dict:
    """The DeepStack arguments of the final pass: the kept tokens' positions in the shortened
    sequence and their stored per-layer features, in sequence order (frames, then tokens)."""
    import torch

    layers = deepstack_layers(lvlm)
    if not layers:
        return {}
    if any(frame.deepstack is None for frame in kept):
        raise ModelError(
            f"{lvlm.spec}: the kept tokens carry no DeepStack features, which this model adds "
            "in its early decoder layers; select them again with this zsar (select-tokens)"
        )
    stacked = torch.cat([frame.deepstack for frame in kept])  # (tokens, layers, hidden)
    if stacked.shape[1] != layers:
        raise ModelError(
            f"{lvlm.spec}: the kept tokens carry {stacked.shape[1]} DeepStack layers, the model "
            f"{layers}; select tokens with the same model"
        )
    device, dtype = visual.device, lvlm.model.get_input_embeddings().weight.dtype
    return {
        DEEPSTACK_MASK: visual.unsqueeze(0),
        DEEPSTACK_EMBEDS: [stacked[:, i].to(device, dtype) for i in range(layers)],
    }


def _next_token_probs(
    lvlm: SelectionHooks, kept: Sequence[KeptFrame], width: int, height: int, prompt: str
) -> Any:
    import torch

    embedded = final_inputs(lvlm, kept, width, height, prompt)
    out = lvlm.run_language_model(embedded, logits_to_keep=1)
    return torch.softmax(out.logits[0, -1].double(), dim=-1).cpu()


def answer_yes_no(
    lvlm: SelectionHooks, kept: Sequence[KeptFrame], width: int, height: int, prompt: str
) -> tuple[float, float, float]:
    """(p_yes, yes_mass, no_mass) from the kept tokens, as `HFLVLM.yes_no` reads them."""
    probs = _next_token_probs(lvlm, kept, width, height, prompt)
    yes = float(probs[sorted(set(lvlm.yes_ids.values()))].sum())
    no = float(probs[sorted(set(lvlm.no_ids.values()))].sum())
    return (yes / (yes + no) if yes + no > 0 else 0.5), yes, no


def answer_choice(
    lvlm: SelectionHooks,
    kept: Sequence[KeptFrame],
    width: int,
    height: int,
    question: str,
    options: Sequence[str],
) -> np.ndarray:
    """Option probabilities (letters' mass, renormalised) from the kept tokens."""
    letters = lvlm.letter_ids(len(options))
    probs = _next_token_probs(lvlm, kept, width, height, format_choice_prompt(question, options))
    mass = np.array([float(probs[ids].sum()) for ids in letters])
    return mass / max(float(mass.sum()), 1e-300)


# ---------------------------------------------------------------------------------------------
# query-lvlm --tokens


# The runner's summary: videos, failed, rows, resumed_videos, cache_key, skipped.
TokensSummary = RunSummary


@scoped
def run_from_tokens(
    frames: str | Path,
    tokens: str | Path,
    output: str | Path,
    config: Any,
    lvlm: Any | None = None,
    on_video: Callable[[str], None] | None = None,
    shard: Shard | None = None,
    force: bool = False,
) -> TokensSummary:
    """`query-lvlm FRAMES --tokens TOKENS`: answer every query from each video's kept tokens.

    FRAMES must be the artifact the tokens were selected from (checked by cache key); only the
    stored token embeddings reach the model. `config.model` None means the model the tokens
    were selected with; any other model is refused (the tokens live in that model's space).
    Sharded, cache-aware and checkpointed like every per-video stage (runner.run_stage).
    """
    from dataclasses import replace

    from zsar_cli.artifacts import read_meta
    from zsar_cli.stages import query_lvlm as q

    if getattr(config, "examples_file", None) is not None:
        raise ConfigError("--examples cannot be combined with --tokens (Self-ReS answers)")
    meta, key, units = artifact_units(str(tokens), "tokens", shard)
    if meta.extra_json("token_space") == "clip":
        raise InputError(
            f"{tokens}: tokens selected with --scorer clip are CLIP patch tokens, not LVLM "
            "inputs; select with --scorer attention or similarity to answer from them"
        )
    if str(frames) != "-":
        frames_meta = read_meta(frames, "frames")
        if meta.upstream and frames_meta.cache_key not in meta.upstream:
            raise InputError(
                f"{tokens}: its tokens were not selected from {frames} (cache keys differ)"
            )
    selected_with = str(meta.extra_json("model_spec") or "")
    if selected_with:
        selected_with = check_recorded_model(
            selected_with, meta.extra.get("model_sha256"), str(tokens)
        )
    spec = canonical_spec(config.model or selected_with or q.DEFAULT_MODEL)
    if selected_with and spec != selected_with:
        raise ConfigError(
            f"{tokens}: tokens were selected with {selected_with}, not --model {spec}; the "
            "final pass must use the model whose input space they are in (omit --model)"
        )
    # One spelling of the model in the provenance, however the user typed it.
    cfg = replace(config, model=selected_with or spec).validated()
    if cfg.mode not in ("yesno", "choice"):
        raise ConfigError(f"--tokens answers in --mode yesno or choice, not {cfg.mode}")
    queries, labels = q.build_queries(cfg)
    choice, shortlist_keys = choice_options(cfg, labels)
    if cfg.mode == "choice":
        _check_shortlist(meta, cfg, shortlist_keys, str(tokens))
    # The final pass lays the kept tokens out the way they were selected: per-frame images, or
    # the model's native video (older artifacts record nothing: images).
    video_input = str(meta.extra_json("video_input") or "images")
    if cfg.video_input not in ("auto", video_input):
        raise ConfigError(
            f"{tokens}: its tokens were selected with --video-input {video_input}; the final "
            f"pass cannot answer from them as {cfg.video_input} (omit --video-input)"
        )
    loaded: list[Any] = [lvlm] if lvlm is not None else []

    def work(unit: Unit) -> pa.Table:
        if not loaded:
            loaded.append(check_family(q.load_model(cfg)))
        if getattr(loaded[0], "video_input", "images") != video_input:
            set_video_input(loaded[0], video_input)
        return answer_video_from_tokens(loaded[0], unit.data, queries, labels, cfg.mode, choice)

    summary = run_stage(
        str(output),
        kind="answers",
        # Per-frame tokens keep the cache keys they had before native video existed.
        config={**cfg.provenance(), "level": "tokens", **_native_key(video_input)},
        upstream=[
            key,
            q.queries_key(queries, labels),
            *shortlist_keys,
            *revision_key(cfg.model or spec),
        ],
        units=units,
        work=work,
        extra_metadata={
            **model_record(cfg.model or spec),
            "mode": cfg.mode,
            "level": "tokens",
            "video_input": video_input,
        },
        shard=shard,
        force=force,
        on_unit=None if on_video is None else lambda unit, _rows: on_video(unit.video_id or ""),
    )
    return summary


def _native_key(video_input: str) -> dict[str, str]:
    return {} if video_input == "images" else {"video_input": video_input}


def _check_shortlist(meta: Any, config: Any, shortlist_keys: Sequence[str], tokens: str) -> None:
    """Tokens selected for a shortlist's choice prompt are answered with the same shortlist."""
    selected_for = meta.extra_json("shortlist")
    if selected_for is None:
        return
    if config.shortlist_from is None:
        raise ConfigError(
            f"{tokens}: tokens were selected for a shortlist of {selected_for} labels; give "
            "the same --shortlist-from and --shortlist"
        )
    if int(selected_for) != config.shortlist or (
        meta.upstream and not set(shortlist_keys) <= set(meta.upstream)
    ):
        raise InputError(
            f"{tokens}: tokens were selected for another shortlist (--shortlist {selected_for} "
            "of other predictions) than --shortlist-from "
            f"{config.shortlist_from} --shortlist {config.shortlist}"
        )


def answer_video_from_tokens(
    lvlm: SelectionHooks,
    video: pa.Table,
    queries: Sequence[Any],
    labels: Sequence[str],
    mode: str,
    choice: ChoiceOptions | None = None,
) -> pa.Table:
    """`answers` rows of one video from its `tokens` rows. Choice mode offers `choice`'s
    options for the video in its orderings (default: `labels` in their order, one ask)."""
    video_id = video.column("video_id")[0].as_py()
    names: tuple[str, ...] = ("video_id", "frame_index", "timestamp", "segment", "label")
    names += ("query_kind", "question", "p_yes", "yes_mass", "no_mass", "answer", "error")
    if mode == "choice":
        names += ("ordering",)
    rows: dict[str, list[Any]] = {n: [] for n in names}
    options: list[str] = []
    orderings: list[list[int]] = []
    options_error = None
    if mode == "choice":
        try:
            options, orderings = (choice or ChoiceOptions(tuple(labels))).for_video(video_id)
        except NoOptions as exc:
            options_error = str(exc)

    def add(label: Any, kind: str, text: str, error: str | None = None, **values: Any) -> None:
        for name, value in (
            ("video_id", video_id),
            ("frame_index", None),
            ("timestamp", None),
            ("segment", -1),
            ("label", label),
            ("query_kind", kind),
            ("question", text),
            ("error", error),
        ):
            rows[name].append(value)
        for name in ("p_yes", "yes_mass", "no_mass", "answer", "ordering"):
            if name in rows:
                rows[name].append(values.get(name))

    token_labels = video.column("label").to_pylist() if "label" in video.column_names else []
    per_label = any(lab is not None for lab in token_labels)
    for query in queries:
        error = options_error
        subset = video
        if per_label:
            if query.label is None:
                error = "tokens were selected per label; ask a {label} question"
            else:
                picked = [i for i, lab in enumerate(token_labels) if lab == query.label]
                subset = video.take(picked)
                if not picked:
                    error = f"no tokens were selected for label {query.label!r}"
        if error is None:
            sub_errors = [e for e in subset.column("error").to_pylist() if e is not None]
            if sub_errors:
                error = sub_errors[0]
        if error is None:
            good = subset.filter(pa.compute.is_valid(subset.column("embedding")))
            width = int(good.column("width")[0].as_py())
            height = int(good.column("height")[0].as_py())
            kept = kept_from_rows(good)
        if mode == "choice":
            asked = None
            if error is None:
                ask = functools.partial(answer_choice, lvlm, kept, width, height, query.text)
                asked = ask_in_orders(ask, options, orderings)
            for k, label, letter, p in choice_rows(options, orderings, asked):
                add(label, query.kind, query.text, error, p_yes=p, answer=letter, ordering=k)
            if not options:  # no shortlist for this video: one error row per query
                add(None, query.kind, query.text, error, ordering=0)
        else:
            values: dict[str, Any] = {}
            if error is None:
                p_yes, yes, no = answer_yes_no(lvlm, kept, width, height, query.text)
                values = {"p_yes": p_yes, "yes_mass": yes, "no_mass": no}
            add(query.label, query.kind, query.text, error, **values)
    extra = [SEGMENT_FIELD, *([ORDERING_FIELD] if mode == "choice" else [])]
    return build_table("answers", rows, extra_fields=extra)
