"""The `LVLM` Protocol: what stages may ask of a vision-language model backend.

Input: RGB frames (H×W×3 uint8 numpy arrays) and prompt texts. Output: numpy scores (p_yes and
the yes/no probability masses, option probabilities) and generated text. The lower-level hooks
(`build_inputs`, `embed_inputs`, `run_language_model`) expose the model's input sequence, the
positions of its visual tokens and the language model run on `inputs_embeds`, which token
selection (Self-ReS) needs. Implemented by `zsar_cli.backends.hf_lvlm.HFLVLM`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class YesNoScores:
    """Per prompt: p_yes = yes_mass / (yes_mass + no_mass), with both masses (softmax probability
    summed over every single-token spelling of yes / of no at the next-token position)."""

    p_yes: np.ndarray
    yes_mass: np.ndarray
    no_mass: np.ndarray


class LVLM(Protocol):
    """A vision-language model answering questions about one or several frames per prompt."""

    spec: str

    def yes_no(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> YesNoScores:
        """One forward pass per prompt; scores read from the next-token logits."""
        ...

    def choice(
        self, images: Sequence[np.ndarray], question: str, options: Sequence[str]
    ) -> np.ndarray:
        """Probabilities over `options` (lettered A, B, C… in the prompt), summing to 1."""
        ...

    def generate(
        self,
        images_per_prompt: Sequence[Sequence[np.ndarray]],
        prompts: Sequence[str],
        max_new_tokens: int = 64,
    ) -> list[str]:
        """Greedy free-text answers (images may be empty lists for text-only prompts)."""
        ...

    def build_inputs(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> Any:
        """Processor output for a batch (input_ids, attention_mask, pixel values...) plus the
        boolean mask of image-token positions in the sequence."""
        ...

    def embed_inputs(self, inputs: Any) -> Any:
        """`inputs_embeds` with image features merged, as the language model would receive them."""
        ...

    def run_language_model(
        self,
        embedded: Any,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        logits_to_keep: int = 1,
    ) -> Any:
        """Run only the language model (+ LM head) on `inputs_embeds`."""
        ...
