"""transformers image-text-to-text backend (`hf:ORG/NAME`, `hf:/local/dir`, `builtin:world-lvlm`).

Input: RGB frames (H×W×3 uint8) and prompt texts. Output: yes/no confidences read from the
next-token logits of ONE forward pass (never from generated text), option-letter probabilities for
multiple choice, greedy generations, and the lower-level pieces token selection needs (model
inputs with image-token positions, `inputs_embeds` with image features merged, the language model
run on `inputs_embeds` with attentions/hidden states).

Models load through `AutoProcessor` + `AutoModelForImageTextToText` and prompts are built with the
processor's own chat template, so any family those Auto classes know works the same way. Tested
families: Idefics3 / SmolVLM (the default `hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct` and the
shipped world model) and LLaVA-OneVision (a tiny random-init model in the tests). Source checks
and device/dtype resolution are in `hf_loading`, text-only generation (`describe`) in `hf_text`,
the prompt wording in `zsar_cli.prompts`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsar_cli.backends.contract import check_lvlm_folder
from zsar_cli.backends.hf_loading import (
    check_source,
    load_processor_and_model,
    resolve_device,
    resolve_dtype,
)
from zsar_cli.backends.hub import offline_if_unreachable

# Re-exported: frame caps, the hook dataclasses and the prompt text live in light modules (the
# stages and the build scripts import them from here too).
from zsar_cli.backends.lvlm_base import EmbeddedInputs as EmbeddedInputs
from zsar_cli.backends.lvlm_base import LVLMInputs as LVLMInputs
from zsar_cli.backends.lvlm_base import YesNoScores
from zsar_cli.backends.lvlm_base import cap_frames as cap_frames
from zsar_cli.errors import ModelError
from zsar_cli.prompts import CHOICE_INSTRUCTION as CHOICE_INSTRUCTION
from zsar_cli.prompts import NO_SPELLINGS as NO_SPELLINGS
from zsar_cli.prompts import OPTION_LETTERS as OPTION_LETTERS
from zsar_cli.prompts import YES_SPELLINGS as YES_SPELLINGS
from zsar_cli.prompts import format_choice_prompt as format_choice_prompt
from zsar_cli.prompts import option_letters as option_letters
from zsar_cli.prompts import user_turn

DEFAULT_SPEC = "hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
BUILTIN_MODELS: dict[str, str] = {"world-lvlm": "world-lvlm"}
REBUILD_HINT = "scripts/build_world_lvlm.sh"
# Families whose rotary positions are computed by the model itself from the image grid
# (multimodal RoPE); passing plain 1-D position ids would break them.
MODEL_COMPUTES_POSITIONS = frozenset({"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "glm4v"})


def builtin_spec(name: str) -> str:
    """`world-lvlm` → `hf:<package>/models/world-lvlm` (loaded like any local model folder)."""
    from zsar_cli.backends import MODELS_DIR

    if name not in BUILTIN_MODELS:
        known = ", ".join("builtin:" + n for n in BUILTIN_MODELS)
        raise ModelError(f"unknown built-in LVLM {name!r}; known: {known}")
    folder = MODELS_DIR / BUILTIN_MODELS[name]
    if not (folder / "config.json").is_file():
        raise ModelError(f"builtin:{name}: {folder} is missing; rebuild it with {REBUILD_HINT}")
    check_lvlm_folder(folder, f"builtin:{name}", required=True)
    return f"hf:{folder}"


# ---------------------------------------------------------------------------------------------
# Prompts and images as this backend's processor wants them


def chat_prompt(processor: Any, num_images: int, text: str) -> str:
    """One user turn (the images first, then the text) rendered with the processor's template."""
    messages = user_turn(num_images, text)
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def single_token_ids(tokenizer: Any, spellings: Sequence[str]) -> dict[str, int]:
    """spelling → token id, for every spelling the tokenizer encodes as exactly one token."""
    found: dict[str, int] = {}
    for spelling in spellings:
        ids = tokenizer.encode(spelling, add_special_tokens=False)
        # Decoding back guards against the unknown token and case-folding normalisers, which
        # would otherwise count "YES" as a spelling of yes through an unrelated id.
        if len(ids) == 1 and tokenizer.decode(ids).strip() == spelling.strip():
            found[spelling] = int(ids[0])
    return found


def cap_pixels(image: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """Downscale (keeping aspect) so width×height ≤ max_pixels; a large frame cannot exhaust RAM."""
    height, width = image.shape[:2]
    if not max_pixels or height * width <= max_pixels:
        return image
    from PIL import Image

    scale = (max_pixels / (height * width)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def writable(image: np.ndarray) -> np.ndarray:
    """A contiguous array torch can wrap without a warning: frames decoded from Arrow buffers
    are read-only, and the image processors' `torch.from_numpy` warns about those."""
    image = np.ascontiguousarray(image)
    return image if image.flags.writeable else image.copy()


# ---------------------------------------------------------------------------------------------
# Loading


def load_hf_lvlm(
    rest: str,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    max_pixels: int | None = None,
    max_frames: int | None = None,
    batch_size: int = 8,
    attn_implementation: str | None = None,
) -> HFLVLM:
    """Load `hf:<rest>` with AutoProcessor + AutoModelForImageTextToText."""
    import transformers

    source, local = check_source(rest)
    if local:
        check_lvlm_folder(Path(source), f"hf:{rest}")
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    transformers.logging.set_verbosity_error()
    hub = contextlib.nullcontext() if local else offline_if_unreachable()
    with hub:
        processor, model = load_processor_and_model(
            rest, source, kwargs, torch_dtype, attn_implementation
        )
    model.to(torch_device).eval()
    return HFLVLM(
        model,
        processor,
        spec=f"hf:{rest}",
        max_pixels=max_pixels,
        max_frames=max_frames,
        batch_size=batch_size,
    )


# ---------------------------------------------------------------------------------------------
# The backend


class _Captured(Exception):
    """Raised by the language-model pre-hook to stop a forward pass once its inputs are known."""


class HFLVLM:
    """A loaded transformers image-text-to-text model with its processor (implements `LVLM` and
    `SelectionHooks`)."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        spec: str,
        max_pixels: int | None = None,
        max_frames: int | None = None,
        batch_size: int = 8,
    ) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.spec = spec
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.batch_size = max(1, int(batch_size))
        # Batched prompts are left-padded so the last position is every prompt's next token.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.yes_ids = single_token_ids(self.tokenizer, YES_SPELLINGS)
        self.no_ids = single_token_ids(self.tokenizer, NO_SPELLINGS)
        if not self.yes_ids or not self.no_ids:
            raise ModelError(
                f"{spec}: the tokenizer has no single-token spelling of "
                f"{'yes' if not self.yes_ids else 'no'}; yes/no scoring is impossible"
            )
        self.image_token_id = _image_token_id(model, processor)
        self.model_type = str(getattr(model.config, "model_type", ""))
        self.pass_position_ids = self.model_type not in MODEL_COMPUTES_POSITIONS

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- inputs ------------------------------------------------------------------------------
    def prompt_text(self, num_images: int, text: str) -> str:
        return chat_prompt(self.processor, num_images, text)

    def build_inputs(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> LVLMInputs:
        """Apply the chat template and the processor to a batch (pixel and frame caps applied)."""
        if len(images_per_prompt) != len(prompts):
            raise ValueError("one image list per prompt is required")
        capped = [
            [cap_pixels(writable(im), self.max_pixels) for im in cap_frames(ims, self.max_frames)]
            for ims in images_per_prompt
        ]
        texts = [self.prompt_text(len(ims), p) for ims, p in zip(capped, prompts, strict=True)]
        has_images = any(capped)
        if has_images and not all(capped):
            raise ValueError("a batch must not mix prompts with and without images")
        call: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if has_images:
            call["images"] = capped
        batch = self.processor(**call)
        tensors = {k: v.to(self.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        for key, value in tensors.items():
            if value.is_floating_point():
                tensors[key] = value.to(self.model.dtype)
        mask = tensors["attention_mask"]
        position_ids = None
        if self.pass_position_ids:
            position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        image_mask = tensors["input_ids"] == self.image_token_id
        return LVLMInputs(tensors, position_ids, image_mask)

    def _forward_kwargs(self, inputs: LVLMInputs) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(inputs.tensors)
        if inputs.position_ids is not None:
            kwargs["position_ids"] = inputs.position_ids
        kwargs["use_cache"] = False
        return kwargs

    # -- scoring -----------------------------------------------------------------------------
    @torch.inference_mode()
    def next_token_logits(self, inputs: LVLMInputs) -> torch.Tensor:
        """B×V float32 logits at the last position (one forward pass, no generation)."""
        out = self.model(**self._forward_kwargs(inputs), logits_to_keep=1)
        return out.logits[:, -1].float()

    def _chunks(self, n: int) -> Iterator[slice]:
        for start in range(0, n, self.batch_size):
            yield slice(start, min(n, start + self.batch_size))

    def yes_no(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> YesNoScores:
        yes_idx = torch.tensor(sorted(set(self.yes_ids.values())))
        no_idx = torch.tensor(sorted(set(self.no_ids.values())))
        yes_mass, no_mass = [], []
        for part in self._chunks(len(prompts)):
            logits = self.next_token_logits(
                self.build_inputs(images_per_prompt[part], prompts[part])
            )
            probs = torch.softmax(logits.double(), dim=-1).cpu()
            yes_mass.append(probs[:, yes_idx].sum(-1).numpy())
            no_mass.append(probs[:, no_idx].sum(-1).numpy())
        yes = np.concatenate(yes_mass) if yes_mass else np.zeros(0)
        no = np.concatenate(no_mass) if no_mass else np.zeros(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            p_yes = np.where(yes + no > 0, yes / (yes + no), 0.5)
        return YesNoScores(p_yes=p_yes, yes_mass=yes, no_mass=no)

    def letter_ids(self, count: int) -> list[list[int]]:
        """Per option letter, the ids of its single-token spellings ("A", " A")."""
        ids = []
        for letter in option_letters(count):
            found = sorted(set(single_token_ids(self.tokenizer, (letter, " " + letter)).values()))
            if not found:
                raise ModelError(f"{self.spec}: option letter {letter!r} is not a single token")
            ids.append(found)
        return ids

    def choice_batch(
        self,
        images_per_prompt: Sequence[Sequence[np.ndarray]],
        questions: Sequence[str],
        options: Sequence[str],
    ) -> np.ndarray:
        """P×O option probabilities: softmax mass of each option letter, renormalised."""
        letters = self.letter_ids(len(options))
        prompts = [format_choice_prompt(q, options) for q in questions]
        rows = []
        for part in self._chunks(len(prompts)):
            logits = self.next_token_logits(
                self.build_inputs(images_per_prompt[part], prompts[part])
            )
            probs = torch.softmax(logits.double(), dim=-1).cpu()
            mass = torch.stack([probs[:, ids].sum(-1) for ids in letters], dim=-1)
            rows.append((mass / mass.sum(-1, keepdim=True).clamp_min(1e-300)).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, len(options)))

    def choice(
        self, images: Sequence[np.ndarray], question: str, options: Sequence[str]
    ) -> np.ndarray:
        return self.choice_batch([images], [question], options)[0]

    @torch.inference_mode()
    def generate(
        self,
        images_per_prompt: Sequence[Sequence[np.ndarray]],
        prompts: Sequence[str],
        max_new_tokens: int = 64,
    ) -> list[str]:
        """Greedy decoding; returns only the newly generated text of each prompt."""
        answers: list[str] = []
        for part in self._chunks(len(prompts)):
            inputs = self.build_inputs(images_per_prompt[part], prompts[part])
            out = self.model.generate(
                **inputs.tensors,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            new = out[:, inputs.input_ids.shape[1] :]
            answers.extend(
                t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)
            )
        return answers

    # -- hooks for token selection -----------------------------------------------------------
    def language_model(self) -> Any:
        """The decoder stack that consumes `inputs_embeds` (without the LM head)."""
        return self.model.get_decoder()

    @torch.inference_mode()
    def embed_inputs(self, inputs: LVLMInputs) -> EmbeddedInputs:
        """`inputs_embeds` with image features merged, exactly as the language model receives them.

        Runs the multimodal model up to the entry of its language model and captures that call's
        arguments, so each family's own feature extraction and merging (pixel shuffle, anyres
        packing, projector) is used rather than a re-implementation.
        """
        captured: dict[str, Any] = {}

        def hook(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
            captured.update(kwargs)
            raise _Captured

        handle = self.language_model().register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with contextlib.suppress(_Captured):
                self.model(**self._forward_kwargs(inputs))
        finally:
            handle.remove()
        if captured.get("inputs_embeds") is None:
            raise ModelError(f"{self.spec}: could not capture the language model's inputs_embeds")
        keep = {"inputs_embeds", "attention_mask", "position_ids", "past_key_values", "use_cache"}
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
        if output_attentions and getattr(self.model.config, "_attn_implementation", "") != "eager":
            self.model.set_attn_implementation("eager")
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
        out = self.language_model()(**kwargs)
        hidden = (
            out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        )
        out.logits = self.model.get_output_embeddings()(hidden).float()
        return out


def _image_token_id(model: Any, processor: Any) -> int:
    for owner, name in (
        (model.config, "image_token_id"),
        (model.config, "image_token_index"),
        (processor, "image_token_id"),
    ):
        value = getattr(owner, name, None)
        if isinstance(value, int):
            return value
    token = getattr(processor, "image_token", "<image>")
    return int(processor.tokenizer.convert_tokens_to_ids(token))
