"""Settings of the `extract-frames` stage, free of heavy imports so the CLI reads its defaults
without importing numpy/pyarrow (`zsar --help` stays fast). Each field's help, choices and range
are its `zsar --help` entry (see zsar_cli.options).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from zsar_cli import options as o
from zsar_cli.errors import ConfigError
from zsar_cli.options import ConfigBase, opt
from zsar_cli.probe import DECODE_DEVICES, DECODERS, DEFAULT_MAX_FRAME_PIXELS

IMAGE_FORMATS: tuple[str, ...] = ("jpeg", "png", "raw")


@dataclass(frozen=True)
class ExtractConfig(ConfigBase):
    """How frames are sampled and stored. Exactly one sampling mode is chosen."""

    num_frames: int | None = opt(
        None,
        "N frames uniformly over the duration (segment midpoints). "
        "Default when no other mode is given: 8.",
        flags=("--num-frames", "-n"),
        min=1,
    )
    # At most 1000: no video has more frames a second, and a larger rate only multiplies the
    # sampling plan (1e308 overflowed it).
    fps: float | None = opt(
        None,
        "Frames per second (first frame at or after each 1/F tick; ZEAL uses 1).",
        gt=0,
        max=1000,
    )
    segments: int | None = opt(None, "Dense sampling for Self-ReS: R segments ...", min=1)
    frames_per_segment: int | None = opt(
        None, "... of S frames each (R·S uniform frames, segment = i // S).", min=1
    )
    all_frames: bool = opt(False, "Every decoded frame.", flags=("--all",))
    start: float | None = opt(None, "Window start, seconds from the video's first frame.", min=0)
    end: float | None = opt(None, "Window end, seconds.")
    # Where the files are, not what is extracted: the resolved paths (and spans) key the
    # frames artifact through its inputs fingerprint.
    root: str | None = opt(
        None,
        "Kinetics CSV inputs: the folder holding the downloaded clips (root/<label>/ or flat; "
        "default: the CSV's folder).",
        run_only=True,
        metavar="DIR",
    )
    size: int | None = opt(
        None,
        "Resize while decoding so the shorter side is SIZE pixels, keeping the aspect ratio.",
        min=8,
    )
    image_format: str = opt("jpeg", "Storage of the frames (raw: RGB24).", choices=IMAGE_FORMATS)
    quality: int = opt(90, "JPEG quality 1-100.", min=1, max=100)
    workers: int = o.workers(1)
    strict: bool = opt(
        False,
        "Exit 1 if any video fails or is cut short (its rows are written either way).",
        run_only=True,
    )
    # The options below entered the cache key only when set, so frames extracted before they
    # existed keep their keys (the default is what those runs did, or safer).
    decoder: str = opt(
        "pyav",
        "pyav: FFmpeg's libraries in process, bundled with PyAV (fastest, no ffmpeg install); "
        "ffmpeg: the ffmpeg/ffprobe programs on PATH.",
        choices=DECODERS,
        keyed_if_set=True,
    )
    decode_device: str = opt(
        "cpu",
        "cuda: decode on the GPU (NVDEC through torchcodec: pip install 'zsar[gpu-decode]').",
        choices=DECODE_DEVICES,
        keyed_if_set=True,
    )
    max_frame_pixels: int = opt(
        DEFAULT_MAX_FRAME_PIXELS,
        "A video whose frames exceed this many pixels is an error row, not a huge allocation.",
        min=1,
        keyed_if_set=True,
    )
    allow_playlists: bool = opt(
        False,
        "Follow playlists and concat lists (HLS, DASH, ffconcat) that name other files; by "
        "default an input is read as a plain file and such a list is refused.",
        keyed_if_set=True,
    )

    def check(self) -> ExtractConfig:
        """One sampling mode at most; 8 uniform frames when none is given."""
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
        if (self.segments is None) != (self.frames_per_segment is None):
            raise ConfigError("--segments and --frames-per-segment go together")
        if self.decode_device == "cuda" and self.decoder != "pyav":
            raise ConfigError(
                f"--decode-device cuda decodes with torchcodec; --decoder {self.decoder} is for "
                "the CPU"
            )
        if self.end is not None and self.end <= (self.start or 0):
            raise ConfigError(f"--end ({self.end}) must be after --start ({self.start or 0})")
        return replace(self, num_frames=8) if sum(modes) == 0 else self
