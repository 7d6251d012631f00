"""What stages may ask of a vision-language model backend, as Protocols.

Input: RGB frames (H×W×3 uint8 numpy arrays) and prompt texts. Output: numpy scores (p_yes and
the yes/no probability masses, option probabilities) and generated text.

Three Protocols, because not every backend can do everything:
- `LVLM`: answers (yes/no confidences, multiple choice, free text). Every LVLM backend;
- `SelectionHooks`: the model's input sequence, the positions of its visual tokens and its
  language model run on `inputs_embeds`, which token selection (Self-ReS, `select-tokens`,
  `query-lvlm --tokens`, `classify --lvlm --self-res`) needs. Only backends that expose their
  internals (`zsar_cli.backends.hf_lvlm.HFLVLM`);
- `TextGenerator`: free text-only generation (`describe` asks for records through
  `zsar_cli.backends.text_base.RecordGenerator`).
`yes_no_many`, `choice_many` and `generate_many` ask every question about every unit (a frame or
a clip) in one call, which is how a backend can reuse a unit's image work across its questions.
A clip's frames may come as a `Clip` (a list carrying the frames' presentation times), which a
backend switched to native video input (`set_video_input`) gives its model as one video.
numpy only: no torch here (tensor types appear in annotations alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from zsar_cli.errors import ModelError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class YesNoScores:
    """Per prompt: p_yes = yes_mass / (yes_mass + no_mass), with both masses (softmax probability
    summed over every single-token spelling of yes / of no at the next-token position)."""

    p_yes: np.ndarray
    yes_mass: np.ndarray
    no_mass: np.ndarray


@dataclass(frozen=True)
class ContextTurn:
    """An in-context example shown before a query: its images, the user text asked about them
    (laid out like the query's) and the correct answer (what the assistant turn says)."""

    images: tuple[np.ndarray, ...]
    text: str
    answer: str


class Clip(list):  # type: ignore[type-arg]
    """A clip's frames (RGB arrays, in temporal order) with their presentation times in seconds.

    A list of images to every backend; one whose video input is `native` hands the frames to
    its processor's video path with these times (never an assumed frame rate), so a model is
    told when each frame was shown even for variable-frame-rate or mid-video clips."""

    def __init__(
        self,
        frames: Sequence[np.ndarray],
        times: Sequence[float],
        resolution_frames: int | None = None,
    ) -> None:
        super().__init__(frames)
        if len(times) != len(self):
            raise ValueError(f"{len(self)} frames but {len(times)} times")
        self.times: tuple[float, ...] = tuple(float(t) for t in times)
        # A processor that shares one pixel budget among a clip's frames (Qwen3-VL) gives these
        # frames the resolution a clip of this many frames would get: a Self-ReS path or final
        # pass is then laid out at the resolution of the whole video. None: this clip's length.
        self.resolution_frames = resolution_frames


def cap_frames(images: Sequence[np.ndarray], max_frames: int | None) -> list[np.ndarray]:
    """Keep at most `max_frames` images, uniformly spaced (first and last kept); a `Clip` stays
    a `Clip` with the kept frames' times."""
    if not max_frames or len(images) <= max_frames:
        return images if isinstance(images, Clip) else list(images)
    idx = np.linspace(0, len(images) - 1, max_frames).round().astype(int)
    if isinstance(images, Clip):
        return Clip([images[i] for i in idx], [images.times[i] for i in idx])
    return [images[i] for i in idx]


def set_video_input(lvlm: object, requested: str) -> str:
    """Switch a backend's clip prompts to `native` video or separate `images`; `auto` picks
    native where the backend's family has a video path. Returns the mode in effect; a backend
    that cannot serve `native` fails with one line naming what is missing."""
    spec = getattr(lvlm, "spec", type(lvlm).__name__)
    support = getattr(lvlm, "video_support", None)
    missing = support() if callable(support) else "this backend has no video input"
    if requested == "auto":
        requested = "images" if missing else "native"
    if requested == "native" and missing:
        raise ModelError(f"{spec}: --video-input native: {missing}; use --video-input images")
    if getattr(lvlm, "video_input", requested) != requested:
        lvlm.video_input = requested  # type: ignore[attr-defined]
        features = getattr(lvlm, "features", None)
        if features is not None:  # cached features of clips laid out the other way
            features.clear()
    return requested


@runtime_checkable
class LVLM(Protocol):
    """A vision-language model answering questions about one or several frames per prompt."""

    spec: str
    """The spec it was loaded from, e.g. `hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct`."""

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

    def choice_batch(
        self,
        images_per_prompt: Sequence[Sequence[np.ndarray]],
        questions: Sequence[str],
        options: Sequence[str],
    ) -> np.ndarray:
        """P×O option probabilities, one row per question (each with its own images)."""
        ...

    def generate(
        self,
        images_per_prompt: Sequence[Sequence[np.ndarray]],
        prompts: Sequence[str],
        max_new_tokens: int = 64,
    ) -> list[str]:
        """Greedy free-text answers (images may be empty lists for text-only prompts)."""
        ...


@runtime_checkable
class InContext(Protocol):
    """A backend that can put example turns before its prompts (`query-lvlm --examples`,
    `classify --lvlm --examples`)."""

    def in_context(self, turns: Sequence[ContextTurn]) -> AbstractContextManager[None]:
        """Inside the block every prompt starts with `turns` (user: images and text; assistant:
        the answer), then the query's own turn; no turns = the plain prompts."""
        ...


def _grid(
    images_per_unit: Sequence[Sequence[np.ndarray]], questions: Sequence[str]
) -> tuple[list[Sequence[np.ndarray]], list[str]]:
    """Every question about every unit, unit-major: the prompts about one unit's images are
    adjacent, and each unit's image list is the same object in all of them."""
    images = [ims for ims in images_per_unit for _ in questions]
    prompts = [q for _ in images_per_unit for q in questions]
    return images, prompts


def yes_no_many(
    lvlm: LVLM, images_per_unit: Sequence[Sequence[np.ndarray]], questions: Sequence[str]
) -> YesNoScores:
    """Every question about every unit (a frame, or a clip's frames) in one call: arrays of
    shape (units, questions). A backend that reuses work across prompts about the same images
    (the `hf:` one) then runs each unit's images once, however many questions there are."""
    images, prompts = _grid(images_per_unit, questions)
    scores = lvlm.yes_no(images, prompts)
    shape = (len(images_per_unit), len(questions))
    return YesNoScores(
        p_yes=np.asarray(scores.p_yes).reshape(shape),
        yes_mass=np.asarray(scores.yes_mass).reshape(shape),
        no_mass=np.asarray(scores.no_mass).reshape(shape),
    )


def choice_many(
    lvlm: LVLM,
    images_per_unit: Sequence[Sequence[np.ndarray]],
    questions: Sequence[str],
    options: Sequence[str],
) -> np.ndarray:
    """Option probabilities of every question about every unit: (units, questions, options)."""
    images, prompts = _grid(images_per_unit, questions)
    probs = np.asarray(lvlm.choice_batch(images, prompts, options))
    return probs.reshape(len(images_per_unit), len(questions), len(options))


def generate_many(
    lvlm: LVLM,
    images_per_unit: Sequence[Sequence[np.ndarray]],
    questions: Sequence[str],
    max_new_tokens: int,
) -> list[list[str]]:
    """Greedy answers to every question about every unit: one list per unit."""
    images, prompts = _grid(images_per_unit, questions)
    texts = lvlm.generate(images, prompts, max_new_tokens)
    q = len(questions)
    return [list(texts[u * q : (u + 1) * q]) for u in range(len(images_per_unit))]


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
    images: list[list[np.ndarray]] | None = None
    """Per prompt, the images as the processor received them (caps applied): what a backend
    keys its cache of image features by. None where the batch was assembled otherwise."""
    texts: list[str] | None = None
    """Per prompt, the rendered chat text handed to the processor (before it expands image and
    video placeholders): where a native clip's times can be read back."""

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


@runtime_checkable
class SelectionHooks(Protocol):
    """The internals token selection reads and re-feeds (Self-ReS). Checked with `isinstance`
    before any work (`zsar_cli.stages.select_tokens.check_family`)."""

    spec: str
    model: Any
    """The underlying network: its input embeddings fill the final pass's text slots, and its
    attention implementation is switched to eager while attention weights are read."""
    model_type: str
    """The transformers family (`idefics3`, `llava_onevision`, ...)."""
    pass_position_ids: bool
    """False for families that compute multimodal (3-D) RoPE positions themselves."""
    max_frames: int | None
    """The per-prompt frame cap; lifted while a reflection path or the kept frames are fed."""
    yes_ids: dict[str, int]
    no_ids: dict[str, int]
    """spelling → token id of the single-token spellings of yes and of no."""

    def letter_ids(self, count: int) -> list[list[int]]:
        """Per option letter, the ids of its single-token spellings ("A", " A")."""
        ...

    def build_inputs(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> LVLMInputs:
        """The chat template and the processor applied to a batch, with image-token positions."""
        ...

    def embed_inputs(self, inputs: LVLMInputs) -> EmbeddedInputs:
        """`inputs_embeds` with image features merged, as the language model would receive them."""
        ...

    def run_language_model(
        self,
        embedded: EmbeddedInputs,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        logits_to_keep: int = 1,
    ) -> Any:
        """Run only the language model (+ LM head) on `inputs_embeds`."""
        ...


@runtime_checkable
class TextGenerator(Protocol):
    """Greedy text generation from text-only chat prompts (`zsar describe`)."""

    spec: str

    def generate_text(self, prompts: Sequence[str], max_new_tokens: int = 256) -> list[str]:
        """One answer per prompt: only the newly generated text, stripped."""
        ...


def protocol_members(protocol: type) -> tuple[str, ...]:
    """The attributes and methods a Protocol declares, for naming what an object lacks."""
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return tuple(sorted(names))


def missing_members(obj: object, protocol: type) -> list[str]:
    return [name for name in protocol_members(protocol) if not hasattr(obj, name)]
