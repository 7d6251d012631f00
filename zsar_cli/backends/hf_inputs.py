"""Prompts and images as the transformers backend's processor wants them: the chat turn, which
yes/no spellings are single tokens, the pixel cap, writable arrays. No model is loaded here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from zsar_cli.backends.lvlm_base import ContextTurn
from zsar_cli.prompts import context_turns


def chat_prompt(
    processor: Any,
    num_images: int,
    text: str,
    video: bool = False,
    examples: Sequence[tuple[int, str, str]] = (),
) -> str:
    """The query's user turn (the images or the video first, then the text), after the
    in-context examples' turns if any, rendered with the processor's template."""
    messages = context_turns(examples, num_images, text, video=video)
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


def _video_token_id(model: Any, processor: Any) -> int | None:
    """The placeholder id of video features (None for families without one: SmolVLM expands a
    video into image tokens)."""
    for owner, name in (
        (model.config, "video_token_id"),
        (model.config, "video_token_index"),
        (processor, "video_token_id"),
    ):
        value = getattr(owner, name, None)
        if isinstance(value, int):
            return value
    return None


class InContextMethods:
    """In-context examples for the transformers backend (`InContext`): inside `in_context`,
    every prompt renders the examples' turns before the query's, and its images start with the
    examples' images (pixel-capped once, the same objects in every prompt, so batching and the
    feature cache treat them like any shared images)."""

    processor: Any
    max_pixels: int | None
    context: tuple[ContextTurn, ...]
    _context_images: list[np.ndarray]

    @contextlib.contextmanager
    def in_context(self, turns: Sequence[ContextTurn]) -> Iterator[None]:
        """Prompts built inside the block start with the example turns (`InContext`)."""
        saved = self.context, self._context_images
        self.context = tuple(turns)
        self._context_images = [
            cap_pixels(writable(im), self.max_pixels) for turn in turns for im in turn.images
        ]
        try:
            yield
        finally:
            self.context, self._context_images = saved
