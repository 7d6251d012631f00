"""transformers image-text-to-text backend (`hf:ORG/NAME`, `hf:/local/dir`, `builtin:world-lvlm`).

Input: RGB frames (H×W×3 uint8) and prompt texts. Output: yes/no confidences read from the
next-token logits of ONE forward pass (never from generated text), option-letter probabilities for
multiple choice, greedy generations, and the lower-level pieces token selection needs (model
inputs with image-token positions, `inputs_embeds` with image features merged, the language model
run on `inputs_embeds` with attentions/hidden states).

Models load through `AutoProcessor` + `AutoModelForImageTextToText` and prompts are built with the
processor's own chat template, so any family those Auto classes know works the same way. Tested
families (tiny random-init models in the tests; see the README's model table): Idefics3 /
SmolVLM2 (the default `hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct` and the shipped world
model), LLaVA-OneVision, Qwen2.5-VL and Qwen3-VL. A `lvlm_base.Clip` goes in as one native video
with its frames' real times where `video_input` is native (`hf_video`); batches are laid out in
`hf_batch`. Source checks and device/dtype resolution are in `hf_loading`, text-only generation
(`describe`) in `hf_text`, the prompt wording in `zsar_cli.prompts`.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsar_cli.backends.contract import check_lvlm_folder
from zsar_cli.backends.hf_batch import BatchMethods
from zsar_cli.backends.hf_generation import GreedyGeneration
from zsar_cli.backends.hf_hooks import SelectionHookMethods
from zsar_cli.backends.hf_inputs import InContextMethods, _image_token_id, _video_token_id
from zsar_cli.backends.hf_inputs import cap_pixels as cap_pixels
from zsar_cli.backends.hf_inputs import chat_prompt as chat_prompt
from zsar_cli.backends.hf_inputs import single_token_ids as single_token_ids
from zsar_cli.backends.hf_inputs import writable as writable
from zsar_cli.backends.hf_loading import BUILTIN_MODELS as BUILTIN_MODELS
from zsar_cli.backends.hf_loading import REBUILD_HINT as REBUILD_HINT
from zsar_cli.backends.hf_loading import builtin_spec as builtin_spec
from zsar_cli.backends.hf_loading import (
    check_source,
    load_processor_and_model,
    resolve_device,
    resolve_dtype,
)
from zsar_cli.backends.hf_reuse import (
    DEFAULT_CACHE_MB,
    PLAIN_DECODER_ARGS,
    Captured,
    Decoder,
    FeatureCache,
    Group,
    ReuseBlocked,
    Row,
    Segment,
    images_key,
    plan_groups,
    prefill,
)
from zsar_cli.backends.hf_video import video_support
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

DEFAULT_SPEC = "hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
# Families whose rotary positions are computed by the model itself from the image grid
# (multimodal RoPE); passing plain 1-D position ids would break them.
MODEL_COMPUTES_POSITIONS = frozenset({"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "glm4v"})


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
    reuse: bool = True,
    feature_cache_mb: int = DEFAULT_CACHE_MB,
) -> HFLVLM:
    """Load `hf:<rest>` with AutoProcessor + AutoModelForImageTextToText (`reuse` and
    `feature_cache_mb`: see `HFLVLM`)."""
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
        reuse=reuse,
        feature_cache_mb=feature_cache_mb,
    )


# ---------------------------------------------------------------------------------------------
# The backend


class HFLVLM(BatchMethods, GreedyGeneration, SelectionHookMethods, InContextMethods):
    """A loaded transformers image-text-to-text model with its processor (implements `LVLM` and
    `SelectionHooks`).

    With `reuse` (the default) the image features of each image set are kept in a bounded cache
    (`feature_cache_mb`) and prompts about the same images share their prefix's KV cache where
    the chat template puts the images first (`zsar_cli.backends.hf_reuse`); `reuse=False` runs
    every prompt through the model's own forward pass, as the parity tests compare.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        spec: str,
        max_pixels: int | None = None,
        max_frames: int | None = None,
        batch_size: int = 8,
        reuse: bool = True,
        feature_cache_mb: int = DEFAULT_CACHE_MB,
        video_input: str = "images",
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
        self.video_token_id = _video_token_id(model, processor)
        self.model_type = str(getattr(model.config, "model_type", ""))
        # How clip prompts (`lvlm_base.Clip`) reach the model: "images" (one image per frame)
        # or "native" (the processor's video path with the frames' times); see set_video_input.
        self.video_input = video_input
        self.pass_position_ids = self.model_type not in MODEL_COMPUTES_POSITIONS
        self.reuse = reuse
        # Why reuse was switched off for this model, if it was (see PLAIN_DECODER_ARGS).
        self.reuse_blocked: str | None = None
        self.share_prefix = True
        self.features = FeatureCache(int(feature_cache_mb) * 2**20)
        self._decoder: Decoder | None = None
        # Prompts run on a shared prefix / whole, and prefix passes (vision runs and cache
        # hits are counted by `features`).
        self.stats = {"prefix_passes": 0, "shared_rows": 0, "whole_rows": 0}
        self.context = ()  # in-context examples (`InContextMethods`)
        self._context_images = []

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def reusing(self) -> bool:
        return self.reuse and self.reuse_blocked is None

    def video_support(self) -> str | None:
        """None when clips can go in as native video, else what is missing."""
        return video_support(self.model_type, self.processor)

    # -- reuse: cached image features, shared prefixes -----------------------------------------
    def decoder(self) -> Decoder:
        if self._decoder is None:
            text_config = self.model.config.get_text_config(decoder=True)
            self._decoder = Decoder(
                self.language_model(),
                self.model.get_output_embeddings(),
                self.model.get_input_embeddings(),
                text_config,
            )
        return self._decoder

    @torch.inference_mode()
    def _captured(self, inputs: LVLMInputs) -> dict[str, Any]:
        """The arguments the model hands its language model for this batch (vision tower,
        merging and position computation run; the language model does not)."""
        captured: dict[str, Any] = {}

        def hook(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
            captured.update(kwargs)
            raise Captured

        handle = self.language_model().register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with contextlib.suppress(Captured):
                self.model(**self._forward_kwargs(inputs))
        finally:
            handle.remove()
        if captured.get("inputs_embeds") is None:
            raise ModelError(f"{self.spec}: could not capture the language model's inputs_embeds")
        return captured

    def image_features(self, inputs: LVLMInputs) -> list[torch.Tensor | None]:
        """Per prompt, the features its image tokens receive (image tokens × hidden; None
        without images): from the cache, or computed once per image set for those missing."""
        if inputs.images is None:
            raise ValueError("image features need the inputs' images (use build_inputs)")
        keys = [images_key(ims) if ims else None for ims in inputs.images]
        found: dict[bytes, torch.Tensor] = {}
        missing: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key is None or key in found or key in missing:
                continue
            hit = self.features.get(key)
            if hit is None:
                missing[key] = i
            else:
                found[key] = hit
        todo = list(missing.items())
        # Every prompt of the batch about images not seen yet: the batch itself is captured (no
        # second processor call). Otherwise one prompt per missing image set is laid out anew.
        whole = len(todo) == len(keys)
        for start in range(0, len(todo), self.batch_size):
            part = todo[start : start + self.batch_size]
            if whole and len(part) == len(keys):
                sub = inputs
            else:
                sub = self._processed([inputs.images[i] for _, i in part], [""] * len(part))
            captured = self._captured(sub)
            extra = [
                name
                for name, value in captured.items()
                if name not in PLAIN_DECODER_ARGS
                and value is not None
                and not isinstance(value, (bool, int, float, str))
            ]
            if extra:
                self.reuse_blocked = (
                    f"the model passes {', '.join(sorted(extra))} to its language model"
                )
                raise ReuseBlocked
            embeds = captured["inputs_embeds"]
            for b, (key, _) in enumerate(part):
                features = embeds[b][sub.image_token_mask[b]].clone()
                self.features.put(key, features)
                found[key] = features
        out: list[torch.Tensor | None] = []
        for i, key in enumerate(keys):
            features = None if key is None else found[key]
            if features is not None and features.shape[0] != int(inputs.image_token_mask[i].sum()):
                raise ModelError(
                    f"{self.spec}: {features.shape[0]} cached image features for "
                    f"{int(inputs.image_token_mask[i].sum())} image tokens"
                )
            out.append(features)
        return out

    def _model_positions(self, inputs: LVLMInputs, embeds: torch.Tensor) -> torch.Tensor:
        """Position ids as the language model receives them: 1-D positions that skip the left
        padding, or the family's multimodal (3-D) RoPE positions computed by its base model."""
        if inputs.position_ids is not None:
            return inputs.position_ids
        mask = inputs.attention_mask
        plain = (mask.long().cumsum(-1) - 1).clamp(min=0)
        base = getattr(self.model, "model", None)
        compute = getattr(base, "compute_3d_position_ids", None)
        if compute is None or not bool(inputs.image_token_mask.any()):
            return plain.unsqueeze(0).expand(3, *plain.shape)
        wanted = inspect.signature(compute).parameters
        kwargs: dict[str, Any] = {k: v for k, v in inputs.tensors.items() if k in wanted}
        kwargs.update(inputs_embeds=embeds, attention_mask=mask)
        for name in ("cache", "past_key_values", "image_grid_thw", "video_grid_thw"):
            if name in wanted:
                kwargs.setdefault(name, None)
        positions = compute(**kwargs)
        if positions is None:
            raise ModelError(f"{self.spec}: the model computed no multimodal positions")
        return positions

    @torch.inference_mode()
    def _embed_cached(self, inputs: LVLMInputs) -> EmbeddedInputs:
        features = self.image_features(inputs)
        embeds = self.model.get_input_embeddings()(inputs.input_ids).clone()
        for i, rows in enumerate(features):
            if rows is not None:
                embeds[i, inputs.image_token_mask[i]] = rows.to(embeds.dtype)
        return EmbeddedInputs(
            inputs_embeds=embeds,
            attention_mask=inputs.attention_mask,
            position_ids=self._model_positions(inputs, embeds),
            image_token_mask=inputs.image_token_mask,
            extra={},
        )

    def _rows(self, inputs: LVLMInputs, embedded: EmbeddedInputs) -> list[Row]:
        """The batch's prompts without their left padding."""
        assert embedded.position_ids is not None
        keys = [images_key(ims) if ims else None for ims in (inputs.images or [])]
        rows = []
        for b in range(inputs.input_ids.shape[0]):
            real = inputs.attention_mask[b].bool()
            images = inputs.image_token_mask[b][real].nonzero()
            rows.append(
                Row(
                    embeds=embedded.inputs_embeds[b][real],
                    positions=embedded.position_ids[..., b, :][..., real],
                    ids=inputs.input_ids[b][real],
                    last_image=int(images[-1, 0]) if images.numel() else -1,
                    key=keys[b] if keys else None,
                )
            )
        return rows

    @torch.inference_mode()
    def prefill(self, inputs: LVLMInputs) -> list[Segment]:
        """Every prompt run up to its next token with cached image features, prompts about the
        same images sharing one pass over their common prefix (`hf_reuse.prefill`)."""
        embedded = self._embed_cached(inputs)
        rows = self._rows(inputs, embedded)
        if self.share_prefix:
            groups = plan_groups(rows)
        else:
            groups = [Group(list(range(len(rows))), 0)]
        for group in groups:
            if group.prefix:
                self.stats["prefix_passes"] += 1
                self.stats["shared_rows"] += len(group.rows)
            else:
                self.stats["whole_rows"] += len(group.rows)
        return prefill(self.decoder(), rows, groups, self.batch_size)

    # -- scoring -----------------------------------------------------------------------------
    @torch.inference_mode()
    def next_token_logits(self, inputs: LVLMInputs) -> torch.Tensor:
        """B×V float32 logits at the last position (one forward pass, no generation)."""
        if self.reusing and inputs.images is not None:
            with contextlib.suppress(ReuseBlocked):
                segments = self.prefill(inputs)
                logits = torch.empty(
                    (inputs.input_ids.shape[0], segments[0].logits.shape[-1]),
                    device=segments[0].logits.device,
                )
                for segment in segments:
                    logits[segment.rows] = segment.logits
                return logits
        out = self.model(**self._forward_kwargs(inputs), logits_to_keep=1)
        return out.logits[:, -1].float()

    def _batched_logits(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(prompt indices, their next-token logits) per batch of whole image sets."""
        if len(images_per_prompt) != len(prompts):
            raise ValueError("one image list per prompt is required")
        capped = self.capped(images_per_prompt)
        for part in self._batches(capped):
            inputs = self._processed([capped[i] for i in part], [prompts[i] for i in part])
            yield part, self.next_token_logits(inputs)

    def yes_no(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> YesNoScores:
        """p_yes and both masses per prompt. Prompts about the same images (one frame asked
        several questions) run their images once: pass them in one call."""
        yes_idx = torch.tensor(sorted(set(self.yes_ids.values())))
        no_idx = torch.tensor(sorted(set(self.no_ids.values())))
        yes = np.zeros(len(prompts))
        no = np.zeros(len(prompts))
        for part, logits in self._batched_logits(images_per_prompt, prompts):
            probs = torch.softmax(logits.double(), dim=-1).cpu()
            yes[part] = probs[:, yes_idx].sum(-1).numpy()
            no[part] = probs[:, no_idx].sum(-1).numpy()
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
        out = np.zeros((len(prompts), len(options)))
        for part, logits in self._batched_logits(images_per_prompt, prompts):
            probs = torch.softmax(logits.double(), dim=-1).cpu()
            mass = torch.stack([probs[:, ids].sum(-1) for ids in letters], dim=-1)
            out[part] = (mass / mass.sum(-1, keepdim=True).clamp_min(1e-300)).numpy()
        return out

    def choice(
        self, images: Sequence[np.ndarray], question: str, options: Sequence[str]
    ) -> np.ndarray:
        return self.choice_batch([images], [question], options)[0]
