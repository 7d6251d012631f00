"""Self-ReS over a family's native video tokens (`select-tokens --video-input`, `classify --lvlm
--self-res --video-input`, and the final pass of `query-lvlm --tokens`).

With `--video-input native` a reflection path goes to the LVLM the way a clip prompt does
(`lvlm_base.Clip`: the processor's video path, told the frames' real times), the tokens scored
are the model's video tokens, and the final pass lays out a video of the kept units with their
real times again. A *unit* is what the model makes one block of video tokens of:
- SmolVLM2: one frame (untiled, after "Frame from MM:SS:");
- Qwen2.5-VL / Qwen3-VL: one temporal patch of `temporal_patch_size` (2) frames, whose tokens
  carry its temporal position (Qwen2.5-VL) or follow its "<t seconds>" stamp (Qwen3-VL).
Each kept token records its unit's first frame (frame_index, timestamp) and the times of all the
unit's frames (`frame_times`), so the final pass gives the model the same times. With every
token kept the final pass is the plain native clip prompt (parity tested per family).

- LLaVA-OneVision / LLaVA-Video: one frame (pooled video tokens), after the time instruction
  listing the kept frames' times. Its clip's features end with one newline feature that belongs
  to no frame (`tail_features`): never scored or dropped, the final pass puts the model's own
  newline parameter back in its slot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from zsar_cli.errors import ModelError

# model_type → frames per unit (temporal patch) are read from the model; these have a native
# video path whose tokens split into equal per-unit blocks.
NATIVE_FAMILIES: frozenset[str] = frozenset(
    {"smolvlm", "qwen2_5_vl", "qwen3_vl", "llava_onevision"}
)


def resolve_video_input(lvlm: Any, requested: str) -> str:
    """Switch the backend for Self-ReS and return the mode in effect: `auto` is native where the
    family's video tokens can be selected (else images); `native` elsewhere fails in one line."""
    from zsar_cli.backends.lvlm_base import set_video_input

    family = str(getattr(lvlm, "model_type", ""))
    if requested != "images" and family not in NATIVE_FAMILIES:
        if requested == "native":
            raise ModelError(
                f"{getattr(lvlm, 'spec', family)}: Self-ReS with --video-input native is not "
                f"served for {family or 'this model'}: it has no native video path whose tokens "
                "split by frame; use --video-input images"
            )
        requested = "images"
    return set_video_input(lvlm, requested)


def is_native(lvlm: Any) -> bool:
    return getattr(lvlm, "video_input", "images") == "native"


def frames_per_unit(lvlm: Any) -> int:
    """Frames one block of the model's tokens covers: 1 for images and per-frame video families,
    the temporal patch size for the Qwen-VL families in native mode."""
    if not is_native(lvlm) or not str(getattr(lvlm, "model_type", "")).startswith("qwen"):
        return 1
    vision = lvlm.model.config.vision_config
    return int(getattr(vision, "temporal_patch_size", 2) or 1)


def tail_features(lvlm: Any) -> Any:
    """Features the model appends after a clip's video tokens that belong to no unit, as
    (count × hidden), or None: LLaVA-OneVision's `image_newline` (one per video)."""
    if not is_native(lvlm) or getattr(lvlm, "model_type", "") != "llava_onevision":
        return None
    base = getattr(lvlm.model, "model", lvlm.model)
    return base.image_newline.detach()[None, :]


def tail_count(lvlm: Any) -> int:
    tail = tail_features(lvlm)
    return 0 if tail is None else int(tail.shape[0])


def units_of(frames: int, per_unit: int) -> int:
    return math.ceil(frames / per_unit)


def laid_out(
    lvlm: Any,
    images: Sequence[Any],
    times: Sequence[float | None],
    video_frames: int | None = None,
) -> Any:
    """The frames as the model's clip prompt takes them: a `Clip` with their real times in
    native mode (missing times refused: they are what the model is told), else a list.
    `video_frames`: the whole video's frame count, whose per-frame resolution a processor that
    shares one pixel budget among a clip's frames (Qwen3-VL) must give these frames too."""
    from zsar_cli.backends.lvlm_base import Clip

    if not is_native(lvlm):
        return list(images)
    if any(t is None for t in times):
        from zsar_cli.stages.select_tokens import SelectionError

        raise SelectionError(
            "frames carry no timestamps, which native video input gives the model; use "
            "--video-input images"
        )
    return Clip(list(images), [float(t) for t in times], video_frames)  # type: ignore[arg-type]


def check_path_lengths(video_id: str, lengths: Sequence[int], per_unit: int) -> None:
    """Every path must fill whole units: a padded temporal patch inside the video would give the
    final pass a unit the model never saw in that place."""
    if per_unit > 1 and any(n % per_unit for n in lengths):
        from zsar_cli.stages.select_tokens import SelectionError

        raise SelectionError(
            f"{video_id}: native video on this model groups frames in temporal patches of "
            f"{per_unit}; paths have {', '.join(str(n) for n in lengths)} frames (use a "
            f"multiple of {per_unit} frames per segment, or --video-input images)"
        )
