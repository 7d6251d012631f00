"""Video metadata through the real ffprobe binary: `probe(path) -> VideoInfo`.

Input: a video file. Output: its first video stream's facts in display orientation (rotation
and sample aspect ratio applied), or a VideoError with one clear reason. Re-exported by
`zsar_cli.video`, which decodes and encodes.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from zsar_cli.errors import VideoError


def _require_binaries() -> None:
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise VideoError(
                f"{tool} not found on PATH; install ffmpeg (e.g. apt-get install ffmpeg)"
            )


def _ff_path(path: Path) -> str:
    # The `file:` protocol prefix keeps names starting with '-' or containing ':' from being
    # read as options or protocols.
    return "file:" + str(path.resolve())


def _ratio(text: str | None) -> float:
    if not text or text in ("0/0", "N/A"):
        return 0.0
    try:
        return float(Fraction(text))
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


def probe(path: Path) -> VideoInfo:
    """ffprobe a file; VideoError with one clear reason if it is not a decodable video."""
    _require_binaries()
    import ffmpeg

    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    try:
        data = ffmpeg.probe(_ff_path(path))
    except ffmpeg.Error as exc:
        reason = _last_line(exc.stderr.decode(errors="replace") if exc.stderr else "")
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
    width, height = int(s.get("width") or 0), int(s.get("height") or 0)
    if width <= 0 or height <= 0:
        raise VideoError(f"{path}: video stream has no frame size")
    sar = _ratio(s.get("sample_aspect_ratio"))
    if sar > 0 and abs(sar - 1) > 1e-3:
        width = round(width * sar)
    rotation = _rotation(s)
    if rotation % 180 == 90:
        width, height = height, width
    avg = _ratio(s.get("avg_frame_rate"))
    real = _ratio(s.get("r_frame_rate"))
    fps = avg or real
    start = float(s.get("start_time") or fmt.get("start_time") or 0.0)
    duration = float(s.get("duration") or fmt.get("duration") or 0.0)
    nb = int(s["nb_frames"]) if str(s.get("nb_frames", "")).isdigit() else None
    if duration <= 0 and nb and fps:
        duration = nb / fps
    if fps <= 0:
        raise VideoError(f"{path}: unknown frame rate")
    vfr = bool(avg and real and abs(avg - real) / real > 1e-3)
    return VideoInfo(
        path, duration, start, fps, width, height, rotation, s.get("codec_name", "?"), nb, vfr
    )


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
