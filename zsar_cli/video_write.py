"""Encoding video files from RGB frames: with the ffmpeg program when it is on PATH, else in
process with the FFmpeg libraries the PyAV wheel bundles.

Input: H×W×3 uint8 RGB frames (or an encoded unit to repeat). Output: a video file. Used by
`zsar synth` (the world videos) and the tests' clips; `zsar_cli.video` re-exports both functions.
Options are named as on the ffmpeg command line (`crf`, `preset`, `g`, `bf`, `q:v`, `b:v`,
`threads`, an encoder's own options such as `x264-params` or `deadline`).

Why two ways (issue #17): `pip install` must be the whole set-up, so without the program the
PyAV encoders write the videos; where the program is present it stays the encoder, so worlds
made on a machine with ffmpeg stay the files they were. `ZSAR_ENCODER=pyav|ffmpeg` forces one.
One difference found by measurement: the libx264 inside the PyAV wheel is not reproducible with
its AVX-512 code on this machine (the same frames encoded six times in one process gave six
different files; `asm=0` gave one); a same-seed world must be the same video, so through PyAV
libx264 runs without assembly (about 2x the encoding time of 320x240 frames, 0.095 s against
0.045 s for 17 frames).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from zsar_cli.errors import VideoError


def _codec_options(output_args: Mapping[str, Any] | None, codec: str) -> dict[str, str]:
    """ffmpeg command-line output options as the encoder's AVOptions (libx264: no assembly,
    for reproducible files; the module docstring says why).

    `q:v` (a constant quantizer for mpeg4/mjpeg): the program sets it on every frame, which
    PyAV cannot; pinning the quantizer range to it is the same constant quantizer (file sizes
    within 3% of the program's, measured). `b:v` is the generic `b`."""
    options: dict[str, str] = {}
    for key, value in (output_args or {}).items():
        text = str(value)
        if key == "q:v":
            options["qmin"] = options["qmax"] = text
        elif key == "b:v":
            options["b"] = text
        else:
            options[key] = text
    if codec == "libx264":
        params = options.get("x264-params", "")
        options["x264-params"] = f"{params}:asm=0" if params else "asm=0"
    return options


def _checked(frames: Iterable[np.ndarray], width: int, height: int) -> Iterator[np.ndarray]:
    """The frames as C-contiguous arrays; ValueError naming the first of another shape or type."""
    for count, frame in enumerate(frames):
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame {count}: expected {(height, width, 3)} uint8, "
                f"got {frame.shape} {frame.dtype}"
            )
        yield np.ascontiguousarray(frame)


@contextlib.contextmanager
def _removed_on_failure(path: Path, doing: str) -> Iterator[None]:
    """No partial file under `path` after a failure; FFmpeg's errors as a VideoError."""
    import av

    try:
        yield
    except av.error.FFmpegError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise VideoError(f"{path}: could not {doing} the video ({exc})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def _write_with_pyav(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: int,
    size: tuple[int, int],
    codec: str,
    pix_fmt: str = "yuv420p",
    output_args: Mapping[str, Any] | None = None,
) -> int:
    """`write_video` through PyAV."""
    import av

    path = Path(path)
    width, height = size
    time_base = Fraction(1, fps)
    count = 0
    with _removed_on_failure(path, "encode"), av.open(str(path), "w") as container:
        try:
            stream: Any = container.add_stream(codec, rate=fps)
        except ValueError as exc:  # an unknown encoder, or one the container cannot hold
            raise VideoError(f"{path}: cannot encode {codec} video here ({exc})") from None
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = time_base
        stream.options = _codec_options(output_args, codec)
        for frame in _checked(frames, width, height):
            rgb = av.VideoFrame.from_ndarray(frame, format="rgb24")
            # Bicubic, as the scale filter the ffmpeg program inserts (chroma is resampled).
            out = rgb.reformat(format=pix_fmt, interpolation="BICUBIC")
            out.pts, out.time_base = count, time_base
            container.mux(stream.encode(out))
            count += 1
        container.mux(stream.encode(None))
    return count


def _unit_span(source: str | Path) -> int:
    """The source's video length in its stream's time base: first packet time to last end."""
    import av

    with av.open(str(source)) as src:
        times = [
            (p.pts, p.pts + (p.duration or 0))
            for p in src.demux(src.streams.video[0])
            if p.pts is not None and p.size
        ]
    if not times:
        raise VideoError(f"{source}: no video packets to repeat")
    return max(end for _, end in times) - min(start for start, _ in times)


def _loop_with_pyav(source: str | Path, path: str | Path, num_frames: int) -> Path:
    """`loop_video` through PyAV: each copy of the unit's packets shifted by its span. Each
    copy demuxes the source anew (muxing a packet hands its data to the muxer)."""
    import av

    path = Path(path)
    span = _unit_span(source)
    written = 0
    with _removed_on_failure(path, "write"), av.open(str(path), "w") as out:
        stream: Any = None
        for copy in itertools.count():
            if written == num_frames:
                break
            with av.open(str(source)) as src:
                video = src.streams.video[0]
                stream = stream or out.add_stream_from_template(video)
                for packet in src.demux(video):
                    if written == num_frames:
                        break
                    if packet.pts is None or not packet.size:
                        continue
                    packet.pts += copy * span
                    if packet.dts is not None:
                        packet.dts += copy * span
                    packet.stream = stream
                    out.mux(packet)
                    written += 1
    return path


def _write_with_program(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: int,
    size: tuple[int, int],
    codec: str,
    pix_fmt: str = "yuv420p",
    output_args: Mapping[str, Any] | None = None,
) -> int:
    """`write_video` through the ffmpeg program (raw RGB frames on its stdin)."""
    import ffmpeg

    path = Path(path)
    width, height = size
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=fps)
    stream = ffmpeg.output(
        stream, str(path), r=fps, vcodec=codec, pix_fmt=pix_fmt, **dict(output_args or {})
    )
    stream = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    cmd = ffmpeg.compile(stream, overwrite_output=True)
    count = 0
    # stderr to a file rather than a pipe: a chatty ffmpeg must not block on a full pipe.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        assert proc.stdin is not None
        try:
            for frame in _checked(frames, width, height):
                proc.stdin.write(frame.data)
                count += 1
            proc.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg quit early; its exit code and log below say why
        except BaseException:
            proc.kill()
            proc.wait()
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        rc = proc.wait()
        if rc != 0:
            log.seek(0)
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
            reason = lines[-1] if lines else f"exit code {rc}"
            with contextlib.suppress(OSError):
                path.unlink()
            raise VideoError(f"{path}: ffmpeg could not encode the video: {reason}")
    return count


def _loop_with_program(source: str | Path, path: str | Path, num_frames: int) -> Path:
    """`loop_video` through the ffmpeg program (`-stream_loop -1 -c copy`)."""
    import ffmpeg

    path = Path(path)
    stream = ffmpeg.input(str(source), stream_loop=-1)
    stream = ffmpeg.output(stream, str(path), c="copy", **{"frames:v": num_frames})
    stream = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    done = subprocess.run(
        ffmpeg.compile(stream, overwrite_output=True), capture_output=True, text=True
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise VideoError(f"{path}: ffmpeg could not write the video: {lines[-1:]}")
    return path


ENCODERS = ("ffmpeg", "pyav")


def encoder() -> str:
    """Which encoder writes videos here: ZSAR_ENCODER, else the ffmpeg program when on PATH."""
    forced = os.environ.get("ZSAR_ENCODER", "").strip().lower()
    if forced:
        if forced not in ENCODERS:
            raise ValueError(f"ZSAR_ENCODER={forced!r}: one of {', '.join(ENCODERS)}")
        return forced
    return "ffmpeg" if shutil.which("ffmpeg") else "pyav"


def write_video(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: int,
    size: tuple[int, int],
    codec: str,
    pix_fmt: str = "yuv420p",
    output_args: Mapping[str, Any] | None = None,
) -> int:
    """Encode H×W×3 uint8 RGB frames into a video file; returns the number of frames written.

    `size` is (width, height) and every frame must have it. `codec` and `pix_fmt` are the
    encoder and its pixel format (the container follows the file's suffix); `output_args` are
    further options by their ffmpeg names (`{"crf": 23, "preset": "veryfast"}`). Frames are
    consumed one at a time, so a video is never held in memory; frame k is presented at k / fps.
    On failure the partial file is removed: VideoError when encoding fails, ValueError for a
    frame of the wrong shape or dtype.
    """
    write = _write_with_program if encoder() == "ffmpeg" else _write_with_pyav
    return write(frames, path, fps, size, codec, pix_fmt, output_args)


def loop_video(source: str | Path, path: str | Path, num_frames: int) -> Path:
    """Write `source` played in a loop until `num_frames` frames, by stream copy (no re-encoding).

    The copies are concatenated packet by packet, so `source` must be one closed GOP without
    B-frames reaching past its end (see `write_video`'s `output_args`), or the seams will not
    decode cleanly.
    """
    loop = _loop_with_program if encoder() == "ffmpeg" else _loop_with_pyav
    return loop(source, path, num_frames)
