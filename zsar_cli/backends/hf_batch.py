"""Laying out a batch for the transformers LVLM backend (a mixin of `HFLVLM`): caps, chat
prompts, the processor call (images, or a clip's frames as one video with their real times),
the image-token mask and the position ids the language model receives.

Input: per prompt its images (a plain list, or a `lvlm_base.Clip`) and its text. Output:
`LVLMInputs` (processor tensors, 1-D or multimodal 3-D positions, the visual-token mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from zsar_cli.backends.hf_inputs import cap_pixels, chat_prompt, writable
from zsar_cli.backends.hf_video import QWEN_FAMILIES, qwen_positions, time_instruction, video_call
from zsar_cli.backends.lvlm_base import Clip, LVLMInputs, cap_frames

if TYPE_CHECKING:
    from zsar_cli.backends.hf_lvlm import HFLVLM


def as_video(images: Sequence[np.ndarray], native: bool) -> bool:
    return native and isinstance(images, Clip)


class BatchMethods:
    """`prompt_text`, `capped`, `build_inputs` and the processor call; mixed into `HFLVLM`."""

    def prompt_text(self, num_images: int, text: str, video: bool = False) -> str:
        """The rendered prompt of a query with `num_images` images of its own (or one video),
        after the in-context examples' turns while a block of `in_context` is open."""
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        examples = [(len(t.images), t.text, t.answer) for t in lvlm.context]
        return chat_prompt(lvlm.processor, num_images, text, video=video, examples=examples)

    def capped(self, images_per_prompt: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """The frame and pixel caps applied; an image object shared by several prompts is
        resized once and stays one object (so its features are looked up once). A `Clip`
        stays one object too, with its kept frames' times."""
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        done: dict[int, np.ndarray] = {}
        clips: dict[int, list[np.ndarray]] = {}
        out = []
        for ims in images_per_prompt:
            if id(ims) in clips:
                out.append(clips[id(ims)])
                continue
            kept = cap_frames(ims, lvlm.max_frames)
            # In-context examples' images come first (never frame-capped: the cap is the
            # query's); with examples a clip goes in as images, like the examples.
            row = list(lvlm._context_images)
            for im in kept:
                if id(im) not in done:
                    done[id(im)] = cap_pixels(writable(im), lvlm.max_pixels)
                row.append(done[id(im)])
            clip = isinstance(kept, Clip) and not lvlm._context_images
            final: list[np.ndarray] = (
                Clip(row, cast(Clip, kept).times, cast(Clip, kept).resolution_frames)
                if clip
                else row
            )
            if isinstance(ims, Clip):
                clips[id(ims)] = final
            out.append(final)
        return out

    def build_inputs(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> LVLMInputs:
        """Apply the chat template and the processor to a batch (pixel and frame caps applied)."""
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        if len(images_per_prompt) != len(prompts):
            raise ValueError("one image list per prompt is required")
        return lvlm._processed(lvlm.capped(images_per_prompt), prompts)

    def _processed(self, capped: list[list[np.ndarray]], prompts: Sequence[str]) -> LVLMInputs:
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        native = lvlm.video_input == "native"
        videos = [as_video(ims, native) for ims in capped]
        if any(videos) and not all(videos):
            raise ValueError("a batch must not mix native clips with image prompts")
        texts = []
        own = len(lvlm._context_images)  # each prompt's images start with the examples'
        for ims, prompt, video in zip(capped, prompts, videos, strict=True):
            if video and lvlm.model_type == "llava_onevision":
                prompt = time_instruction(cast(Clip, ims).times) + prompt
            texts.append(lvlm.prompt_text(1 if video else len(ims) - own, prompt, video=video))
        has_images = any(capped)
        if has_images and not all(capped):
            raise ValueError("a batch must not mix prompts with and without images")
        call: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        clips = [cast(Clip, ims) for ims in capped] if any(videos) else None
        if clips:
            call.update(video_call(lvlm.processor, clips))
        elif has_images:
            call["images"] = capped
        batch = lvlm.processor(**call)
        tensors = {k: v.to(lvlm.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        for key, value in tensors.items():
            if value.is_floating_point() and key != "second_per_grid_ts":
                tensors[key] = value.to(lvlm.model.dtype)
        mask = tensors["attention_mask"]
        position_ids = None
        if lvlm.pass_position_ids:
            position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        elif lvlm.model_type in QWEN_FAMILIES and has_images:
            # Computed once on the whole sequence: Self-ReS gathers the kept tokens' positions
            # from these, and native Qwen2.5-VL clips get their temporal row from real times.
            position_ids = qwen_positions(lvlm.model, tensors, clips)
        ids = tensors["input_ids"]
        image_mask = ids == lvlm.image_token_id
        if lvlm.video_token_id is not None:
            image_mask |= ids == lvlm.video_token_id
        return LVLMInputs(tensors, position_ids, image_mask, images=capped, texts=texts)

    def _forward_kwargs(self, inputs: LVLMInputs) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(inputs.tensors)
        if inputs.position_ids is not None:
            kwargs["position_ids"] = inputs.position_ids
        kwargs["use_cache"] = False
        return kwargs

    def _batches(self, capped: Sequence[Sequence[np.ndarray]]) -> list[list[int]]:
        """Prompt indices per processor batch: whole image sets (every prompt about the same
        images in one batch, so they share one prefix pass), up to `batch_size` sets each.
        Native clips batch with clips of as many frames only (LLaVA-OneVision's processor
        stacks a batch's videos into one tensor)."""
        lvlm = cast("HFLVLM", self)  # the mixin runs on an HFLVLM
        native = lvlm.video_input == "native"
        order: dict[object, list[int]] = {}
        for i, ims in enumerate(capped):
            key: object = tuple(id(im) for im in ims) if ims else ("text", i)
            order.setdefault(key, []).append(i)
        by_length: dict[int, list[list[int]]] = {}
        for members in order.values():
            first = capped[members[0]]
            by_length.setdefault(len(first) if as_video(first, native) else -1, []).append(members)
        return [
            [i for members in sets[s : s + lvlm.batch_size] for i in members]
            for sets in by_length.values()
            for s in range(0, len(sets), lvlm.batch_size)
        ]
