"""`SynthConfig`: everything that defines a generated world, checked once.

Input: `zsar synth` options (or a world.json's "config"). Output: a frozen, validated config
(ConfigError names the offending option); the CLI reads its defaults from the dataclass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

from zsar_cli.errors import ConfigError
from zsar_cli.synthetic.codecs import resolve_codec, resolve_container

SIZE_MIN = (160, 120)
SIZE_MAX = (1280, 720)
FPS_RANGE = (10, 60)


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
