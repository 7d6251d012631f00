"""The synthetic world (../shared/SYNTHWORLD.md): frames and videos with exact ground truth.

Output: RGB frames (numpy uint8, H×W×3) rendered here, and — through `generate_world` (used by
`zsar synth`, the tests, the benchmarks and the model-building script) — a folder of videos with
their ground truth:

    OUTDIR/labels.txt, descriptions.json, world.json (the manifest: every video, instance, object)
    OUTDIR/trimmed/*.mp4 + list.csv
    OUTDIR/untrimmed/*.mp4 + list.csv + activitynet.json + thumos/<label>_test.txt
    OUTDIR/anomaly/*.mp4 + list.csv + temporal_annotation.txt (UCF-Crime lines)

No artifact (Parquet) is written here. Everything is driven by numpy Generators seeded from
`SynthConfig.seed`, so a seed fixes the world: same seed → identical ground-truth files and
identical frames.

Ground truth is exact by construction: an instance covers frames [start_frame, end_frame) and is
drawn in exactly those frames, so in seconds frame i (time i/fps) shows it iff start <= i/fps < end.
Boundaries lie on frames whose times are whole multiples of 1/gcd(fps, 100) s, so they print as
short exact decimals and comparisons against i/fps cannot flip by rounding.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zsar_cli.errors import ConfigError, InputError

# numpy is imported inside the functions that use it: the CLI reads SynthConfig's defaults from
# this module at start-up, and `zsar --help` must stay fast.
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


# --------------------------------------------------------------------------------------------
# Encoding: codecs, containers and their ffmpeg options (zsar_cli.video runs the encoder).

# Encoder → pixel format, per-encoder options (quality knob named by `quality_key`) and the
# containers it can go in. The first container is the encoder's natural one.
_CODECS: dict[str, dict[str, Any]] = {
    "libx264": {
        "pix_fmt": "yuv420p",
        "quality_key": "crf",
        "quality": 23,
        "options": {},
        "containers": ("mp4", "mkv", "mov", "avi"),
    },
    "mpeg4": {
        "pix_fmt": "yuv420p",
        "quality_key": "q:v",
        "quality": 3,
        "options": {},
        "containers": ("avi", "mp4", "mkv", "mov"),
    },
    "libvpx-vp9": {
        "pix_fmt": "yuv420p",
        "quality_key": "crf",
        "quality": 32,
        # Constant-quality mode at realtime speed: VP9's defaults are very slow.
        "options": {"b:v": 0, "deadline": "realtime", "cpu-used": 8, "row-mt": 1},
        "containers": ("webm", "mkv", "mp4"),
    },
    "mjpeg": {
        "pix_fmt": "yuvj420p",
        "quality_key": "q:v",
        "quality": 3,
        "options": {},
        "containers": ("avi", "mkv", "mov"),
    },
    "ffv1": {
        "pix_fmt": "yuv420p",
        "quality_key": None,
        "quality": None,
        "options": {},
        "containers": ("mkv", "avi"),
    },
}
CODEC_ALIASES: dict[str, str] = {"h264": "libx264", "x264": "libx264", "vp9": "libvpx-vp9"}
CODECS: tuple[str, ...] = tuple(_CODECS)
CONTAINERS: tuple[str, ...] = ("mp4", "avi", "webm", "mkv", "mov")

SIZE_MIN = (160, 120)
SIZE_MAX = (1280, 720)
FPS_RANGE = (10, 60)


def resolve_codec(codec: str) -> str:
    name = CODEC_ALIASES.get(codec.lower(), codec.lower())
    if name not in _CODECS:
        known = ", ".join([*CODECS, *CODEC_ALIASES])
        raise ConfigError(f"--codec {codec!r}: unknown codec (known: {known})")
    return name


def resolve_container(codec: str, container: str | None) -> str:
    """The container for `codec`: the one asked (checked) or the codec's natural one."""
    spec = _CODECS[resolve_codec(codec)]
    if container is None or container == "":
        return spec["containers"][0]
    name = container.lower().lstrip(".")
    if name not in CONTAINERS:
        raise ConfigError(f"--container {container!r}: unknown (known: {', '.join(CONTAINERS)})")
    if name not in spec["containers"]:
        raise ConfigError(
            f"--container {name}: cannot hold {resolve_codec(codec)} video "
            f"(use one of: {', '.join(spec['containers'])})"
        )
    return name


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    width: int,
    height: int,
    fps: int,
    codec: str = "libx264",
    preset: str = "veryfast",
    quality: int | None = None,
    threads: int = 1,
    extra_output_args: dict[str, Any] | None = None,
) -> int:
    """Stream H×W×3 uint8 frames into an ffmpeg encoder; returns the number of frames written.

    Frames are consumed one at a time (a video is never held in memory). `quality` is the codec's
    quality knob (CRF for libx264/VP9, q:v for mpeg4/mjpeg); None = the codec's default here.
    The encoding itself is `zsar_cli.video.write_video`'s; this picks the codec's options.
    """
    from zsar_cli import video

    name = resolve_codec(codec)
    spec = _CODECS[name]
    options: dict[str, Any] = dict(spec["options"])
    if spec["quality_key"] is not None:
        options[spec["quality_key"]] = spec["quality"] if quality is None else quality
    if name == "libx264":
        options["preset"] = preset
    if threads > 0:
        options["threads"] = threads
    options.update(extra_output_args or {})
    return video.write_video(frames, path, fps, (width, height), name, spec["pix_fmt"], options)


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


# --------------------------------------------------------------------------------------------
# The world: configuration, plan (pure), generation (files).

KINDS: tuple[str, ...] = ("trimmed", "untrimmed", "anomaly")
_KIND_CODE = {"trimmed": 1, "untrimmed": 2, "anomaly": 3}
MANIFEST_NAME = "world.json"
NORMAL_CLASS = "Normal"


def _range(value: Sequence[float], name: str, lo: float, hi: float, integer: bool = False) -> None:
    if len(value) != 2:
        raise ConfigError(f"--{name}: expected MIN-MAX, got {value!r}")
    a, b = value
    if integer and (int(a) != a or int(b) != b):
        raise ConfigError(f"--{name} {a:g}-{b:g}: must be whole numbers")
    if not (lo <= a <= b <= hi):
        raise ConfigError(f"--{name} {a:g}-{b:g}: need {lo:g} <= MIN <= MAX <= {hi:g}")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a generated world (`zsar synth` options; defaults live here).

    Durations are in seconds; ranges are (min, max) inclusive and drawn uniformly (on the frame
    grid for durations). `object_size` is a fraction of the shorter frame side, `max_speed` in
    frame widths per second.
    """

    trimmed: int = 48
    untrimmed: int = 6
    anomaly: int = 6
    seed: int = 0
    width: int = 320
    height: int = 240
    fps: int = 25
    codec: str = "libx264"
    container: str | None = None  # None: the codec's natural container (libx264 → mp4)
    preset: str = "veryfast"  # libx264 only
    quality: int | None = None  # CRF (libx264, VP9) or q:v (mpeg4, mjpeg); None: codec default
    threads: int = 1  # encoder threads per video; 0 = ffmpeg's choice
    background: tuple[int, int] = (90, 170)
    noise_sigma: float = 6.0
    object_size: tuple[float, float] = (0.20, 0.45)
    max_speed: float = 0.5
    trimmed_duration: tuple[float, float] = (2.0, 10.0)
    untrimmed_duration: tuple[float, float] = (20.0, 120.0)
    instances: tuple[int, int] = (1, 4)
    instance_duration: tuple[float, float] = (2.0, 15.0)
    min_gap: float = 1.0  # background between two instances of one untrimmed/anomaly video
    # Seconds at the start (white rim) and end (outline only) of each untrimmed/anomaly instance
    # drawn in a phase style; 0 = the plain world. See STYLES.
    phase_seconds: float = 0.0
    same_label_prob: float = 0.5  # chance a further instance repeats the video's first label
    anomaly_duration: tuple[float, float] = (20.0, 60.0)
    anomaly_intervals: tuple[int, int] = (1, 2)  # UCF-Crime lines hold at most two
    anomaly_interval_duration: tuple[float, float] = (2.0, 8.0)
    normal_fraction: float = 0.25  # share of anomaly videos with no object ("Normal")

    def __post_init__(self) -> None:
        # Lists (JSON, callers) become tuples so the config stays hashable and comparable.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        for name in ("trimmed", "untrimmed", "anomaly", "seed", "threads"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"--{name}: must be >= 0, got {getattr(self, name)}")
        (w0, h0), (w1, h1) = SIZE_MIN, SIZE_MAX
        if not (w0 <= self.width <= w1 and h0 <= self.height <= h1):
            raise ConfigError(
                f"--size {self.width}x{self.height}: width must be in {w0}..{w1} "
                f"and height in {h0}..{h1}"
            )
        if self.width % 2 or self.height % 2:
            raise ConfigError(
                f"--size {self.width}x{self.height}: width and height must be even (4:2:0 video)"
            )
        if int(self.fps) != self.fps or not FPS_RANGE[0] <= self.fps <= FPS_RANGE[1]:
            raise ConfigError(
                f"--fps {self.fps}: must be a whole number in {FPS_RANGE[0]}..{FPS_RANGE[1]}"
            )
        for name in ("width", "height", "fps"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "codec", resolve_codec(self.codec))
        object.__setattr__(self, "container", resolve_container(self.codec, self.container))
        _range(self.background, "background", 0, 255, integer=True)
        if not 0 <= self.noise_sigma <= 50:
            raise ConfigError(f"--noise-sigma {self.noise_sigma:g}: must be in 0..50")
        _range(self.object_size, "object-size", 0.05, 0.95)
        if not 0 <= self.max_speed <= 5:
            raise ConfigError(f"--max-speed {self.max_speed:g}: must be in 0..5")
        frame_s = 1 / self.fps
        _range(self.trimmed_duration, "trimmed-duration", frame_s, 3600)
        _range(self.instance_duration, "instance-duration", frame_s, 3600)
        _range(self.untrimmed_duration, "untrimmed-duration", self.instance_duration[0], 36000)
        _range(self.instances, "instances", 1, 100, integer=True)
        _range(self.anomaly_interval_duration, "anomaly-interval-duration", frame_s, 3600)
        _range(self.anomaly_duration, "anomaly-duration", self.anomaly_interval_duration[0], 36000)
        _range(self.anomaly_intervals, "anomaly-intervals", 1, 2, integer=True)
        if self.min_gap < 0:
            raise ConfigError(f"--min-gap {self.min_gap:g}: must be >= 0")
        if not 0 <= self.phase_seconds <= 10:
            raise ConfigError(f"--phase-seconds {self.phase_seconds:g}: must be in 0..10")
        for name in ("same_label_prob", "normal_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"--{name.replace('_', '-')}: must be in 0..1")

    @property
    def extension(self) -> str:
        return f".{self.container}"

    @property
    def boundary_frames(self) -> int:
        """Frames per step of the boundary grid (times that are exact short decimals)."""
        return self.fps // math.gcd(self.fps, 100)


@dataclass(frozen=True)
class Instance:
    """An object present in frames [start_frame, end_frame) (end exclusive) of a video."""

    label: str
    start_frame: int
    end_frame: int
    fps: int
    obj: WorldObject

    @property
    def start(self) -> float:
        return _seconds(self.start_frame, self.fps)

    @property
    def end(self) -> float:
        return _seconds(self.end_frame, self.fps)

    @property
    def frames(self) -> range:
        return range(self.start_frame, self.end_frame)

    def style_at(self, frame_index: int, phase_frames: int) -> str:
        """The object's phase style in a frame of this instance: "rim" in its first
        `phase_frames` frames, "outline" in its last ones (each at most a third of it)."""
        n = min(phase_frames, len(self.frames) // 3)
        if frame_index < self.start_frame + n:
            return "rim"
        if frame_index >= self.end_frame - n:
            return "outline"
        return "plain"


def _seconds(frames: int, fps: int) -> float:
    return round(frames / fps, 6)


@dataclass(frozen=True)
class WorldVideo:
    """One generated video and its ground truth."""

    video_id: str
    kind: str
    path: Path
    label: str | None  # trimmed: its label; anomaly: label or BACKGROUND_PHRASE; untrimmed: None
    width: int
    height: int
    fps: int
    num_frames: int
    background: int
    noise_sigma: float
    noise_seed: int
    instances: tuple[Instance, ...]
    phase_frames: int = 0  # frames of each instance's start/end phase style (0: plain only)

    @property
    def duration(self) -> float:
        return _seconds(self.num_frames, self.fps)

    @property
    def is_normal(self) -> bool:
        return not self.instances

    def instance_at(self, frame_index: int) -> Instance | None:
        for inst in self.instances:
            if inst.start_frame <= frame_index < inst.end_frame:
                return inst
        return None

    def objects_at(self, frame_index: int) -> list[tuple[WorldObject, float]]:
        """(object, seconds since it appeared) for the objects drawn in frame `frame_index`."""
        inst = self.instance_at(frame_index)
        if inst is None:
            return []
        return [(inst.obj, (frame_index - inst.start_frame) / self.fps)]

    def phase_at(self, frame_index: int) -> str | None:
        """ "rim" / "outline" / "plain" for a frame with an object, None for background only."""
        inst = self.instance_at(frame_index)
        return None if inst is None else inst.style_at(frame_index, self.phase_frames)

    def frame_labels(self) -> list[str | None]:
        """Per frame: the label of the object drawn in it, or None for background only."""
        labels: list[str | None] = [None] * self.num_frames
        for inst in self.instances:
            labels[inst.start_frame : inst.end_frame] = [inst.label] * len(inst.frames)
        return labels

    def object_present(self) -> np.ndarray:
        """Boolean per frame: an object (an anomaly, an action) is drawn in it."""
        import numpy as np

        present = np.zeros(self.num_frames, dtype=bool)
        for inst in self.instances:
            present[inst.start_frame : inst.end_frame] = True
        return present

    def patch_mask(self, frame_index: int, grid: tuple[int, int]) -> np.ndarray:
        """Patch cells (rows×cols) covered by the object in that frame; all False if none."""
        import numpy as np

        out = np.zeros(grid, dtype=bool)
        for obj, t in self.objects_at(frame_index):
            out |= object_patch_mask(obj, t, self.width, self.height, grid)
        return out

    def frames(self) -> Iterator[np.ndarray]:
        """The video's frames as rendered before encoding, one at a time."""
        renderer = FrameRenderer(
            self.width, self.height, self.background, self.noise_sigma, self.noise_seed
        )
        for i in range(self.num_frames):
            phase = self.phase_at(i)
            yield renderer.frame([(o, t, phase or "plain") for o, t in self.objects_at(i)])


@dataclass(frozen=True)
class WorldManifest:
    """What `generate_world` wrote: the config, every video and the ground-truth files."""

    outdir: Path
    config: SynthConfig
    videos: tuple[WorldVideo, ...]

    def of_kind(self, kind: str) -> tuple[WorldVideo, ...]:
        return tuple(v for v in self.videos if v.kind == kind)

    @property
    def trimmed(self) -> tuple[WorldVideo, ...]:
        return self.of_kind("trimmed")

    @property
    def untrimmed(self) -> tuple[WorldVideo, ...]:
        return self.of_kind("untrimmed")

    @property
    def anomaly(self) -> tuple[WorldVideo, ...]:
        return self.of_kind("anomaly")

    def video(self, video_id: str) -> WorldVideo:
        for v in self.videos:
            if v.video_id == video_id:
                return v
        raise KeyError(video_id)

    @property
    def labels_file(self) -> Path:
        return self.outdir / "labels.txt"

    @property
    def descriptions_file(self) -> Path:
        return self.outdir / "descriptions.json"

    @property
    def trimmed_list(self) -> Path:
        return self.outdir / "trimmed" / "list.csv"

    @property
    def untrimmed_list(self) -> Path:
        return self.outdir / "untrimmed" / "list.csv"

    @property
    def activitynet_json(self) -> Path:
        return self.outdir / "untrimmed" / "activitynet.json"

    @property
    def thumos_dir(self) -> Path:
        return self.outdir / "untrimmed" / "thumos"

    @property
    def anomaly_list(self) -> Path:
        return self.outdir / "anomaly" / "list.csv"

    @property
    def anomaly_annotations(self) -> Path:
        return self.outdir / "anomaly" / "temporal_annotation.txt"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "zsar-world",
            "version": 1,
            "config": asdict(self.config),
            "videos": [_video_to_json(v, self.outdir) for v in self.videos],
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any], outdir: Path) -> WorldManifest:
        config = SynthConfig(**payload["config"])
        videos = tuple(_video_from_json(v, outdir) for v in payload["videos"])
        return cls(outdir, config, videos)


def _video_to_json(video: WorldVideo, outdir: Path) -> dict[str, Any]:
    record = asdict(video)
    record["path"] = video.path.relative_to(outdir).as_posix()
    return record


def _video_from_json(record: dict[str, Any], outdir: Path) -> WorldVideo:
    instances = tuple(
        Instance(
            label=i["label"],
            start_frame=i["start_frame"],
            end_frame=i["end_frame"],
            fps=i["fps"],
            obj=WorldObject(**i["obj"]),
        )
        for i in record["instances"]
    )
    return WorldVideo(**{**record, "path": outdir / record["path"], "instances": instances})


def load_world(outdir: str | Path) -> WorldManifest:
    """The manifest of a world written by `generate_world` (OUTDIR/world.json)."""
    outdir = Path(outdir)
    path = outdir / MANIFEST_NAME
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no world manifest here (generate one with zsar synth)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable world manifest: {exc}") from None
    if payload.get("format") != "zsar-world":
        raise InputError(f"{path}: not a zsar world manifest")
    return WorldManifest.from_json(payload, outdir)


def _rng(config: SynthConfig, *words: int) -> np.random.Generator:
    import numpy as np

    # Streams keyed by (seed, purpose, index): a video does not change when others are added.
    return np.random.default_rng([config.seed, *words])


def _draw_steps(rng: np.random.Generator, seconds: tuple[float, float], step_s: float) -> int:
    """A duration drawn uniformly on the boundary grid, in grid steps (at least one)."""
    lo = max(1, math.ceil(seconds[0] / step_s - 1e-9))
    hi = max(lo, math.floor(seconds[1] / step_s + 1e-9))
    return int(rng.integers(lo, hi + 1))


def _place(
    rng: np.random.Generator,
    total_steps: int,
    count: tuple[int, int],
    seconds: tuple[float, float],
    gap_s: float,
    step_s: float,
) -> list[tuple[int, int]]:
    """Non-overlapping [start, end) spans (in grid steps), at least `gap_s` apart, in order."""
    import numpy as np

    gap = math.ceil(gap_s / step_s - 1e-9)
    k = int(rng.integers(count[0], count[1] + 1))
    lengths = [_draw_steps(rng, seconds, step_s) for _ in range(k)]
    for _ in range(20):  # redraw a few times before giving up instances
        if sum(lengths) + gap * (len(lengths) - 1) <= total_steps:
            break
        lengths = [_draw_steps(rng, seconds, step_s) for _ in range(k)]
    while sum(lengths) + gap * (len(lengths) - 1) > total_steps:
        if len(lengths) > 1:
            lengths.pop()
        else:
            lengths[0] = total_steps
    free = total_steps - sum(lengths) - gap * (len(lengths) - 1)
    cuts = np.sort(rng.integers(0, free + 1, size=len(lengths)))
    spans, cursor, previous_cut = [], 0, 0
    for length, cut in zip(lengths, cuts, strict=True):
        start = cursor + int(cut) - previous_cut
        spans.append((start, start + length))
        cursor, previous_cut = start + length + gap, int(cut)
    return spans


def plan_world(config: SynthConfig, outdir: str | Path) -> tuple[WorldVideo, ...]:
    """Every video of the world and its ground truth, without rendering anything (pure)."""
    outdir = Path(outdir)
    fps, step = config.fps, config.boundary_frames
    step_s = step / fps
    w, h = config.width, config.height
    videos: list[WorldVideo] = []

    def make_object(rng: np.random.Generator, label: str) -> WorldObject:
        return random_object(rng, w, h, label, config.object_size, config.max_speed)

    def video(kind: str, index: int, label: str | None, frames: int, rng, instances) -> WorldVideo:
        video_id = f"{kind}_{index:04d}"
        return WorldVideo(
            video_id=video_id,
            kind=kind,
            path=outdir / kind / f"{video_id}{config.extension}",
            label=label,
            width=w,
            height=h,
            fps=fps,
            num_frames=frames,
            background=int(rng.integers(config.background[0], config.background[1] + 1)),
            noise_sigma=float(config.noise_sigma),
            noise_seed=int(rng.integers(2**62)),
            instances=tuple(instances),
            phase_frames=0 if kind == "trimmed" else round(config.phase_seconds * fps),
        )

    # Trimmed: labels cycle through one seeded permutation, so counts per label differ by ≤ 1.
    order = _rng(config, 100 + _KIND_CODE["trimmed"]).permutation(len(LABELS))
    for i in range(config.trimmed):
        rng = _rng(config, _KIND_CODE["trimmed"], i)
        label = LABELS[order[i % len(LABELS)]]
        frames = _draw_steps(rng, config.trimmed_duration, step_s) * step
        inst = Instance(label, 0, frames, fps, make_object(rng, label))
        videos.append(video("trimmed", i, label, frames, rng, [inst]))

    order = _rng(config, 100 + _KIND_CODE["untrimmed"]).permutation(len(LABELS))
    for i in range(config.untrimmed):
        rng = _rng(config, _KIND_CODE["untrimmed"], i)
        steps = _draw_steps(rng, config.untrimmed_duration, step_s)
        spans = _place(
            rng, steps, config.instances, config.instance_duration, config.min_gap, step_s
        )
        first = LABELS[order[i % len(LABELS)]]
        labels = [first]
        for _ in spans[1:]:
            if rng.random() < config.same_label_prob:
                labels.append(first)
            else:
                others = [lab for lab in LABELS if lab != first]
                labels.append(others[int(rng.integers(len(others)))])
        labels = [labels[j] for j in rng.permutation(len(labels))]
        instances = [
            Instance(lab, s * step, e * step, fps, make_object(rng, lab))
            for lab, (s, e) in zip(labels, spans, strict=True)
        ]
        videos.append(video("untrimmed", i, None, steps * step, rng, instances))

    n = config.anomaly
    n_normal = round(n * config.normal_fraction)
    if n >= 2 and 0 < config.normal_fraction < 1:
        n_normal = min(max(n_normal, 1), n - 1)  # both kinds present whenever possible
    pick = _rng(config, 100 + _KIND_CODE["anomaly"])
    order = pick.permutation(len(LABELS))
    normal = set(pick.permutation(n)[:n_normal].tolist())
    cycle = 0
    for i in range(n):
        rng = _rng(config, _KIND_CODE["anomaly"], i)
        steps = _draw_steps(rng, config.anomaly_duration, step_s)
        if i in normal:
            videos.append(video("anomaly", i, BACKGROUND_PHRASE, steps * step, rng, []))
            continue
        label = LABELS[order[cycle % len(LABELS)]]
        cycle += 1
        spans = _place(
            rng,
            steps,
            config.anomaly_intervals,
            config.anomaly_interval_duration,
            config.min_gap,
            step_s,
        )
        instances = [
            Instance(label, s * step, e * step, fps, make_object(rng, label)) for s, e in spans
        ]
        videos.append(video("anomaly", i, label, steps * step, rng, instances))
    return tuple(videos)


def _number(x: float) -> str:
    return repr(round(float(x), 6))


def ucf_crime_line(video: WorldVideo) -> str:
    """`name.ext  Class  s1  e1  s2  e2`: 1-based inclusive frame numbers, -1 when absent."""
    cls = NORMAL_CLASS if video.is_normal else label_token(video.instances[0].label)
    numbers: list[int] = []
    for inst in video.instances[:2]:
        numbers += [inst.start_frame + 1, inst.end_frame]  # [s, e) 0-based → [s+1, e] 1-based
    numbers += [-1] * (4 - len(numbers))
    return "  ".join([video.path.name, cls, *(str(x) for x in numbers)])


def activitynet_json(videos: Iterable[WorldVideo]) -> dict[str, Any]:
    return {
        "version": "VERSION 1.3",
        "taxonomy": [],
        "database": {
            v.video_id: {
                "subset": "testing",
                "duration": v.duration,
                "annotations": [
                    {"segment": [inst.start, inst.end], "label": inst.label} for inst in v.instances
                ],
                "url": "",
            }
            for v in videos
        },
    }


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _list_csv(videos: Iterable[WorldVideo]) -> str:
    rows = ["video,label"] + [f"{v.path.name},{v.label or ''}" for v in videos]
    return "\n".join(rows) + "\n"


def write_ground_truth(manifest: WorldManifest) -> list[Path]:
    """labels.txt, descriptions.json, per-kind lists and annotation files, world.json last."""
    out = manifest.outdir
    written: list[Path] = []

    def put(path: Path, text: str) -> None:
        _write_text(path, text)
        written.append(path)

    put(manifest.labels_file, "\n".join(LABELS) + "\n")
    put(manifest.descriptions_file, json.dumps(world_descriptions(), indent=2) + "\n")
    if manifest.config.trimmed:
        put(manifest.trimmed_list, _list_csv(manifest.trimmed))
    if manifest.config.untrimmed:
        untrimmed = manifest.untrimmed
        put(manifest.untrimmed_list, _list_csv(untrimmed))
        put(manifest.activitynet_json, json.dumps(activitynet_json(untrimmed), indent=1) + "\n")
        for label in LABELS:
            lines = [
                f"{v.video_id} {_number(inst.start)} {_number(inst.end)}"
                for v in untrimmed
                for inst in v.instances
                if inst.label == label
            ]
            put(
                manifest.thumos_dir / f"{label_token(label)}_test.txt",
                "".join(line + "\n" for line in lines),
            )
    if manifest.config.anomaly:
        put(manifest.anomaly_list, _list_csv(manifest.anomaly))
        put(
            manifest.anomaly_annotations,
            "".join(ucf_crime_line(v) + "\n" for v in manifest.anomaly),
        )
    put(out / MANIFEST_NAME, json.dumps(manifest.to_json(), indent=1) + "\n")
    return written


_VIDEO_EXTENSIONS = {f".{c}" for c in CONTAINERS}


def _remove_previous(outdir: Path) -> None:
    """Delete what an earlier world left here (our own file names only), so no stale video
    from a bigger run is picked up by a folder scan."""
    for kind in KINDS:
        folder = outdir / kind
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{kind}_[0-9]*"):
            if path.suffix in _VIDEO_EXTENSIONS and path.is_file():
                path.unlink()
        for name in ("list.csv", "activitynet.json", "temporal_annotation.txt"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        for path in (folder / "thumos").glob("*_test.txt"):
            path.unlink()
    with contextlib.suppress(FileNotFoundError):
        (outdir / MANIFEST_NAME).unlink()


def generate_world(
    outdir: str | Path,
    config: SynthConfig | None = None,
    progress: Callable[[WorldVideo], None] | None = None,
) -> WorldManifest:
    """Render and encode every video of the world into `outdir`, then write the ground truth.

    Videos are rendered frame by frame straight into ffmpeg. `progress` is called after each video.
    The manifest (world.json) is written last: its presence marks a complete world.
    """
    config = config or SynthConfig()
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{outdir}: cannot create the output folder: {exc.strerror}") from None
    _remove_previous(outdir)
    videos = plan_world(config, outdir)
    for v in videos:
        v.path.parent.mkdir(parents=True, exist_ok=True)
        write_video(
            v.path,
            v.frames(),
            v.width,
            v.height,
            v.fps,
            codec=config.codec,
            preset=config.preset,
            quality=config.quality,
            threads=config.threads,
        )
        if progress is not None:
            progress(v)
    manifest = WorldManifest(outdir, config, videos)
    write_ground_truth(manifest)
    return manifest


def generate_background_video(
    path: str | Path,
    duration_s: float,
    size: tuple[int, int] = (640, 360),
    fps: int = 25,
    seed: int = 0,
    background: int = 128,
    noise_sigma: float = 6.0,
    codec: str = "libx264",
    preset: str = "veryfast",
    quality: int | None = None,
    unit_s: float = 10.0,
    pool_frames: int = 16,
    objects: int = 0,
) -> Path:
    """A long world video for benchmarks, cheaply: gray + noise (and `objects` moving objects).

    One `unit_s`-second unit is rendered (from `pool_frames` distinct noise frames) and encoded
    with a keyframe at its start; longer videos repeat that unit by stream copy (no re-encoding),
    so a 60-minute 640x360 video costs about as much as 10 s plus writing the file (~0.45 Mbit/s
    at the defaults: ~200 MB per hour).
    """
    import numpy as np

    from zsar_cli.video import loop_video

    path = Path(path)
    width, height = size
    total = max(1, round(duration_s * fps))
    unit = min(total, max(1, round(unit_s * fps)))
    renderer = FrameRenderer(width, height, background, noise_sigma, seed)
    rng = np.random.default_rng([seed, 7])
    things = [random_object(rng, width, height) for _ in range(objects)]
    pool = [renderer.frame() for _ in range(pool_frames)]

    def unit_frames() -> Iterator[np.ndarray]:
        for i in range(unit):
            if things:
                yield renderer.frame([(obj, i / fps) for obj in things])
            else:
                yield pool[i % len(pool)]

    codec = resolve_codec(codec)
    # One closed GOP per unit and no B-frames, so units can be concatenated packet by packet.
    gop: dict[str, Any] = {"g": unit}
    if codec == "libx264":
        gop.update({"bf": 0, "x264-params": "open-gop=0:scenecut=0"})
    if total == unit:
        write_video(path, unit_frames(), width, height, fps, codec, preset, quality, 0, gop)
        return path
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        unit_path = Path(tmp) / f"unit{path.suffix}"
        write_video(unit_path, unit_frames(), width, height, fps, codec, preset, quality, 0, gop)
        loop_video(unit_path, path, total)
    return path
