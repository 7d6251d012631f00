"""Encoders and containers of world videos, and their ffmpeg options.

Input: a codec name (or alias) and container from `SynthConfig`, then H×W×3 uint8 RGB frames.
Output: the resolved names (ConfigError for an unknown or impossible pair) and, by `write_video`,
an encoded video file; `zsar_cli.video.write_video` runs the encoder itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zsar_cli.errors import ConfigError

# numpy is imported inside functions only; the package docstring says why.
if TYPE_CHECKING:
    import numpy as np

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
    """Stream H×W×3 uint8 frames into an encoder (zsar_cli.video_write); returns the frame count.

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
