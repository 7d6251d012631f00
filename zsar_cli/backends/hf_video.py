"""Native video input and multimodal positions for the transformers LVLM backend.

Input: a batch's clips (`lvlm_base.Clip`: frames with their real presentation times) and the
processor's outputs. Output: the processor keyword arguments of its video path, and the 3-D
(multimodal RoPE) position ids of the Qwen-VL families, computed on the whole sequence.

How each family is told the frames' times (never an assumed frame rate):
- SmolVLM2 and Qwen3-VL write them into the prompt ("Frame from 00:12:", "<12.3 seconds>"); both
  processors compute them as `frames_indices / fps`, so the metadata says fps 1 and gives the
  times themselves as the indices;
- Qwen2.5-VL puts them in the temporal rotary positions (`tokens_per_second` positions per
  second since the clip's first frame). Its processor can only say "one fixed interval per
  video", so the temporal row of the video tokens is recomputed here from the real times of
  each temporal patch's first frame, exactly as the model's own `get_rope_index` would for a
  constant frame rate (the parity tests hold both to the same ids);
- LLaVA-OneVision has no notion of time in its video tokens; the question is preceded by
  LLaVA-Video's time instruction listing the frames' times.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from zsar_cli.backends.lvlm_base import Clip

# model_type → how its times reach the model (the families tested here; see the README table).
VIDEO_FAMILIES: dict[str, str] = {
    "smolvlm": "timestamped prompt",
    "qwen3_vl": "timestamped prompt",
    "qwen2_5_vl": "temporal positions",
    "llava_onevision": "video tokens + time instruction",
}
QWEN_FAMILIES = frozenset({"qwen2_vl", "qwen2_5_vl", "qwen3_vl"})
# Guards truncation against float error: 0.2 s at 25 tokens/s must give 5, not 4.999… → 4.
EPSILON = 1e-6


def video_support(model_type: str, processor: Any) -> str | None:
    """None when the family has a native video path here, else what is missing (one phrase)."""
    if model_type not in VIDEO_FAMILIES:
        known = ", ".join(sorted(VIDEO_FAMILIES))
        return f"model family {model_type or '?'} has no native video path in zsar (known: {known})"
    if getattr(processor, "video_processor", None) is None:
        return f"the {type(processor).__name__} has no video processor"
    if model_type == "smolvlm":
        try:
            import num2words  # noqa: F401  (SmolVLM's processor spells the frame count)
        except ImportError:
            return "SmolVLM's video prompt needs the num2words package (pip install num2words)"
    return None


def format_time(seconds: float) -> str:
    return f"{seconds:.2f}s"


def time_instruction(times: Sequence[float]) -> str:
    """LLaVA-Video's time instruction, with the frames' real times (not "uniformly sampled")."""
    listed = ",".join(format_time(t) for t in times)
    return (
        f"The video lasts for {times[-1]:.2f} seconds, and {len(times)} frames are sampled from "
        f"it. These frames are located at {listed}. Please answer the following questions "
        "related to this video.\n"
    )


def video_call(processor: Any, clips: Sequence[Clip]) -> dict[str, Any]:
    """The processor arguments that pass `clips` through its video path with their times."""
    import numpy as np
    from transformers.video_utils import VideoMetadata

    # fps 1 with the times as "indices": the processors' timestamps (indices / fps) are then
    # the real times; sampling is off, so the indices select nothing.
    metadata = []
    for c in clips:
        indices: list[Any] = list(c.times)
        metadata.append(VideoMetadata(total_num_frames=len(c), fps=1.0, frames_indices=indices))
    call: dict[str, Any] = {
        "videos": [np.stack(list(c)) for c in clips],
        "video_metadata": metadata,
        "do_sample_frames": False,
    }
    wanted = {c.resolution_frames for c in clips if c.resolution_frames not in (None, len(c))}
    if wanted:
        if len(clips) != 1:
            raise ValueError("clips laid out at another clip length's resolution go one at a time")
        size = shared_budget_size(processor, clips[0], int(wanted.pop()))
        if size is not None:
            call["videos_kwargs"] = {"size": size}
    return call


def shared_budget_size(processor: Any, clip: Clip, whole: int) -> dict[str, int] | None:
    """The video processor's size settings under which `clip` (n frames) is resized as a clip of
    `whole` frames would be, for processors whose pixel budget is shared by a clip's frames
    (Qwen3-VL: the resolution falls as frames are added); None for per-frame processors. Both
    bounds scale by n / whole; the result is checked with the processor's own resize rule."""
    import math
    import sys

    video = getattr(processor, "video_processor", None)
    smart = getattr(sys.modules.get(type(video).__module__), "smart_resize", None)
    # A processor whose resize rule takes the clip's frame count (Qwen3-VL's) shares a budget.
    if video is None or smart is None or "num_frames" not in inspect.signature(smart).parameters:
        return None
    low, high = int(video.size["shortest_edge"]), int(video.size["longest_edge"])
    n = len(clip)
    height, width = clip[0].shape[:2]
    shape = {
        "temporal_factor": int(video.temporal_patch_size),
        "factor": int(video.patch_size) * int(video.merge_size),
    }
    target = smart(whole, height, width, min_pixels=low, max_pixels=high, **shape)
    # Integer bounds: floor keeps "more pixels than the budget" exact, ceil keeps "fewer than
    # the minimum" exact; the rescale factor can still differ by rounding, hence the check.
    scaled = {"shortest_edge": math.ceil(low * n / whole), "longest_edge": high * n // whole}
    got = smart(
        n,
        height,
        width,
        min_pixels=scaled["shortest_edge"],
        max_pixels=scaled["longest_edge"],
        **shape,
    )
    if tuple(got) != tuple(target):
        raise ValueError(
            f"cannot lay out {n} frames at the resolution of a {whole}-frame clip "
            f"({target[1]}x{target[0]}; the processor's rule gives {got[1]}x{got[0]})"
        )
    return scaled


def temporal_patch_times(times: Sequence[float], patch: int) -> list[float]:
    """The time of each temporal patch's first frame (the processor pads the frame count to a
    multiple of `patch` by repeating the last frame)."""
    padded = list(times) + [times[-1]] * (-len(times) % patch)
    return padded[::patch]


def qwen_positions(
    model: Any, tensors: dict[str, torch.Tensor], clips: Sequence[Clip] | None
) -> torch.Tensor:
    """3 × B × L position ids of a Qwen-VL batch from the model's own `get_rope_index`; with
    native clips (Qwen2.5-VL) the video tokens' temporal row follows the clips' real times."""
    base = model.model
    rope = base.get_rope_index
    wanted = inspect.signature(rope).parameters
    kwargs: dict[str, Any] = {k: v for k, v in tensors.items() if k in wanted}
    config = model.config.vision_config
    per_second = float(getattr(config, "tokens_per_second", 1) or 1)
    videos = tensors.get("video_grid_thw")
    if "second_per_grid_ts" in wanted and videos is not None:
        # One position per temporal patch first; the real spacing is written in below.
        kwargs["second_per_grid_ts"] = torch.full((videos.shape[0],), 1.0 / per_second)
    positions, _ = rope(**kwargs)
    if videos is None or not clips or model.config.model_type != "qwen2_5_vl":
        return positions
    patch = int(getattr(config, "temporal_patch_size", 2))
    video_id = int(model.config.video_token_id)
    ids, mask = tensors["input_ids"], tensors["attention_mask"]
    video = 0
    for b in range(ids.shape[0]):
        where = ((ids[b] == video_id) & mask[b].bool()).nonzero().flatten()
        if not where.numel():
            continue
        grid = videos[video]
        grids_per_clip = int(grid[1] * grid[2]) // int(config.spatial_merge_size) ** 2
        starts = temporal_patch_times(clips[b].times, patch)
        if len(starts) != int(grid[0]) or where.numel() != grids_per_clip * len(starts):
            raise ValueError("video tokens do not match the clip's temporal patches")
        offsets = torch.tensor(
            [int((t - starts[0]) * per_second + EPSILON) for t in starts], dtype=positions.dtype
        )
        # get_rope_index numbered the patches first, first+1, …; their real spacing replaces it.
        temporal = (positions[0, b, where[0]] + offsets).repeat_interleave(grids_per_clip)
        positions[0, b, where] = temporal.to(positions.device)
        video += 1
    return positions
