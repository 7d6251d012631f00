"""Settings of the `extract-frames` stage, free of heavy imports so the CLI reads its defaults
without importing numpy/pyarrow (`zsar --help` stays fast).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from zsar_cli.errors import ConfigError

IMAGE_FORMATS: tuple[str, ...] = ("jpeg", "png", "raw")
# Options that change how a run executes but never what it writes: kept out of cache keys.
RUN_ONLY_FIELDS = frozenset({"workers", "strict"})


@dataclass(frozen=True)
class ExtractConfig:
    """How frames are sampled and stored. Exactly one sampling mode is chosen."""

    num_frames: int | None = None
    fps: float | None = None
    segments: int | None = None
    frames_per_segment: int | None = None
    all_frames: bool = False
    start: float | None = None
    end: float | None = None
    size: int | None = None
    image_format: str = "jpeg"
    quality: int = 90
    workers: int = 1
    strict: bool = False

    def validated(self) -> ExtractConfig:
        """Check option consistency; default to 8 uniform frames when no mode is given."""
        modes = [
            self.num_frames is not None,
            self.fps is not None,
            self.segments is not None or self.frames_per_segment is not None,
            self.all_frames,
        ]
        if sum(modes) > 1:
            raise ConfigError(
                "choose one sampling mode: --num-frames, --fps, --segments/--frames-per-segment, "
                "or --all"
            )
        cfg = self
        if sum(modes) == 0:
            cfg = replace(self, num_frames=8)
        if cfg.num_frames is not None and cfg.num_frames < 1:
            raise ConfigError(f"--num-frames must be >= 1 (got {cfg.num_frames})")
        if cfg.fps is not None and not cfg.fps > 0:
            raise ConfigError(f"--fps must be > 0 (got {cfg.fps})")
        if (cfg.segments is None) != (cfg.frames_per_segment is None):
            raise ConfigError("--segments and --frames-per-segment go together")
        if cfg.segments is not None and (cfg.segments < 1 or (cfg.frames_per_segment or 0) < 1):
            raise ConfigError("--segments and --frames-per-segment must be >= 1")
        if cfg.start is not None and cfg.start < 0:
            raise ConfigError(f"--start must be >= 0 (got {cfg.start})")
        if cfg.end is not None and cfg.end <= (cfg.start or 0):
            raise ConfigError(f"--end ({cfg.end}) must be after --start ({cfg.start or 0})")
        if cfg.size is not None and cfg.size < 8:
            raise ConfigError(f"--size must be >= 8 pixels (got {cfg.size})")
        if cfg.image_format not in IMAGE_FORMATS:
            raise ConfigError(
                f"--image-format {cfg.image_format!r}: choose one of {', '.join(IMAGE_FORMATS)}"
            )
        if not 1 <= cfg.quality <= 100:
            raise ConfigError(f"--quality must be 1..100 (got {cfg.quality})")
        if cfg.workers < 1:
            raise ConfigError(f"--workers must be >= 1 (got {cfg.workers})")
        return cfg

    def provenance(self) -> dict[str, object]:
        """The settings that decide the artifact's content (not how the run was executed)."""
        return {k: v for k, v in asdict(self).items() if k not in RUN_ONLY_FIELDS}
