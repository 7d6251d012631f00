"""Video access: the decoder chosen for a run, probing, decoding a sampling plan, encoding.

Input: a video file. Output: a `VideoReader` (its `VideoInfo`, then (presentation time,
H×W×3 uint8 RGB) pairs for a `SamplingPlan`, the frame number of each and where a cut-off file's
data ends), and the other way round, video files encoded from RGB frames (`write_video`,
`loop_video`).

Decoders (`--decoder`, recorded in the frames artifact's metadata):
- `pyav` (default): FFmpeg's libraries in process, as the PyAV wheel bundles them, so
  `pip install` is the whole set-up (`zsar_cli.video_pyav`). Chosen by measurement: no program
  start-up per video, one open for the probe and every sample (docs/benchmarks.md).
- `ffmpeg`: the ffmpeg/ffprobe programs on PATH, ffmpeg-python building their command lines
  (`zsar_cli.video_ffmpeg`); timestamps from its `showinfo` filter, never a nominal `i / fps`.
- `--decode-device cuda`: NVDEC through torchcodec (`zsar_cli.video_cuda`).
Every decoder keeps the same frames for a plan (`zsar_cli.sampling.FramePicker`'s rule), reads
inputs as plain local files (no playlists unless allowed) and refuses frames over the pixel cap
(`DecodeLimits`).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from zsar_cli.errors import ConfigError
from zsar_cli.probe import DECODE_DEVICES as DECODE_DEVICES
from zsar_cli.probe import DECODERS as DECODERS
from zsar_cli.probe import DecodeLimits as DecodeLimits
from zsar_cli.probe import VideoInfo as VideoInfo
from zsar_cli.probe import probe_binary
from zsar_cli.sampling import SEEK_MIN_GAP_S as SEEK_MIN_GAP_S
from zsar_cli.sampling import SamplingPlan as SamplingPlan
from zsar_cli.sampling import output_size as output_size
from zsar_cli.sampling import plan_sampling as plan_sampling

# Encoding (PyAV, no ffmpeg program: zsar_cli.video_write), re-exported for callers.
from zsar_cli.video_write import loop_video as loop_video
from zsar_cli.video_write import write_video as write_video

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".gif",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".wmv",
        ".flv",
        ".3gp",
        ".ogv",
    }
)


class VideoReader(Protocol):
    """One open video, whatever decodes it. `frames` is called once; then `decoded_end`."""

    decoder: str
    info: VideoInfo

    def frames(
        self, plan: SamplingPlan, size: int | None = None
    ) -> Iterator[tuple[float, np.ndarray]]: ...

    def frame_index(self) -> Callable[[float], int]: ...

    def decoded_end(self) -> float | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> VideoReader: ...

    def __exit__(self, *exc: object) -> None: ...


def open_video(
    path: Path,
    *,
    decoder: str = "pyav",
    device: str = "cpu",
    limits: DecodeLimits | None = None,
    threads: int = 0,
) -> VideoReader:
    """Open a video with the chosen decoder (VideoError with one reason if it cannot be read).

    `threads`: decoder threads per video (0: by frame size, `video_pyav.decoder_threads`; 1 when
    several videos decode at once).
    """
    limits = limits or DecodeLimits()
    if device == "cuda":
        from zsar_cli.video_cuda import TorchcodecCudaReader

        return TorchcodecCudaReader(path, limits)
    if decoder == "ffmpeg":
        from zsar_cli.video_ffmpeg import FFmpegReader

        return FFmpegReader(path, limits)
    if decoder == "pyav":
        from zsar_cli.video_pyav import PyAVReader

        return PyAVReader(path, limits, threads=threads)
    raise ConfigError(f"--decoder {decoder!r}: choose one of {', '.join(DECODERS)}")


def check_decoder(decoder: str, device: str) -> None:
    """ConfigError, once per run, when the chosen decoder cannot run here."""
    if device == "cuda":
        if decoder != "pyav":
            raise ConfigError(
                f"--decode-device cuda decodes with torchcodec; --decoder {decoder} is for the CPU"
            )
        from zsar_cli.video_cuda import check_cuda

        check_cuda()
    elif decoder == "ffmpeg":
        from zsar_cli.probe import _require_binaries

        _require_binaries()
    elif decoder == "pyav":
        try:
            import av  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--decoder pyav: PyAV is not installed (pip install av), or use --decoder ffmpeg"
            ) from None


@functools.lru_cache(maxsize=8)
def decoder_version(decoder: str = "pyav", device: str = "cpu") -> str:
    """Which decoder and version decode a run, as the frames artifact's metadata records it."""
    if device == "cuda":
        from zsar_cli.video_cuda import version

        return version()
    if decoder == "ffmpeg":
        exe = shutil.which("ffmpeg") or "ffmpeg"
        done = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False)
        first = done.stdout.splitlines()[0] if done.stdout else "ffmpeg ?"
        number = first.split()[2] if first.startswith("ffmpeg version") else "?"
        return f"ffmpeg {number} ({exe})"
    from zsar_cli.video_pyav import version

    return version()


def probe(path: Path, decoder: str = "pyav", limits: DecodeLimits | None = None) -> VideoInfo:
    """A video's facts (display orientation), through the chosen decoder."""
    if decoder == "ffmpeg":
        return probe_binary(path, limits)
    from zsar_cli.video_pyav import probe as probe_pyav

    return probe_pyav(path, limits)


def decode(
    info: VideoInfo, plan: SamplingPlan, size: int | None = None, decoder: str = "pyav"
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream (pts seconds, RGB frame) for a plan, in presentation order."""
    with open_video(info.path, decoder=decoder) as reader:
        yield from reader.frames(plan, size)


# ---------------------------------------------------------------------------------------------
# Encoding
