"""Greedy generation of the transformers backend (a mixin of `HFLVLM`): with reuse, decoding
continues from the shared prefix's KV cache (`hf_reuse.greedy_decode`); otherwise, or when the
model's generation config changes greedy decoding, through transformers' own `generate`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from zsar_cli.backends.hf_reuse import ReuseBlocked, greedy_decode
from zsar_cli.backends.lvlm_base import Clip, LVLMInputs

if TYPE_CHECKING:
    from zsar_cli.backends.hf_lvlm import HFLVLM

# Generation settings that change greedy decoding; a model whose generation config sets one
# generates through transformers' `generate` (without reuse), which applies them.
GREEDY_CHANGERS: dict[str, tuple[object, ...]] = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
}


class GreedyGeneration:
    """`generate` and its two paths; mixed into `HFLVLM`, whose state it uses."""

    def _plain_greedy(self) -> bool:
        """Whether greedy decoding here needs nothing but argmax and the end tokens."""
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        config = getattr(lvlm.model, "generation_config", None)
        return all(
            getattr(config, name, None) in allowed for name, allowed in GREEDY_CHANGERS.items()
        )

    def _own_positions(self, inputs: LVLMInputs) -> bool:
        """Whether the batch's positions are ours, not what the model's `generate` would
        compute (Qwen2.5-VL clips: temporal positions from real times, which its single
        interval per video cannot express): decoding must then continue from them."""
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        return (
            lvlm.model_type == "qwen2_5_vl"
            and lvlm.video_input == "native"
            and any(isinstance(ims, Clip) for ims in inputs.images or [])
        )

    def _end_ids(self) -> list[int]:
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        config = getattr(lvlm.model, "generation_config", None)
        eos = getattr(config, "eos_token_id", None)
        if eos is None:
            eos = lvlm.tokenizer.eos_token_id
        if eos is None:
            return []
        return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]

    @torch.inference_mode()
    def generate(
        self,
        images_per_prompt: Sequence[Sequence[np.ndarray]],
        prompts: Sequence[str],
        max_new_tokens: int = 64,
    ) -> list[str]:
        """Greedy decoding; returns only the newly generated text of each prompt."""
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        if len(images_per_prompt) != len(prompts):
            raise ValueError("one image list per prompt is required")
        answers = [""] * len(prompts)
        capped = lvlm.capped(images_per_prompt)
        for part in lvlm._batches(capped):
            inputs = lvlm._processed([capped[i] for i in part], [prompts[i] for i in part])
            texts = None
            if (lvlm.reusing or lvlm._own_positions(inputs)) and lvlm._plain_greedy():
                with contextlib.suppress(ReuseBlocked):
                    texts = lvlm._generate_reusing(inputs, max_new_tokens)
            if texts is None:
                texts = lvlm._generate_plain(inputs, max_new_tokens)
            for i, text in zip(part, texts, strict=True):
                answers[i] = text
        return answers

    def _generate_reusing(self, inputs: LVLMInputs, max_new_tokens: int) -> list[str]:
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        texts = [""] * inputs.input_ids.shape[0]
        pad = lvlm.tokenizer.pad_token_id
        for segment in lvlm.prefill(inputs):
            ids = greedy_decode(
                lvlm.decoder(), segment, max_new_tokens, lvlm._end_ids(), int(pad or 0)
            )
            for row, tokens in zip(segment.rows, ids, strict=True):
                texts[row] = lvlm.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return texts

    def _generate_plain(self, inputs: LVLMInputs, max_new_tokens: int) -> list[str]:
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        out = lvlm.model.generate(
            **inputs.tensors,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=lvlm.tokenizer.pad_token_id,
        )
        new = out[:, inputs.input_ids.shape[1] :]
        return [t.strip() for t in lvlm.tokenizer.batch_decode(new, skip_special_tokens=True)]
