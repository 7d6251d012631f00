"""The world's vocabulary: shapes, colours, the 12 labels and their texts, and objects.

Input: nothing (constants) or a seeded numpy Generator. Output: label strings (`LABELS`, in the
fixed order of every label file), the label texts of descriptions.json (`world_descriptions`), and
`WorldObject`s, the moving shapes drawn in frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# numpy is imported inside functions only; the package docstring says why.
if TYPE_CHECKING:
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


def label_token(label: str) -> str:
    """'a red circle' → 'a_red_circle' (THUMOS file names, UCF-Crime class column)."""
    return label.replace(" ", "_")


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
    import numpy as np

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


# --------------------------------------------------------------------------------------------
# Label texts: descriptions, descriptors and yes/no questions for every world label.

_COLOR_DESCRIPTORS: dict[str, tuple[str, ...]] = {
    "red": (
        "red color",
        "a warm crimson hue",
        "the color of a ripe tomato",
        "saturated red pixels",
    ),
    "green": (
        "green color",
        "a grassy green hue",
        "the color of fresh leaves",
        "saturated green pixels",
    ),
    "blue": (
        "blue color",
        "a deep cobalt hue",
        "the color of a clear sky",
        "saturated blue pixels",
    ),
    "yellow": (
        "yellow color",
        "a bright lemon hue",
        "the color of a banana",
        "saturated yellow pixels",
    ),
}
_SHAPE_DESCRIPTORS: dict[str, tuple[str, ...]] = {
    "circle": ("a round outline", "no corners", "a smooth curved edge", "the shape of a disc"),
    "square": (
        "four equal straight sides",
        "four right-angled corners",
        "an upright square outline",
        "the shape of a tile",
    ),
    "triangle": (
        "three straight sides",
        "a pointed apex at the top",
        "a flat horizontal base",
        "the shape of a pyramid seen from the side",
    ),
}


def world_descriptions() -> list[dict[str, Any]]:
    """One record per label (contracts: label, description, descriptors[8], start/end question)."""
    records = []
    for label in LABELS:
        color, shape = parse_label(label)
        records.append(
            {
                "label": label,
                "description": f"a {color} {shape} on a plain gray background",
                "descriptors": [*_COLOR_DESCRIPTORS[color], *_SHAPE_DESCRIPTORS[shape]],
                # The phases of `SynthConfig.phase_seconds`: one frame shows either.
                "start_question": f"Does a {color} {shape} appear with a white rim in this frame?",
                "end_question": f"Is only the outline of a {color} {shape} left in this frame?",
            }
        )
    return records
