"""transformers image-text-to-text backend (`hf:ORG/NAME`, `hf:/local/dir`, `builtin:world-lvlm`).

Input: RGB frames (H×W×3 uint8) and prompt texts. Output: yes/no confidences read from the
next-token logits of ONE forward pass (never from generated text), option-letter probabilities for
multiple choice, greedy generations, and the lower-level pieces token selection needs (model
inputs with image-token positions, `inputs_embeds` with image features merged, the language model
run on `inputs_embeds` with attentions/hidden states).

Models load through `AutoProcessor` + `AutoModelForImageTextToText` and prompts are built with the
processor's own chat template, so any family those Auto classes know works the same way. Tested
families: Idefics3 / SmolVLM (the default `hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct` and the
shipped world model) and LLaVA-OneVision (a tiny random-init model in the tests).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsar_cli.backends.hub import offline_if_unreachable
from zsar_cli.backends.lvlm_base import YesNoScores
from zsar_cli.errors import ConfigError, ModelError

DEFAULT_SPEC = "hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
YES_SPELLINGS: tuple[str, ...] = ("yes", "Yes", "YES", " yes", " Yes", " YES")
NO_SPELLINGS: tuple[str, ...] = ("no", "No", "NO", " no", " No", " NO")
CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BUILTIN_MODELS: dict[str, str] = {"world-lvlm": "world-lvlm"}
# Families whose rotary positions are computed by the model itself from the image grid
# (multimodal RoPE); passing plain 1-D position ids would break them.
MODEL_COMPUTES_POSITIONS = frozenset({"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "glm4v"})
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def builtin_spec(name: str) -> str:
    """`world-lvlm` → `hf:<package>/models/world-lvlm` (loaded like any local model folder)."""
    from zsar_cli.backends import MODELS_DIR

    if name not in BUILTIN_MODELS:
        known = ", ".join("builtin:" + n for n in BUILTIN_MODELS)
        raise ModelError(f"unknown built-in LVLM {name!r}; known: {known}")
    folder = MODELS_DIR / BUILTIN_MODELS[name]
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"builtin:{name}: {folder} is missing; rebuild it with "
            "`python scripts/build_world_lvlm_fastvlm.py --image-last --steps 6000 --out DIR`"
        )
    return f"hf:{folder}"


# ---------------------------------------------------------------------------------------------
# Prompt helpers (shared with scripts/build_world_lvlm_fastvlm.py, so the world model is trained on
# exactly the prompts the backend builds)


def option_letters(count: int) -> str:
    if not 1 <= count <= len(OPTION_LETTERS):
        raise ConfigError(f"multiple choice needs 1..{len(OPTION_LETTERS)} options, got {count}")
    return OPTION_LETTERS[:count]


def format_choice_prompt(question: str, options: Sequence[str]) -> str:
    """`question`, one `X. option` line per option, then the answer-with-a-letter instruction."""
    letters = option_letters(len(options))
    lines = [
        question.strip(),
        *(f"{letter}. {opt}" for letter, opt in zip(letters, options, strict=True)),
    ]
    return "\n".join([*lines, CHOICE_INSTRUCTION])


def chat_prompt(processor: Any, num_images: int, text: str) -> str:
    """One user turn (the images first, then the text) rendered with the processor's template."""
    content: list[dict[str, str]] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": text})
    messages = [{"role": "user", "content": content}]
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


def cap_frames(images: Sequence[np.ndarray], max_frames: int | None) -> list[np.ndarray]:
    """Keep at most `max_frames` images, uniformly spaced (first and last kept)."""
    if not max_frames or len(images) <= max_frames:
        return list(images)
    idx = np.linspace(0, len(images) - 1, max_frames).round().astype(int)
    return [images[i] for i in idx]


# ---------------------------------------------------------------------------------------------
# Loading


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"--device {device!r}: {exc}") from None


def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r}: expected auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _check_source(rest: str) -> tuple[str, bool]:
    """(name or path for from_pretrained, whether it is a local folder), with clear errors."""
    if not rest:
        raise ModelError("hf: spec needs a model name (hf:ORG/NAME) or a folder (hf:/path/to/dir)")
    path = Path(rest).expanduser()
    looks_local = rest.startswith(("/", ".", "~")) or path.exists()
    if looks_local:
        if not path.is_dir():
            raise ModelError(f"hf:{rest}: no such model folder")
        if not (path / "config.json").is_file():
            raise ModelError(f"hf:{rest}: not a transformers model folder (no config.json)")
        if not any(
            (path / n).is_file() for n in ("processor_config.json", "preprocessor_config.json")
        ):
            raise ModelError(
                f"hf:{rest}: model folder has no processor (processor_config.json or "
                "preprocessor_config.json); save one with processor.save_pretrained(dir)"
            )
        return str(path), True
    if rest.count("/") != 1:
        raise ModelError(f"hf:{rest}: expected hf:ORG/NAME or hf:/path/to/dir")
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
    if offline:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(rest, "config.json")
        if not isinstance(cached, str):
            raise ModelError(
                f"hf:{rest}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; download it "
                "first (huggingface-cli download) or pass hf:/path/to/dir"
            )
    return rest, False


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

    source, _local = _check_source(rest)
    torch_device = _resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, torch_device)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    transformers.logging.set_verbosity_error()
    hub = contextlib.nullcontext() if _local else offline_if_unreachable()
    with hub:
        processor, model = _load_processor_and_model(
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


def _load_processor_and_model(
    rest: str,
    source: str,
    kwargs: dict[str, Any],
    torch_dtype: Any,
    attn_implementation: str | None,
) -> tuple[Any, Any]:
    import transformers

    try:
        processor = transformers.AutoProcessor.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        hint = "" if Path(source).exists() else HUB_HINT
        raise ModelError(
            f"hf:{rest}: cannot load the processor ({_first_line(exc)}){hint}"
        ) from None
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
        raise ModelError(
            f"hf:{rest}: {type(processor).__name__} is not an image-text processor "
            "(the folder lacks an image processor or tokenizer)"
        )
    if not getattr(processor, "chat_template", None):
        raise ModelError(f"hf:{rest}: the processor has no chat template")
    model_kwargs = dict(kwargs, dtype=torch_dtype)
    if attn_implementation:
        model_kwargs["attn_implementation"] = attn_implementation
    try:
        model = transformers.AutoModelForImageTextToText.from_pretrained(source, **model_kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"hf:{rest}: cannot load the model ({_first_line(exc)})") from None
    return processor, model


HUB_HINT = (
    "; without network pass a saved model folder (hf:/path/to/dir) or set HF_HOME to a "
    "populated Hugging Face cache"
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# The backend


@dataclass
class LVLMInputs:
    """A processed batch: the processor's tensors plus where the image tokens sit.

    `tensors` holds input_ids, attention_mask, pixel_values (and family-specific extras such as
    pixel_attention_mask, image_sizes) on the model's device; `position_ids` are 1-D positions
    that ignore left padding (None where the model computes its own); `image_token_mask` is a
    B×L bool tensor, True at positions whose embedding is replaced by image features.
    """

    tensors: dict[str, torch.Tensor]
    position_ids: torch.Tensor | None
    image_token_mask: torch.Tensor

    @property
    def input_ids(self) -> torch.Tensor:
        return self.tensors["input_ids"]

    @property
    def attention_mask(self) -> torch.Tensor:
        return self.tensors["attention_mask"]

    def image_token_positions(self) -> list[torch.Tensor]:
        """Per prompt, the sequence indices of its image tokens (in order)."""
        return [row.nonzero().flatten() for row in self.image_token_mask]


@dataclass
class EmbeddedInputs:
    """What the language model receives: `inputs_embeds` (B×L×H) with image features merged,
    the attention mask and position ids, plus the image-token mask for locating visual tokens."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor | None
    image_token_mask: torch.Tensor
    extra: dict[str, Any]


class _Captured(Exception):
    """Raised by the language-model pre-hook to stop a forward pass once its inputs are known."""


class HFLVLM:
    """A loaded transformers image-text-to-text model with its processor (implements `LVLM`)."""

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


# ---------------------------------------------------------------------------------------------
# Text generation (for `describe`): a causal LM, or an LVLM's language model with no images


class HFTextGenerator:
    """Greedy text generation from chat prompts; `generate_text(prompts) -> answers`."""

    def __init__(
        self, spec: str, model: Any = None, tokenizer: Any = None, lvlm: HFLVLM | None = None
    ):
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.lvlm = lvlm

    @torch.inference_mode()
    def generate_text(self, prompts: Sequence[str], max_new_tokens: int = 256) -> list[str]:
        if self.lvlm is not None:
            return self.lvlm.generate([[] for _ in prompts], list(prompts), max_new_tokens)
        tok = self.tokenizer
        texts = []
        for prompt in prompts:
            if getattr(tok, "chat_template", None):
                messages = [{"role": "user", "content": prompt}]
                texts.append(
                    tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                )
            else:
                texts.append(prompt)
        device = next(self.model.parameters()).device
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        out = self.model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]


def load_text_generator(
    spec: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False
) -> HFTextGenerator:
    """`hf:NAME`/`hf:/dir`/`builtin:NAME` → a text generator. Image-text-to-text models are used
    through their language model (prompts without images); others load as causal LMs."""
    import transformers

    scheme, _, rest = spec.partition(":")
    if scheme == "builtin":
        spec = builtin_spec(rest)
        scheme, _, rest = spec.partition(":")
    if scheme != "hf":
        raise ModelError(f"{spec}: a text model needs an hf: or builtin: spec")
    if not rest:
        raise ModelError("hf: spec needs a model name (hf:ORG/NAME) or a folder (hf:/path/to/dir)")
    path = Path(rest).expanduser()
    local = rest.startswith(("/", ".", "~")) or path.exists()
    if local and not (path / "config.json").is_file():
        raise ModelError(f"hf:{rest}: not a transformers model folder (no config.json)")
    if not local:
        _check_source(rest)
    transformers.logging.set_verbosity_error()
    with contextlib.nullcontext() if local else offline_if_unreachable():
        return _load_text_generator(spec, rest, path, local, device, dtype, trust_remote_code)


def _load_text_generator(
    spec: str, rest: str, path: Path, local: bool, device: str, dtype: str, trust_remote_code: bool
) -> HFTextGenerator:
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(
            str(path) if local else rest, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError) as exc:
        hint = "" if local else HUB_HINT
        raise ModelError(
            f"hf:{rest}: cannot load the model config ({_first_line(exc)}){hint}"
        ) from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        lvlm = load_hf_lvlm(rest, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        return HFTextGenerator(spec, lvlm=lvlm)
    source = str(path) if local else rest
    torch_device = _resolve_device(device)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source, dtype=_resolve_dtype(dtype, torch_device), trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"hf:{rest}: cannot load the text model ({_first_line(exc)})") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model_any: Any = model  # transformers' decorated .to() confuses type checkers
    model_any.to(torch_device).eval()
    return HFTextGenerator(spec, model=model, tokenizer=tokenizer)
