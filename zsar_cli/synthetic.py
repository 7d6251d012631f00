"""The synthetic world (../shared/SYNTHWORLD.md): frames and videos with exact ground truth.

Output: RGB frames (numpy uint8, H×W×3) rendered here; videos and ground-truth files are written
by the generators below (used by `zsar synth`, the tests, the benchmarks and the model-building
script). Everything is driven by a numpy Generator, so a seed fixes the world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
}
BACKGROUND_PHRASE = "an empty gray background"


def label_phrase(color: str, shape: str) -> str:
    return f"a {color} {shape}"


# The 12 labels, in a fixed order (color-major) used everywhere a label file is written.
LABELS: tuple[str, ...] = tuple(label_phrase(c, s) for c in COLORS for s in SHAPES)


def parse_label(label: str) -> tuple[str, str]:
    """'a red circle' → ('red', 'circle')."""
    words = label.split()
    if len(words) != 3 or words[0] != "a" or words[1] not in COLORS or words[2] not in SHAPES:
        raise ValueError(f"not a world label: {label!r}")
    return words[1], words[2]


@dataclass(frozen=True)
class WorldObject:
    """One object: shape, color, size (fraction of the shorter side), centre and velocity.

    Centre and velocity are in pixels and pixels/second of the frame it was made for.
    """

    shape: str
    color: str
    size: float
    cx: float
    cy: float
    vx: float = 0.0
    vy: float = 0.0

    @property
    def label(self) -> str:
        return label_phrase(self.color, self.shape)

    def at(self, t: float, width: int, height: int) -> tuple[float, float]:
        """Centre at time t (s), bouncing off the borders so the object stays fully inside."""
        side = self.size * min(width, height)
        half = side / 2
        return (
            _bounce(self.cx + self.vx * t, half, width - half),
            _bounce(self.cy + self.vy * t, half, height - half),
        )


def _bounce(x: float, lo: float, hi: float) -> float:
    if hi <= lo:
        return (lo + hi) / 2
    span = hi - lo
    y = (x - lo) % (2 * span)
    return lo + (y if y <= span else 2 * span - y)


def random_object(
    rng: np.random.Generator,
    width: int,
    height: int,
    label: str | None = None,
    size_range: tuple[float, float] = (0.20, 0.45),
    max_speed: float = 0.5,
) -> WorldObject:
    """A random object fully inside the frame; speed up to `max_speed` frame widths per second."""
    if label is None:
        color = str(rng.choice(list(COLORS)))
        shape = str(rng.choice(SHAPES))
    else:
        color, shape = parse_label(label)
    size = float(rng.uniform(*size_range))
    half = size * min(width, height) / 2
    cx = float(rng.uniform(half, width - half))
    cy = float(rng.uniform(half, height - half))
    speed = float(rng.uniform(0, max_speed)) * width
    angle = float(rng.uniform(0, 2 * np.pi))
    return WorldObject(shape, color, size, cx, cy, speed * np.cos(angle), speed * np.sin(angle))


def object_mask(
    shape: str, cx: float, cy: float, side: float, width: int, height: int
) -> np.ndarray:
    """Boolean H×W mask of a shape with bounding box `side` centred at (cx, cy)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xx += 0.5
    yy += 0.5
    half = side / 2
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= half**2
    if shape == "square":
        return (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
    if shape == "triangle":
        # Upward isosceles triangle: apex at top centre, base along the bottom of the box.
        top, bottom = cy - half, cy + half
        inside_y = (yy >= top) & (yy <= bottom)
        frac = np.clip((yy - top) / max(side, 1e-6), 0, 1)
        return inside_y & (np.abs(xx - cx) <= frac * half)
    raise ValueError(f"unknown shape {shape!r}")


def render_frame(
    width: int,
    height: int,
    objects: list[WorldObject] | tuple[WorldObject, ...] = (),
    t: float = 0.0,
    background: int = 128,
    noise_sigma: float = 6.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One H×W×3 uint8 frame: flat gray `background` + Gaussian noise, objects drawn on top."""
    rng = rng if rng is not None else np.random.default_rng(0)
    frame = np.full((height, width, 3), float(background), dtype=np.float32)
    for obj in objects:
        cx, cy = obj.at(t, width, height)
        mask = object_mask(obj.shape, cx, cy, obj.size * min(width, height), width, height)
        frame[mask] = COLORS[obj.color]
    if noise_sigma > 0:
        frame += rng.normal(0.0, noise_sigma, size=frame.shape).astype(np.float32)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def object_patch_mask(
    obj: WorldObject, t: float, width: int, height: int, grid: tuple[int, int]
) -> np.ndarray:
    """Which cells of a rows×cols patch grid the object covers (any pixel), for token precision."""
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
