"""Video metadata: `VideoInfo`, the limits every decoder enforces (`DecodeLimits`: frame size
cap, no playlists), and `probe_binary(path)` through the ffprobe program.

Input: a video file. Output: its first video stream's facts in display orientation (rotation
and sample aspect ratio applied), or a VideoError with one clear reason. Re-exported by
`zsar_cli.video`, which chooses the decoder (`zsar_cli.video_pyav` probes in process).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from zsar_cli.errors import VideoError

# Demuxers that make the decoder open other files or URLs named inside the input (playlists,
# concat lists, manifests, session descriptions, scripts). An input is read as a plain file:
# these are refused unless `DecodeLimits.allow_playlists` (issue #16: an HLS playlist named
# `innocent.mp4` made ffmpeg decode a private file beside it).
BLOCKED_DEMUXERS: frozenset[str] = frozenset(
    {
        "hls",
        "applehttp",
        "concat",
        "dash",
        "imf",
        "sdp",
        "rtsp",
        "rtp",
        "avisynth",
        "vapoursynth",
    }
)
# `--decoder`: FFmpeg's libraries in process (PyAV's wheel), or the ffmpeg/ffprobe programs.
DECODERS: tuple[str, ...] = ("pyav", "ffmpeg")
# `--decode-device`: cuda is NVDEC through torchcodec.
DECODE_DEVICES: tuple[str, ...] = ("cpu", "cuda")
# Protocols an input may be read through: local files only.
PROTOCOL_WHITELIST = "file"
DEFAULT_MAX_FRAME_PIXELS = 64_000_000


@dataclass(frozen=True)
class DecodeLimits:
    """What a decoder may do with an input: frame size cap, and whether playlists are followed."""

    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS
    allow_playlists: bool = False

    @property
    def decoder_max_pixels(self) -> int:
        """The decoders' own `max_pixels` backstop (a stream that grows mid-way): above the cap,
        since decoders allocate frames padded to their block size."""
        return 2 * self.max_frame_pixels + 65536


def check_frame_size(path: Path, width: int, height: int, limits: DecodeLimits) -> None:
    """VideoError before decoding when one frame would exceed the pixel cap (issue #16: a
    108-byte GIF claiming 16000x16000 took 2.4 GB)."""
    if width * height > limits.max_frame_pixels:
        raise VideoError(
            f"{path}: frame size {width}x{height} ({width * height / 1e6:.0f} MP) exceeds "
            f"--max-frame-pixels {limits.max_frame_pixels} ({limits.max_frame_pixels / 1e6:g} MP)"
        )


def playlist_kind(path: Path) -> str | None:
    """What kind of playlist or list a file is, from its first bytes (for the refusal message)."""
    try:
        with path.open("rb") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return None
    if head.startswith(b"#EXTM3U"):
        return "an HLS playlist"
    if head.startswith(b"ffconcat version"):
        return "an ffconcat list"
    if b"<MPD" in head:
        return "a DASH manifest"
    if head.startswith(b"<?xml") and b"CompositionPlaylist" in head:
        return "an IMF composition playlist"
    if head.startswith(b"v=0"):
        return "an SDP session description"
    return None


def playlist_refusal(path: Path, kind: str | None = None) -> VideoError:
    what = kind or playlist_kind(path) or "a playlist or concat list"
    return VideoError(
        f"{path}: refused: {what} makes the decoder read other files; "
        "pass --allow-playlists to follow it"
    )


def _require_binaries() -> None:
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise VideoError(
                f"--decoder ffmpeg: {tool} not found on PATH (install ffmpeg, or use the default "
                "--decoder pyav, which needs no ffmpeg program)"
            )


@functools.lru_cache(maxsize=4)
def _binary_demuxers(ffmpeg: str) -> tuple[str, ...]:
    done = subprocess.run(
        [ffmpeg, "-hide_banner", "-demuxers"], capture_output=True, text=True, check=False
    )
    names: list[str] = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("D"):
            names.extend(parts[1].split(","))
    return tuple(names)


def format_whitelist(demuxers: Iterable[str], limits: DecodeLimits) -> str | None:
    """The `format_whitelist` option value: every demuxer but the blocked ones (None: any)."""
    if limits.allow_playlists:
        return None
    return ",".join(sorted({d for d in demuxers if d not in BLOCKED_DEMUXERS}))


def binary_input_options(limits: DecodeLimits) -> dict[str, str]:
    """Input options of the ffmpeg/ffprobe programs that enforce `limits`."""
    options = {"protocol_whitelist": PROTOCOL_WHITELIST}
    allowed = format_whitelist(_binary_demuxers(shutil.which("ffmpeg") or "ffmpeg"), limits)
    if allowed is not None:
        options["format_whitelist"] = allowed
    return options


def _ff_path(path: Path) -> str:
    # The `file:` protocol prefix keeps names starting with '-' or containing ':' from being
    # read as options or protocols.
    return "file:" + str(path.resolve())


def _ratio(text: str | None) -> float:
    if not text or text in ("0/0", "N/A"):
        return 0.0
    try:
        # ffprobe writes aspect ratios as "64:51" and rates as "30000/1001".
        return float(Fraction(text.replace(":", "/")))
    except (ValueError, ZeroDivisionError):
        return 0.0


@dataclass(frozen=True)
class VideoInfo:
    """ffprobe facts about a video's first video stream, in display orientation."""

    path: Path
    duration: float  # seconds
    start_time: float  # pts of the first frame, seconds
    fps: float  # average frame rate
    width: int  # display width (rotation and sample aspect ratio applied)
    height: int
    rotation: int  # degrees, as the display matrix says
    codec: str
    nb_frames: int | None
    variable_frame_rate: bool

    @property
    def frame_count_estimate(self) -> int:
        if self.nb_frames:
            return self.nb_frames
        return max(0, round(self.duration * self.fps))


def check_file(path: Path) -> None:
    """VideoError for what is not a regular, non-empty file (before any decoder sees it)."""
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")


def make_info(
    path: Path,
    *,
    coded_width: int,
    coded_height: int,
    sar: float,
    rotation: int,
    avg_rate: float,
    real_rate: float,
    start_time: float,
    duration: float,
    nb_frames: int | None,
    codec: str,
    limits: DecodeLimits,
) -> VideoInfo:
    """VideoInfo from a stream's raw facts, the same rules for every prober."""
    if coded_width <= 0 or coded_height <= 0:
        raise VideoError(f"{path}: video stream has no frame size")
    check_frame_size(path, coded_width, coded_height, limits)
    width, height = coded_width, coded_height
    if sar > 0 and abs(sar - 1) > 1e-3:
        width = round(width * sar)
    if rotation % 180 == 90:
        width, height = height, width
    fps = avg_rate or real_rate
    if duration <= 0 and nb_frames and fps:
        duration = nb_frames / fps
    if fps <= 0:
        raise VideoError(f"{path}: unknown frame rate")
    vfr = bool(avg_rate and real_rate and abs(avg_rate - real_rate) / real_rate > 1e-3)
    return VideoInfo(
        path, duration, start_time, fps, width, height, rotation, codec, nb_frames, vfr
    )


def probe_binary(path: Path, limits: DecodeLimits | None = None) -> VideoInfo:
    """ffprobe a file; VideoError with one clear reason if it is not a decodable video."""
    _require_binaries()
    import ffmpeg

    limits = limits or DecodeLimits()
    check_file(path)
    try:
        data = ffmpeg.probe(_ff_path(path), **binary_input_options(limits))
    except ffmpeg.Error as exc:
        stderr = exc.stderr.decode(errors="replace") if exc.stderr else ""
        if "not on whitelist" in stderr:
            raise playlist_refusal(path) from None
        reason = _last_line(stderr)
        raise VideoError(f"{path}: not a readable video ({reason or 'ffprobe failed'})") from None
    streams = [s for s in data.get("streams", []) if s.get("codec_type") == "video"]
    # Cover art in audio files is a one-frame "video" stream; it is not a video.
    streams = [s for s in streams if not s.get("disposition", {}).get("attached_pic")]
    if not streams:
        kinds = sorted({s.get("codec_type", "?") for s in data.get("streams", [])})
        what = f"only {', '.join(kinds)} streams" if kinds else "no streams"
        raise VideoError(f"{path}: no video stream ({what})")
    s = streams[0]
    fmt = data.get("format", {})
    return make_info(
        path,
        coded_width=int(s.get("width") or 0),
        coded_height=int(s.get("height") or 0),
        sar=_ratio(s.get("sample_aspect_ratio")),
        rotation=_rotation(s),
        avg_rate=_ratio(s.get("avg_frame_rate")),
        real_rate=_ratio(s.get("r_frame_rate")),
        start_time=_seconds(s.get("start_time"), fmt.get("start_time")),
        duration=_seconds(s.get("duration")) or _seconds(fmt.get("duration")),
        nb_frames=int(s["nb_frames"]) if str(s.get("nb_frames", "")).isdigit() else None,
        codec=s.get("codec_name", "?"),
        limits=limits,
    )


def _seconds(*texts: object) -> float:
    """The first of ffprobe's values that is a number ("N/A" and missing ones skipped), else 0."""
    for text in texts:
        with contextlib.suppress(TypeError, ValueError):
            return float(text)  # type: ignore[arg-type]
    return 0.0


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            with contextlib.suppress(TypeError, ValueError):
                return round(float(side["rotation"])) % 360
    with contextlib.suppress(TypeError, ValueError):
        return int(stream.get("tags", {}).get("rotate", 0)) % 360
    return 0


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""
