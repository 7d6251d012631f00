"""The Self-ReS hooks of the transformers backend (a mixin of `HFLVLM`, the `SelectionHooks`
Protocol): the merged `inputs_embeds` as the language model receives them, and the language
model + LM head run on them with attentions / hidden states.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, cast

import torch

from zsar_cli.backends.hf_reuse import ReuseBlocked
from zsar_cli.backends.lvlm_base import EmbeddedInputs, LVLMInputs

if TYPE_CHECKING:
    from zsar_cli.backends.hf_lvlm import HFLVLM


class SelectionHookMethods:
    """`language_model`, `embed_inputs`, `run_language_model`; mixed into `HFLVLM`."""

    def language_model(self) -> Any:
        """The decoder stack that consumes `inputs_embeds` (without the LM head)."""
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        return lvlm.model.get_decoder()

    def embed_inputs(self, inputs: LVLMInputs) -> EmbeddedInputs:
        """`inputs_embeds` with image features merged, exactly as the language model receives them.

        With reuse the image features come from the cache (computed once per image set);
        otherwise the multimodal model runs up to the entry of its language model and that
        call's arguments are captured. Either way each family's own feature extraction and
        merging (pixel shuffle, anyres packing, projector) is used, not a re-implementation.
        """
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        if lvlm.reusing and inputs.images is not None:
            with contextlib.suppress(ReuseBlocked):
                return lvlm._embed_cached(inputs)
        captured = lvlm._captured(inputs)
        keep = {"inputs_embeds", "attention_mask", "position_ids", "past_key_values", "use_cache"}
        keep |= {"cache"}
        return EmbeddedInputs(
            inputs_embeds=captured["inputs_embeds"],
            attention_mask=inputs.attention_mask,
            position_ids=captured.get("position_ids", inputs.position_ids),
            image_token_mask=inputs.image_token_mask,
            extra={k: v for k, v in captured.items() if k not in keep},
        )

    @torch.inference_mode()
    def run_language_model(
        self,
        embedded: EmbeddedInputs,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        logits_to_keep: int = 1,
    ) -> Any:
        """Run the language model + LM head on `embedded.inputs_embeds`.

        Returns an object with `logits` (B×logits_to_keep×V), `hidden_states` (embeddings + one
        per layer, each B×L×H) and `attentions` (one B×heads×L×L per layer) when asked. Attention
        weights need the eager implementation; the model is switched to it on first request.
        """
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        if output_attentions and getattr(lvlm.model.config, "_attn_implementation", "") != "eager":
            lvlm.model.set_attn_implementation("eager")
        kwargs: dict[str, Any] = dict(embedded.extra)
        kwargs.update(
            inputs_embeds=embedded.inputs_embeds,
            attention_mask=embedded.attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            use_cache=False,
        )
        if embedded.position_ids is not None:
            kwargs["position_ids"] = embedded.position_ids
        out = lvlm.language_model()(**kwargs)
        hidden = (
            out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        )
        out.logits = lvlm.model.get_output_embeddings()(hidden).float()
        return out
