"""Frame rendering: shape masks, phase styles and whole RGB frames of world objects.

Input: `WorldObject`s and a time. Output: boolean masks (H×W, or on an object's bounding box),
patch-grid masks for token precision, and H×W×3 uint8 RGB frames: `render_frame` (one frame, plain
Gaussian noise) and `FrameRenderer` (a video's frames quickly, from a pool of noise fields).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from zsar_cli.synthetic.vocabulary import COLORS, WorldObject

# numpy is imported inside functions only; the package docstring says why.
if TYPE_CHECKING:
    import numpy as np

# Phase styles of an action instance (`SynthConfig.phase_seconds`): in its first seconds the
# object appears ringed in white, in its last ones only its outline is left. Single frames then
# show where an instance starts and ends, which ZEAL's per-frame start/end questions rely on.
STYLES: tuple[str, ...] = ("plain", "rim", "outline")
RIM_COLOR = (255, 255, 255)
RIM_SCALE = 1.35  # the white ring reaches out to 1.35x the shape's side
OUTLINE_INNER = 0.5  # the outline's hole: the shape at 0.5x its side


def style_masks(
    shape: str, cx: float, cy: float, side: float, width: int, height: int, style: str
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """((y0, y1, x0, x1), colour mask, white-rim mask) of an object drawn in a phase style,
    both on one box. "plain": the filled shape; "rim": filled, inside a white ring; "outline":
    the shape minus the same shape at half its side, i.e. a thick outline."""
    import numpy as np

    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}")
    outer = side * RIM_SCALE if style == "rim" else side
    y0, y1, x0, x1, big = _object_box_mask(shape, cx, cy, outer, width, height)
    if style == "plain":
        return (y0, y1, x0, x1), big, np.zeros_like(big)
    box = (y0, y1, x0, x1)
    if style == "rim":
        fill = _mask_on_box(shape, cx, cy, side, box)
        return box, fill, big & ~fill
    hole = _mask_on_box(shape, cx, cy, side * OUTLINE_INNER, box)
    return box, big & ~hole, np.zeros_like(big)


def _mask_on_box(
    shape: str, cx: float, cy: float, side: float, box: tuple[int, int, int, int]
) -> np.ndarray:
    import numpy as np

    y0, y1, x0, x1 = box
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] + np.float32(0.5)
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] + np.float32(0.5)
    return _shape_on_grid(shape, xx, yy, cx, cy, side)


def _object_box_mask(
    shape: str, cx: float, cy: float, side: float, width: int, height: int
) -> tuple[int, int, int, int, np.ndarray]:
    """(y0, y1, x0, x1, mask) — the shape's mask on its bounding box only.

    Pixel centres and float32 arithmetic are those of a full-frame grid, so the pixels set are
    exactly the full-frame mask's (render_frame's output does not depend on the box).
    """
    import numpy as np

    half = side / 2
    x0 = max(0, math.floor(cx - half) - 1)
    x1 = min(width, math.ceil(cx + half) + 1)
    y0 = max(0, math.floor(cy - half) - 1)
    y1 = min(height, math.ceil(cy + half) + 1)
    if x1 <= x0 or y1 <= y0:
        return 0, 0, 0, 0, np.zeros((0, 0), dtype=bool)
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] + np.float32(0.5)
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] + np.float32(0.5)
    return y0, y1, x0, x1, _shape_on_grid(shape, xx, yy, cx, cy, side)


def _shape_on_grid(
    shape: str, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, side: float
) -> np.ndarray:
    import numpy as np

    half = side / 2
    if shape == "circle":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= half**2
    elif shape == "square":
        mask = (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
    elif shape == "triangle":
        # Upward isosceles triangle: apex at top centre, base along the bottom of the box.
        top, bottom = cy - half, cy + half
        inside_y = (yy >= top) & (yy <= bottom)
        frac = np.clip((yy - top) / max(side, 1e-6), 0, 1)
        mask = inside_y & (np.abs(xx - cx) <= frac * half)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return mask


def object_mask(
    shape: str, cx: float, cy: float, side: float, width: int, height: int
) -> np.ndarray:
    """Boolean H×W mask of a shape with bounding box `side` centred at (cx, cy)."""
    import numpy as np

    out = np.zeros((height, width), dtype=bool)
    y0, y1, x0, x1, mask = _object_box_mask(shape, cx, cy, side, width, height)
    out[y0:y1, x0:x1] = mask
    return out


def render_frame(
    width: int,
    height: int,
    objects: list[WorldObject] | tuple[WorldObject, ...] = (),
    t: float = 0.0,
    background: int = 128,
    noise_sigma: float = 6.0,
    rng: np.random.Generator | None = None,
    styles: Sequence[str] | None = None,
) -> np.ndarray:
    """One H×W×3 uint8 frame: flat gray `background` + Gaussian noise, objects drawn on top
    (each in its phase style, `STYLES`; plain by default)."""
    import numpy as np

    rng = rng if rng is not None else np.random.default_rng(0)
    frame = np.full((height, width, 3), float(background), dtype=np.float32)
    styles = styles if styles is not None else ["plain"] * len(objects)
    for obj, style in zip(objects, styles, strict=True):
        cx, cy = obj.at(t, width, height)
        side = obj.size * min(width, height)
        (y0, y1, x0, x1), mask, rim = style_masks(obj.shape, cx, cy, side, width, height, style)
        frame[y0:y1, x0:x1][rim] = RIM_COLOR
        frame[y0:y1, x0:x1][mask] = COLORS[obj.color]
    if noise_sigma > 0:
        frame += rng.normal(0.0, noise_sigma, size=frame.shape).astype(np.float32)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def object_patch_mask(
    obj: WorldObject, t: float, width: int, height: int, grid: tuple[int, int]
) -> np.ndarray:
    """Which cells of a rows×cols patch grid the object covers (any pixel), for token precision."""
    import numpy as np

    cx, cy = obj.at(t, width, height)
    mask = object_mask(obj.shape, cx, cy, obj.size * min(width, height), width, height)
    rows, cols = grid
    out = np.zeros((rows, cols), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            y0, y1 = r * height // rows, (r + 1) * height // rows
            x0, x1 = c * width // cols, (c + 1) * width // cols
            out[r, c] = bool(mask[y0:y1, x0:x1].any())
    return out


# --------------------------------------------------------------------------------------------
# Fast frame rendering for videos.


class FrameRenderer:
    """Renders a video's frames quickly: a small pool of pre-rendered noisy backgrounds.

    Each frame is a random window (random pool entry, random offset) of a slightly larger noise
    field, so consecutive frames differ like fresh Gaussian noise would, at the cost of one copy.
    Objects are drawn on their bounding box only, with the same noise added as underneath, so a
    frame is "object colour + N(0, σ)" inside the shape and "gray + N(0, σ)" outside it — the same
    statistics as `render_frame`.
    """

    def __init__(
        self,
        width: int,
        height: int,
        background: int = 128,
        noise_sigma: float = 6.0,
        seed: int | Sequence[int] = 0,
        pool: int = 4,
        pad: int = 32,
    ) -> None:
        import numpy as np

        self.width, self.height, self.pad = width, height, pad
        self._rng = np.random.default_rng(seed)
        shape = (pool, height + pad, width + pad, 3)
        if noise_sigma > 0:
            self._noise = self._rng.normal(0.0, noise_sigma, size=shape).astype(np.float32)
        else:
            self._noise = np.zeros(shape, dtype=np.float32)
        self._gray = np.clip(np.rint(self._noise + np.float32(background)), 0, 255).astype(np.uint8)

    def frame(
        self, objects: Iterable[tuple[WorldObject, float] | tuple[WorldObject, float, str]] = ()
    ) -> np.ndarray:
        """One frame with each (object, time since it appeared[, phase style]) drawn on top."""
        import numpy as np

        k = int(self._rng.integers(self._noise.shape[0]))
        dy, dx = (int(v) for v in self._rng.integers(0, self.pad + 1, size=2))
        h, w = self.height, self.width
        out = self._gray[k, dy : dy + h, dx : dx + w].copy()
        for obj, t, *style in objects:
            cx, cy = obj.at(t, w, h)
            side = obj.size * min(w, h)
            box, mask, rim = style_masks(obj.shape, cx, cy, side, w, h, *(style or ["plain"]))
            y0, y1, x0, x1 = box
            noise = self._noise[k, dy + y0 : dy + y1, dx + x0 : dx + x1]
            for color_rgb, where in ((RIM_COLOR, rim), (COLORS[obj.color], mask)):
                if where.any():
                    color = np.asarray(color_rgb, dtype=np.float32)
                    painted = np.clip(np.rint(noise + color), 0, 255).astype(np.uint8)
                    np.copyto(out[y0:y1, x0:x1], painted, where=where[:, :, None])
        return out
