"""Scoring an LVLM's visual tokens through its `SelectionHooks` (the model side of Self-ReS).

Input: a model implementing `zsar_cli.backends.lvlm_base.SelectionHooks` and one reflection
path's frames (RGB arrays) with the question. Output: `PathScores`, a score and the LVLM-input
embedding of every visual token, from one forward pass (attention the last input token pays to
each token, or the cosine similarity of their hidden states). `check_family` refuses models that
cannot expose or re-feed their visual tokens before any work. `zsar_cli.stages.select_tokens`
keeps the best tokens of each path; `zsar_cli.stages.self_res` answers from them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.stages.self_res_video import frames_per_unit, laid_out, tail_count, units_of

if TYPE_CHECKING:
    from zsar_cli.backends.lvlm_base import SelectionHooks

# Families whose kept tokens cannot be re-fed, and why. Qwen2-VL and Qwen2.5-VL are served: their
# 3-D positions are computed on the whole sequence and gathered; Qwen3-VL also keeps each token's
# DeepStack features (added to its hidden state in early decoder layers) beside its embedding.
UNSUPPORTED_FAMILIES: dict[str, str] = {
    "glm4v": "computes multimodal (3-D) RoPE positions zsar does not lay out",
}
# What a DeepStack family (Qwen3-VL) passes its language model besides `inputs_embeds`: the
# sequence positions of the visual tokens and, per DeepStack layer, their features in that order.
DEEPSTACK_MASK = "visual_pos_masks"
DEEPSTACK_EMBEDS = "deepstack_visual_embeds"


# ---------------------------------------------------------------------------------------------
# Model checks and switches


def check_family(lvlm: object) -> SelectionHooks:
    """Refuse backends/families that cannot expose or re-feed visual tokens, before any work;
    returns the model as what token selection may use of it."""
    from zsar_cli.backends.lvlm_base import SelectionHooks, missing_members

    spec = getattr(lvlm, "spec", type(lvlm).__name__)
    # The family first: a multimodal-RoPE model is refused for what it is, even by a backend
    # that lacks the hooks as well.
    family = str(getattr(lvlm, "model_type", ""))
    if family in UNSUPPORTED_FAMILIES:
        raise ModelError(
            f"{spec}: model family {family} {UNSUPPORTED_FAMILIES[family]}, so a subset of its "
            "visual tokens cannot be re-fed; Self-ReS supports Idefics3/SmolVLM, "
            "LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL and Qwen3-VL"
        )
    if not isinstance(lvlm, SelectionHooks):
        missing = ", ".join(missing_members(lvlm, SelectionHooks))
        raise ModelError(
            f"{spec}: this LVLM backend has no token-selection hooks (lacks {missing}); "
            "Self-ReS needs a transformers (hf:) model"
        )
    return lvlm


@contextlib.contextmanager
def uncapped_frames(lvlm: Any) -> Iterator[None]:
    """A path's frames (or the final pass's kept frames) must all reach the model: the backend's
    `max_frames` cap, meant for plain clip prompts, would silently drop some. Any backend: one
    without a cap is left as it is."""
    previous = getattr(lvlm, "max_frames", None)
    if previous is not None:
        lvlm.max_frames = None
    try:
        yield
    finally:
        if previous is not None:
            lvlm.max_frames = previous


@contextlib.contextmanager
def eager_attention(lvlm: SelectionHooks, needed: bool) -> Iterator[None]:
    """Attention weights exist only in the eager implementation; switch it on for the selection
    passes and restore the faster one (sdpa, flash) afterwards for everything else."""
    model = getattr(lvlm, "model", None)
    previous = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if not needed or model is None or previous in (None, "eager"):
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def resolve_layers(layers: Sequence[int], num_layers: int) -> list[int]:
    """Decoder layer numbers (negative from the end) → 0-based indices; () → all layers."""
    if not layers:
        return list(range(num_layers))
    out = []
    for layer in layers:
        index = layer + num_layers if layer < 0 else layer
        if not 0 <= index < num_layers:
            raise ConfigError(
                f"--layers {layer}: the model has {num_layers} decoder layers "
                f"(0..{num_layers - 1} or -{num_layers}..-1)"
            )
        out.append(index)
    return out


# ---------------------------------------------------------------------------------------------
# Scoring one reflection path


@dataclass
class PathScores:
    """Scores and LVLM-input embeddings of every visual token of a path's frames."""

    scores: np.ndarray  # (frames, tokens_per_frame) float32; native video: (units, per unit)
    embeddings: Any  # torch (frames, tokens_per_frame, hidden) on CPU, model dtype
    # DeepStack families: torch (frames, tokens_per_frame, layers, hidden); None otherwise.
    deepstack: Any = None

    @property
    def tokens_per_frame(self) -> int:
        return int(self.scores.shape[1])


def tokens_per_frame(
    lvlm: SelectionHooks, image: np.ndarray, prompt: str, video_frames: int | None = None
) -> int:
    """Visual tokens the model makes of one frame of this size (processor only, no forward); in
    native video mode, of one unit (a temporal patch of frames for the Qwen-VL families)."""
    k = frames_per_unit(lvlm)
    with uncapped_frames(lvlm):
        unit = laid_out(lvlm, [image] * k, [float(i) for i in range(k)], video_frames)
        inputs = lvlm.build_inputs([unit], [prompt])
    return int(inputs.image_token_mask[0].sum()) - tail_count(lvlm)


def score_path(
    lvlm: SelectionHooks,
    images: Sequence[np.ndarray],
    prompt: str,
    scorer: str,
    layers: Sequence[int],
    times: Sequence[float | None] | None = None,
    video_frames: int | None = None,
) -> PathScores:
    """One forward pass on [prefix ⊕ the path's visual tokens ⊕ prompt]; a score per token.
    In native video mode the path is a clip with the frames' `times`, and the scores and
    embeddings are per unit (`self_res_video`) instead of per frame; `video_frames` (the whole
    video's frame count) fixes the resolution where a clip's frames share one pixel budget."""
    import torch

    n = units_of(len(images), frames_per_unit(lvlm))
    with uncapped_frames(lvlm):
        stamps = times if times is not None else [None] * len(images)
        clip = laid_out(lvlm, images, stamps, video_frames)
        inputs = lvlm.build_inputs([clip], [prompt])
    embedded = lvlm.embed_inputs(inputs)
    visual = inputs.image_token_positions()[0]
    # A clip's trailing features that belong to no frame (LLaVA-OneVision's newline) are
    # neither scored nor kept: the final pass puts them back itself.
    positions = visual[: int(visual.numel()) - tail_count(lvlm)]
    count = int(positions.numel())
    if count == 0 or count % n:
        raise ModelError(
            f"{lvlm.spec}: {count} visual tokens for {len(images)} frames; cannot assign tokens "
            "to frames"
        )
    with eager_attention(lvlm, scorer == "attention"):
        out = lvlm.run_language_model(
            embedded,
            output_attentions=scorer == "attention",
            output_hidden_states=scorer == "similarity",
            logits_to_keep=1,
        )
    with torch.inference_mode():
        if scorer == "attention":
            attentions = out.attentions
            if not attentions or attentions[0] is None:
                raise ModelError(f"{lvlm.spec}: the model returned no attention weights")
            chosen = resolve_layers(layers, len(attentions))
            # Row -1: what the last input token (the one predicting the answer) looks at.
            per_layer = [attentions[i][0, :, -1, positions].float().mean(0) for i in chosen]
        else:
            hidden = out.hidden_states
            chosen = resolve_layers(layers, len(hidden) - 1)
            per_layer = []
            for i in chosen:
                states = hidden[i + 1][0].float()  # hidden_states[0] is the embedding output
                per_layer.append(
                    torch.nn.functional.cosine_similarity(
                        states[positions], states[-1].unsqueeze(0), dim=-1
                    )
                )
        scores = torch.stack(per_layer).mean(0).cpu().numpy().astype(np.float32)
        visual = embedded.inputs_embeds[0, positions].detach().cpu()
        deep = deepstack_features(lvlm, embedded, positions)
    return PathScores(
        scores.reshape(n, count // n),
        visual.reshape(n, count // n, -1),
        None if deep is None else deep.reshape(n, count // n, *deep.shape[1:]),
    )


def deepstack_features(lvlm: SelectionHooks, embedded: Any, positions: Any) -> Any:
    """Each visual token's DeepStack features, (tokens, layers, hidden) on CPU, or None for a
    family without them. The model lists them in the order of its visual positions, which must
    be the image tokens the scores are about."""
    import torch

    layers = embedded.extra.get(DEEPSTACK_EMBEDS)
    if not layers:
        return None
    mask = embedded.extra.get(DEEPSTACK_MASK)
    if mask is None or not torch.equal(mask[0].nonzero().flatten().cpu(), positions.cpu()):
        raise ModelError(
            f"{lvlm.spec}: the model's DeepStack positions are not its image tokens; cannot "
            "keep each token's DeepStack features"
        )
    return torch.stack([layer.detach() for layer in layers], dim=1).cpu()
