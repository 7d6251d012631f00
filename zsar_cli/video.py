"""Video access through the real ffmpeg/ffprobe binaries: metadata, sampling plans, decoding,
encoding.

Input: a video file. Output: `VideoInfo` (ffprobe), a `SamplingPlan` (pure, no I/O), and decoded
frames as (presentation time, H×W×3 uint8 RGB) pairs streamed from an ffmpeg rawvideo pipe.
The other way round, `write_video` encodes H×W×3 uint8 RGB frames fed on ffmpeg's stdin into a
video file and `loop_video` lengthens one by stream copy, so this is the only module that runs
ffmpeg.

ffmpeg-python builds the command lines; the ffmpeg binary does all decoding, rotation (display
matrix) and resizing, so a frame never exists in Python at full resolution unless asked for.
Timestamps are the decoded frames' real presentation times as ffmpeg's `showinfo` filter reports
them with `-copyts` (the same values `ffprobe -show_frames` gives), never a nominal `i / fps`.
"""

from __future__ import annotations

import contextlib
import math
import queue
import re
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zsar_cli.errors import VideoError
from zsar_cli.probe import VideoInfo as VideoInfo
from zsar_cli.probe import _ff_path, _last_line
from zsar_cli.probe import probe as probe

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
# Samples further apart than this are fetched by seeking (one short decode per sample) rather than
# by decoding the whole stream: typical GOPs are 1-10 s, so below ~2 s a sequential decode reads
# about as many frames as the seeks would and avoids their start-up cost.
SEEK_MIN_GAP_S = 2.0
# Seeks of one video run this many ffmpeg processes at once (each is mostly start-up latency).
SEEK_CONCURRENCY = 4
_SHOWINFO_RE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(-?[0-9.eE+-]+|nan)")


# ---------------------------------------------------------------------------------------------
# Sampling plans (pure)


@dataclass(frozen=True)
class SamplingPlan:
    """Which frames to take from a window [t0, t1) of a video.

    mode "grid": the first decoded frame at or after each of `count` times origin + k·step
    (decoded sequentially, selection inside ffmpeg); "seek": the same rule, one seek per target;
    "all": every frame in the window. `frames_per_segment` > 0 assigns segment = i // S.
    """

    mode: str
    t0: float
    t1: float
    origin: float = 0.0
    step: float = 0.0
    count: int | None = None
    exact_count: bool = False
    frames_per_segment: int = 0

    def targets(self) -> list[float]:
        if self.count is None:
            return []
        return [self.origin + k * self.step for k in range(self.count)]


def plan_sampling(
    info: VideoInfo,
    *,
    num_frames: int | None = None,
    fps: float | None = None,
    segments: int | None = None,
    frames_per_segment: int | None = None,
    all_frames: bool = False,
    start: float | None = None,
    end: float | None = None,
    seek_min_gap: float = SEEK_MIN_GAP_S,
) -> SamplingPlan:
    """Turn sampling options into a plan for one video (raises VideoError if it cannot be met)."""
    t0 = info.start_time + (start or 0.0)
    t_end = info.start_time + info.duration
    t1 = t_end if end is None else min(t_end, info.start_time + end)
    window = t1 - t0
    if window <= 0:
        raise VideoError(
            f"{info.path}: empty time window (video is {info.duration:.3f} s, "
            f"--start {start or 0} --end {end if end is not None else 'end'})"
        )
    available = math.floor(window * info.fps + 1e-6) if info.fps else 0
    if all_frames:
        return SamplingPlan("all", t0, t1)
    if fps is not None:
        count = max(1, math.floor(window * fps + 1e-9))
        return SamplingPlan("grid", t0, t1, origin=t0, step=1.0 / fps, count=count)
    per_segment = 0
    if segments is not None:
        assert frames_per_segment is not None
        num_frames = segments * frames_per_segment
        per_segment = frames_per_segment
    assert num_frames is not None and num_frames > 0
    if available and num_frames > available:
        raise VideoError(
            f"{info.path}: clip has about {available} frames in the window, fewer than the "
            f"{num_frames} requested"
        )
    step = window / num_frames
    origin = t0 + step / 2  # segment midpoints
    mode = "seek" if step >= seek_min_gap else "grid"
    return SamplingPlan(
        mode,
        t0,
        t1,
        origin=origin,
        step=step,
        count=num_frames,
        exact_count=True,
        frames_per_segment=per_segment,
    )


# ---------------------------------------------------------------------------------------------
# Decoding


def output_size(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """Display size with the shorter side scaled to `size` (aspect kept), as (width, height)."""
    w, h = info.width, info.height
    if not size:
        return w, h
    if w <= h:
        return size, max(1, round(h * size / w))
    return max(1, round(w * size / h)), size


class _StderrReader(threading.Thread):
    """Drains ffmpeg's stderr: showinfo pts into a queue, the rest kept for error messages."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.stream = stream
        self.pts: queue.Queue[float | None] = queue.Queue()
        self.tail: deque[str] = deque(maxlen=12)

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            line = raw.decode(errors="replace")
            m = _SHOWINFO_RE.search(line) if "showinfo" in line.lower() else None
            if m:
                self.pts.put(float(m.group(3)))
            elif line.strip():
                self.tail.append(line.strip())
        self.pts.put(None)

    def reason(self) -> str:
        useful = [ln for ln in self.tail if "showinfo" not in ln.lower()]
        return useful[-1] if useful else "ffmpeg failed"


def _grid_select(origin: float, step: float) -> str:
    # First frame at or after each grid time origin + k·step. Variable 0 holds the index k of the
    # next target (0 at start); ffmpeg's if() evaluates only the taken branch, so st() runs for
    # selected frames only, and a gap in a variable-rate stream skips empty grid slots instead of
    # bursting duplicates. st() returns k+1 >= 1, which selects the frame.
    eps = 1e-6
    return (
        f"if(gte(t,{origin!r}+ld(0)*{step!r}-{eps}),st(0,floor((t-{origin!r}+{eps})/{step!r})+1),0)"
    )


def _command(
    info: VideoInfo,
    size: tuple[int, int],
    select: str | None,
    seek: float | None,
    read_duration: float | None,
    max_frames: int | None,
    threads: int | None = None,
) -> list[str]:
    import ffmpeg

    input_kwargs: dict[str, object] = {"copyts": None}
    if threads is not None:
        # A one-frame decode gains nothing from frame threads, which only add start-up latency.
        input_kwargs["threads"] = threads
    if seek is not None and seek > 0:
        # With -copyts, -ss counts from the stream start; accurate seeking then discards frames
        # before the target, so the first frame out is the first at or after it.
        input_kwargs["ss"] = f"{seek:.6f}"
    if read_duration is not None:
        input_kwargs["t"] = f"{read_duration:.6f}"
    stream = ffmpeg.input(_ff_path(info.path), **input_kwargs)
    if select is not None:
        stream = stream.filter("select", select)
    stream = stream.filter("showinfo")
    width, height = size
    stream = stream.filter("scale", width, height, flags="bicubic")
    out_kwargs: dict[str, object] = {
        "format": "rawvideo",
        "pix_fmt": "rgb24",
        "fps_mode": "passthrough",
    }
    if max_frames is not None:
        out_kwargs["frames:v"] = max_frames
    compiled = stream.output("pipe:", **out_kwargs).compile()
    return [
        compiled[0],
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "info",
        "-an",
        "-sn",
        "-dn",
        *compiled[1:],
    ]


def _run_pipe(
    cmd: list[str], size: tuple[int, int], path: Path
) -> Iterator[tuple[float, np.ndarray]]:
    width, height = size
    frame_bytes = width * height * 3
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        bufsize=frame_bytes,
    )
    reader = _StderrReader(proc.stderr)
    reader.start()
    assert proc.stdout is not None
    try:
        while True:
            buf = proc.stdout.read(frame_bytes)
            if not buf:
                break
            if len(buf) < frame_bytes:
                break  # a truncated last frame: ffmpeg failed mid-frame
            pts = reader.pts.get()
            if pts is None:
                raise VideoError(f"{path}: ffmpeg produced a frame without a timestamp")
            yield pts, np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)
        returncode = proc.wait()
        reader.join(timeout=5)
        if returncode != 0:
            raise VideoError(f"{path}: decoding failed ({reader.reason()})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def decode(
    info: VideoInfo, plan: SamplingPlan, size: int | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream (pts seconds, RGB frame) for a plan, in presentation order."""
    out = output_size(info, size)
    margin = 2.0 / info.fps if info.fps else 0.1
    window_start = plan.t0 - info.start_time
    if plan.mode == "seek":
        yield from _decode_seeks(info, plan, out)
        return
    if plan.mode == "all":
        select = f"gte(t,{plan.t0!r}-1e-6)*lt(t,{plan.t1!r}-1e-6)"
        max_frames = None
    else:
        select = _grid_select(plan.origin, plan.step)
        max_frames = plan.count
    read_duration = (
        plan.t1 - plan.t0 + margin if plan.t1 < info.start_time + info.duration else None
    )
    cmd = _command(
        info,
        out,
        select,
        seek=window_start if window_start > 0 else None,
        read_duration=read_duration,
        max_frames=max_frames,
    )
    for pts, rgb in _run_pipe(cmd, out, info.path):
        if plan.mode == "all" or pts < plan.t1 + 1e-6:
            yield pts, rgb


def _decode_seeks(
    info: VideoInfo, plan: SamplingPlan, out: tuple[int, int]
) -> Iterator[tuple[float, np.ndarray]]:
    """One short ffmpeg run per target; a few run at once, since each is mostly process start-up
    and a partial GOP decode (latency, not throughput). Results keep target order."""
    from concurrent.futures import ThreadPoolExecutor

    def one(target: float) -> tuple[float, np.ndarray] | None:
        cmd = _command(
            info,
            out,
            None,
            seek=target - info.start_time,
            read_duration=None,
            max_frames=1,
            threads=1,
        )
        got = list(_run_pipe(cmd, out, info.path))
        return got[0] if got else None

    targets = plan.targets()
    last = -math.inf
    with ThreadPoolExecutor(max_workers=min(SEEK_CONCURRENCY, len(targets))) as pool:
        for got in pool.map(one, targets):
            if got is None:
                continue
            pts, rgb = got
            if pts <= last + 1e-9:  # two targets landed on one frame: keep it once
                continue
            last = pts
            yield pts, rgb


def packet_times(path: Path) -> np.ndarray:
    """Sorted presentation times of every video packet (demux only, no decoding)."""
    cmd = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time",
        "-of",
        "csv=p=0",
        _ff_path(path),
    ]
    res = subprocess.run(cmd, capture_output=True, check=False)
    if res.returncode != 0:
        raise VideoError(f"{path}: cannot read packet times ({_last_line(res.stderr.decode())})")
    values = []
    for line in res.stdout.decode().split():
        with contextlib.suppress(ValueError):
            values.append(float(line.strip().rstrip(",")))
    return np.sort(np.asarray(values, dtype=np.float64))


class FrameIndexer:
    """Maps a presentation time to the decoded frame number (0-based, presentation order).

    Constant-rate streams: round((pts - start) · fps). Variable-rate streams: the rank of the pts
    among all packet times, read once by a demux-only ffprobe pass.
    """

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self._times: np.ndarray | None = None
        if info.variable_frame_rate:
            self._times = packet_times(info.path)
            if self._times.size == 0:
                self._times = None

    def __call__(self, pts: float) -> int:
        if self._times is not None:
            i = int(np.searchsorted(self._times, pts - 1e-6))
            return min(i, len(self._times) - 1)
        return max(0, round((pts - self.info.start_time) * self.info.fps))


# ---------------------------------------------------------------------------------------------
# Encoding


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

    `size` is (width, height) and every frame must have it. `codec` and `pix_fmt` are the ffmpeg
    encoder and its pixel format; `output_args` are further ffmpeg output options by name
    (`{"crf": 23, "preset": "veryfast"}`). Frames are consumed one at a time, so a video is never
    held in memory. On failure the partial file is removed: VideoError when ffmpeg fails,
    ValueError for a frame of the wrong shape or dtype.
    """
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
            for frame in frames:
                if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                    raise ValueError(
                        f"frame {count}: expected {(height, width, 3)} uint8, "
                        f"got {frame.shape} {frame.dtype}"
                    )
                proc.stdin.write(np.ascontiguousarray(frame).data)
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


def loop_video(source: str | Path, path: str | Path, num_frames: int) -> Path:
    """Write `source` played in a loop until `num_frames` frames, by stream copy (no re-encoding).

    The copies are concatenated packet by packet, so `source` must be one closed GOP without
    B-frames reaching past its end (see `write_video`'s `output_args`), or the seams will not
    decode cleanly.
    """
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
